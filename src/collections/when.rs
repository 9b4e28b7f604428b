//! `When`: waiting for a collection's state — online, offline, changed, or at a version.

use super::{Error, Version};
use crate::groups::{self, Index};
use std::sync::Arc;
use tokio::sync::watch;

/// How far a collection's group has come on this node: joined at open, or still waiting
/// to join while the previous instance of the same collection on this node stops (see
/// `reopen.rs`), or failed to join then.
#[derive(Clone, Debug)]
pub(crate) enum Stage {
    /// Not joined yet.
    Pending,
    /// Joined: the group's waits.
    Ready(groups::When),
    /// The deferred join failed; why.
    Failed(Arc<dyn std::error::Error + Send + Sync>),
}

/// Waits for a collection's state. Each call resolves on the first state that satisfies
/// it (at once when the current one does, except [`When::updated`], which waits for the
/// next change), or fails with [`Error::Group`] once the collection stopped.
#[derive(Clone, Debug)]
pub struct When {
    kind: &'static str,
    stage: watch::Receiver<Stage>,
    /// Bumped by the state machine each time the state changes.
    changes: watch::Receiver<u64>,
}

impl When {
    pub(crate) fn new(
        kind: &'static str,
        stage: watch::Receiver<Stage>,
        changes: watch::Receiver<u64>,
    ) -> Self {
        When {
            kind,
            stage,
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
                cause: groups::StopCause::Ended,
            },
        )
    }

    /// The stage, for the handle (which waits on it when dropped).
    pub(crate) fn stage(&self) -> watch::Receiver<Stage> {
        self.stage.clone()
    }

    /// The group's waits, once it has joined.
    async fn group(&self, op: &'static str) -> Result<groups::When, Error> {
        let mut stage = self.stage.clone();
        loop {
            match &*stage.borrow_and_update() {
                Stage::Ready(when) => return Ok(when.clone()),
                Stage::Failed(reason) => {
                    return Err(self.failed(
                        op,
                        groups::GroupError::Stopped {
                            cause: groups::StopCause::NotStarted(reason.clone()),
                        },
                    ))
                }
                Stage::Pending => {}
            }
            if stage.changed().await.is_err() {
                return Err(self.ended(op));
            }
        }
    }

    /// This node follows a known leader and is not catching up: writes can go through and
    /// reads are at most a heartbeat behind.
    pub async fn online(&self) -> Result<(), Error> {
        let mut group = self.group("await online").await?;
        group
            .online()
            .await
            .map_err(|e| self.failed("await online", e))
    }

    /// This node lost its leader or started catching up.
    pub async fn offline(&self) -> Result<(), Error> {
        let mut group = self.group("await offline").await?;
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
    /// `version` anywhere is visible here. Takes a [`Version`] or any write's outcome
    /// ([`super::Exchange`], [`super::Taken`], [`super::Inserted`]).
    pub async fn reaches(&self, version: impl Into<Version>) -> Result<(), Error> {
        let version = version.into();
        let mut group = self.group("await version").await?;
        group
            .applied_reaches(version.0)
            .await
            .map_err(|e| self.failed("await version", e))
    }
}

/// Resolves once the group behind `stage` has stopped (or never joined).
pub(crate) async fn stopped(mut stage: watch::Receiver<Stage>) {
    let group = loop {
        let now = stage.borrow_and_update().clone();
        match now {
            Stage::Ready(group) => break group,
            Stage::Failed(_) => return,
            Stage::Pending => {
                if stage.changed().await.is_err() {
                    return;
                }
            }
        }
    };
    let mut group = group;
    // No index is ever this high: the wait ends only when the group stops.
    let _ = group.applied_reaches(Index(u64::MAX)).await;
}
