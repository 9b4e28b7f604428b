//! The wire messages of the consensus core and the log entry they carry.
//!
//! One enum, one struct per kind, the seed's names kept (`AppendEntries`,
//! `AppendEntriesResponse`, `RequestVote`, `RequestVoteResponse`, `Vote`, `Forward`; the
//! seed's `StateSync` message and forwarded queries are not here: state-sync traffic
//! travels in the group's own frames, and strong queries use read-index). Added for safety, in the same style: `PreVote`/`PreVoteResponse`
//! (dissertation §9.6), `ReadIndex`/`ReadIndexResponse` (§6.4), a `seq` on appends and their
//! responses (read-index confirmation), and a rejection hint on responses (§5.3 back-off); for leadership transfer (§3.10),
//! `TimeoutNow`, a `transfer` flag on vote requests and a `Refused` answer to forwards.
//!
//! Payloads are bytes: the core never decodes a user command. Every message arriving from a
//! peer is untrusted; [`AppendEntries::validate`] is checked before the core looks inside.

use super::membership::Membership;
use crate::PeerId;
use crate::{Cursor, Index, Term};
use serde::{Deserialize, Serialize};
use std::fmt;

/// What one log entry carries.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Payload {
    /// The entry a new leader appends at the start of its term (§8), so it can commit
    /// (and serve reads) without waiting for a client command.
    Noop,
    /// A client command, encoded by the typed layer above.
    Command(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The full voter and learner set from this index on (dissertation §4.1: a server uses
    /// the latest configuration in its log, committed or not).
    Config(Membership),
}

/// One log entry (the seed's `LogEntry`, with its index so a batch can be validated).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// Its position in the log.
    pub index: Index,
    /// What it carries.
    pub payload: Payload,
}

impl Entry {
    /// The entry's (term, index).
    pub fn cursor(&self) -> Cursor {
        Cursor(self.term, self.index)
    }

    /// Bytes of the command it carries (0 for a no-op; a configuration counts its peers).
    pub fn payload_len(&self) -> usize {
        match &self.payload {
            Payload::Noop => 0,
            Payload::Command(bytes) => bytes.len(),
            Payload::Config(m) => 32 * m.members().count(),
        }
    }
}

/// A vote (or acknowledgement) answer, the seed's three-valued `Vote`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Vote {
    /// Granted: the vote is given, or the entries matched and are durable.
    Granted,
    /// Denied: the candidate's log is behind or this node voted for another; or the
    /// entry before the sent ones did not match (a term conflict).
    Denied,
    /// Abstained: an observer answering a vote or pre-vote request (it counts neither for
    /// nor against the candidate, and the quorum stays a majority of the whole voter set);
    /// or, answering an append, a follower whose log ends before the sent entries, or one
    /// catching up by itself after a `catch_up` append.
    Abstained,
}

impl fmt::Display for Vote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Vote::Granted => "granted",
            Vote::Denied => "denied",
            Vote::Abstained => "abstained",
        })
    }
}

/// Leader to follower: entries to append, or a heartbeat when `entries` is empty.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntries {
    /// The leader's term.
    pub term: Term,
    /// The leader, so followers can redirect clients.
    pub leader: PeerId,
    /// The entry just before `entries` (§5.3 consistency check).
    pub prev_log_position: Cursor,
    /// Entries to store, consecutive from `prev_log_position.index() + 1`.
    pub entries: Vec<Entry>,
    /// The leader's commit index.
    pub leader_commit: Index,
    /// The leader's read-index round when this was sent; echoed in the response.
    pub seq: u64,
    /// The leader will not stream entries to this follower (it is far behind, or the
    /// leader pruned what it needs): if `prev_log_position` does not match its log, the
    /// follower reports a `CatchUp` (once per session) and catches up by itself (log replay
    /// from its peers, or state sync), answering `Abstained` meanwhile.
    pub catch_up: bool,
}

impl AppendEntries {
    /// Whether the message is well formed: entries consecutive after `prev_log_position`,
    /// terms non-decreasing, none above the message term, none below the previous entry's.
    pub fn validate(&self) -> Result<(), InvalidMessage> {
        let mut expected = self.prev_log_position.index().next();
        let mut last_term = self.prev_log_position.term();
        if last_term > self.term {
            return Err(InvalidMessage::TermAboveMessage {
                index: self.prev_log_position.index(),
                term: last_term,
                message_term: self.term,
            });
        }
        for entry in &self.entries {
            if entry.index != expected {
                return Err(InvalidMessage::NotConsecutive {
                    expected,
                    found: entry.index,
                });
            }
            if entry.term < last_term || entry.term > self.term {
                return Err(InvalidMessage::TermAboveMessage {
                    index: entry.index,
                    term: entry.term,
                    message_term: self.term,
                });
            }
            last_term = entry.term;
            expected = expected.next();
        }
        Ok(())
    }
}

