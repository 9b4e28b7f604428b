//! Why a collection call failed. Every variant names the collection kind and the call.

use super::{StoreId, Version};
use crate::groups::{GroupError, JoinError};

/// A collection could not be opened, a write failed, or a wait ended early.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Joining the collection's group failed (network shut down, the same collection
    /// already open on this node, the data directory's store unreadable).
    #[error("cannot open {kind} {store}: {source}")]
    Open {
        /// The collection kind ("map", "cell", ...).
        kind: &'static str,
        /// The collection.
        store: StoreId,
        /// What the group builder reported (boxed: it is large, and rare).
        source: Box<JoinError>,
    },
    /// The settings cannot work (e.g. a priority queue of capacity 0).
    #[error("invalid {kind} settings: {reason}")]
    Config {
        /// The collection kind.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The group refused or failed the call; a timed-out write may still be applied.
    #[error("{kind} {op} failed: {source}")]
    Group {
        /// The collection kind.
        kind: &'static str,
        /// The call ("insert", "await online", ...).
        op: &'static str,
        /// What the group reported.
        source: GroupError,
    },
    /// The write was applied at `version`, but this node did not see its outcome (it
    /// caught up by installing a snapshot past it); read the state to learn what it did.
    #[error("{kind} {op} was applied at {version} but its outcome was not observed on this node (it installed a snapshot past it)")]
    OutcomeUnknown {
        /// The collection kind.
        kind: &'static str,
        /// The call.
        op: &'static str,
        /// Where it was applied.
        version: Version,
    },
    /// The collection refused the write, identically on every node, and nothing changed.
    #[error("{kind} {op} refused at {version}: {reason}")]
    Refused {
        /// The collection kind.
        kind: &'static str,
        /// The call.
        op: &'static str,
        /// Where the refusal was applied.
        version: Version,
        /// Why.
        reason: &'static str,
    },
    /// No randomness was available for a request tag.
    #[error("{kind}: no randomness for request tags: {reason}")]
    Random {
        /// The collection kind.
        kind: &'static str,
        /// The source's message.
        reason: String,
    },
}

impl Error {
    /// The group's error behind this one, if any.
    pub fn group_error(&self) -> Option<&GroupError> {
        match self {
            Error::Group { source, .. } => Some(source),
            _ => None,
        }
    }
}
