//! A deterministic simulator for the consensus core.
//!
//! One seed fixes everything: cluster size, fault rates, the schedule of partitions,
//! crashes, slow disks, membership changes and leadership transfers, every message delay,
//! loss and duplicate.
//! The driver of each node is a model of the future worker: it takes each `Ready`, stages
//! entries and hard state into the node's `InMemoryLogStore`, syncs once (at once, or after
//! a delay on a slow disk, meanwhile the node keeps working), sends the messages allowed
//! before the sync at once and the rest after it, applies committed entries to a test
//! state machine and reports back. A crash drops every write not yet synced
//! (`InMemoryLogStore::crash`) and the node restarts from its durable state.
//!
//! When a `Ready` asks for a catch-up, the driver runs a log-replay session like the
//! worker's `LogReplaySync` (`world/replay.rs`): batches of committed entries pulled from
//! several peers over the same faulty network, fed to the node in log order, ended with
//! `finish_catch_up`, or abandoned (no progress, at random, or by a crash).
//!
//! After every step the checkers in `checks/` run (one file per safety property, plus
//! exactly-once application of every client command). At the end, faults stop and the
//! liveness check requires a leader and every pending command committed within a bound.

pub mod checks;
mod runs;
pub mod world;

pub use world::{Scenario, World};

/// Runs one seed; `Err` holds the failure report (with the replay command).
pub fn run_seed(seed: u64, scenario: &Scenario) -> Result<world::Stats, String> {
    let mut world = World::new(seed, scenario.clone());
    world.run()
}

/// The command that replays `seed` under `scenario`.
pub fn replay_command(seed: u64, scenario: &Scenario) -> String {
    let knobs = scenario.knob_env();
    format!("{knobs}SIM_SEED={seed} cargo test --workspace --lib sim::runs::replay -- --nocapture")
}
