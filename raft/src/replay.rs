//! Catch-up by log replay, the follower's side: entries its peers report committed go into
//! its log through the core ([`Node::on_replayed`]), and the end of the session is reported
//! to the leader ([`Node::finish_catch_up`]).
//!
//! The leader asks for it: a follower more than `replay_threshold` entries behind gets an
//! append flagged `catch_up`, reports a [`CatchUp`](super::CatchUp) in its `Ready`, and its
//! worker pulls committed ranges from several peers in parallel (the leader last) instead of
//! the leader streaming them.
//!
//! **Why the commit index is capped.** A committed entry is the same in every log, so
//! appending the peers' committed entries is safe, and so is applying them. But the follower
//! tells its leader "I match you up to my commit index" (heartbeat answers, and
//! `finish_catch_up`). That claim is true only for entries committed in a term no later than
//! the follower's own: a leader of that term holds them (Leader Completeness); a peer may
//! report entries committed by a *newer* leader the follower has not heard of, and a stale
//! leader of the follower's term may hold other entries there. So the follower's commit
//! index never passes `known_commit`, the highest commit index a leader of its term (or an
//! earlier one) announced; replayed entries above it wait in the log, known committed
//! (`replayed_to`), and become committed here as later heartbeats raise `known_commit`.

use super::log::LogReader;
use super::membership::Membership;
use super::message::Entry;
use super::node::Node;
use super::RaftError;
use crate::{Cursor, Index, Term};

/// A batch handed to [`Node::on_replayed`] that the core refused; nothing changed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReplay {
    /// Entries are not numbered one after another.
    #[error("replayed entries not consecutive: expected index {expected}, found {found}")]
    NotConsecutive {
        /// The index that should have come next.
        expected: Index,
        /// The index found.
        found: Index,
    },
    /// An entry's term is below the previous entry's.
    #[error("replayed entry {index} has term {term}, below the previous entry's {previous}")]
    TermDecreases {
        /// The entry.
        index: Index,
        /// Its term.
        term: Term,
        /// The term before it.
        previous: Term,
    },
    /// The batch does not reach back to what the log holds as committed.
    #[error("replayed batch starts at {first}, past the replay position {position} + 1")]
    Gap {
        /// The batch's first index.
        first: Index,
        /// [`Node::replay_position`].
        position: Index,
    },
    /// A replayed entry differs from an entry this node holds as committed: the peer (or
    /// this node) broke Raft's safety; the batch is refused.
    #[error(
        "replayed entry {index} has term {term}, but committed entry {index} here has term {local}"
    )]
    ConflictsWithCommitted {
        /// The entry.
        index: Index,
        /// Its term in the batch.
        term: Term,
        /// The term of the committed entry here.
        local: Term,
    },
}

