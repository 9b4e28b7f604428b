//! What writes whose effect is decided when they apply resolve to: the version that
//! contains them and what they did there. Each converts into its [`Version`], so code
//! that only waits for the write (`when().reaches(outcome)`) need not unpack it.

use super::Version;

/// What a compare-exchange did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exchange<T> {
    /// The version that contains the compare-exchange (applied whether or not it matched).
    pub version: Version,
    /// Whether the value matched `current` and was replaced.
    pub exchanged: bool,
    /// The value before the compare-exchange.
    pub previous: Option<T>,
}

impl<T> Exchange<T> {
    /// A compare-exchange applied at `version`, from the machine's reply
    /// `(exchanged, previous)`.
    pub(crate) fn from_reply(
        (version, (exchanged, previous)): (Version, (bool, Option<T>)),
    ) -> Self {
        Exchange {
            version,
            exchanged,
            previous,
        }
    }
}

/// What a `pop` or `remove` took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Taken<T> {
    /// The version that contains the operation.
    pub version: Version,
    /// The element taken; `None` when there was none (empty, or out of range).
    pub value: Option<T>,
}

/// What an insert into a priority queue did: the entries its bound evicted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inserted<P, K, V> {
    /// The version that contains the insert.
    pub version: Version,
    /// `(priority, key, value)` of every entry dropped because the queue was over its
    /// capacity, in the order they went. It holds the inserted entry itself when that one
    /// ranked lowest. Always empty for an unbounded queue and for an insert that
    /// overwrote an existing key (the length did not grow).
    pub evicted: Vec<(P, K, V)>,
}

impl<T> From<Exchange<T>> for Version {
    fn from(outcome: Exchange<T>) -> Version {
        outcome.version
    }
}

impl<T> From<Taken<T>> for Version {
    fn from(outcome: Taken<T>) -> Version {
        outcome.version
    }
}

impl<P, K, V> From<Inserted<P, K, V>> for Version {
    fn from(outcome: Inserted<P, K, V>) -> Version {
        outcome.version
    }
}

impl<T> From<&Exchange<T>> for Version {
    fn from(outcome: &Exchange<T>) -> Version {
        outcome.version
    }
}

impl<T> From<&Taken<T>> for Version {
    fn from(outcome: &Taken<T>) -> Version {
        outcome.version
    }
}

impl<P, K, V> From<&Inserted<P, K, V>> for Version {
    fn from(outcome: &Inserted<P, K, V>) -> Version {
        outcome.version
    }
}
