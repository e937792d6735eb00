//! Idempotency keys: the two namespaces (a client's, scoped to its principal, and
//! fiscald's own) and the one-time conversion of journals from before them.

use super::{Journal, JournalError};
use rusqlite::Connection;

/// The `PRAGMA user_version` from which idempotency keys are stored in namespaces
/// ([`IdempotencyKey`]).
const KEY_NAMESPACE_VERSION: i64 = 1;

/// An idempotency key, in one of two namespaces that can never meet.
///
/// - A **client** key (the `Idempotency-Key` header) is scoped to the principal that sends
///   it: it is stored as `client:<principal>:<key>`. The same key from two tokens is two
///   jobs; no client can find, replay or block another's job through a key.
/// - An **internal** key (one fiscald makes itself, e.g. for a sale's reversal) is stored as
///   `internal:<key>`. Principal names never contain `:`, so no client key can produce it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyKey {
    /// A key a client sent, as sent.
    Client(String),
    /// A key fiscald makes for itself.
    Internal(String),
}

impl IdempotencyKey {
    /// The key as stored in `jobs.idempotency_key`, for a job created by `owner`.
    pub(super) fn stored(&self, owner: Option<&str>) -> String {
        match self {
            IdempotencyKey::Client(k) => format!("client:{}:{k}", owner.unwrap_or("")),
            IdempotencyKey::Internal(k) => format!("internal:{k}"),
        }
    }

    /// The key as the client (or fiscald) named it, for messages.
    pub fn as_str(&self) -> &str {
        match self {
            IdempotencyKey::Client(k) | IdempotencyKey::Internal(k) => k,
        }
    }
}

impl Journal {
    /// Journals from before key namespaces (`PRAGMA user_version` 0) stored keys as sent,
    /// shared by every client. Each becomes its owner's client key once, so a client that
    /// retries across the upgrade still gets its job back. (A sale's reversal is found
    /// through the sale itself, so old `fiscald:reverse-sale:` keys need no internal form.)
    pub(super) fn namespace_legacy_keys(conn: &Connection) -> Result<(), JournalError> {
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version >= KEY_NAMESPACE_VERSION {
            return Ok(());
        }
        conn.execute_batch(&format!(
            "BEGIN;
             UPDATE jobs SET idempotency_key = 'client:' || COALESCE(owner, '') || ':' || idempotency_key
              WHERE idempotency_key IS NOT NULL;
             PRAGMA user_version = {KEY_NAMESPACE_VERSION};
             COMMIT;"
        ))?;
        Ok(())
    }
}