impl Node {
    /// Entries a peer reported committed (log replay). `entries` are consecutive with
    /// non-decreasing terms; the first is at or below [`Node::replay_position`]` + 1`;
    /// `committed` is the peer's commit index when it read them.
    ///
    /// The batch is appended as a leader's append would be, after this node's own entry
    /// before the first one (which matches: it is committed everywhere), replacing a
    /// conflicting uncommitted suffix. Then the commit index rises to the last replayed
    /// entry (at most `committed`), but never above the highest commit index a leader of
    /// this node's term or an earlier one announced (see the module docs for why); the rest
    /// waits in the log, known committed, until a heartbeat announces more.
    /// Term, vote, leader and election timer do not change; the new entries and commit
    /// index come out in the next `Ready`, to persist and apply as usual.
    ///
    /// Ignored (`Ok`, nothing changes): an empty batch, entries at or below the commit
    /// index, and the part of a batch above `committed` or from the first entry whose term
    /// is above this node's term (this node cannot hold entries of a term it has not
    /// entered; a later batch brings them once it has). On a leader the call does nothing.
    ///
    /// Refused with [`RaftError::InvalidReplay`] (nothing changes, **not fatal**: drop the
    /// batch, perhaps the peer): entries not consecutive, decreasing terms, a batch that
    /// starts past `replay_position() + 1`, or one that contradicts a committed entry here.
    /// Other errors are the store's, fatal as everywhere.
    pub fn on_replayed(
        &mut self,
        entries: Vec<Entry>,
        committed: Index,
        store: &dyn LogReader,
    ) -> Result<(), RaftError> {
        if self.is_leader() || entries.is_empty() {
            return Ok(());
        }
        check_shape(&entries)?;
        let position = self.replay_position();
        let first = entries[0].index;
        if first > position.next() {
            return Err(InvalidReplay::Gap { first, position }.into());
        }
        let commit = self.log.committed;
        // Keep what is known committed and of a term this node has entered.
        let term = self.term;
        let mut entries: Vec<Entry> = entries
            .into_iter()
            .take_while(|e| e.index <= committed && e.term <= term)
            .collect();
        // What overlaps the committed prefix must agree with it (one lookup: by Log
        // Matching, agreement at the commit index covers everything before).
        if let Some(e) = entries.iter().find(|e| e.index == commit) {
            if let Some(local) = self.log.term_at(commit, store)? {
                if local != e.term {
                    return Err(InvalidReplay::ConflictsWithCommitted {
                        index: commit,
                        term: e.term,
                        local,
                    }
                    .into());
                }
            }
        }
        entries.retain(|e| e.index > commit);
        let Some(last) = entries.last().map(|e| e.index) else {
            return Ok(());
        };
        let configs = super::membership::config_entries(&entries);
        // The batch starts at or below `position + 1`: everything before it in this log
        // is committed (at or below `commit`) or replayed committed entries, so the entry
        // before the first one matches the peer's.
        let prev_index = entries[0].index.prev();
        let prev = Cursor(
            self.log.term_at(prev_index, store)?.unwrap_or_default(),
            prev_index,
        );
        let Some((verified, written)) = self.log.maybe_append(prev, entries, store)? else {
            // Unreachable while `prev` is read from the log itself; refuse rather than guess.
            return Err(InvalidReplay::Gap { first, position }.into());
        };
        if let Some(from) = written {
            self.on_log_rewritten(&configs, from, store);
        }
        self.replayed_to = self.replayed_to.max(last);
        debug_assert_eq!(verified, last);
        if self.log.commit_to(self.replayed_to.min(self.known_commit)) {
            self.on_commit_advanced();
        }
        self.check_invariants();
        Ok(())
    }

    /// The catch-up session ended, caught up or abandoned: this node may report a new
    /// [`CatchUp`](super::CatchUp) when a leader asks again, and it tells its leader where
    /// its log now matches (its commit index, once durable here), so the leader replicates
    /// from there, or asks for another catch-up if it is still far behind.
    pub fn finish_catch_up(&mut self) {
        self.syncing = false;
        if let Some(leader) = self.leader.filter(|l| *l != self.id) {
            if !self.is_leader() {
                self.queue_ack(leader, self.log.committed, 0);
            }
        }
        self.check_invariants();
    }

    /// Where the next replayed batch may start at the latest (plus one): the commit index,
    /// or beyond it the last replayed entry still in the log.
    pub fn replay_position(&self) -> Index {
        self.log.committed.max(self.replayed_to)
    }

    /// Entries from `from` on were (re)written: forget replayed entries there, fail the
    /// proposals they replaced, record configuration entries, and take back a pending
    /// acknowledgement of entries that are gone.
    pub(crate) fn on_log_rewritten(
        &mut self,
        configs: &[(Index, Membership)],
        from: Index,
        store: &dyn LogReader,
    ) {
        self.note_configs(configs, from);
        if self.replayed_to >= from {
            self.replayed_to = from.prev();
        }
        if let Some(ack) = &mut self.pending_ack {
            if ack.index >= from {
                ack.index = from.prev();
            }
        }
        let log = &self.log;
        let mut outcomes = std::mem::take(&mut self.outcomes);
        self.clients.overwritten_from(
            from,
            |i| log.term_at(i, store).ok().flatten(),
            &mut outcomes,
        );
        self.outcomes = outcomes;
    }

    /// A leader of this node's term announced `leader_commit`: replayed entries up to it
    /// become committed here.
    pub(crate) fn note_leader_commit(&mut self, leader_commit: Index) {
        if leader_commit > self.known_commit {
            self.known_commit = leader_commit;
        }
        if self.replayed_to > self.log.committed
            && self.log.commit_to(self.replayed_to.min(self.known_commit))
        {
            self.on_commit_advanced();
        }
    }
}

/// Consecutive indices from 1 up, non-decreasing terms.
fn check_shape(entries: &[Entry]) -> Result<(), InvalidReplay> {
    let mut expected = entries[0].index.max(Index(1));
    let mut previous = Term(0);
    for e in entries {
        if e.index != expected {
            return Err(InvalidReplay::NotConsecutive {
                expected,
                found: e.index,
            });
        }
        if e.term < previous {
            return Err(InvalidReplay::TermDecreases {
                index: e.index,
                term: e.term,
                previous,
            });
        }
        previous = e.term;
        expected = expected.next();
    }
    Ok(())
}
