//! The recent changes of the store, in revision order: what watches stream and what
//! blocking reads wait on.
//!
//! **Where the history comes from.** The log holds commands, not their effects: which
//! keys a prefix delete removed, which branch a transaction ran and every previous value
//! depend on the state at that index. So the machine records each change as it applies it
//! and keeps the newest ones, within a [`Retention`] of events and bytes. The history is
//! part of the replicated state: every member holds the same history at the same
//! revision (pruning happens at batch ends and removes whole revisions from the front,
//! which gives the same result whatever the batching), and it travels in snapshots, so a
//! node restarted from its snapshot, or one that joined by snapshot, serves the same
//! revisions as the others. The retention is therefore part of the machine's signature
//! (every member must use the same).

use super::model::{Key, Value};

/// Bytes counted per event besides its key and values (revisions, pointers).
const EVENT_OVERHEAD: u64 = 64;

/// One change of one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The index of the entry that made it (the key's new `mod_index`).
    pub revision: u64,
    /// The key.
    pub key: Key,
    /// A put or a delete.
    pub kind: EventKind,
    /// The value before the change (absent for a put that created the key).
    pub prev: Option<Value>,
}

/// What happened to the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// It was set.
    Put {
        /// The new value.
        value: Value,
        /// The key's `create_index` after the put.
        create_index: u64,
        /// The key's `version` after the put.
        version: u64,
    },
    /// It was removed.
    Delete,
}

impl Event {
    /// What the event counts against [`Retention::bytes`].
    pub fn size(&self) -> u64 {
        let value = match &self.kind {
            EventKind::Put { value, .. } => value.len(),
            EventKind::Delete => 0,
        };
        let prev = self.prev.as_ref().map_or(0, Value::len);
        EVENT_OVERHEAD + (self.key.len() + value + prev) as u64
    }
}

/// How much history a node keeps: the newest events within both bounds (default 100,000
/// events and 64 MiB, counting keys, values and previous values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// At most this many events.
    pub events: u64,
    /// At most this many bytes ([`Event::size`]).
    pub bytes: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            events: 100_000,
            bytes: 64 << 20,
        }
    }
}

/// The newest events, oldest first. Persistent (`im`), so a clone is O(1).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    events: imbl::Vector<Event>,
    /// Every event with a revision above this is held (0: the history is complete).
    compacted: u64,
    /// Sum of [`Event::size`] of the events held.
    bytes: u64,
}

impl History {
    /// A history holding `events` (in revision order), complete above `compacted`.
    pub fn from_parts(events: impl IntoIterator<Item = Event>, compacted: u64) -> Self {
        let mut h = History {
            compacted,
            ..History::default()
        };
        for e in events {
            h.push(e);
        }
        h
    }

    /// Appends an event; its revision is at least the last one's.
    pub fn push(&mut self, event: Event) {
        debug_assert!(self
            .events
            .back()
            .is_none_or(|l| l.revision <= event.revision));
        self.bytes += event.size();
        self.events.push_back(event);
    }

    /// Drops the oldest revisions, whole, until both bounds hold.
    pub fn prune(&mut self, retention: &Retention) {
        while self.events.len() as u64 > retention.events || self.bytes > retention.bytes {
            let Some(first) = self.events.front().map(|e| e.revision) else {
                break;
            };
            while self.events.front().is_some_and(|e| e.revision == first) {
                if let Some(e) = self.events.pop_front() {
                    self.bytes -= e.size();
                }
            }
            self.compacted = first;
        }
    }

    /// Every event with a revision above this is held.
    pub fn compacted(&self) -> u64 {
        self.compacted
    }

    /// The oldest revision a watch may start from.
    pub fn oldest(&self) -> u64 {
        self.compacted + 1
    }

