//! The append-only audit log: every fiscal operation and every refused request. An
//! accepted job's entry is written in the job's own transaction; refusals go through
//! [`AuditWriter`], many per transaction.
//!
//! Refusals of requests whose sender is not known (a 401: no token, or a bad one) are not
//! one row each, so that anyone who can reach a listener cannot grow the log at will: they
//! are counted in one row per listener, [`WINDOW_SECONDS`] window, outcome and error code
//! (`detail`), with the
//! first request's operation as a sample (sanitised and cut to [`SAMPLE_CHARS`]). Those
//! aggregated rows are the only ones the writer may update (their count) and delete (after
//! [`WINDOW_RETENTION_DAYS`]); every other row stays immutable.

use super::{Actor, JobId, Journal, JournalError, now};
use crate::fleet::event::AuditEvent;
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
    /// For an aggregated row of unauthenticated refusals: how many requests it counts (its
    /// `operation` is the first one's, as a sample). None for a row of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<i64>,
    /// For an aggregated row: the start of its window (UTC, inclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<String>,
    /// For an aggregated row: the end of its window (UTC, exclusive).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_end: Option<String>,
}

/// The length of the window unauthenticated refusals are counted in.
pub const WINDOW_SECONDS: i64 = 60;
/// How long aggregated rows are kept; they are pruned when the writer starts and daily.
pub const WINDOW_RETENTION_DAYS: i64 = 30;
/// The longest sample operation an aggregated row keeps, in characters.
pub const SAMPLE_CHARS: usize = 64;

/// An unauthenticated refusal to count: the listener, the request (a sample) and outcome.
pub struct Unauthenticated {
    /// `tcp` or `socket`.
    pub listener: &'static str,
    /// e.g. `GET /v1/devices`, as sent (sanitised here).
    pub operation: String,
    /// e.g. `refused:401`.
    pub outcome: String,
    /// The error code, e.g. `unauthorized` or `login_refused`: refusals with different
    /// codes are counted in different rows.
    pub detail: &'static str,
}

/// `text` with anything but printable ASCII replaced by `?`, cut to [`SAMPLE_CHARS`].
pub fn audit_sample(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(SAMPLE_CHARS)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if text.chars().count() > SAMPLE_CHARS {
        out.push('…');
    }
    out
}

/// The start of the window `unix` falls in, in seconds.
fn window_of(unix: i64) -> i64 {
    unix - unix.rem_euclid(WINDOW_SECONDS)
}

