//! What writes whose effect is decided when they apply resolve to: the version that
//! contains them and what they did there.

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
