//! `Group<M>`: the application's handle on one joined group, and [`When`] for waiting on
//! its state.
//!
//! The handle talks to the group's worker task through one bounded request channel (when
//! it is full, calls wait: back-pressure, never an unbounded queue) and reads the worker's
//! published [`GroupStatus`] through a watch channel. Handles are cheap clones; the worker
//! runs while at least one handle lives (or until [`Group::shutdown`]), so dropping one
//! handle never stops the group for the others.

use super::machine::{Consistency, StateMachine};
use super::metrics::GroupMetrics;
use super::raft::{ClientError, ClusterId, Membership, MembershipChange, Role};
use super::roster::Roster;
use super::{Cursor, Index, StopCause, Term};
use crate::network::{NetworkError, Revalidation, WeakNetwork};
use crate::primitives::codec;
use crate::{GroupId, PeerId};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Why a group call failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    /// The consensus core refused or failed the call (not leader, overwritten, timeout of
    /// a forward or a read index, a membership rule).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// No answer within the call's deadline; a command may still commit later.
    #[error("{what} did not complete within {after:?}; a command may still be applied")]
    Timeout {
        /// The call.
        what: &'static str,
        /// The deadline.
        after: Duration,
    },
    /// The group stopped (shut down, or a fatal storage error: the cause says which).
    #[error("group stopped: {cause}")]
    Stopped {
        /// Why.
        #[source]
        cause: StopCause,
    },
    /// A leadership transfer did not complete.
    #[error("leadership transfer to {to} failed: {reason}")]
    TransferFailed {
        /// The target.
        to: PeerId,
        /// Why, in words.
        reason: String,
    },
    /// The command or query could not be encoded.
    #[error("cannot encode {what}: {reason}")]
    Encode {
        /// Command or query.
        what: &'static str,
        /// The codec's message.
        reason: String,
    },
}

/// What the worker publishes after every step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupStatus {
    /// This node.
    pub id: PeerId,
    /// The group.
    pub group: GroupId,
    /// Its role.
    pub role: Role,
    /// The current term.
    pub term: Term,
    /// The leader of this term, if known.
    pub leader: Option<PeerId>,
    /// The commit index.
    pub commit: Index,
    /// The last index applied to the state machine.
    pub applied: Index,
    /// The first index still in the log (the log was pruned up to the one before).
    pub log_start: Index,
    /// The last log entry.
    pub last: Cursor,
    /// The last entry known durable.
    pub durable: Cursor,
    /// The current configuration.
    pub members: Membership,
    /// Peers with a live link for this group.
    pub bonded: Vec<PeerId>,
    /// A leader is known and no catch-up is running.
    pub online: bool,
    /// A catch-up session is running.
    pub syncing: bool,
    /// Set once the worker stopped, with the cause.
    pub stopped: Option<StopCause>,
    /// The founding this node belongs to (`None` while fresh).
    pub cluster: Option<ClusterId>,
    /// Bonded peers of another founding of this group id (founded apart: they cannot
    /// merge), with their cluster ids. Their traffic is refused.
    pub conflicts: Vec<(PeerId, ClusterId)>,
    /// The node's disk is below its free-space reserve: it takes no new entries, and as
    /// leader no writes (see [`crate::data_dir::space`]).
    pub disk_low: bool,
    /// The group is quiesced here: idle, no heartbeats (leader) or election timer
    /// (follower), the worker ticking slowly until something wakes it.
    pub quiesced: bool,
}

impl GroupStatus {
    pub(crate) fn initial(id: PeerId, group: GroupId) -> Self {
        GroupStatus {
            id,
            group,
            role: Role::Follower,
            term: Term(0),
            leader: None,
            commit: Index(0),
            applied: Index(0),
            log_start: Index(1),
            last: Cursor::zero(),
            durable: Cursor::zero(),
            members: Membership::default(),
            bonded: Vec::new(),
            online: false,
            syncing: false,
            stopped: None,
            cluster: None,
            conflicts: Vec::new(),
            disk_low: false,
            quiesced: false,
        }
    }
}

