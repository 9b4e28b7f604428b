//! The one state machine behind every collection: [`Machine<K>`] replicates a [`Kind`]
//! (the collection's state, its operations and how they apply) and syncs it by snapshots.
//!
//! Reads never go through the group: after each applied batch that changed the state, the
//! machine publishes a clone of it on a `watch` channel (O(1): the states are `im`
//! collections that share structure), and the collection's handles read from there.
//! Every operation applies the same way on every node, whatever the node: operations that
//! cannot apply (an index out of range, a compare-exchange that does not match) change
//! nothing anywhere.

use super::replies::{Replies, Ticket};
use crate::groups::machine::{ApplyContext, LeadershipPreference, StateMachine};
use crate::groups::snapshot::{
    Snapshot, SnapshotConfig, SnapshotRequest, SnapshotStateMachine, SnapshotStats, SnapshotSync,
};
use crate::primitives::Digest;
use crate::UniqueId;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::ops::Range;
use std::sync::Arc;
use tokio::sync::watch;

/// One kind of collection: its state, operations and snapshot items.
pub(crate) trait Kind: Send + Sync + 'static {
    /// The kind's name in ids, errors and logs ("cell", "map", ...).
    const NAME: &'static str;
    /// The state; its clone must be O(1) (an `im` collection or a small value).
    type State: Clone + Default + Send + Sync + 'static;
    /// An operation, replicated through the log.
    type Op: Clone + Serialize + DeserializeOwned + Send + Sync + 'static;
    /// What an operation reports to the node that issued it.
    type Reply: Send + 'static;
    /// One element of a snapshot.
    type Item: Serialize + DeserializeOwned + Send + 'static;

    /// The Rust names of the value types (part of the group key unless a type tag is set).
    fn type_names(&self) -> Vec<&'static str>;

    /// Settings that change how operations apply (e.g. a capacity); part of the machine
    /// signature, so members that differ form different groups.
    fn settings(&self) -> Vec<u8> {
        Vec::new()
    }

    /// Applies one operation.
    fn apply(&self, state: &mut Self::State, op: Self::Op) -> Applied<Self::Reply>;

    /// Number of snapshot items of `state`.
    fn len(state: &Self::State) -> u64;

    /// Snapshot items at positions `range`, in the order [`Kind::append`] rebuilds the
    /// state from; `None` when out of bounds.
    fn items(state: &Self::State, range: Range<u64>) -> Option<impl Iterator<Item = Self::Item>>;

    /// Rebuilds state from items, in order; `at` is the position of the first of them in
    /// the snapshot. An error refuses the whole snapshot (see [`Kind::finish`]).
    fn append(
        state: &mut Self::State,
        at: u64,
        items: impl IntoIterator<Item = Self::Item>,
    ) -> Result<(), String>;

    /// Called once all `items` of a snapshot were appended without error: a last chance
    /// to refuse it (e.g. a snapshot that lacks its format item). Accepts by default.
    fn finish(_state: &Self::State, _items: u64) -> Result<(), String> {
        Ok(())
    }
}

/// What applying one operation did.
pub(crate) struct Applied<R> {
    /// Whether the state changed.
    pub(crate) changed: bool,
    /// The outcome for the issuing node, when the operation has one.
    pub(crate) reply: Option<R>,
}

impl<R> Applied<R> {
    /// Changed (or not), nothing to report.
    pub(crate) fn changed(changed: bool) -> Self {
        Applied {
            changed,
            reply: None,
        }
    }

    /// Changed (or not), with an outcome.
    pub(crate) fn reply(changed: bool, reply: R) -> Self {
        Applied {
            changed,
            reply: Some(reply),
        }
    }
}

/// A collection's replicated command.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(bound = "O: Serialize + DeserializeOwned")]
pub(crate) enum Command<O> {
    /// An operation, with a ticket when its issuer waits for the outcome.
    Op {
        /// The operation.
        op: O,
        /// Who waits for the outcome.
        ticket: Option<Ticket>,
    },
    /// A snapshot marker (proposed by the leader's sync provider; changes nothing).
    TakeSnapshot(SnapshotRequest),
}

/// The state machine of a collection of kind `K`.
pub(crate) struct Machine<K: Kind> {
    kind: K,
    signature: UniqueId,
    state: K::State,
    latest: watch::Sender<K::State>,
    changes: watch::Sender<u64>,
    replies: Replies<K::Reply>,
    sync: SnapshotSync<Machine<K>>,
    preference: LeadershipPreference,
}

