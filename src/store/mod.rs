//! The replicated key-value store a `tessera node` hosts: its state machine ([`kv`]), the
//! node runner ([`node`]), its HTTP API ([`http`]) and that API's client ([`client`]),
//! plus a local cluster of node processes for the demo and the process tests ([`demo`])
//! and the ports it gives them ([`ports`]).
//! The full config-store API grows from this.

pub mod client;
pub mod demo;
pub mod http;
pub mod kv;
pub mod node;
pub mod ports;

pub use client::Client;
pub use kv::{KvCommand, KvMachine, KvQuery, KvResult, KvSnapshot};
pub use node::{Node, NodeConfig};