/// A request from a handle to the worker.
pub(crate) enum Request<M: StateMachine> {
    /// Encoded commands; the reply carries each one's index once applied.
    Execute {
        commands: Vec<Vec<u8>>,
        /// When the caller handed it over (the start of its traced time, `worker/trace.rs`).
        at: std::time::Instant,
        reply: oneshot::Sender<Result<Vec<Index>, GroupError>>,
    },
    /// Encoded commands proposed without waiting for their outcome.
    Feed { commands: Vec<Vec<u8>> },
    /// A query.
    Query {
        query: M::Query,
        consistency: Consistency,
        reply: oneshot::Sender<Result<(M::QueryResult, Index), GroupError>>,
    },
    /// A membership change; the reply carries its index once committed.
    Change {
        change: MembershipChange,
        reply: oneshot::Sender<Result<Index, GroupError>>,
    },
    /// Hand leadership to `target` (or the most caught-up voter); the reply carries the
    /// new leader.
    Transfer {
        target: Option<PeerId>,
        reply: super::worker::TransferReply,
    },
    /// The members as this node sees them.
    Roster {
        reply: oneshot::Sender<Result<Roster, GroupError>>,
    },
    /// Stop the worker.
    Shutdown { done: oneshot::Sender<()> },
}

/// How long a command refused during a leadership transfer waits before it is proposed
/// again.
const TRANSFER_RETRY: Duration = Duration::from_millis(10);

/// Capacity of a group's request channel: calls beyond it wait.
pub const REQUEST_QUEUE: usize = 1024;

struct Shared<M: StateMachine> {
    requests: mpsc::Sender<Request<M>>,
    status: watch::Receiver<GroupStatus>,
    group: GroupId,
    deadline: Duration,
    /// The node's network, for the group's tickets (weak: a handle does not keep a shut
    /// down node's socket).
    network: WeakNetwork,
    /// What the worker measures.
    metrics: GroupMetrics,
}

/// A handle on one joined group.
pub struct Group<M: StateMachine> {
    shared: Arc<Shared<M>>,
}

impl<M: StateMachine> Clone for Group<M> {
    fn clone(&self) -> Self {
        Group {
            shared: self.shared.clone(),
        }
    }
}

impl<M: StateMachine> std::fmt::Debug for Group<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("group", &self.shared.group)
            .finish()
    }
}

impl<M: StateMachine> Group<M> {
    pub(crate) fn new(
        requests: mpsc::Sender<Request<M>>,
        status: watch::Receiver<GroupStatus>,
        group: GroupId,
        deadline: Duration,
        network: WeakNetwork,
        metrics: GroupMetrics,
    ) -> Self {
        Group {
            shared: Arc::new(Shared {
                requests,
                status,
                group,
                deadline,
                network,
                metrics,
            }),
        }
    }

    /// The group's id.
    pub fn id(&self) -> GroupId {
        self.shared.group
    }

    /// What the worker measures (sync and apply durations, proposals, leader changes,
    /// traffic per peer), for a Prometheus registry.
    pub fn metrics(&self) -> &GroupMetrics {
        &self.shared.metrics
    }

    /// The latest status the worker published.
    pub fn status(&self) -> GroupStatus {
        self.shared.status.borrow().clone()
    }

    /// The leader, if known.
    pub fn leader(&self) -> Option<PeerId> {
        self.shared.status.borrow().leader
    }

    /// Whether this node leads.
    pub fn is_leader(&self) -> bool {
        self.shared.status.borrow().role == Role::Leader
    }

    /// The commit index.
    pub fn committed(&self) -> Index {
        self.shared.status.borrow().commit
    }

    /// The last log entry and the last applied index.
    pub fn log_position(&self) -> (Cursor, Index) {
        let s = self.shared.status.borrow();
        (s.last, s.applied)
    }

