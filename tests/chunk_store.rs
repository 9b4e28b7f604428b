//! The RocksDB chunk store passes the snapshots crate's conformance suite, and a partially
//! received snapshot survives closing and reopening the database: the resumed transfer
//! asks only for the chunks it lacked.

use tessera::groups::snapshot::RocksChunkStore;
use tessera_testkit::conformance;

#[test]
fn rocksdb_chunk_store_conforms() {
    let dir = tempfile::tempdir().unwrap();
    let store = tessera_storage::Store::open(dir.path()).unwrap();
    conformance::check_chunk_store(&mut RocksChunkStore::new(store));
}

#[test]
fn partial_transfer_survives_reopening_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let received = {
        let store = tessera_storage::Store::open(dir.path()).unwrap();
        conformance::write_partial_transfer(&mut RocksChunkStore::new(store))
    }; // database closed here
    let store = tessera_storage::Store::open(dir.path()).unwrap();
    conformance::check_partial_transfer(&mut RocksChunkStore::new(store), &received);
}
