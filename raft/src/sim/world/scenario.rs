//! What one seed's run looks like (nodes, faults, clients, knobs) and the figures it reports.

use crate::config::Knobs;

/// What one seed's run looks like.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// Name used to replay (`SIM_SCENARIO`).
    pub name: &'static str,
    /// Ticks with faults on.
    pub fault_ticks: u64,
    /// Bound, in ticks after the faults stop, for a leader and every pending command.
    pub liveness_ticks: u64,
    /// Largest cluster (3..=7).
    pub max_nodes: usize,
    /// Per-tick probability of crashing a node.
    pub crash_rate: f64,
    /// Probability of crashing a node right after it synced a granted vote (a targeted
    /// crash point).
    pub crash_after_vote: f64,
    /// Probability of crashing a leader right after its commit index advanced.
    pub crash_after_commit: f64,
    /// Probability that a crash also damages the node's disk: a log record is found
    /// damaged at restart, and the log is repaired as `Storage::repair_from` does (cut
    /// there, vote withheld until the log reaches its old end). Never on a second node
    /// while one repair is pending (the simulator keeps a majority of intact disks), and
    /// only on a member of an odd voter set (see `World::maybe_damage`).
    pub damage_on_crash: f64,
    /// A crashed node restarts after this many ticks (range).
    pub restart_ticks: (u64, u64),
    /// Per-tick probability of a new partition.
    pub partition_rate: f64,
    /// Membership changes (joiners, removals) mid-run.
    pub membership: bool,
    /// Per-tick probability of asking the leader for a leadership transfer.
    pub transfer_rate: f64,
    /// Slow disks (delayed syncs).
    pub slow_disks: bool,
    /// Per-tick probability of a client command.
    pub propose_rate: f64,
    /// Per-tick probability of a strong read.
    pub read_rate: f64,
    /// Rule switches (all off in real runs).
    pub knobs: Knobs,
    /// Print the trace as it happens.
    pub trace: bool,
}

impl Scenario {
    /// The default mix: every fault on.
    pub fn standard() -> Self {
        Scenario {
            name: "standard",
            fault_ticks: 800,
            liveness_ticks: 400,
            max_nodes: 7,
            crash_rate: 0.015,
            restart_ticks: (5, 60),
            damage_on_crash: 0.2,
            crash_after_vote: 0.05,
            crash_after_commit: 0.01,
            partition_rate: 0.012,
            membership: true,
            transfer_rate: 0.01,
            slow_disks: true,
            propose_rate: 0.4,
            read_rate: 0.1,
            knobs: Knobs::default(),
            trace: false,
        }
    }

    /// Looks a scenario up by name (replay).
    pub fn by_name(name: &str) -> Option<Self> {
        let mut s = Scenario::standard();
        match name {
            "standard" => {}
            "commit_any_term" => {
                s.name = "commit_any_term";
                s.knobs.commit_any_term = true;
                s.knobs.skip_noop = true;
                s.membership = false;
                s.max_nodes = 3;
                s.crash_rate = 0.05;
                s.partition_rate = 0.05;
                s.propose_rate = 0.1;
                s.crash_after_commit = 0.3;
                s.fault_ticks = 2000;
                s.slow_disks = true;
            }
            "forget_vote" => {
                s.name = "forget_vote";
                s.knobs.forget_vote = true;
                s.membership = false;
                s.max_nodes = 3;
                s.crash_rate = 0.08;
                s.restart_ticks = (0, 3);
                s.crash_after_vote = 0.5;
                s.partition_rate = 0.03;
            }
            "ack_before_sync" => {
                s.name = "ack_before_sync";
                s.knobs.ack_before_sync = true;
                s.membership = false;
                s.crash_rate = 0.05;
            }
            _ => return None,
        }
        if s.name != "standard" {
            // Each rule-switch scenario proves its own rule is needed: no other fault.
            s.damage_on_crash = 0.0;
        }
        Some(s)
    }

    /// Environment prefix that selects this scenario on replay.
    pub fn knob_env(&self) -> String {
        if self.name == "standard" {
            String::new()
        } else {
            format!("SIM_SCENARIO={} ", self.name)
        }
    }
}

/// Figures from one run.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub nodes: usize,
    /// Nodes quiesced, summed over ticks.
    pub quiesced_node_ticks: u64,
    /// Quiesced nodes woken by the driver's lost-contact rule.
    pub wakes: u64,
    pub elections: usize,
    pub committed: u64,
    pub acked: usize,
    pub crashes: u32,
    /// Crashes that also damaged the node's log (repaired by truncation).
    pub log_repairs: u32,
    pub partitions: u32,
    pub membership_changes: u32,
    pub reads_served: u64,
    pub messages: u64,
    pub liveness_ticks: u64,
    /// Log-replay catch-up sessions started, and those that caught up.
    pub replay_sessions: u32,
    pub replay_caught_up: u32,
    /// Entries that went into logs by replay.
    pub replayed: u64,
    /// Leadership transfers started, refused, ended by the leader stepping down (and of
    /// those, won by the target in the term the leader moved to), and abandoned (timed
    /// out, target removed).
    pub transfers: u32,
    pub transfers_refused: u32,
    pub transfers_stepped_down: u32,
    pub transfers_completed: u32,
    pub transfers_abandoned: u32,
}