    /// The current configuration (voters and learners).
    pub fn members(&self) -> Membership {
        self.shared.status.borrow().members.clone()
    }

    /// Resolves once the group's worker stopped, with why. A loop on [`When`] would do
    /// the same, but the status changes on every turn that moves the commit index, and
    /// each change wakes every waiter on it (a task poll, or a futex wake of the thread
    /// blocked on it): a node's main thread waiting that way was woken once per turn.
    /// This waits on the worker's request queue closing instead, which happens once.
    pub async fn stopped(&self) -> GroupError {
        self.shared.requests.closed().await;
        // The worker drops its queue before it records why it stopped: wait for that.
        self.when()
            .until(|_| false)
            .await
            .err()
            .unwrap_or_else(|| self.stopped_error())
    }

    /// Waits for state changes.
    pub fn when(&self) -> When {
        When {
            status: self.shared.status.clone(),
        }
    }

    /// Replicates one command and resolves with its index once that very entry (index and
    /// term) is committed and applied here. Submitted on a follower it is forwarded to
    /// the leader. Fails with a clear error when overwritten, when no leader takes it
    /// within `forward_timeout`, or after the call deadline (`election_timeout * 3 +
    /// forward_timeout`), in which case it may still be applied.
    pub async fn execute(&self, command: M::Command) -> Result<Index, GroupError> {
        let mut indices = self.execute_many([command]).await?;
        // The worker answers a batch of one with one index; an empty answer means it ended
        // while answering.
        indices.pop().ok_or(GroupError::Stopped {
            cause: StopCause::Ended,
        })
    }

    /// [`execute`](Self::execute) for several commands, proposed together; resolves with
    /// every index once all are applied, or with the first failure.
    pub async fn execute_many(
        &self,
        commands: impl IntoIterator<Item = M::Command>,
    ) -> Result<Vec<Index>, GroupError> {
        let commands = encode_all(commands)?;
        // Refused during a leadership transfer, a batch was not appended anywhere: it is
        // proposed again (to the new leader, once there is one) until the call's deadline.
        let deadline = tokio::time::Instant::now() + self.shared.deadline;
        loop {
            let (reply, rx) = oneshot::channel();
            let request = Request::Execute {
                commands: commands.clone(),
                at: std::time::Instant::now(),
                reply,
            };
            match self.call("execute", request, rx).await {
                Err(GroupError::Client(ClientError::TransferInProgress { .. }))
                    if tokio::time::Instant::now() + TRANSFER_RETRY < deadline =>
                {
                    tokio::time::sleep(TRANSFER_RETRY).await;
                }
                other => return other,
            }
        }
    }

    /// Proposes a command without waiting for it to commit (returns once the worker took
    /// it; back-pressure when the worker is behind). Failures are only logged.
    pub async fn feed(&self, command: M::Command) -> Result<(), GroupError> {
        self.feed_many([command]).await
    }

    /// [`feed`](Self::feed) for several commands.
    pub async fn feed_many(
        &self,
        commands: impl IntoIterator<Item = M::Command>,
    ) -> Result<(), GroupError> {
        let commands = encode_all(commands)?;
        self.shared
            .requests
            .send(Request::Feed { commands })
            .await
            .map_err(|_| self.stopped_error())
    }

    /// Answers a query: `Weak` from the local state now, `Strong` linearizably (a read
    /// index confirmed by a majority, served once applied here). Returns the result and
    /// the applied index it was served at.
    pub async fn query(
        &self,
        query: M::Query,
        consistency: Consistency,
    ) -> Result<(M::QueryResult, Index), GroupError> {
        let (reply, rx) = oneshot::channel();
        self.call(
            "query",
            Request::Query {
                query,
                consistency,
                reply,
            },
            rx,
        )
        .await
    }

