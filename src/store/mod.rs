//! The config store a `tessera node` hosts: its state machine with per-key revisions and
//! change history ([`kv`]), the node runner ([`node`]), the published states its HTTP API
//! reads and waits on ([`feed`]), the HTTP API ([`http`]) and that API's client
//! ([`client`]).

pub mod client;
pub mod feed;
pub mod http;
pub mod kv;
pub mod node;

pub use client::Client;
pub use kv::{KvCommand, KvMachine, KvQuery, KvResult, KvSnapshot, KvState};
pub use node::{Node, NodeConfig};
