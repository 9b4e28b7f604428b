//! Snapshots in the runtime: the RocksDB-backed chunk store that `tessera-snapshots`'
//! writer, reader and transfer planner work against. (`SnapshotSync` comes with issue 6.)

mod chunk_store;

pub use chunk_store::RocksChunkStore;
