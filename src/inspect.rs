//! `tessera inspect DATA_DIR`: a JSON picture of a data directory, read-only and safe to
//! run beside a live node.

use std::path::Path;

/// Renders the summary of the data directory at `path` as pretty JSON.
pub fn inspect(path: &Path) -> Result<String, tessera_storage::Error> {
    let store = tessera_storage::Store::open_read_only(path)?;
    let summary = store.summary()?;
    Ok(serde_json::to_string_pretty(&summary).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")))
}
