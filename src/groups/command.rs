//! What a replicated command must be.

use serde::{de::DeserializeOwned, Serialize};

/// A command (or query, or query result) a state machine takes: serializable through the
/// one codec, cloneable and sendable between threads. Implemented for every such type.
/// The log stores it as the bytes the codec made (see the core's `Payload::Command`).
pub trait Command: Serialize + DeserializeOwned + Clone + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Send + Sync + 'static> Command for T {}
