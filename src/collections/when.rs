//! `When`: waiting for a collection's state — online, offline, changed, or at a version.

use super::{Error, Version};
use crate::groups;
use tokio::sync::watch;

/// Waits for a collection's state. Each call resolves on the first state that satisfies
/// it (at once when the current one does, except [`When::updated`], which waits for the
/// next change), or fails with [`Error::Group`] once the collection stopped.
#[derive(Clone, Debug)]
pub struct When {
    kind: &'static str,
    group: groups::When,
    /// Bumped by the state machine each time the state changes.
    changes: watch::Receiver<u64>,
}

impl When {
    pub(crate) fn new(
        kind: &'static str,
        group: groups::When,
        changes: watch::Receiver<u64>,
    ) -> Self {
        When {
            kind,
            group,
            changes,
        }
    }

    fn failed(&self, op: &'static str, source: groups::GroupError) -> Error {
        Error::Group {
            kind: self.kind,
            op,
            source,
        }
    }

    /// The error of the wait `op`, which ended because the collection's group did.
    pub(crate) fn ended(&self, op: &'static str) -> Error {
        self.failed(
            op,
            groups::GroupError::Stopped {
                reason: "the collection's group ended".into(),
            },
        )
    }

    /// This node follows a known leader and is not catching up: writes can go through and
    /// reads are at most a heartbeat behind.
    pub async fn online(&self) -> Result<(), Error> {
        let mut group = self.group.clone();
        group
            .online()
            .await
            .map_err(|e| self.failed("await online", e))
    }

    /// This node lost its leader or started catching up.
    pub async fn offline(&self) -> Result<(), Error> {
        let mut group = self.group.clone();
        group
            .offline()
            .await
            .map_err(|e| self.failed("await offline", e))
    }

    /// The state changes after this call: a write that changed something was applied, or
    /// a snapshot was installed. Writes that change nothing (a failed compare-exchange, an
    /// out-of-range index) do not count.
    pub async fn updated(&self) -> Result<(), Error> {
        let mut changes = self.changes.clone();
        changes.borrow_and_update();
        changes
            .changed()
            .await
            .map_err(|_| self.ended("await update"))
    }

    /// This node's state reflects `version` (or a later one): a write that resolved to
    /// `version` anywhere is visible here.
    pub async fn reaches(&self, version: Version) -> Result<(), Error> {
        let mut group = self.group.clone();
        group
            .applied_reaches(version.0)
            .await
            .map_err(|e| self.failed("await version", e))
    }
}
