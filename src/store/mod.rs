//! The replicated key-value store a `tessera node` hosts: its state machine ([`kv`]), the
//! node runner ([`node`]), its HTTP API ([`http`]) and that API's client ([`client`]).
//! The full config-store API grows from this.

pub mod client;
pub mod http;
pub mod kv;
pub mod node;

pub use client::Client;
pub use kv::{KvCommand, KvMachine, KvQuery, KvResult, KvSnapshot};
pub use node::{Node, NodeConfig};