impl<K: Kind> Machine<K> {
    /// A machine with empty state.
    pub(crate) fn new(
        kind: K,
        writer: bool,
        sync: SnapshotConfig,
        replies: Replies<K::Reply>,
    ) -> Self {
        let settings = kind.settings();
        let signature = Digest::from_parts(&[
            b"tessera/collections/machine/v1".as_slice(),
            K::NAME.as_bytes(),
            &settings,
        ]);
        Machine {
            kind,
            signature,
            state: K::State::default(),
            latest: watch::Sender::new(K::State::default()),
            changes: watch::Sender::new(0),
            replies,
            sync: SnapshotSync::new(sync, Command::TakeSnapshot, |c| {
                matches!(c, Command::TakeSnapshot(_))
            }),
            preference: if writer {
                LeadershipPreference::Normal
            } else {
                LeadershipPreference::Observer
            },
        }
    }

    /// Receives every published state.
    pub(crate) fn subscribe(&self) -> watch::Receiver<K::State> {
        self.latest.subscribe()
    }

    /// Receives a counter bumped on every state change.
    pub(crate) fn subscribe_changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    /// This node's snapshot counters for the collection.
    pub(crate) fn snapshot_stats(&self) -> Arc<SnapshotStats> {
        self.sync.stats()
    }

    /// The live state (tests).
    #[cfg(test)]
    pub(crate) fn state(&self) -> &K::State {
        &self.state
    }

    fn publish(&mut self) {
        self.latest.send_replace(self.state.clone());
        self.changes.send_modify(|n| *n = n.wrapping_add(1));
    }
}

impl<K: Kind> StateMachine for Machine<K> {
    type Command = Command<K::Op>;
    /// Reads are served from the published state, never through the group.
    type Query = ();
    type QueryResult = ();
    type StateSync = SnapshotSync<Machine<K>>;

    /// The kind and its settings. The store id and value types are in the group key.
    fn signature(&self) -> UniqueId {
        self.signature
    }

    fn apply(&mut self, command: Self::Command, ctx: &dyn ApplyContext) {
        self.apply_batch([command], ctx);
    }

    fn apply_batch(
        &mut self,
        commands: impl IntoIterator<Item = Self::Command>,
        _: &dyn ApplyContext,
    ) {
        let mut changed = false;
        for command in commands {
            if let Command::Op { op, ticket } = command {
                let applied = self.kind.apply(&mut self.state, op);
                changed |= applied.changed;
                if let (Some(ticket), Some(reply)) = (ticket, applied.reply) {
                    self.replies.resolve(ticket, reply);
                }
            }
        }
        if changed {
            self.publish();
        }
    }

    fn query(&self, (): ()) {}

    fn state_sync(&self) -> SnapshotSync<Machine<K>> {
        self.sync.clone()
    }

    /// Writers lead; readers are observers and never vote or lead.
    fn leadership_preference(&self) -> LeadershipPreference {
        self.preference
    }
}

/// A frozen copy of a collection's state, or one being rebuilt from snapshot items.
pub(crate) struct Frozen<K: Kind> {
    pub(crate) state: K::State,
    /// Items appended so far (while loading).
    appended: u64,
    /// Why the items were refused, once [`Kind::append`] refused them; later items are
    /// dropped and [`Snapshot::finish`] reports it.
    refused: Option<String>,
}

impl<K: Kind> Frozen<K> {
    pub(crate) fn new(state: K::State) -> Self {
        Frozen {
            state,
            appended: 0,
            refused: None,
        }
    }
}

impl<K: Kind> Default for Frozen<K> {
    fn default() -> Self {
        Frozen::new(K::State::default())
    }
}

impl<K: Kind> Snapshot for Frozen<K> {
    type Item = K::Item;

    fn len(&self) -> u64 {
        K::len(&self.state)
    }

    fn iter_range(&self, range: Range<u64>) -> Option<impl Iterator<Item = K::Item>> {
        K::items(&self.state, range)
    }

    fn append(&mut self, items: impl IntoIterator<Item = K::Item>) {
        if self.refused.is_some() {
            return;
        }
        let mut count = 0u64;
        let counted = items.into_iter().inspect(|_| count += 1);
        let result = K::append(&mut self.state, self.appended, counted);
        self.appended += count;
        if let Err(reason) = result {
            self.refused = Some(reason);
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        match self.refused.take() {
            Some(reason) => Err(reason),
            None => K::finish(&self.state, self.appended),
        }
    }
}

impl<K: Kind> SnapshotStateMachine for Machine<K> {
    type Snapshot = Frozen<K>;

    fn create_snapshot(&self) -> Frozen<K> {
        Frozen::new(self.state.clone())
    }

    fn install_snapshot(&mut self, snapshot: Frozen<K>) {
        self.state = snapshot.state;
        self.publish();
    }
}

/// Checks a range against a length; the offset and count to take.
pub(crate) fn bounds(range: &Range<u64>, len: u64) -> Option<(usize, usize)> {
    if range.start > range.end || range.end > len {
        return None;
    }
    Some((range.start as usize, (range.end - range.start) as usize))
}

/// [`Kind::len`], [`Kind::items`] and [`Kind::append`] of a kind whose state holds at most
/// one value (cell, once-cell): that value is its only snapshot item.
pub(crate) mod single {
    use super::bounds;
    use std::ops::Range;

