//! How the HTTP API sees the store: the states the machine publishes, and their fan-out
//! to the waiters (watches and blocking reads), off the apply path.
//!
//! The machine publishes an `Arc<KvState>` on a `watch` channel after every applied batch
//! (an O(1) clone). Reads take the newest value of that channel: it includes everything a
//! group call that just returned applied, because the machine publishes before the
//! worker answers. Waiters do not subscribe to it: waking a thousand watches would then
//! cost the group's worker a thousand wake-ups per batch. A relay task subscribes
//! instead and re-publishes on a second channel that the waiters share, so the worker
//! wakes one task per batch whatever the number of watches, and the relay coalesces
//! batches while the waiters are busy (a waiter always reads the newest state, and the
//! history gives it every event in between).

use crate::store::kv::KvState;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The published states, for reads and waiters.
#[derive(Clone, Debug)]
pub struct Feed {
    latest: watch::Receiver<Arc<KvState>>,
    fanout: watch::Receiver<Arc<KvState>>,
    watchers: Arc<AtomicU64>,
}

impl Feed {
    /// A feed of the machine's channel `latest`; the relay runs until `stop` or until the
    /// machine is gone (needs a tokio runtime).
    pub fn start(
        latest: watch::Receiver<Arc<KvState>>,
        stop: CancellationToken,
    ) -> (Feed, JoinHandle<()>) {
        let (tx, fanout) = watch::channel(latest.borrow().clone());
        let mut from = latest.clone();
        let relay = tokio::spawn(async move {
            loop {
                tokio::select! {
                    changed = from.changed() => {
                        if changed.is_err() {
                            break;
                        }
                        let state = from.borrow_and_update().clone();
                        tx.send_replace(state);
                    }
                    () = stop.cancelled() => break,
                }
            }
        });
        let feed = Feed {
            latest,
            fanout,
            watchers: Arc::default(),
        };
        (feed, relay)
    }

    /// The newest state.
    pub fn latest(&self) -> Arc<KvState> {
        self.latest.borrow().clone()
    }

    /// A receiver of the relayed states, for one waiter. `changed()` fails once the relay
    /// stopped.
    pub fn waiter(&self) -> watch::Receiver<Arc<KvState>> {
        let mut rx = self.fanout.clone();
        rx.mark_unchanged();
        rx
    }

    /// Counts a watch open until the guard drops.
    pub fn watching(&self) -> WatchGuard {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        WatchGuard(self.watchers.clone())
    }

    /// Watches open.
    pub fn watchers(&self) -> u64 {
        self.watchers.load(Ordering::Relaxed)
    }
}

/// One open watch, counted in [`Feed::watchers`] while it lives.
#[derive(Debug)]
pub struct WatchGuard(Arc<AtomicU64>);

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
