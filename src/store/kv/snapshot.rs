//! The store's snapshot: its items and their format.
//!
//! **Format 3.** Item 0 is `Format(3)`, item 1 `Meta` (the revision and how far back the
//! history reaches), then one `Key` per live key in key order, then one `Event` per
//! retained change in revision order. Format 2 (tessera before per-key revisions and
//! watch history) was a bare `(key, value)` pair per key: such a snapshot has no format
//! item and is refused, as is any other format number, with the format named. The format
//! is also part of the machine's signature, so members of different formats never form
//! one group.

use super::history::{Event, EventKind, History};
use super::model::{Key, KeyEntry, KvState, Value};
use crate::groups::snapshot::Snapshot;
use serde::{Deserialize, Serialize};
use std::ops::Range;

/// The snapshot format this build writes and reads.
pub const FORMAT: u32 = 3;

/// One snapshot item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvItem {
    /// Item 0: the format.
    Format(u32),
    /// Item 1.
    Meta {
        /// The state's revision (the marker's index).
        revision: u64,
        /// Every event above this revision follows.
        compacted: u64,
    },
    /// A live key.
    Key {
        /// The key.
        key: String,
        /// Its value.
        value: Value,
        /// Its `create_index`.
        create_index: u64,
        /// Its `mod_index`.
        mod_index: u64,
        /// Its version.
        version: u64,
    },
    /// A retained change.
    Event {
        /// Its revision.
        revision: u64,
        /// The key.
        key: String,
        /// The put's value, `create_index` and version; `None` for a delete.
        put: Option<(Value, u64, u64)>,
        /// The value before.
        prev: Option<Value>,
    },
}

/// The state, frozen (a snapshot), or being rebuilt from items. Two snapshots are equal
/// when their states are.
#[derive(Clone, Debug, Default)]
pub struct KvSnapshot {
    /// The state.
    pub state: KvState,
    loading: Loading,
}

impl PartialEq for KvSnapshot {
    fn eq(&self, other: &Self) -> bool {
        self.state == other.state
    }
}

impl Eq for KvSnapshot {}

/// What the items seen so far said, while loading.
#[derive(Clone, Debug, Default)]
struct Loading {
    appended: u64,
    refused: Option<String>,
    events: Vec<Event>,
    compacted: u64,
}

impl KvSnapshot {
    /// A snapshot of `state`.
    pub fn new(state: KvState) -> Self {
        KvSnapshot {
            state,
            loading: Loading::default(),
        }
    }

    /// A snapshot at revision 1 holding these keys, each created at revision 1 (tests
    /// and benches of the snapshot machinery).
    pub fn of_pairs(pairs: impl IntoIterator<Item = (String, Vec<u8>)>) -> Self {
        let mut state = KvState {
            revision: 1,
            ..KvState::default()
        };
        for (key, value) in pairs {
            let entry = KeyEntry {
                value: Value::from(value),
                create_index: 1,
                mod_index: 1,
                version: 1,
            };
            state.keys.insert(Key::from(key), entry);
        }
        KvSnapshot::new(state)
    }

    fn take(&mut self, n: u64, item: KvItem) -> Result<(), String> {
        match (n, item) {
            (0, KvItem::Format(FORMAT)) => Ok(()),
            (0, KvItem::Format(other)) => Err(format!(
                "key-value snapshot of format {other}; this build reads format {FORMAT}"
            )),
            (0, _) => Err(no_format()),
            (
                1,
                KvItem::Meta {
                    revision,
                    compacted,
                },
            ) => {
                self.state.revision = revision;
                self.loading.compacted = compacted;
                Ok(())
            }
            (1, other) => Err(format!("item 1 is {other:?}, expected the meta item")),
            (
                n,
                KvItem::Key {
                    key,
                    value,
                    create_index,
                    mod_index,
                    version,
                },
            ) if self.loading.events.is_empty() => {
                let entry = KeyEntry {
                    value,
                    create_index,
                    mod_index,
                    version,
                };
                if self.state.keys.insert(Key::from(key), entry).is_some() {
                    return Err(format!("item {n}: a key given twice"));
                }
                Ok(())
            }
            (
                n,
                KvItem::Event {
                    revision,
                    key,
                    put,
                    prev,
                },
            ) => {
                let last = self.loading.events.last().map_or(0, |e| e.revision);
                if revision < last || revision <= self.loading.compacted {
                    return Err(format!(
                        "item {n}: event at revision {revision} out of order"
                    ));
                }
                let kind = match put {
                    Some((value, create_index, version)) => EventKind::Put {
                        value,
                        create_index,
                        version,
                    },
                    None => EventKind::Delete,
                };
                self.loading.events.push(Event {
                    revision,
                    key: Key::from(key),
                    kind,
                    prev,
                });
                Ok(())
            }
            (n, other) => Err(format!("item {n}: unexpected {other:?}")),
        }
    }
}

