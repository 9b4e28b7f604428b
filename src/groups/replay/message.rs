//! The log-replay wire messages.

use crate::groups::raft::Entry;
use crate::groups::Index;
use serde::{Deserialize, Serialize};

/// Between a replay session and the providers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReplayMessage {
    /// Session to every provider: which committed range do you hold?
    Availability,
    /// Provider to session: it serves `first ..= committed`.
    Available {
        /// The first entry it still has.
        first: Index,
        /// Its commit index.
        committed: Index,
    },
    /// Session to provider: send `from ..= to`.
    Fetch {
        /// First index.
        from: Index,
        /// Last index.
        to: Index,
    },
    /// Provider to session: the entries from `from` on (maybe fewer than asked; none when
    /// it cannot serve `from`).
    Entries {
        /// The index asked first.
        from: Index,
        /// The entries, consecutive from `from`.
        entries: Vec<Entry>,
        /// The provider's commit index.
        committed: Index,
    },
}
