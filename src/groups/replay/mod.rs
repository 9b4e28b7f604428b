//! `LogReplaySync`: catch-up by replaying committed log entries pulled from peers (the
//! seed's built-in `StateSync`).
//!
//! The lagging follower's session broadcasts an availability request to every bonded
//! peer; each provider answers with the committed range its log holds. The session cuts
//! the missing range (its commit index + 1 up to the leader's commit) into batches of
//! `batch_size` entries and asks them from several providers at once — at most
//! [`MAX_INFLIGHT_PER_PEER`] batches each, non-leaders first, the leader only for batches
//! no other provider can serve — and hands the batches, in order, to the consensus core
//! (`SyncSessionContext::append_committed`). A provider that does not answer within
//! [`REQUEST_TIMEOUT`] loses its batch to another one; a short answer is re-asked for the
//! rest. Memory stays bounded by batches in flight.
//!
//! Providers serve only committed entries (identical on every member), so entries from
//! any provider fit the follower's committed prefix.

mod message;
mod provider;
mod session;
mod stats;

pub use message::ReplayMessage;
pub use provider::ReplayProvider;
pub use session::ReplaySession;
pub use stats::ReplayStats;

use super::machine::{StateMachine, StateSync, SyncContext, SyncSessionContext};
use super::raft::Entry;
use super::{Cursor, Index};
use crate::primitives::Digest;
use crate::UniqueId;
use std::marker::PhantomData;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Batches a session keeps in flight per provider.
pub const MAX_INFLIGHT_PER_PEER: usize = 4;

/// A batch not answered within this is asked from another provider.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// A provider answers with at most this many bytes of entries (well under the frame cap).
pub const MAX_ANSWER_BYTES: usize = 4 << 20;

/// Catch-up by log replay, for any state machine.
pub struct LogReplaySync<M> {
    batch_size: NonZeroU32,
    stats: Arc<ReplayStats>,
    _machine: PhantomData<fn() -> M>,
}

impl<M> Default for LogReplaySync<M> {
    fn default() -> Self {
        LogReplaySync {
            batch_size: NonZeroU32::new(2_000).unwrap_or(NonZeroU32::MIN),
            stats: Arc::default(),
            _machine: PhantomData,
        }
    }
}

impl<M> Clone for LogReplaySync<M> {
    fn clone(&self) -> Self {
        LogReplaySync {
            batch_size: self.batch_size,
            stats: self.stats.clone(),
            _machine: PhantomData,
        }
    }
}

impl<M> LogReplaySync<M> {
    /// Entries per batch (default 2,000); part of the signature.
    pub fn with_batch_size(mut self, size: NonZeroU32) -> Self {
        self.batch_size = size;
        self
    }

    /// Counters shared by every provider and session made from this value (and its
    /// clones): what was served and fetched, per peer.
    pub fn stats(&self) -> Arc<ReplayStats> {
        self.stats.clone()
    }
}

impl<M: StateMachine<StateSync = LogReplaySync<M>>> StateSync for LogReplaySync<M> {
    type Machine = M;
    type Message = ReplayMessage;
    type Provider = ReplayProvider<M>;
    type Session = ReplaySession<M>;

    fn signature(&self) -> UniqueId {
        Digest::from_parts(&[
            b"tessera/log-replay-sync/v1".as_slice(),
            &self.batch_size.get().to_le_bytes(),
        ])
    }

    fn create_provider(&self, _: &dyn SyncContext<Self>) -> ReplayProvider<M> {
        ReplayProvider::new(self.batch_size.get() as u64, self.stats.clone())
    }

    fn create_session(
        &self,
        cx: &mut dyn SyncSessionContext<Self>,
        _position: Cursor,
        leader_commit: Index,
        _entries: Vec<Entry>,
    ) -> ReplaySession<M> {
        ReplaySession::new(
            cx,
            leader_commit,
            self.batch_size.get() as u64,
            self.stats.clone(),
        )
    }
}

#[cfg(test)]
mod tests;
