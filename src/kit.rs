//! The test kit's process harness and storage exerciser (`tessera-testkit`), compiled into
//! the binary for `tessera demo` and `tessera write-log`: the `tessera` package cannot
//! depend on `tessera-testkit`, which depends on it. Not part of the library; tests and
//! benches use these through the crate.

#[path = "../testkit/src/cluster.rs"]
pub mod cluster;
#[path = "../testkit/src/ports.rs"]
pub mod ports;
#[path = "../testkit/src/write_log.rs"]
pub mod write_log;
