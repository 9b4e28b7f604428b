//! Why a group stopped: carried in [`super::GroupStatus::stopped`] and in
//! [`super::GroupError::Stopped`], typed so a caller can tell a shutdown it asked for from a
//! failing disk without parsing a message.

use super::WorkerError;
use std::sync::Arc;

/// Why a group's worker stopped (or never started).
#[derive(Clone, Debug, thiserror::Error)]
pub enum StopCause {
    /// `shutdown` was called, every handle was dropped, or the network shut down.
    #[error("shut down")]
    ShutDown,
    /// The worker ended without a recorded cause (its task is gone).
    #[error("the group's worker ended")]
    Ended,
    /// A fatal storage or consensus error; the group stays stopped until it is reopened.
    #[error("fatal: {0}")]
    Fatal(#[source] Arc<WorkerError>),
    /// The group never started (joining it failed).
    #[error("not started: {0}")]
    NotStarted(#[source] Arc<dyn std::error::Error + Send + Sync>),
}

impl StopCause {
    /// Whether the group stopped because something failed (not because it was asked to).
    pub fn is_failure(&self) -> bool {
        matches!(self, StopCause::Fatal(_) | StopCause::NotStarted(_))
    }
}

/// Two causes are equal when they are the same kind and, for a failure, the same event
/// (one `Arc`): a status is compared to tell whether it changed.
impl PartialEq for StopCause {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (StopCause::ShutDown, StopCause::ShutDown) | (StopCause::Ended, StopCause::Ended) => {
                true
            }
            (StopCause::Fatal(a), StopCause::Fatal(b)) => Arc::ptr_eq(a, b),
            (StopCause::NotStarted(a), StopCause::NotStarted(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl Eq for StopCause {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::raft::RaftError;

    #[test]
    fn a_failure_is_told_from_a_shutdown_and_keeps_its_source() {
        let fatal = StopCause::Fatal(Arc::new(WorkerError::Raft(RaftError::CommittedOverwrite {
            index: crate::groups::Index(3),
            committed: crate::groups::Index(5),
        })));
        assert!(fatal.is_failure());
        assert!(!StopCause::ShutDown.is_failure());
        assert!(std::error::Error::source(&fatal).is_some());
        assert!(fatal.to_string().starts_with("fatal: "));
        assert_eq!(fatal.clone(), fatal);
        assert_ne!(StopCause::ShutDown, StopCause::Ended);
    }
}