fn rfc3339(unix: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp(unix, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Unauthenticated refusals counted in memory, one entry per row they go to.
#[derive(Default)]
struct Windows {
    rows: std::collections::HashMap<(&'static str, i64, String, &'static str), WindowRow>,
}

struct WindowRow {
    count: i64,
    sample: String,
}

impl Windows {
    fn add(&mut self, u: Unauthenticated, at_unix: i64) {
        let key = (u.listener, window_of(at_unix), u.outcome, u.detail);
        self.rows
            .entry(key)
            .or_insert_with(|| WindowRow {
                count: 0,
                sample: audit_sample(&u.operation),
            })
            .count += 1;
    }
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
    Unauthenticated(Unauthenticated, i64),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// How often the writer prunes aggregated rows past their retention.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(24 * 3600);

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
                let mut pruned = prune(&journal);
                loop {
                    let first = match rx.recv_timeout(PRUNE_EVERY) {
                        Ok(m) => m,
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                            pruned = prune(&journal);
                            continue;
                        }
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                    };
                    let mut group = vec![first];
                    while group.len() < 1024 {
                        match rx.try_recv() {
                            Ok(next) => group.push(next),
                            Err(_) => break,
                        }
                    }
                    let mut flushes = Vec::new();
                    let mut entries = Vec::new();
                    let mut windows = Windows::default();
                    for m in group {
                        match m {
                            AuditMsg::Entry(e) => entries.push(e),
                            AuditMsg::Unauthenticated(u, at) => windows.add(u, at),
                            AuditMsg::Flush(f) => flushes.push(f),
                        }
                    }
                    if (!entries.is_empty() || !windows.rows.is_empty())
                        && let Err(e) = journal.audit_batch(&entries, &windows)
                    {
                        tracing::error!(error = %e, lost = entries.len(), "cannot write the audit log");
                    }
                    for f in flushes {
                        let _ = f.send(());
                    }
                    if pruned.elapsed() >= PRUNE_EVERY {
                        pruned = prune(&journal);
                    }
                }
            })?;
        Ok(AuditWriter { queue })
    }

    /// Count an unauthenticated refusal in its listener's current window.
    pub fn append_unauthenticated(&self, refusal: Unauthenticated) {
        let at = chrono::Utc::now().timestamp();
        if self
            .queue
            .send(AuditMsg::Unauthenticated(refusal, at))
            .is_err()
        {
            tracing::error!("the audit writer has stopped; an audit entry was lost");
        }
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

/// Delete aggregated rows past [`WINDOW_RETENTION_DAYS`]; returns when it ran.
fn prune(journal: &Journal) -> std::time::Instant {
    let cutoff = chrono::Utc::now().timestamp() - WINDOW_RETENTION_DAYS * 24 * 3600;
    match journal.prune_audit_windows(&rfc3339(cutoff)) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            rows = n,
            "pruned aggregated audit rows past their retention"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot prune aggregated audit rows"),
    }
    std::time::Instant::now()
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
        let at = now();
        conn.execute(
            "INSERT INTO audit (at, principal, role, operation, job_id, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                at,
                self.principal,
                self.role,
                self.operation,
                self.job,
                self.outcome,
                self.detail
            ],
        )?;
        super::outbox::audit_event(
            conn,
            &at,
            AuditEvent {
                principal: self.principal.to_string(),
                role: self.role.map(String::from),
                operation: self.operation.to_string(),
                job: self.job,
                outcome: self.outcome.to_string(),
                detail: self.detail.map(String::from),
                count: None,
            },
        )
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
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        AuditRow {
            principal,
            role,
            operation,
            job,
            outcome,
            detail,
        }
        .insert(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Append several audit entries, and add counted unauthenticated refusals to their
    /// windows' rows, in one transaction.
    fn audit_batch(&self, entries: &[NewAudit], windows: &Windows) -> Result<(), JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let t = now();
        for ((listener, start, outcome, detail), row) in &windows.rows {
            tx.execute(
                "INSERT INTO audit (at, principal, role, operation, job_id, outcome, detail,
                                    count, window_start, window_end)
                 VALUES (?1, ?2, NULL, ?3, NULL, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (principal, window_start, outcome, detail) WHERE count IS NOT NULL
                 DO UPDATE SET count = count + excluded.count",
                params![
                    t,
                    listener,
                    row.sample,
                    outcome,
                    detail,
                    row.count,
                    rfc3339(*start),
                    rfc3339(start + WINDOW_SECONDS)
                ],
            )?;
            super::outbox::audit_event(
                &tx,
                &t,
                AuditEvent {
                    principal: listener.to_string(),
                    role: None,
                    operation: row.sample.to_string(),
                    job: None,
                    outcome: outcome.to_string(),
                    detail: Some(detail.to_string()),
                    count: Some(row.count as u64),
                },
            )?;
        }
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
            "SELECT id, at, principal, role, operation, job_id, outcome, detail,
                    count, window_start, window_end FROM audit
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
                count: r.get(8)?,
                window_start: r.get(9)?,
                window_end: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Delete the aggregated rows whose window ended before `cutoff` (RFC 3339, UTC).
    pub fn prune_audit_windows(&self, cutoff: &str) -> Result<usize, JournalError> {
        Ok(self.lock().execute(
            "DELETE FROM audit WHERE count IS NOT NULL AND window_end < ?1",
            [cutoff],
        )?)
    }

    /// Journals from before aggregated rows get their columns; then the triggers that keep
    /// every other row immutable, and the one row per window.
    pub(super) fn audit_schema(conn: &Connection) -> Result<(), JournalError> {
        for column in ["count INTEGER", "window_start TEXT", "window_end TEXT"] {
            let name = column.split(' ').next().unwrap_or(column);
            let has: bool = conn.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('audit') WHERE name = ?1",
                [name],
                |r| r.get(0),
            )?;
            if !has {
                conn.execute_batch(&format!("ALTER TABLE audit ADD COLUMN {column}"))?;
            }
        }
        conn.execute_batch(AUDIT_RULES)?;
        Ok(())
    }
}

/// Only an aggregated row's count may change (upwards), and only aggregated rows may be
/// deleted (by retention). Recreated at every start, so older journals get these rules.
const AUDIT_RULES: &str = "
BEGIN;
DROP TRIGGER IF EXISTS audit_no_update;
DROP TRIGGER IF EXISTS audit_no_delete;
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
WHEN OLD.count IS NULL OR NEW.count IS NULL OR NEW.count < OLD.count
  OR NEW.id IS NOT OLD.id OR NEW.at IS NOT OLD.at OR NEW.principal IS NOT OLD.principal
  OR NEW.role IS NOT OLD.role OR NEW.operation IS NOT OLD.operation
  OR NEW.job_id IS NOT OLD.job_id OR NEW.outcome IS NOT OLD.outcome
  OR NEW.detail IS NOT OLD.detail OR NEW.window_start IS NOT OLD.window_start
  OR NEW.window_end IS NOT OLD.window_end
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit WHEN OLD.count IS NULL
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE UNIQUE INDEX IF NOT EXISTS audit_windows
ON audit (principal, window_start, outcome, detail) WHERE count IS NOT NULL;
COMMIT;
";
