//! tessera's test harnesses, kept out of the library's public API: tests and benches take
//! them as a dev-dependency.
//!
//! - [`cluster`]: [`LocalCluster`](cluster::LocalCluster), `tessera node` processes on
//!   local addresses (started, killed, paused, restarted, asked who leads).
//! - [`chaos`]: the nemesis suite (faults, clients, the linearizability checker).
//! - [`partition`]: a node cut off from its peers, or single links cut, by iptables rules
//!   on `lo`.
//! - [`slow_link`]: a node's peer traffic rate-limited by `tc` on `lo`.
//! - [`groups_node`]: `tessera groups-node` processes (many groups per node), measured
//!   from `/proc` and killed, for the many-groups benchmark and crash test.
//! - [`ports`]: free ports below the ephemeral range, for nodes started later.
//! - [`write_log`]: the storage exerciser behind the hidden `tessera write-log`.
//! - [`conformance`]: the checks every snapshot `ChunkStore` must pass.
//!
//! The `tessera` binary compiles `cluster.rs`, `ports.rs` and `write_log.rs` in as well
//! (`#[path]` modules in `src/main.rs`), for `tessera demo` and `tessera write-log`: a
//! package cannot depend on a crate that depends on it. So these three files name tessera
//! only as `tessera::...` and each other only as `super::...`.
#![deny(missing_docs)]

pub mod chaos;
pub mod cluster;
pub mod conformance;
pub mod groups_node;
pub mod partition;
pub mod ports;
pub mod slow_link;
pub mod write_log;
