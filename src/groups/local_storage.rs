//! `LocalStorage`: where a group keeps what it stores besides its log (a state sync's
//! snapshots), handed to the group's state sync when the group is built
//! ([`super::machine::StateSync::attach`]), so the generic sync traits name no storage of
//! any one implementation.

/// The node's durable store when the network has a data directory and the group is
/// durable; otherwise nothing, and a state sync keeps its data in memory (lost on restart).
#[derive(Clone, Default)]
pub struct LocalStorage {
    durable: Option<tessera_storage::Store>,
}

impl LocalStorage {
    /// Nothing durable: the group's extra state lives in memory.
    pub fn memory() -> Self {
        LocalStorage { durable: None }
    }

    /// The node's RocksDB store.
    pub fn durable(store: tessera_storage::Store) -> Self {
        LocalStorage {
            durable: Some(store),
        }
    }

    /// The node's RocksDB store, if the group is durable.
    pub fn store(&self) -> Option<&tessera_storage::Store> {
        self.durable.as_ref()
    }
}

impl std::fmt::Debug for LocalStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.durable.is_some() {
            "LocalStorage(durable)"
        } else {
            "LocalStorage(memory)"
        })
    }
}
