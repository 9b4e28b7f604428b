//! The store's data: keys with their revisions ([`KeyEntry`]), the state every member
//! holds at a revision ([`KvState`]), and the reads served from it (one key, a page of a
//! prefix).
//!
//! Revisions are log indices: a key's `mod_index` is the index of the entry that last
//! wrote it, its `create_index` the index of the entry that created it (again after a
//! delete), and `version` counts its writes since that creation. The state's `revision`
//! is the index of the last command applied to it.

use super::history::History;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::ops::Bound;
use std::sync::Arc;

/// A key: shared between the map, the history and the answers, so copying one is a
/// reference count.
pub type Key = Arc<str>;

/// A value's bytes, shared like [`Key`]. Serialized as a byte string.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Value(pub Arc<[u8]>);

impl Value {
    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Their length.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Value {
    fn from(bytes: Vec<u8>) -> Self {
        Value(bytes.into())
    }
}

impl From<&[u8]> for Value {
    fn from(bytes: &[u8]) -> Self {
        Value(bytes.into())
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(text) if self.0.len() <= 64 => write!(f, "{text:?}"),
            _ => write!(f, "<{} bytes>", self.0.len()),
        }
    }
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        Ok(Value::from(bytes.into_vec()))
    }
}

/// A live key's value and revisions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// The value.
    pub value: Value,
    /// Index of the entry that created the key (last put after it was absent).
    pub create_index: u64,
    /// Index of the entry that last wrote it.
    pub mod_index: u64,
    /// Writes since its creation (1 after the creating put).
    pub version: u64,
}

/// One key with its entry, as reads answer it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRecord {
    /// The key.
    pub key: Key,
    /// The value, unless only names were asked for.
    pub value: Option<Value>,
    /// See [`KeyEntry::create_index`].
    pub create_index: u64,
    /// See [`KeyEntry::mod_index`].
    pub mod_index: u64,
    /// See [`KeyEntry::version`].
    pub version: u64,
}

impl KeyRecord {
    /// The record of `key` holding `entry`; without its value when `keys_only`.
    pub fn new(key: &Key, entry: &KeyEntry, keys_only: bool) -> Self {
        KeyRecord {
            key: key.clone(),
            value: (!keys_only).then(|| entry.value.clone()),
            create_index: entry.create_index,
            mod_index: entry.mod_index,
            version: entry.version,
        }
    }
}

/// One page of the keys under a prefix.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// The keys, sorted.
    pub records: Vec<KeyRecord>,
    /// Whether keys under the prefix follow the last one (ask again with `after` = it).
    pub more: bool,
}

/// What a range read asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RangeRequest {
    /// Keys starting with this (every key when empty).
    pub prefix: String,
    /// Only keys after this one (exclusive), for the next page.
    pub after: Option<String>,
    /// At most this many keys.
    pub limit: u32,
    /// Names and revisions only, no values.
    pub keys_only: bool,
}

/// Whether `key` falls under a watch or a blocking read of `prefix` (`exact`: only
/// `prefix` itself).
pub fn matches(key: &str, prefix: &str, exact: bool) -> bool {
    if exact {
        key == prefix
    } else {
        key.starts_with(prefix)
    }
}

/// The replicated state at one revision. Every field is a persistent (`im`) structure, so
/// a clone is O(1): the machine publishes one after every applied batch.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvState {
    /// Index of the last command applied (0 before any).
    pub revision: u64,
    /// The live keys, sorted.
    pub keys: imbl::OrdMap<Key, KeyEntry>,
    /// The recent changes, for watches and blocking reads.
    pub history: History,
}

impl KvState {
    /// Bytes of every live key and value: what the store holds, without indices or
    /// history (`tessera snapshot status` and `tessera inspect` report it).
    pub fn data_bytes(&self) -> u64 {
        self.keys
            .iter()
            .map(|(k, e)| (k.len() + e.value.len()) as u64)
            .sum()
    }

    /// The `n` largest values, largest first (ties by key): key and bytes. What an
    /// operator looks for when a store grows.
    pub fn largest_values(&self, n: usize) -> Vec<(String, u64)> {
        let mut largest: Vec<(String, u64)> = self
            .keys
            .iter()
            .map(|(k, e)| (k.to_string(), e.value.len() as u64))
            .collect();
        largest.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        largest.truncate(n);
        largest
    }