/// What identifies an append's whole content without reading its entries: two appends
/// with equal identities are equal. By Raft's log matching property (§5.3) an entry is
/// fixed by its (term, index), and every entry before it by that one, so the previous
/// and the last entry fix the entries in between; the other fields are copied. A driver
/// sending one batch to several followers in step encodes it once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendIdentity {
    term: Term,
    leader: PeerId,
    prev: Cursor,
    last: Cursor,
    leader_commit: Index,
    seq: u64,
    catch_up: bool,
}

impl AppendEntries {
    /// This append's identity (see [`AppendIdentity`]).
    pub fn identity(&self) -> AppendIdentity {
        AppendIdentity {
            term: self.term,
            leader: self.leader,
            prev: self.prev_log_position,
            last: self
                .entries
                .last()
                .map_or(self.prev_log_position, Entry::cursor),
            leader_commit: self.leader_commit,
            seq: self.seq,
            catch_up: self.catch_up,
        }
    }
}

/// Follower to leader: the answer to one `AppendEntries`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppendEntriesResponse {
    /// The follower's term.
    pub term: Term,
    /// Granted: the last index known to match the leader's log *and* be durable here.
    /// Otherwise: the index the leader should try next (the rejection hint).
    pub last_log_index: Index,
    /// Granted on success; Denied on a term conflict at the previous entry; Abstained when
    /// the follower's log ends before the previous entry.
    pub vote: Vote,
    /// For a rejection, the `prev_log_position` index of the rejected request (lets the
    /// leader ignore stale rejections). 0 on success.
    pub rejected: Index,
    /// The `seq` of the request answered.
    pub seq: u64,
}

/// Candidate (or pre-candidate) to voter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVote {
    /// The candidate's term; for a pre-vote, the term it would campaign in.
    pub term: Term,
    /// The candidate.
    pub candidate: PeerId,
    /// The candidate's last log entry (§5.4.1 up-to-date check).
    pub log_position: Cursor,
    /// The candidate campaigns because the leader told it to ([`Message::TimeoutNow`], a
    /// leadership transfer): voters answer even while they hear from a leader (the
    /// leader-stickiness rule would otherwise refuse the very election the leader asked
    /// for). Always false for a pre-vote.
    ///
    /// Added with leadership transfer: it changes the struct's encoding, so every node of
    /// a cluster must run a version that has it (they all run the same version).
    pub transfer: bool,
}

/// Leader to the target of a leadership transfer, once the target holds the leader's
/// whole log: campaign now, without waiting for an election timeout and without a
/// pre-vote (Raft dissertation §3.10, etcd's `MsgTimeoutNow`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeoutNow {
    /// The leader's term: only the leader of the target's current term is obeyed.
    pub term: Term,
}

/// Leader to follower: the group is idle (quiescence, see `quiesce.rs`). The leader sends
/// no more heartbeats until something wakes it; a follower whose log ends at `last` takes
/// `commit` and stops its election timer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quiesce {
    /// The leader's term.
    pub term: Term,
    /// The leader's commit index (its last index).
    pub commit: Index,
    /// The leader's last entry: every member matched it.
    pub last: Cursor,
}

/// Follower to leader: this node woke from quiescence (a client call, a lost link, a
/// message from elsewhere), so the leader must heartbeat again or the follower will time
/// out. Also the answer to a quiesce notice that does not match the follower's log, or
/// that comes from an older term.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wake {
    /// The sender's term.
    pub term: Term,
}

/// Voter to candidate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestVoteResponse {
    /// The voter's term (for a granted pre-vote: the term asked about).
    pub term: Term,
    /// The answer.
    pub vote: Vote,
}

/// Follower to leader: please confirm leadership and tell me the commit index (§6.4).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndex {
    /// The caller's correlation id.
    pub ctx: u64,
}

/// Leader to follower: the confirmed read index, or `None` if this node is not leader.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadIndexResponse {
    /// The leader's term.
    pub term: Term,
    /// The id from the request.
    pub ctx: u64,
    /// The index a read must wait to be applied, or `None` when refused.
    pub index: Option<Index>,
}

/// An inclusive range of log indices (the seed's `IndexRange`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexRange {
    /// First index.
    pub start: Index,
    /// Last index (inclusive).
    pub end: Index,
}

