//! Collections dropped on this node whose groups have not stopped yet.
//!
//! Dropping a collection's handle drops its group handle; the group's worker notices on
//! its next turn and stops, and only then is the group released on the node (its network
//! registration, its log store). Opening the same collection again in between used to
//! fail with "group … is already joined on this node", and joining while the old worker
//! still ran would have let two workers write the same log. So a dropped handle registers
//! here until its group has stopped, and [`super::handle::Handle::open`] that finds its
//! group here joins in the background once the previous instance has stopped, touching
//! neither the network nor the store before that.
//!
//! Keyed by node and group: two networks of one process are two nodes.

use crate::{GroupId, PeerId};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use tokio::sync::watch;

/// Instances still stopping: the registration's token and a flag set once stopped.
type Closing = BTreeMap<(PeerId, GroupId), (u64, watch::Receiver<bool>)>;

static CLOSING: Mutex<Closing> = Mutex::new(BTreeMap::new());

/// Registration tokens, so an entry is removed only by the instance that made it.
static NEXT: AtomicU64 = AtomicU64::new(1);

fn lock() -> std::sync::MutexGuard<'static, Closing> {
    // Each critical section is one map insert, lookup or remove: a poisoned lock still
    // holds a consistent map.
    CLOSING.lock().unwrap_or_else(|e| e.into_inner())
}

/// The previous instance of a group, still stopping.
pub(crate) struct Released(watch::Receiver<bool>);

impl Released {
    /// Resolves once that instance has stopped.
    pub(crate) async fn wait(mut self) {
        loop {
            if *self.0.borrow_and_update() {
                return;
            }
            if self.0.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The instance of `group` on node `me` that was dropped and is still stopping, if any.
pub(crate) fn closing(me: PeerId, group: GroupId) -> Option<Released> {
    lock()
        .get(&(me, group))
        .map(|(_, released)| Released(released.clone()))
}

/// Registers the instance of `group` on node `me` whose handle is being dropped, until
/// `stopped` resolves. Without a tokio runtime there is no worker left to wait for.
pub(crate) fn dropping(
    me: PeerId,
    group: GroupId,
    stopped: impl Future<Output = ()> + Send + 'static,
) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return;
    };
    let token = NEXT.fetch_add(1, Ordering::Relaxed);
    let (done, released) = watch::channel(false);
    lock().insert((me, group), (token, released));
    runtime.spawn(async move {
        stopped.await;
        let _ = done.send(true);
        let mut closing = lock();
        if closing.get(&(me, group)).is_some_and(|(t, _)| *t == token) {
            closing.remove(&(me, group));
        }
    });
}