    /// The entry of `key`, if live.
    pub fn get(&self, key: &str) -> Option<&KeyEntry> {
        self.keys.get(key)
    }

    /// The key and entry of `key`, if live.
    pub fn record(&self, key: &str, keys_only: bool) -> Option<KeyRecord> {
        self.keys
            .get_key_value(key)
            .map(|(k, e)| KeyRecord::new(k, e, keys_only))
    }

    /// The live keys under `prefix`, in order, starting after `after` when given.
    pub fn under<'a>(
        &'a self,
        prefix: &'a str,
        after: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a Key, &'a KeyEntry)> + 'a {
        let start = match after {
            Some(after) if after >= prefix => Bound::Excluded(after),
            _ => Bound::Included(prefix),
        };
        self.keys
            .range::<_, str>((start, Bound::Unbounded))
            .take_while(move |(k, _)| k.starts_with(prefix))
    }

    /// One page of [`under`](Self::under): at most `limit` keys and, past the first, at
    /// most `budget` value bytes.
    pub fn range(&self, request: &RangeRequest, budget: usize) -> Page {
        let mut page = Page::default();
        let mut bytes = 0usize;
        let limit = request.limit.max(1) as usize;
        for (key, entry) in self.under(&request.prefix, request.after.as_deref()) {
            let size = if request.keys_only {
                key.len()
            } else {
                key.len() + entry.value.len()
            };
            if page.records.len() == limit
                || (!page.records.is_empty() && bytes.saturating_add(size) > budget)
            {
                page.more = true;
                break;
            }
            bytes += size;
            page.records
                .push(KeyRecord::new(key, entry, request.keys_only));
        }
        page
    }

    /// Whether anything under `prefix` (only `prefix` itself when `exact`) changed after
    /// revision `since`: `None` when the history no longer reaches back there (treat as
    /// changed: a spurious wake-up, never a missed one).
    pub fn changed_since(&self, prefix: &str, exact: bool, since: u64) -> Option<bool> {
        self.history.changed_since(prefix, exact, since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(keys: &[(&str, &str)]) -> KvState {
        let mut s = KvState::default();
        for (i, (k, v)) in keys.iter().enumerate() {
            s.keys.insert(
                Key::from(*k),
                KeyEntry {
                    value: Value::from(v.as_bytes()),
                    create_index: i as u64 + 1,
                    mod_index: i as u64 + 1,
                    version: 1,
                },
            );
        }
        s
    }

    fn names(page: &Page) -> Vec<&str> {
        page.records.iter().map(|r| &*r.key).collect()
    }

    fn ask(prefix: &str, after: Option<&str>, limit: u32) -> RangeRequest {
        RangeRequest {
            prefix: prefix.into(),
            after: after.map(Into::into),
            limit,
            keys_only: false,
        }
    }

    #[test]
    fn a_range_is_the_sorted_keys_under_the_prefix_in_pages() {
        let s = state(&[
            ("a", "1"),
            ("app/b", "2"),
            ("app/a", "3"),
            ("apq", "4"),
            ("b", "5"),
        ]);
        let page = s.range(&ask("app/", None, 10), usize::MAX);
        assert_eq!(names(&page), ["app/a", "app/b"]);
        assert!(!page.more);
        let first = s.range(&ask("a", None, 2), usize::MAX);
        assert_eq!((names(&first), first.more), (vec!["a", "app/a"], true));
        let next = s.range(&ask("a", Some("app/a"), 2), usize::MAX);
        assert_eq!((names(&next), next.more), (vec!["app/b", "apq"], false));
        let all = s.range(&ask("", None, 100), usize::MAX);
        assert_eq!(all.records.len(), 5);
        // `after` before the prefix starts at the prefix.
        let early = s.range(&ask("app/", Some("a"), 10), usize::MAX);
        assert_eq!(names(&early), ["app/a", "app/b"]);
    }

    #[test]
    fn a_page_stops_at_its_byte_budget_but_always_holds_one_key() {
        let s = state(&[("k1", "xxxx"), ("k2", "xxxx"), ("k3", "xxxx")]);
        let page = s.range(&ask("k", None, 10), 1);
        assert_eq!((names(&page), page.more), (vec!["k1"], true));
        let page = s.range(&ask("k", None, 10), 12);
        assert_eq!((names(&page), page.more), (vec!["k1", "k2"], true));
    }
}
