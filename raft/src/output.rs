//! What the core hands its driver besides messages and entries: proposal and read outcomes,
//! why a client call failed, and a request to catch up. In one file so `Ready`, `Node` and
//! the parts that produce them do not import each other for their types.

use crate::message::Entry;
use crate::PeerId;
use crate::{Cursor, Index, Term};
use serde::{Deserialize, Serialize};

/// The caller's id for one proposal (unique per node; the worker assigns them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ProposalId(pub u64);

/// Why a proposal or read did not succeed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// This node cannot do that: it is not the leader.
    #[error("not the leader ({})", leader_words(leader))]
    NotLeader {
        /// The leader this node knows of, if any.
        leader: Option<PeerId>,
    },
    /// No leader acknowledged the forwarded command in time. It may still commit.
    #[error("no leader acknowledged the command within {ticks} ticks ({}); it may or may not be applied", leader_words(leader))]
    ForwardTimeout {
        /// How long it waited.
        ticks: u32,
        /// Where it was sent, if anywhere.
        leader: Option<PeerId>,
    },
    /// Another entry was committed at the proposal's index: it will never apply.
    #[error("entry {proposed} was overwritten: the committed entry at index {} has term {found}", proposed.index())]
    Overwritten {
        /// Where the proposal went.
        proposed: Cursor,
        /// The term of the entry committed there.
        found: Term,
    },
    /// The leader the command was forwarded to lost its term before it acknowledged the
    /// command. It may or may not be applied (the old leader may have appended it, and a
    /// new leader may commit it).
    #[error("leader {leader} of term {term} was replaced before it acknowledged the command; it may or may not be applied")]
    LeaderLost {
        /// Where it was sent.
        leader: PeerId,
        /// That leader's term.
        term: Term,
    },
    /// A state sync installed state past the proposal; whether it is included is unknown.
    #[error(
        "state sync installed state up to {anchor}, past proposal {proposed}: outcome unknown"
    )]
    SyncedPast {
        /// Where the proposal went.
        proposed: Cursor,
        /// The installed position.
        anchor: Cursor,
    },
    /// The read index was not confirmed in time.
    #[error("read index not confirmed within {ticks} ticks")]
    ReadTimeout {
        /// How long it waited.
        ticks: u32,
    },
    /// A membership change is still uncommitted; one at a time.
    #[error("membership change at index {index} not yet committed")]
    ChangePending {
        /// The pending change's index.
        index: Index,
    },
    /// The leader has not yet committed an entry of its term.
    #[error("leader of term {term} has not committed an entry of its term yet")]
    LeaderNotReady {
        /// The leader's term.
        term: Term,
    },
    /// The change does not apply to the current membership.
    #[error(transparent)]
    Membership(#[from] crate::membership::MembershipError),
    /// The leader is handing leadership over to `to`: it takes no proposal, forwarded
    /// command, membership change or other transfer until that ends (at most an election
    /// timeout). Nothing was appended: retry at the next leader.
    #[error(
        "leadership is being transferred to {to}: nothing was appended, retry at the new leader"
    )]
    TransferInProgress {
        /// The target of the transfer.
        to: PeerId,
    },
    /// A leadership transfer asked for a learner: only a voter can lead.
    #[error("cannot transfer leadership to {peer}: it is a learner, not a voter")]
    TransferToLearner {
        /// The peer asked for.
        peer: PeerId,
    },
    /// A leadership transfer asked for a peer outside the configuration.
    #[error("cannot transfer leadership to {peer}: it is not a member of this group")]
    TransferToUnknown {
        /// The peer asked for.
        peer: PeerId,
    },
    /// The leader is low on disk space and takes no command until space is freed
    /// (see [`Node::set_low_space`](crate::Node::set_low_space)). Nothing was appended.
    #[error("the leader {leader} is low on disk space and takes no writes until space is freed: nothing was appended")]
    NoSpace {
        /// The leader that refused.
        leader: PeerId,
    },
    /// A leadership transfer to "any voter" found none: no other voter was heard from in
    /// the last election timeout.
    #[error("cannot transfer leadership: no other voter is active")]
    NoTransferTarget,
}

/// How a leadership transfer this node started as leader ended (see
/// [`Node::transfer_leadership`](crate::Node::transfer_leadership)); handed out in a
/// [`Ready`](crate::Ready). Which node leads afterwards shows in
/// [`Node::leader`](crate::Node::leader) once a leader is heard from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransferOutcome {
    /// This node stepped down while transferring: term `term` began (most often the
    /// target's election; another candidate may have won it).
    SteppedDown {
        /// The target of the transfer.
        to: PeerId,
        /// The term this node moved to.
        term: Term,
    },
    /// The target did not take over within an election timeout: this node still leads and
    /// accepts proposals again.
    TimedOut {
        /// The target of the transfer.
        to: PeerId,
    },
    /// The target is no longer a voter of the configuration: this node still leads and
    /// accepts proposals again.
    TargetRemoved {
        /// The target of the transfer.
        to: PeerId,
    },
}

/// The outcome of one proposal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProposalOutcome {
    /// The proposal.
    pub id: ProposalId,
    /// `Ok(position)`: this very entry is committed and is in this `Ready`'s committed
    /// entries (or was applied before); resolve the client once it is applied.
    pub result: Result<Cursor, ClientError>,
}

/// The outcome of one `read_index` call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOutcome {
    /// The caller's id.
    pub ctx: u64,
    /// The index to apply before serving the read, or why there is none.
    pub result: Result<Index, ClientError>,
}

/// The leader asked this follower to catch up by itself (an append flagged `catch_up`
/// that does not follow its log): open one `StateSync` session (seed contract of
/// `StateSync::create_session`): log replay ([`Node::on_replayed`]) or state sync
/// ([`Node::on_state_synced`]).
///
/// At most one session is open at a time: after handing out a `CatchUp` the core reports
/// no other until the worker calls [`Node::finish_catch_up`] (the session ended, caught up
/// or abandoned) or [`Node::on_state_synced`]. A restart forgets the session. Meanwhile the
/// leader sends heartbeats only; if the session stalls, it falls back to probing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatchUp {
    /// The leader that sent the entries.
    pub leader: PeerId,
    /// The leader's entry just before them.
    pub position: Cursor,
    /// The leader's commit index.
    pub leader_commit: Index,
    /// The entries that revealed the gap.
    pub entries: Vec<Entry>,
}

/// "the leader is ID" or "no leader is known", for error messages people read.
fn leader_words(leader: &Option<PeerId>) -> String {
    match leader {
        Some(id) => format!("the leader is {id}"),
        None => "no leader is known".to_string(),
    }
}