    pub(crate) fn len<T>(state: &Option<T>) -> u64 {
        u64::from(state.is_some())
    }

    pub(crate) fn items<T: Clone>(
        state: &Option<T>,
        range: Range<u64>,
    ) -> Option<impl Iterator<Item = T>> {
        let (skip, take) = bounds(&range, len(state))?;
        Some(state.clone().into_iter().skip(skip).take(take))
    }

    /// The state holds one value: the last item wins.
    pub(crate) fn append<T>(
        state: &mut Option<T>,
        items: impl IntoIterator<Item = T>,
    ) -> Result<(), String> {
        if let Some(last) = items.into_iter().last() {
            *state = Some(last);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Drives machines without a group: the same commands applied to two machines, and
    //! snapshot round trips through `iter_range`/`append`.

    use super::*;
    use crate::groups::{Cursor, Index, Term};
    use crate::{GroupId, PeerId};

    /// The node the tests' machines run on.
    pub(crate) const ME: PeerId = PeerId([7; 32]);

    struct Ctx;

    impl ApplyContext for Ctx {
        fn committed(&self) -> Cursor {
            Cursor(Term(1), Index(1))
        }
        fn current_term(&self) -> Term {
            Term(1)
        }
        fn group_id(&self) -> GroupId {
            GroupId::default()
        }
        fn network_id(&self) -> UniqueId {
            UniqueId::default()
        }
        fn local_id(&self) -> PeerId {
            ME
        }
    }

    /// A writer machine on node [`ME`].
    pub(crate) fn machine<K: Kind>(kind: K) -> (Machine<K>, Replies<K::Reply>) {
        let replies = Replies::new(ME, 1);
        let m = Machine::new(kind, true, SnapshotConfig::default(), replies.clone());
        (m, replies)
    }

    /// Applies `op` without a ticket.
    pub(crate) fn apply<K: Kind>(m: &mut Machine<K>, op: K::Op) {
        m.apply(Command::Op { op, ticket: None }, &Ctx);
    }

    /// Applies `ops` as one batch.
    pub(crate) fn apply_batch<K: Kind>(m: &mut Machine<K>, ops: Vec<K::Op>) {
        m.apply_batch(
            ops.into_iter().map(|op| Command::Op { op, ticket: None }),
            &Ctx,
        );
    }

    /// Applies `op` with a ticket of this node and returns its outcome.
    pub(crate) fn ask<K: Kind>(
        m: &mut Machine<K>,
        replies: &Replies<K::Reply>,
        op: K::Op,
    ) -> Option<K::Reply> {
        let (ticket, pending) = replies.register();
        m.apply(
            Command::Op {
                op,
                ticket: Some(ticket),
            },
            &Ctx,
        );
        pending.take()
    }

    /// Passes a snapshot marker through `apply` (it must change nothing).
    pub(crate) fn marker<K: Kind>(m: &mut Machine<K>) {
        m.apply(
            Command::TakeSnapshot(SnapshotRequest {
                requested_by: ME,
                seq: 1,
            }),
            &Ctx,
        );
    }

    /// Rebuilds a state from `items` as a snapshot load does: appended in batches of
    /// `chunk`, then finished; the refusal, if any.
    pub(crate) fn load<K: Kind>(items: Vec<K::Item>, chunk: usize) -> Result<K::State, String> {
        let mut rebuilt = Frozen::<K>::default();
        let mut items = items.into_iter().peekable();
        while items.peek().is_some() {
            let batch: Vec<K::Item> = items.by_ref().take(chunk).collect();
            rebuilt.append(batch);
        }
        rebuilt.finish().map(|()| rebuilt.state)
    }

    /// Copies `m`'s state through its snapshot items, `chunk` items per `iter_range`
    /// call, and encodes every item through the codec on the way (as the chunks do).
    pub(crate) fn round_trip<K: Kind>(m: &Machine<K>, chunk: u64) -> K::State {
        let frozen = m.create_snapshot();
        let len = frozen.len();
        assert!(
            frozen.iter_range(0..len + 1).is_none(),
            "out of bounds is None"
        );
        let mut rebuilt = Frozen::<K>::default();
        let mut at = 0;
        while at < len {
            let end = (at + chunk).min(len);
            let items: Vec<K::Item> = frozen
                .iter_range(at..end)
                .expect("in bounds")
                .map(|item| {
                    let bytes = crate::primitives::codec::encode(&item).expect("encode item");
                    crate::primitives::codec::decode(&bytes).expect("decode item")
                })
                .collect();
            assert_eq!(items.len() as u64, end - at);
            rebuilt.append(items);
            at = end;
        }
        rebuilt.finish().expect("a snapshot cut here loads back");
        rebuilt.state
    }
}
