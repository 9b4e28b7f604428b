//! The safety properties, one file each, fed by the world as events happen. Each returns
//! `Err(description)` on the first violation.

pub mod durability;
pub mod election_safety;
pub mod exactly_once;
pub mod leader_completeness;
pub mod linearizable_reads;
pub mod log_matching;
pub mod state_machine_safety;

/// Every checker, fed by the world.
#[derive(Default)]
pub struct Checks {
    pub election: election_safety::ElectionSafety,
    pub matching: log_matching::LogMatching,
    pub completeness: leader_completeness::LeaderCompleteness,
    pub machine: state_machine_safety::StateMachineSafety,
    pub durability: durability::Durability,
    pub once: exactly_once::ExactlyOnce,
    pub reads: linearizable_reads::LinearizableReads,
}
