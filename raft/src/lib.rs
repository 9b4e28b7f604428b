//! The consensus core: Raft, sans-IO and deterministic.
//!
//! It owns the protocol and nothing else: it takes messages ([`Node::step`]), time
//! ([`Node::tick`]), client requests ([`Node::propose`], [`Node::read_index`],
//! [`Node::propose_membership`], [`Node::transfer_leadership`]) and completions ([`Node::on_persisted`],
//! [`Node::on_applied`], [`Node::on_state_synced`], [`Node::on_replayed`],
//! [`Node::finish_catch_up`]), and the driver's [`Node::wake`] (quiescence: an idle group
//! stops its timers, see [`Node::is_quiesced`]), and hands back one [`Ready`] at a time:
//! hard state and entries to persist, messages to send before and after the sync,
//! committed entries to apply, proposal and read outcomes, a catch-up request, how a
//! leadership transfer ended. No tokio,
//! clock, thread, socket or global RNG inside: ticks bring time, a seed brings randomness.
//!
//! Stable entries are read through a [`LogReader`] passed into the calls that need them
//! (see [`log`](self::LogReader) for why). The crate depends on no runtime, network or
//! storage engine: the compiler keeps "the core does no I/O" true. The `tessera` crate
//! drives it (its worker), and so does the deterministic simulator in this crate's tests.
//!
//! ```
//! use tessera_raft::{ClusterId, InMemoryLogStore, Node, Payload, PeerId, ProposalId, RaftConfig};
//!
//! let me = PeerId([1; 32]);
//! let mut store = InMemoryLogStore::default();
//! let mut node = Node::restart(me, RaftConfig::for_tests(), 7, &store, Default::default()).unwrap();
//! node.bootstrap([me].into(), ClusterId(1), &store).unwrap();
//! // Drive: tick until this single voter leads, persisting every Ready.
//! let mut applied = Vec::new();
//! let mut proposed = false;
//! for _ in 0..50 {
//!     node.tick(&store).unwrap();
//!     if node.is_leader() && !proposed {
//!         node.propose(ProposalId(1), b"hello".to_vec(), &store).unwrap();
//!         proposed = true;
//!     }
//!     while node.has_ready() {
//!         let mut rd = node.ready(&store).unwrap();
//!         if let Some(report) = rd.persist(&mut store).unwrap() {
//!             node.on_persisted(&report, &store).unwrap();
//!         }
//!         // (a real driver sends rd.take_messages() and rd.take_after_sync() here)
//!         for e in rd.take_committed() {
//!             applied.push(e.index);
//!             node.on_applied(e.index);
//!         }
//!     }
//! }
//! assert!(node.is_leader());
//! assert_eq!(applied, [1, 2, 3].map(tessera_raft::Index), "config, no-op, command");
//! ```

#![deny(missing_docs)]

mod abstention;
mod byte_strings;
mod candidate;
mod client;
mod config;
mod driver;
mod entry_bytes;
mod follower;
mod inflights;
mod leader;
mod log;
mod membership;
mod memory_store;
mod message;
mod node;
mod output;
mod peer;
mod position;
pub mod progress;
mod quiesce;
pub mod quorum;
mod read_index;
mod ready;
mod replay;
mod store;
mod store_error;
mod transfer;
mod unstable;

pub use config::{CampaignPolicy, RaftConfig};
pub use driver::{Effects, ReadyDriver};
pub use entry_bytes::PayloadBytesError;
pub use inflights::Inflights;
pub use log::LogReader;
pub use membership::{ClusterId, LearnerKind, Membership, MembershipChange, MembershipError};
pub use memory_store::InMemoryLogStore;
pub use message::{
    AppendEntries, AppendEntriesResponse, AppendIdentity, Entry, Forward, IndexRange,
    InvalidMessage, Message, Payload, Quiesce, ReadIndex, ReadIndexResponse, RequestVote,
    RequestVoteResponse, TimeoutNow, Vote, Wake,
};
pub use node::{Node, Role};
pub use output::{CatchUp, ClientError, ProposalId, ProposalOutcome, ReadOutcome, TransferOutcome};
pub use peer::PeerId;
pub use position::{Cursor, Index, Term};
pub use ready::Ready;
pub use replay::InvalidReplay;
pub use store::{HardState, LogRepair, Storage, SyncDone, SyncReport};
pub use store_error::StorageError;

/// Errors that stop the group: the storage failed or broke an invariant the core relies
/// on. A call a client made that merely failed is a [`ClientError`], never this. One
/// exception, see [`RaftError::is_fatal`]: [`RaftError::InvalidReplay`] refuses only the
/// replayed batch it names.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    /// The log store failed.
    #[error("log store: {0}")]
    Storage(#[from] StorageError),
    /// The store lacks entries the core's log says exist.
    #[error("store returned {found} entries for {from}..={to}")]
    MissingEntries {
        /// First index asked.
        from: Index,
        /// Last index asked.
        to: Index,
        /// How many came back.
        found: usize,
    },
    /// Something tried to overwrite a committed entry (a leader broke Raft's rules).
    #[error("refusing to overwrite committed entry {index} (committed {committed})")]
    CommittedOverwrite {
        /// First index that would be overwritten.
        index: Index,
        /// The commit index.
        committed: Index,
    },
    /// [`Node::on_replayed`] refused a batch; nothing changed. Not fatal: drop the batch.
    #[error("replayed batch refused: {0}")]
    InvalidReplay(#[from] InvalidReplay),
    /// `bootstrap` on a node that already has state.
    #[error("cannot bootstrap: node has term {term} and last entry {last}")]
    AlreadyInitialized {
        /// Its term.
        term: Term,
        /// Its last entry.
        last: Cursor,
    },
}

impl RaftError {
    /// Whether the group must stop: every error but [`RaftError::InvalidReplay`].
    pub fn is_fatal(&self) -> bool {
        !matches!(self, RaftError::InvalidReplay(_))
    }
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
