//! The config store a `tessera node` hosts: its state machine with per-key revisions and
//! change history ([`kv`]), the process runner ([`server`]), the published states its HTTP API
//! reads and waits on ([`feed`]), the HTTP API ([`http`]), its HTTPS settings ([`tls`])
//! and that API's client ([`client`]).

pub mod backup;
pub mod client;
pub mod feed;
pub mod http;
pub mod kv;
pub mod server;
pub mod tls;

pub use client::Client;
pub use kv::{KvCommand, KvMachine, KvQuery, KvResult, KvSnapshot, KvState};
pub use server::{Server, ServerConfig};
