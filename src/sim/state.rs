//! Emulator state files: JSON read at start and replaced atomically after each change.

use super::pty::write_atomic;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::Path;

/// Read the state at `path`; `None` if there is no file yet. `what` names the contents
/// in errors (e.g. "fiscal memory").
pub fn load<T: DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<Option<T>> {
    if !path.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)?;
    let value = serde_json::from_str(&text)
        .map_err(|e| anyhow::anyhow!("{}: not a {what} file: {e}", path.display()))?;
    Ok(Some(value))
}

/// Write `value` as pretty JSON to `path`, atomically and durably.
pub fn save<T: Serialize>(path: &Path, value: &T) -> anyhow::Result<()> {
    let json = serde_json::to_vec_pretty(value)?;
    write_atomic(path, &json)
        .map_err(|e| anyhow::anyhow!("{}: cannot save state: {e}", path.display()))
}
