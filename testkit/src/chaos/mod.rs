//! The nemesis suite: real `tessera node` processes on loopback, concurrent clients whose
//! every call is recorded (start, end, outcome), faults injected on a seeded schedule, and
//! the history checked afterwards.
//!
//! - [`nemesis`]: the faults (SIGKILL, SIGSTOP, partitions, one-way loss, a slow link,
//!   every node killed at once, a member wiped and replaced), applied and healed.
//! - [`workload`]: register clients (get, put, delete, compare-and-swap through
//!   `?cas=` and through `/v1/txn`) and watchers of the keys' prefix.
//! - [`checker`]: a port of Porcupine's linearizability checker.
//! - [`watches`]: every watcher saw every committed change once, in order, the same as
//!   every other watcher, and every acknowledged write is among them (no lost write).
//! - [`run`]: one run from a [`Config`](run::Config) to a [`Report`](run::Report).
//!
//! **Why loopback and not network namespaces.** Each node is a process with its own data
//! directory and its own QUIC port; a node's QUIC socket sends from the port it listens
//! on, so every link between two nodes is a pair of ports, and iptables rules on `lo`
//! matching them cut a link in one or both directions ([`crate::partition`]), while the
//! suite's clients still reach every node over HTTP (TCP), as Jepsen's control node does.
//! That is the control namespaces give over the peer traffic, without a bridge to set up;
//! where `lo` cannot be changed (no root, no iptables or tc), the network nemeses are left
//! out and the report says so.

pub mod checker;
pub mod history;
pub mod nemesis;
pub mod run;
pub mod watches;
pub mod workload;