/// Why a snapshot whose first item is not a format item is refused (format 2 began with
/// a key; its items do not even decode as format 3's).
fn no_format() -> String {
    format!(
        "key-value snapshot without a format item: written in format 2 or older (keys and \
         values without revisions); this build reads format {FORMAT}"
    )
}

fn key_item(key: &Key, e: &KeyEntry) -> KvItem {
    KvItem::Key {
        key: key.to_string(),
        value: e.value.clone(),
        create_index: e.create_index,
        mod_index: e.mod_index,
        version: e.version,
    }
}

fn event_item(e: &Event) -> KvItem {
    KvItem::Event {
        revision: e.revision,
        key: e.key.to_string(),
        put: match &e.kind {
            EventKind::Put {
                value,
                create_index,
                version,
            } => Some((value.clone(), *create_index, *version)),
            EventKind::Delete => None,
        },
        prev: e.prev.clone(),
    }
}

impl Snapshot for KvSnapshot {
    type Item = KvItem;

    fn len(&self) -> u64 {
        2 + self.state.keys.len() as u64 + self.state.history.len() as u64
    }

    fn iter_range(&self, range: Range<u64>) -> Option<impl Iterator<Item = KvItem>> {
        if range.start > range.end || range.end > self.len() {
            return None;
        }
        let head = [
            KvItem::Format(FORMAT),
            KvItem::Meta {
                revision: self.state.revision,
                compacted: self.state.history.compacted(),
            },
        ];
        let keys = self.state.keys.iter().map(|(k, e)| key_item(k, e));
        let events = self.state.history.iter().map(event_item);
        Some(
            head.into_iter()
                .chain(keys)
                .chain(events)
                .skip(range.start as usize)
                .take((range.end - range.start) as usize),
        )
    }

    fn append(&mut self, items: impl IntoIterator<Item = KvItem>) {
        for item in items {
            if self.loading.refused.is_some() {
                return;
            }
            let n = self.loading.appended;
            self.loading.appended += 1;
            if let Err(reason) = self.take(n, item) {
                self.loading.refused = Some(reason);
            }
        }
    }

    fn finish(&mut self) -> Result<(), String> {
        if let Some(reason) = self.loading.refused.take() {
            return Err(reason);
        }
        match self.loading.appended {
            0 => return Err(no_format()),
            1 => return Err("key-value snapshot without its meta item".into()),
            _ => {}
        }
        let events = std::mem::take(&mut self.loading.events);
        self.state.history = History::from_parts(events, self.loading.compacted);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::codec;
    use crate::store::kv::command::KvCommand;

    fn sample() -> KvState {
        let mut s = KvState::default();
        for (i, (k, v)) in [("a", "1"), ("b", "2"), ("a", "3")].into_iter().enumerate() {
            s.apply(
                KvCommand::Put {
                    key: k.into(),
                    value: v.into(),
                },
                i as u64 + 1,
                false,
            );
        }
        s.apply(KvCommand::Delete { key: "b".into() }, 4, false);
        s.history.prune(&crate::store::kv::Retention {
            events: 3,
            bytes: u64::MAX,
        });
        s
    }

    /// Copies through encoded items, `chunk` per `append`, then finishes.
    fn round_trip(snapshot: &KvSnapshot, chunk: usize) -> Result<KvState, String> {
        let items: Vec<Vec<u8>> = snapshot
            .iter_range(0..snapshot.len())
            .expect("in bounds")
            .map(|i| codec::encode(&i).expect("encode"))
            .collect();
        let mut back = KvSnapshot::default();
        for part in items.chunks(chunk) {
            back.append(
                part.iter()
                    .map(|b| codec::decode::<KvItem>(b).expect("decode")),
            );
        }
        back.finish().map(|()| back.state)
    }

    #[test]
    fn a_snapshot_carries_keys_revisions_and_history() {
        let s = sample();
        let snapshot = KvSnapshot::new(s.clone());
        assert!(snapshot.iter_range(0..snapshot.len() + 1).is_none());
        for chunk in [1, 2, 100] {
            let back = round_trip(&snapshot, chunk).expect("loads");
            assert_eq!(back.revision, 4);
            assert_eq!(back.keys, s.keys);
            assert_eq!(back.history, s.history);
            assert_eq!(back.history.compacted(), 1);
        }
    }

    #[test]
    fn other_formats_are_refused_with_the_format_named() {
        let mut future = KvSnapshot::default();
        future.append([KvItem::Format(4)]);
        let err = future.finish().expect_err("format 4");
        assert!(
            err.contains("format 4") && err.contains("reads format 3"),
            "{err}"
        );

        // A format-2 snapshot: `(key, value)` pairs. Its first item does not decode as a
        // format-3 item, or decodes as something else than the format item.
        let old = codec::encode(&(
            "config/a".to_string(),
            serde_bytes::ByteBuf::from(b"v".to_vec()),
        ))
        .expect("encode");
        let mut back = KvSnapshot::default();
        if let Ok(item) = codec::decode::<KvItem>(&old) {
            back.append([item]);
        }
        let err = back.finish().expect_err("format 2");
        assert!(err.contains("format 2"), "{err}");
    }
}