    /// Adds `peer` as a learner (an observer when `observer`); leader only. The leader
    /// also adds peers that bond and are not members on its own.
    pub async fn add_learner(&self, peer: PeerId, observer: bool) -> Result<Index, GroupError> {
        self.change(MembershipChange::AddLearner { peer, observer })
            .await
    }

    /// Promotes a caught-up learner to voter; leader only.
    pub async fn promote(&self, peer: PeerId) -> Result<Index, GroupError> {
        self.change(MembershipChange::Promote(peer)).await
    }

    /// Removes a voter or learner; leader only. Explicit by design: quorums count a
    /// durable voter set, never whoever is reachable.
    pub async fn remove_member(&self, peer: PeerId) -> Result<Index, GroupError> {
        self.change(MembershipChange::Remove(peer)).await
    }

    /// Hands leadership to `target`, or with `None` to the most caught-up active voter;
    /// leader only. The leader catches the target up, tells it to campaign at once, and
    /// takes no new commands meanwhile (calls of [`execute`](Self::execute) wait and are
    /// proposed to the new leader). Resolves with the new leader once it is heard from;
    /// fails when the target did not take over within an election timeout (this node
    /// then still leads), or at once when refused (not the leader, the target a learner
    /// or no member, another transfer running).
    pub async fn transfer_leadership(&self, target: Option<PeerId>) -> Result<PeerId, GroupError> {
        let (reply, rx) = oneshot::channel();
        self.call(
            "leadership transfer",
            Request::Transfer { target, reply },
            rx,
        )
        .await
    }

    /// The members as this node sees them: role, address, announced contact, link, when
    /// last heard from and (on the leader) how far each log matches.
    pub async fn roster(&self) -> Result<Roster, GroupError> {
        let (reply, rx) = oneshot::channel();
        self.call("roster", Request::Roster { reply }, rx).await
    }

    /// Asks the group's ticket validator (`require_ticket`) again about the ticket of every
    /// bonded peer, after the application's rules changed (a revocation list), and ends
    /// the bond of each peer whose ticket no longer passes. Returns what was checked and
    /// who was refused; a refused peer leaves [`GroupStatus::bonded`] once its link has
    /// closed, and its redials are refused while its ticket does not pass.
    pub fn revalidate_tickets(&self) -> Result<Revalidation, NetworkError> {
        self.network()?.revalidate_tickets(self.shared.group)
    }

    /// Replaces the ticket this node presents to the group's peers, without reconnecting:
    /// sent at once on every live bond (each peer keeps the bond if it passes there, or
    /// ends it) and presented by every new one.
    pub fn renew_ticket(&self, ticket: impl Into<Vec<u8>>) -> Result<(), NetworkError> {
        self.network()?
            .renew_ticket(self.shared.group, ticket.into())
    }

    fn network(&self) -> Result<crate::network::Network, NetworkError> {
        self.shared
            .network
            .upgrade()
            .ok_or(NetworkError::GroupNotJoined {
                group: self.shared.group,
            })
    }

    /// Stops the group's worker for every handle and waits for it.
    pub async fn shutdown(&self) {
        let (done, rx) = oneshot::channel();
        if self
            .shared
            .requests
            .send(Request::Shutdown { done })
            .await
            .is_ok()
        {
            let _ = rx.await;
        }
    }

    async fn change(&self, change: MembershipChange) -> Result<Index, GroupError> {
        let (reply, rx) = oneshot::channel();
        self.call("membership change", Request::Change { change, reply }, rx)
            .await
    }

    async fn call<T>(
        &self,
        what: &'static str,
        request: Request<M>,
        rx: oneshot::Receiver<Result<T, GroupError>>,
    ) -> Result<T, GroupError> {
        let deadline = self.shared.deadline;
        let work = async {
            self.shared
                .requests
                .send(request)
                .await
                .map_err(|_| self.stopped_error())?;
            rx.await.map_err(|_| self.stopped_error())?
        };
        tokio::time::timeout(deadline, work)
            .await
            .map_err(|_| GroupError::Timeout {
                what,
                after: deadline,
            })?
    }