/// Client traffic between followers and the leader (the seed's `Forward`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Forward {
    /// A follower forwards client commands to the leader.
    Command {
        /// Encoded commands.
        #[serde(with = "crate::byte_strings")]
        commands: Vec<Vec<u8>>,
        /// When set, the leader answers with `CommandAck`.
        request_id: Option<u64>,
        /// tessera addition: on a re-send (the acknowledgement may have been lost), the
        /// term the follower first sent it in. A leader appends a re-send it does not
        /// remember only in that very term: a leader that restarted since (and forgot what
        /// it appended) cannot lead that term again. `None` on the first send.
        resend_of: Option<Term>,
    },
    /// The leader's answer: where the commands went. tessera adds the term, because an
    /// index alone does not identify an entry (a later leader may reuse it).
    CommandAck {
        /// The id from the request.
        request_id: u64,
        /// The term the entries were appended in.
        term: Term,
        /// Their indices.
        assigned: IndexRange,
    },
    /// The leader's refusal: it is handing leadership over to `transfer_to` and appended
    /// none of the commands (the follower's client may retry them at the next leader).
    Refused {
        /// The id from the request.
        request_id: u64,
        /// The target of the leadership transfer.
        transfer_to: PeerId,
    },
    /// The leader's refusal: it is low on disk space and appended none of the commands.
    /// (Added after `Refused`: a node without it cannot decode this answer.)
    NoSpace {
        /// The id from the request.
        request_id: u64,
    },
}

/// Every message of the protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// Replication and heartbeat (§5.3).
    AppendEntries(AppendEntries),
    /// Answer to `AppendEntries`.
    AppendEntriesResponse(AppendEntriesResponse),
    /// Vote request of a candidate (§5.2).
    RequestVote(RequestVote),
    /// Answer to `RequestVote`.
    RequestVoteResponse(RequestVoteResponse),
    /// Pre-vote request (§9.6): would you vote for me? Changes no state.
    PreVote(RequestVote),
    /// Answer to `PreVote`.
    PreVoteResponse(RequestVoteResponse),
    /// Read-index request from a follower (§6.4).
    ReadIndex(ReadIndex),
    /// Answer to `ReadIndex`.
    ReadIndexResponse(ReadIndexResponse),
    /// Client commands forwarded to the leader.
    Forward(Forward),
    /// Leadership transfer: the leader tells its caught-up target to campaign now. Last,
    /// so that the variants before it keep their encoding.
    TimeoutNow(TimeoutNow),
    /// Quiescence: the leader's notice that the group is idle. Added after `TimeoutNow`
    /// (the variants before keep their encoding; a node without it cannot decode it, so
    /// every member must run a version that has it before any enables quiescing).
    Quiesce(Quiesce),
    /// Quiescence: a woken follower asks its leader to heartbeat again.
    Wake(Wake),
}

impl Message {
    /// The term a message carries for Raft's term rules (§5.1), if any. Forward and
    /// read-index traffic carry none and never change a node's term.
    pub fn term(&self) -> Option<Term> {
        match self {
            Message::AppendEntries(m) => Some(m.term),
            Message::AppendEntriesResponse(m) => Some(m.term),
            Message::RequestVote(m) | Message::PreVote(m) => Some(m.term),
            Message::RequestVoteResponse(m) | Message::PreVoteResponse(m) => Some(m.term),
            Message::TimeoutNow(m) => Some(m.term),
            Message::Quiesce(m) => Some(m.term),
            Message::Wake(m) => Some(m.term),
            Message::ReadIndex(_) | Message::ReadIndexResponse(_) | Message::Forward(_) => None,
        }
    }

    /// A short name for logs and tests.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::AppendEntries(_) => "AppendEntries",
            Message::AppendEntriesResponse(_) => "AppendEntriesResponse",
            Message::RequestVote(_) => "RequestVote",
            Message::RequestVoteResponse(_) => "RequestVoteResponse",
            Message::PreVote(_) => "PreVote",
            Message::PreVoteResponse(_) => "PreVoteResponse",
            Message::ReadIndex(_) => "ReadIndex",
            Message::ReadIndexResponse(_) => "ReadIndexResponse",
            Message::Forward(_) => "Forward",
            Message::TimeoutNow(_) => "TimeoutNow",
            Message::Quiesce(_) => "Quiesce",
            Message::Wake(_) => "Wake",
        }
    }
}

