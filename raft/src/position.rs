//! Positions in the replicated log: `Term`, `Index` and the pair `Cursor` (the seed's name
//! for a (term, index); the one name used for it in every tessera crate).

use serde::{Deserialize, Serialize};
use std::fmt;

/// A Raft term. Terms only grow; 0 means "before any election".
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
pub struct Term(pub u64);

/// A position in the log. Entries are numbered from 1; 0 means "before the first entry".
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
pub struct Index(pub u64);

/// The (term, index) of one log entry. Ordered by term first, then index: the order Raft
/// uses to compare how up to date two logs are (§5.4.1).
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Debug, Serialize, Deserialize,
)]
pub struct Cursor(pub Term, pub Index);

impl Term {
    /// Term 0.
    pub const fn zero() -> Self {
        Term(0)
    }
    /// Whether this is term 0.
    pub const fn is_zero(&self) -> bool {
        self.0 == 0
    }
    /// The following term.
    pub const fn next(&self) -> Self {
        Term(self.0 + 1)
    }
}

impl Index {
    /// Index 0, before the first entry.
    pub const fn zero() -> Self {
        Index(0)
    }
    /// Whether this is index 0.
    pub const fn is_zero(&self) -> bool {
        self.0 == 0
    }
    /// The following index.
    pub const fn next(&self) -> Self {
        Index(self.0 + 1)
    }
    /// The previous index, saturating at 0.
    pub const fn prev(&self) -> Self {
        Index(self.0.saturating_sub(1))
    }
}

impl Cursor {
    /// The position before the first entry: term 0, index 0.
    pub const fn zero() -> Self {
        Cursor(Term(0), Index(0))
    }
    /// Whether this is the zero position.
    pub const fn is_zero(&self) -> bool {
        self.0 .0 == 0 && self.1 .0 == 0
    }
    /// The term.
    pub const fn term(&self) -> Term {
        self.0
    }
    /// The index.
    pub const fn index(&self) -> Index {
        self.1
    }
}

impl From<u64> for Index {
    fn from(value: u64) -> Self {
        Index(value)
    }
}

impl From<u64> for Term {
    fn from(value: u64) -> Self {
        Term(value)
    }
}

impl fmt::Display for Term {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl fmt::Display for Cursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.1, self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_orders_by_term_then_index() {
        assert!(Cursor(Term(2), Index(1)) > Cursor(Term(1), Index(9)));
        assert!(Cursor(Term(2), Index(3)) > Cursor(Term(2), Index(2)));
        assert_eq!(Cursor(Term(3), Index(7)).to_string(), "7@3");
    }
}
