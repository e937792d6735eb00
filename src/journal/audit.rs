//! The append-only audit log: every fiscal operation and every refused request. An
//! accepted job's entry is written in the job's own transaction; refusals go through
//! [`AuditWriter`], many per transaction.

use super::{Actor, JobId, Journal, JournalError, now};
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};

/// One entry of the append-only audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: i64,
    pub at: String,
    /// A token's name, or `socket`; for a request without a valid token, the listener
    /// (`tcp` or `socket`).
    pub principal: String,
    /// None when no valid token was given (401).
    pub role: Option<String>,
    pub operation: String,
    pub job: Option<JobId>,
    /// `accepted`, `replayed`, `refused:401`, `refused:403`, `invalid:422`, ...
    pub outcome: String,
    /// The error code of a refusal, e.g. `forbidden` or `invalid_request`.
    pub detail: Option<String>,
}

/// An audit entry to append, without its id and time.
pub struct NewAudit {
    pub principal: String,
    pub role: Option<&'static str>,
    pub operation: String,
    pub job: Option<JobId>,
    pub outcome: String,
    pub detail: Option<&'static str>,
}

enum AuditMsg {
    Entry(NewAudit),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// Appends refusal entries to the audit log from one thread, many per transaction, so a
/// stream of bad requests does not cost an fsync each. Readers call [`AuditWriter::flush`]
/// first. (An accepted job's entry is written in the job's own transaction instead.)
#[derive(Clone)]
pub struct AuditWriter {
    queue: std::sync::mpsc::Sender<AuditMsg>,
}

impl AuditWriter {
    pub fn start(journal: Journal) -> std::io::Result<AuditWriter> {
        let (queue, rx) = std::sync::mpsc::channel::<AuditMsg>();
        std::thread::Builder::new()
            .name("journal-audit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    while group.len() < 1024 {
                        match rx.try_recv() {
                            Ok(next) => group.push(next),
                            Err(_) => break,
                        }
                    }
                    let mut flushes = Vec::new();
                    let mut entries = Vec::new();
                    for m in group {
                        match m {
                            AuditMsg::Entry(e) => entries.push(e),
                            AuditMsg::Flush(f) => flushes.push(f),
                        }
                    }
                    if !entries.is_empty()
                        && let Err(e) = journal.audit_batch(&entries)
                    {
                        tracing::error!(error = %e, lost = entries.len(), "cannot write the audit log");
                    }
                    for f in flushes {
                        let _ = f.send(());
                    }
                }
            })?;
        Ok(AuditWriter { queue })
    }

    /// Queue an entry; it is committed shortly after.
    pub fn append(&self, entry: NewAudit) {
        if self.queue.send(AuditMsg::Entry(entry)).is_err() {
            tracing::error!("the audit writer has stopped; an audit entry was lost");
        }
    }

    /// Wait until every entry queued so far is committed.
    pub async fn flush(&self) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if self.queue.send(AuditMsg::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// One audit row, in the one `INSERT` every writer shares.
struct AuditRow<'a> {
    principal: &'a str,
    role: Option<&'a str>,
    operation: &'a str,
    job: Option<JobId>,
    outcome: &'a str,
    detail: Option<&'a str>,
}

impl AuditRow<'_> {
    fn insert(&self, conn: &Connection) -> Result<(), JournalError> {
        conn.execute(
            "INSERT INTO audit (at, principal, role, operation, job_id, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                now(),
                self.principal,
                self.role,
                self.operation,
                self.job,
                self.outcome,
                self.detail
            ],
        )?;
        Ok(())
    }
}

impl Journal {
    /// The audit entry of a job-creating request, in the job's transaction.
    pub(super) fn audit_in(
        conn: &Connection,
        actor: &Actor,
        job: Option<JobId>,
        outcome: &str,
        detail: Option<&str>,
    ) -> Result<(), JournalError> {
        AuditRow {
            principal: &actor.name,
            role: Some(&actor.role),
            operation: &actor.operation,
            job,
            outcome,
            detail,
        }
        .insert(conn)
    }

    /// Append an audit entry on its own (a refused request, a cancel).
    pub fn audit(
        &self,
        principal: &str,
        role: Option<&str>,
        operation: &str,
        job: Option<JobId>,
        outcome: &str,
        detail: Option<&str>,
    ) -> Result<(), JournalError> {
        AuditRow {
            principal,
            role,
            operation,
            job,
            outcome,
            detail,
        }
        .insert(&self.lock())
    }

    /// Append several audit entries in one transaction.
    pub fn audit_batch(&self, entries: &[NewAudit]) -> Result<(), JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for e in entries {
            AuditRow {
                principal: &e.principal,
                role: e.role,
                operation: &e.operation,
                job: e.job,
                outcome: &e.outcome,
                detail: e.detail,
            }
            .insert(&tx)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Audit entries, newest first, with ids below `before` when given.
    pub fn audit_page(
        &self,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditEntry>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT id, at, principal, role, operation, job_id, outcome, detail FROM audit
             WHERE (?1 IS NULL OR id < ?1) ORDER BY id DESC LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![before, limit], |r| {
            Ok(AuditEntry {
                id: r.get(0)?,
                at: r.get(1)?,
                principal: r.get(2)?,
                role: r.get(3)?,
                operation: r.get(4)?,
                job: r.get(5)?,
                outcome: r.get(6)?,
                detail: r.get(7)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}