/// A message from a peer that breaks the protocol's shape; it is dropped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidMessage {
    /// Entries are not numbered one after another.
    #[error("entries not consecutive: expected index {expected}, found {found}")]
    NotConsecutive {
        /// The index that should have come next.
        expected: Index,
        /// The index found.
        found: Index,
    },
    /// An entry's term is out of order or above the message's term.
    #[error("entry {index} has term {term}, out of order or above message term {message_term}")]
    TermAboveMessage {
        /// The entry.
        index: Index,
        /// Its term.
        term: Term,
        /// The term of the message.
        message_term: Term,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ae(prev: (u64, u64), entries: &[(u64, u64)]) -> AppendEntries {
        AppendEntries {
            term: Term(5),
            leader: PeerId([1; 32]),
            prev_log_position: Cursor(Term(prev.0), Index(prev.1)),
            entries: entries
                .iter()
                .map(|&(t, i)| Entry {
                    term: Term(t),
                    index: Index(i),
                    payload: Payload::Noop,
                })
                .collect(),
            leader_commit: Index(0),
            seq: 0,
            catch_up: false,
        }
    }

    #[test]
    fn validate_accepts_consecutive_entries() {
        assert!(ae((2, 4), &[(2, 5), (3, 6), (5, 7)]).validate().is_ok());
        assert!(ae((0, 0), &[]).validate().is_ok());
    }

    #[test]
    fn validate_rejects_gaps_and_bad_terms() {
        assert!(matches!(
            ae((2, 4), &[(2, 6)]).validate(),
            Err(InvalidMessage::NotConsecutive { .. })
        ));
        assert!(ae((3, 4), &[(2, 5)]).validate().is_err());
        assert!(ae((2, 4), &[(6, 5)]).validate().is_err());
        assert!(ae((6, 4), &[]).validate().is_err());
    }

    #[test]
    fn messages_round_trip_through_the_codec() {
        let m = Message::AppendEntries(ae((1, 1), &[(1, 2)]));
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(&m, config).unwrap();
        let (back, _): (Message, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn new_variants_come_last_and_round_trip() {
        let config = bincode::config::standard();
        let encode = |m: &Message| bincode::serde::encode_to_vec(m, config).unwrap();
        // Variant indices of the messages that existed before leadership transfer stay.
        let forward = Message::Forward(Forward::CommandAck {
            request_id: 1,
            term: Term(2),
            assigned: IndexRange {
                start: Index(3),
                end: Index(3),
            },
        });
        assert_eq!(encode(&forward)[..2], [8, 1]);
        let refused = Message::Forward(Forward::Refused {
            request_id: 1,
            transfer_to: PeerId([2; 32]),
        });
        assert_eq!(encode(&refused)[..2], [8, 2]);
        let no_space = Message::Forward(Forward::NoSpace { request_id: 7 });
        assert_eq!(encode(&no_space), [8, 3, 7], "after Refused");
        let timeout_now = Message::TimeoutNow(TimeoutNow { term: Term(4) });
        assert_eq!(encode(&timeout_now), [9, 4]);
        assert_eq!(timeout_now.term(), Some(Term(4)));
        assert_eq!(timeout_now.kind(), "TimeoutNow");
        let vote = Message::RequestVote(RequestVote {
            term: Term(5),
            candidate: PeerId([1; 32]),
            log_position: Cursor(Term(4), Index(9)),
            transfer: true,
        });
        let quiesce = Message::Quiesce(Quiesce {
            term: Term(4),
            commit: Index(9),
            last: Cursor(Term(4), Index(9)),
        });
        assert_eq!(encode(&quiesce)[..2], [10, 4], "after TimeoutNow");
        let wake = Message::Wake(Wake { term: Term(4) });
        assert_eq!(encode(&wake), [11, 4], "after Quiesce");
        for m in [refused, no_space, timeout_now, vote, quiesce, wake] {
            let (back, _): (Message, usize) =
                bincode::serde::decode_from_slice(&encode(&m), config).unwrap();
            assert_eq!(back, m);
        }
    }

    #[test]
    fn identity_tells_apart_what_differs_and_matches_what_is_equal() {
        let a = ae((1, 3), &[(1, 4), (5, 5)]);
        assert_eq!(a.identity(), a.clone().identity());
        let heartbeat = ae((1, 3), &[]);
        assert_ne!(a.identity(), heartbeat.identity(), "last entry differs");
        assert_ne!(
            a.identity(),
            ae((1, 4), &[(5, 5)]).identity(),
            "prev differs"
        );
        let mut committed = a.clone();
        committed.leader_commit = Index(4);
        assert_ne!(a.identity(), committed.identity());
        let mut later_round = a.clone();
        later_round.seq = 1;
        assert_ne!(a.identity(), later_round.identity());
        let mut catch_up = a.clone();
        catch_up.catch_up = true;
        assert_ne!(a.identity(), catch_up.identity());
    }
}