    /// Number of events held.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Whether no event is held.
    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Bytes held ([`Event::size`]).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The position of the first event with a revision of at least `revision`.
    pub fn position(&self, revision: u64) -> usize {
        match self.events.binary_search_by(|e| {
            if e.revision < revision {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        }) {
            Ok(i) | Err(i) => i,
        }
    }

    /// The event at `position`.
    pub fn get(&self, position: usize) -> Option<&Event> {
        self.events.get(position)
    }

    /// The events from `position` on.
    pub fn iter_from(&self, position: usize) -> impl Iterator<Item = &Event> + '_ {
        (position..self.events.len()).filter_map(move |i| self.events.get(i))
    }

    /// Every event held, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &Event> + '_ {
        self.events.iter()
    }

    /// Whether an event under `prefix` (of `prefix` itself when `exact`) has a revision
    /// above `since`; `None` when events above `since` may have been pruned.
    pub fn changed_since(&self, prefix: &str, exact: bool, since: u64) -> Option<bool> {
        if since < self.compacted {
            return None;
        }
        Some(
            self.iter_from(self.position(since.saturating_add(1)))
                .any(|e| super::model::matches(&e.key, prefix, exact)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(revision: u64, key: &str, value: &str) -> Event {
        Event {
            revision,
            key: Key::from(key),
            kind: EventKind::Put {
                value: Value::from(value.as_bytes()),
                create_index: revision,
                version: 1,
            },
            prev: None,
        }
    }

    fn revisions(h: &History) -> Vec<u64> {
        h.iter().map(|e| e.revision).collect()
    }

    #[test]
    fn pruning_drops_whole_revisions_and_remembers_the_last_one_dropped() {
        let mut h = History::default();
        for e in [
            put(1, "a", "x"),
            put(2, "b", "x"),
            put(2, "c", "x"),
            put(3, "d", "x"),
        ] {
            h.push(e);
        }
        h.prune(&Retention {
            events: 3,
            bytes: u64::MAX,
        });
        assert_eq!(
            (revisions(&h), h.compacted(), h.oldest()),
            (vec![2, 2, 3], 1, 2)
        );
        h.prune(&Retention {
            events: 2,
            bytes: u64::MAX,
        });
        assert_eq!(
            (revisions(&h), h.compacted()),
            (vec![3], 2),
            "revision 2 goes whole"
        );
        h.prune(&Retention {
            events: 10,
            bytes: 10,
        });
        assert_eq!((h.len(), h.compacted(), h.bytes()), (0, 3, 0));
    }

    #[test]
    fn pruning_once_per_batch_equals_pruning_after_every_command() {
        let retention = Retention {
            events: 5,
            bytes: 400,
        };
        // One command per revision, making one to three events.
        let commands: Vec<Vec<Event>> = (1..=40)
            .map(|r| {
                (0..(r % 3 + 1))
                    .map(|i| put(r, &format!("k{i}"), "v"))
                    .collect()
            })
            .collect();
        let mut each = History::default();
        for events in &commands {
            for e in events {
                each.push(e.clone());
            }
            each.prune(&retention);
        }
        for batch in [1usize, 2, 7, 40] {
            let mut batched = History::default();
            for chunk in commands.chunks(batch) {
                for e in chunk.iter().flatten() {
                    batched.push(e.clone());
                }
                batched.prune(&retention);
            }
            assert_eq!(batched, each, "batches of {batch} commands");
        }
    }

    #[test]
    fn changes_after_a_revision_are_found_by_prefix_or_exact_key() {
        let h = History::from_parts([put(3, "app/a", "1"), put(5, "app/b", "2")], 2);
        assert_eq!(h.position(4), 1);
        assert_eq!(h.changed_since("app/", false, 3), Some(true));
        assert_eq!(h.changed_since("app/a", true, 3), Some(false));
        assert_eq!(h.changed_since("app/", false, 5), Some(false));
        assert_eq!(h.changed_since("app/", false, 1), None, "pruned below 2");
        assert_eq!(h.changed_since("app/", false, 2), Some(true));
    }
}
