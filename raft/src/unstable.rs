//! Entries the core has appended but not yet handed to the driver in a `Ready`.
//!
//! Once handed out, the driver writes them to its `Storage` (staged writes are visible to
//! reads at once) before calling the node again, so from then on the storage is where the
//! core reads them. Durability is tracked apart (`on_persisted`).

use super::message::Entry;
use crate::Index;

/// Entries at `offset ..`; storage holds the valid entries below `offset`.
///
/// Invariant: `entries[k].index == offset + k`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Unstable {
    offset: Index,
    entries: Vec<Entry>,
}

impl Unstable {
    /// Empty, with the next entry expected at `offset`.
    pub(crate) fn new(offset: Index) -> Self {
        Unstable {
            offset,
            entries: Vec::new(),
        }
    }

    /// The entry at `index`, if it is here.
    pub(crate) fn get(&self, index: Index) -> Option<&Entry> {
        let k = index.0.checked_sub(self.offset.0)?;
        self.entries.get(usize::try_from(k).ok()?)
    }

    /// The first index held here (valid even when empty).
    pub(crate) fn offset(&self) -> Index {
        self.offset
    }

    /// The entries at `from ..= to` that are here.
    pub(crate) fn slice(&self, from: Index, to: Index) -> &[Entry] {
        if self.entries.is_empty() || to < self.offset {
            return &[];
        }
        let lo = from.0.saturating_sub(self.offset.0) as usize;
        let hi = ((to.0 - self.offset.0) as usize + 1).min(self.entries.len());
        if lo >= hi {
            return &[];
        }
        &self.entries[lo..hi]
    }

    /// Appends `entries` (consecutive, non-empty), dropping whatever was at or after the
    /// first one. When that index is below `offset`, the offset moves down and the driver
    /// must truncate its storage there (the `Ready` says so by the first entry's index).
    pub(crate) fn truncate_and_append(&mut self, entries: Vec<Entry>) {
        let Some(first) = entries.first().map(|e| e.index) else {
            return;
        };
        let end = Index(self.offset.0 + self.entries.len() as u64);
        if first == end {
            self.entries.extend(entries);
        } else if first <= self.offset {
            self.offset = first;
            self.entries = entries;
        } else {
            self.entries.truncate((first.0 - self.offset.0) as usize);
            self.entries.extend(entries);
        }
    }

    /// Moves every entry out (to a `Ready`); the next entry is expected at `next`.
    pub(crate) fn take(&mut self, next: Index) -> Vec<Entry> {
        self.offset = next;
        std::mem::take(&mut self.entries)
    }

    /// Forgets everything; the next entry is expected at `next` (a log reset).
    pub(crate) fn reset(&mut self, next: Index) {
        self.offset = next;
        self.entries.clear();
    }

    /// Whether nothing is waiting to be handed out.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Payload;
    use crate::Term;

    fn e(t: u64, i: u64) -> Entry {
        Entry {
            term: Term(t),
            index: Index(i),
            payload: Payload::Noop,
        }
    }

    #[test]
    fn append_truncate_take() {
        let mut u = Unstable::new(Index(5));
        u.truncate_and_append(vec![e(1, 5), e(1, 6), e(1, 7)]);
        assert_eq!(u.get(Index(6)).map(|x| x.term), Some(Term(1)));
        u.truncate_and_append(vec![e(2, 6)]);
        assert_eq!(u.slice(Index(1), Index(9)).len(), 2);
        assert!(u.get(Index(7)).is_none());
        u.truncate_and_append(vec![e(3, 3)]);
        assert_eq!(u.offset(), Index(3));
        let taken = u.take(Index(4));
        assert_eq!(taken, vec![e(3, 3)]);
        assert!(u.is_empty());
        assert_eq!(u.offset(), Index(4));
    }
}