    fn stopped_error(&self) -> GroupError {
        GroupError::Stopped {
            cause: self
                .shared
                .status
                .borrow()
                .stopped
                .clone()
                .unwrap_or(StopCause::Ended),
        }
    }
}

/// The largest encoded command a group takes (8 MiB): one entry must fit in one link
/// frame (16 MiB) with room for the message around it, or it could never replicate.
pub const MAX_COMMAND_BYTES: usize = 8 << 20;

fn encode_all<C: serde::Serialize>(
    commands: impl IntoIterator<Item = C>,
) -> Result<Vec<Vec<u8>>, GroupError> {
    commands
        .into_iter()
        .map(|c| {
            let bytes = codec::encode(&c).map_err(|e| GroupError::Encode {
                what: "command",
                reason: e.to_string(),
            })?;
            if bytes.len() > MAX_COMMAND_BYTES {
                return Err(GroupError::Encode {
                    what: "command",
                    reason: format!(
                        "{} bytes encoded, above the {MAX_COMMAND_BYTES}-byte limit of one log entry",
                        bytes.len()
                    ),
                });
            }
            Ok(bytes)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_above_the_entry_limit_is_refused_with_its_size() {
        let big = vec![0u8; MAX_COMMAND_BYTES + 1];
        match encode_all([big]) {
            Err(GroupError::Encode { reason, .. }) => assert!(reason.contains("limit"), "{reason}"),
            other => panic!("expected a size error, got {other:?}"),
        }
        assert!(encode_all([vec![0u8; 1024]]).is_ok());
    }
}

/// Waits for the group's state: leader elected or changed, online or offline, commit
/// reaching an index. Each call resolves on the first status that satisfies it (at once
/// when the current one does), or returns `Err(Stopped)` when the group stops first.
#[derive(Clone, Debug)]
pub struct When {
    status: watch::Receiver<GroupStatus>,
}

impl When {
    async fn until(
        &mut self,
        mut f: impl FnMut(&GroupStatus) -> bool,
    ) -> Result<GroupStatus, GroupError> {
        loop {
            {
                let s = self.status.borrow_and_update();
                if f(&s) {
                    return Ok(s.clone());
                }
                if let Some(cause) = &s.stopped {
                    return Err(GroupError::Stopped {
                        cause: cause.clone(),
                    });
                }
            }
            if self.status.changed().await.is_err() {
                return Err(GroupError::Stopped {
                    cause: StopCause::Ended,
                });
            }
        }
    }

    /// A leader is known; returns it.
    pub async fn leader_elected(&mut self) -> Result<PeerId, GroupError> {
        let s = self.until(|s| s.leader.is_some()).await?;
        // `until` returned a status with a leader.
        s.leader.ok_or(GroupError::Stopped {
            cause: StopCause::Ended,
        })
    }

    /// The leader differs from the one known now (a new leader, or none); returns it.
    pub async fn leader_changed(&mut self) -> Result<Option<PeerId>, GroupError> {
        let now = self.status.borrow().leader;
        Ok(self.until(|s| s.leader != now).await?.leader)
    }

    /// This node follows a known leader with no catch-up running.
    pub async fn online(&mut self) -> Result<(), GroupError> {
        self.until(|s| s.online).await.map(|_| ())
    }

    /// This node lost its leader or started catching up.
    pub async fn offline(&mut self) -> Result<(), GroupError> {
        self.until(|s| !s.online).await.map(|_| ())
    }

    /// The commit index reached `index`.
    pub async fn committed_reaches(&mut self, index: Index) -> Result<(), GroupError> {
        self.until(|s| s.commit >= index).await.map(|_| ())
    }

    /// The applied index reached `index`.
    pub async fn applied_reaches(&mut self, index: Index) -> Result<(), GroupError> {
        self.until(|s| s.applied >= index).await.map(|_| ())
    }
}
