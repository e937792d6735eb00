//! The job journal: SQLite in WAL mode with `synchronous=FULL`, the single source of truth.
//!
//! A job is committed here before the API acknowledges it, and every device step that
//! matters for recovery is committed before the step is sent to the device.
//!
//! - [`crate::job`]: what a job is, and the typed requests, steps and results it carries.
//! - `audit`: the append-only audit log and its batching writer, [`AuditWriter`], which
//!   counts unauthenticated refusals per listener and minute.
//! - `keys`: idempotency keys in two namespaces, [`IdempotencyKey`].
//! - `submitter`: group commit of job submissions, [`Submitter`].
//! - `cards`: card transactions and the writes of a sale's life (the rules of which are
//!   in [`crate::sales`]).
//!
//! Every journal call returns a [`JournalError`] on failure, never a device error, so a
//! device task can tell "the journal could not record this" (retry the commit, leave the
//! device alone) from "the device failed".

mod audit;
mod cards;
mod keys;
mod noviapi;
mod outbox;
pub mod resolve;
mod stored;
mod submitter;
mod today;

pub use crate::job::records::{
    CardOutcome, CopyPrinted, DailyReportPrinted, EndOfDayResult, InvoicePrinted, JobRequest,
    JobResult, PaymentResult, PeriodicReportPrinted, PrintoutPrinted, ReceiptPrinted, SalePayment,
    SaleRequest, SaleResult, Step,
};
pub use crate::job::{Job, JobId, JobKind, JobState};
pub use audit::{AuditEntry, AuditWriter, NewAudit, Unauthenticated, audit_sample};
pub use cards::CardRecord;
pub use keys::IdempotencyKey;
pub use noviapi::{NoviDeleted, NoviRequest, NoviState, NoviWork, noviapi_job_key};
pub use outbox::{OutboxRow, OutboxStats};
pub use submitter::Submitter;

use crate::device::{DeviceError, DocumentCounters};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};
use stored::StoredJob;

/// A job to be queued.
pub struct NewJob {
    /// The device it runs on.
    pub device: String,
    /// What it does; the job's kind is the request's.
    pub request: JobRequest,
    pub idempotency_key: Option<IdempotencyKey>,
    /// Who asks for it: becomes the job's owner, and the audit entry is written in the
    /// same transaction as the job.
    pub actor: Option<Actor>,
}

/// The client behind a job-creating request.
#[derive(Debug, Clone)]
pub struct Actor {
    /// A token's name, or `socket`.
    pub name: String,
    pub role: String,
    /// e.g. `POST /v1/receipts`.
    pub operation: String,
}

/// The outcome of one submission: the job and whether it already existed.
pub type Submitted = Result<(Job, bool), JournalError>;

/// Journal failures. The first four are answers about jobs; the others mean the journal
/// itself could not be read or written ([`JournalError::is_journal_failure`]).
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("Idempotency-Key {0:?} was already used with a different request")]
    IdempotencyConflict(String),
    #[error("job {0} not found")]
    NotFound(JobId),
    #[error("job {id} is {state} and can no longer be cancelled")]
    NotCancellable { id: JobId, state: &'static str },
    #[error("journal: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("journal commit failed: {0}")]
    Commit(String),
    /// A stored job cannot be read: an unknown kind, state or step, or a record that does
    /// not fit its kind. It is never read as something else.
    #[error("journal: job {job} is unreadable: {problem}")]
    Corrupt { job: JobId, problem: String },
}

impl JournalError {
    /// Whether the journal itself failed (it could not be read, written or committed), as
    /// opposed to an answer about a job. A device task that gets one has not recorded its
    /// step: it retries the commit and sends nothing to the device until it succeeds.
    pub fn is_journal_failure(&self) -> bool {
        matches!(
            self,
            JournalError::Sqlite(_) | JournalError::Commit(_) | JournalError::Corrupt { .. }
        )
    }

    /// Whether trying the same write again may succeed (the database was busy, the disk
    /// full, the commit failed). A corrupt record or an answer about a job will not change.
    pub fn is_transient(&self) -> bool {
        matches!(self, JournalError::Sqlite(_) | JournalError::Commit(_))
    }
}

/// The journal handle, shared by the API and the device tasks.
#[derive(Clone)]
pub struct Journal {
    conn: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    kind            TEXT NOT NULL,
    device          TEXT NOT NULL,
    state           TEXT NOT NULL,
    step            TEXT,
    request         TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    idempotency_key TEXT UNIQUE,
    result          TEXT,
    error           TEXT,
    counters_before TEXT,
    parent_id       INTEGER REFERENCES jobs(id),
    attempts        INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL,
    updated_at      TEXT NOT NULL,
    owner           TEXT
);
CREATE INDEX IF NOT EXISTS jobs_device_state ON jobs(device, state, id);
CREATE TABLE IF NOT EXISTS job_events (
    job_id  INTEGER NOT NULL REFERENCES jobs(id),
    at      TEXT NOT NULL,
    step    TEXT NOT NULL,
    detail  TEXT
);
CREATE INDEX IF NOT EXISTS job_events_job ON job_events(job_id);
CREATE INDEX IF NOT EXISTS jobs_parent ON jobs(parent_id);
CREATE INDEX IF NOT EXISTS jobs_updated ON jobs(updated_at);
-- Every card transaction outcome seen from a terminal; only masked card numbers.
CREATE TABLE IF NOT EXISTS card_transactions (
    terminal        TEXT NOT NULL,
    trace_number    INTEGER NOT NULL,
    receipt_number  INTEGER,
    job_id          INTEGER REFERENCES jobs(id),
    result          TEXT NOT NULL,
    at              TEXT NOT NULL,
    PRIMARY KEY (terminal, trace_number)
);
-- Every fiscal operation and every refused request: append-only.
CREATE TABLE IF NOT EXISTS audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    at          TEXT NOT NULL,
    principal   TEXT NOT NULL,
    role        TEXT,
    operation   TEXT NOT NULL,
    job_id      INTEGER,
    outcome     TEXT NOT NULL,
    detail      TEXT,
    -- Aggregated rows of unauthenticated refusals only (see audit.rs).
    count        INTEGER,
    window_start TEXT,
    window_end   TEXT
);
"#;

/// Columns of a job, in `StoredJob::from_row`'s order.
const JOB_COLUMNS: &str = "id, kind, device, state, step, request, result, error, counters_before, attempts, created_at, updated_at, parent_id, owner";

/// Idempotency keys are kept at least this long (the contract says 7 days).
const IDEMPOTENCY_RETENTION_DAYS: i64 = 30;

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The hash that tells a repeated request from a different one under the same
/// `Idempotency-Key`: over the kind, the device and the stored request text.
fn request_hash(kind: JobKind, device: &str, request: &str) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(kind.as_str());
    h.update([0]);
    h.update(device);
    h.update([0]);
    h.update(request);
    hex::encode(h.finalize())
}

impl Journal {
    /// Open (or create) the journal at `path`, with mode 0600 for a new file.
    pub fn open(path: &Path) -> Result<Journal, JournalError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            let _ = std::fs::create_dir_all(dir);
        }
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            let _ = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path);
        }
        let conn = Connection::open(path)?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if mode != "wal" {
            return Err(JournalError::Sqlite(rusqlite::Error::InvalidParameterName(
                format!("journal_mode is {mode}, WAL is required"),
            )));
        }
        conn.execute_batch(
            "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA busy_timeout=5000;",
        )?;
        let has_jobs: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'jobs'",
            [],
            |r| r.get(0),
        )?;
        if has_jobs {
            // Journals from before access levels: jobs get an owner column.
            let has_owner: bool = conn.query_row(
                "SELECT COUNT(*) > 0 FROM pragma_table_info('jobs') WHERE name = 'owner'",
                [],
                |r| r.get(0),
            )?;
            if !has_owner {
                conn.execute_batch("ALTER TABLE jobs ADD COLUMN owner TEXT")?;
            }
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute_batch(outbox::OUTBOX_SCHEMA)?;
        Self::audit_schema(&conn)?;
        Self::noviapi_schema(&conn)?;
        Self::namespace_legacy_keys(&conn)?;
        let cutoff = (chrono::Utc::now() - chrono::Duration::days(IDEMPOTENCY_RETENTION_DAYS))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        conn.execute(
            "UPDATE jobs SET idempotency_key = NULL WHERE idempotency_key IS NOT NULL AND created_at < ?1",
            [cutoff],
        )?;
        Ok(Journal {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite inconsistent: use the connection anyway.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// End a job (see [`Journal::finish`]) from a device task, log it, and announce the job
    /// and any sale it settled to the API's waiters. A journal failure is logged and
    /// returned; the job then stays as it was, and the caller may retry.
    pub async fn end_job(
        &self,
        device: &str,
        events: &tokio::sync::broadcast::Sender<JobId>,
        id: JobId,
        state: JobState,
        result: Option<JobResult>,
        error: Option<DeviceError>,
    ) -> Result<(), JournalError> {
        match self
            .run(move |j| j.finish(id, state, result.as_ref(), error.as_ref()))
            .await
        {
            Ok(settled) => {
                tracing::info!(device, job = id, state = state.as_str(), "job finished");
                let _ = events.send(id);
                if let Some(sale) = settled {
                    let _ = events.send(sale);
                }
                Ok(())
            }
            Err(e) => {
                tracing::error!(device, job = id, error = %e, "cannot journal the job's end");
                Err(e)
            }
        }
    }

    /// Run a journal write from a device task until it is committed: a transient failure
    /// ([`JournalError::is_transient`]) is logged and tried again with back-off (0.1 s up to
    /// 5 s), and nothing else happens meanwhile, so the device is not touched before its
    /// step is on disk. Any other error, or the last one when `shutdown` is cancelled, is
    /// returned.
    pub async fn run_until_committed<T: Send + 'static>(
        &self,
        shutdown: &tokio_util::sync::CancellationToken,
        what: &str,
        f: impl Fn(&Journal) -> Result<T, JournalError> + Send + Sync + 'static,
    ) -> Result<T, JournalError> {
        let f = Arc::new(f);
        let mut backoff = std::time::Duration::from_millis(100);
        loop {
            let attempt = Arc::clone(&f);
            match self.run(move |j| attempt(j)).await {
                Err(e) if e.is_transient() => {
                    tracing::error!(error = %e, what, retry_in = ?backoff, "cannot write the journal; retrying before anything else");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => return Err(e),
                    }
                    backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
                }
                outcome => return outcome,
            }
        }
    }

    /// Run a blocking journal call off the async runtime.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Journal) -> T + Send + 'static,
    ) -> T {
        let j = self.clone();
        match tokio::task::spawn_blocking(move || f(&j)).await {
            Ok(v) => v,
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }

    /// Queue a job, or return the existing one for a repeated `Idempotency-Key`.
    /// Returns the job and whether it already existed.
    pub fn submit(&self, new: NewJob) -> Result<(Job, bool), JournalError> {
        self.submit_batch(vec![new])
            .pop()
            .unwrap_or_else(|| Err(JournalError::Commit("empty batch".into())))
    }

    /// Queue several jobs in one transaction (one fsync): the group commit behind
    /// [`Submitter`]. Each job gets its own outcome; a failed commit fails them all (and
    /// then only one outcome is returned).
    pub fn submit_batch(&self, jobs: Vec<NewJob>) -> Vec<Submitted> {
        let t0 = std::time::Instant::now();
        let mut conn = self.lock();
        let run = |conn: &mut Connection| -> Result<Vec<Submitted>, JournalError> {
            let tx = conn.transaction()?;
            let outcomes = jobs
                .into_iter()
                .map(|new| Self::submit_in(&tx, new))
                .collect();
            tx.commit()?;
            Ok(outcomes)
        };
        let outcome = run(&mut conn);
        crate::metrics::journal_commit("submit_batch", t0);
        match outcome {
            Ok(outcomes) => outcomes,
            Err(e) => vec![Err(JournalError::Commit(e.to_string()))],
        }
    }

    fn submit_in(tx: &rusqlite::Transaction<'_>, new: NewJob) -> Result<(Job, bool), JournalError> {
        let kind = new.request.kind();
        let request = new.request.to_json().to_string();
        let hash = request_hash(kind, &new.device, &request);
        let owner = new.actor.as_ref().map(|a| a.name.as_str());
        let stored_key = new.idempotency_key.as_ref().map(|k| k.stored(owner));
        if let (Some(key), Some(stored)) = (&new.idempotency_key, &stored_key) {
            let found: Option<(JobId, String)> = tx
                .query_row(
                    "SELECT id, request_hash FROM jobs WHERE idempotency_key = ?1",
                    [stored],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((id, existing_hash)) = found {
                if existing_hash != hash {
                    return Err(JournalError::IdempotencyConflict(key.as_str().to_string()));
                }
                let job = Self::get_in(tx, id)?.ok_or(JournalError::NotFound(id))?;
                if let Some(actor) = &new.actor {
                    Self::audit_in(tx, actor, Some(id), "replayed", None)?;
                }
                return Ok((job, true));
            }
        }
        let t = now();
        tx.execute(
            "INSERT INTO jobs (kind, device, state, request, request_hash, idempotency_key, created_at, updated_at, owner)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)",
            params![kind.as_str(), new.device, JobState::Queued.as_str(), request, hash,
                    stored_key, t, owner],
        )?;
        let id = tx.last_insert_rowid();
        log_event(tx, id, &t, JobState::Queued.as_str(), None)?;
        if let Some(actor) = &new.actor {
            Self::audit_in(tx, actor, Some(id), "accepted", None)?;
        }
        let job = Self::get_in(tx, id)?.ok_or(JournalError::NotFound(id))?;
        Ok((job, false))
    }

    fn get_in(conn: &Connection, id: JobId) -> Result<Option<Job>, JournalError> {
        conn.query_row(
            &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
            [id],
            StoredJob::from_row,
        )
        .optional()?
        .map(StoredJob::decode)
        .transpose()
    }

    /// One job.
    pub fn get(&self, id: JobId) -> Result<Option<Job>, JournalError> {
        Self::get_in(&self.lock(), id)
    }

    /// Jobs, newest first, optionally in one state and only those of one owner.
    pub fn list(
        &self,
        state: Option<JobState>,
        limit: u32,
        owner: Option<&str>,
    ) -> Result<Vec<Job>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE (?1 IS NULL OR state = ?1)
               AND (?3 IS NULL OR owner = ?3) ORDER BY id DESC LIMIT ?2"
        ))?;
        let rows = stmt.query_map(
            params![state.map(JobState::as_str), limit, owner],
            StoredJob::from_row,
        )?;
        rows.map(|row| StoredJob::decode(row?)).collect()
    }

    /// Count of jobs queued or running on one device.
    pub fn queue_depth(&self, device: &str) -> Result<i64, JournalError> {
        Ok(self.lock().query_row(
            "SELECT COUNT(*) FROM jobs WHERE device = ?1 AND state IN (?2, ?3)",
            params![
                device,
                JobState::Queued.as_str(),
                JobState::Running.as_str()
            ],
            |r| r.get(0),
        )?)
    }

    /// Cancel a queued job; anything else is a conflict.
    pub fn cancel(&self, id: JobId) -> Result<Job, JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let job = Self::get_in(&tx, id)?.ok_or(JournalError::NotFound(id))?;
        if job.state != JobState::Queued {
            return Err(JournalError::NotCancellable {
                id,
                state: job.state.as_str(),
            });
        }
        let t = now();
        tx.execute(
            "UPDATE jobs SET state = ?2, updated_at = ?3 WHERE id = ?1",
            params![id, JobState::Cancelled.as_str(), t],
        )?;
        log_event(&tx, id, &t, JobState::Cancelled.as_str(), None)?;
        let job = Self::get_in(&tx, id)?.ok_or(JournalError::NotFound(id))?;
        tx.commit()?;
        Ok(job)
    }

    /// The job a device should work on next: one left running (to reconcile) first,
    /// then the oldest queued one. A sale whose receipt is printing waits for the printer.
    pub fn next_for_device(&self, device: &str) -> Result<Option<Job>, JournalError> {
        let conn = self.lock();
        let id: Option<JobId> = conn
            .query_row(
                "SELECT id FROM jobs WHERE device = ?1 AND state IN ('running', 'queued')
                   AND NOT (kind = ?2 AND COALESCE(step, '') = ?3)
                 ORDER BY CASE state WHEN 'running' THEN 0 ELSE 1 END, id LIMIT 1",
                params![device, JobKind::Sale.as_str(), Step::Printing.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => Self::get_in(&conn, id),
            None => Ok(None),
        }
    }

    /// Move a queued job to running (step `prepare`). Returns false if it was cancelled meanwhile.
    pub fn start(&self, id: JobId) -> Result<bool, JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let t = now();
        let n = tx.execute(
            "UPDATE jobs SET state = ?2, step = ?3, attempts = attempts + 1, updated_at = ?4
             WHERE id = ?1 AND state = ?5",
            params![
                id,
                JobState::Running.as_str(),
                Step::Prepare.as_str(),
                t,
                JobState::Queued.as_str()
            ],
        )?;
        if n == 1 {
            log_event(&tx, id, &t, JobState::Running.as_str(), None)?;
        }
        tx.commit()?;
        Ok(n == 1)
    }

    /// Record a recovery step (committed before the step goes to the device), with the
    /// document counters when the step is [`Step::Printing`]. Returns false, changing
    /// nothing, when the job is no longer running (it was cancelled meanwhile).
    pub fn set_step(
        &self,
        id: JobId,
        step: Step,
        counters_before: Option<&DocumentCounters>,
        detail: Option<&str>,
    ) -> Result<bool, JournalError> {
        let t0 = std::time::Instant::now();
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let t = now();
        let running = JobState::Running.as_str();
        let changed = match counters_before {
            Some(c) => tx.execute(
                "UPDATE jobs SET step = ?2, counters_before = ?3, updated_at = ?4 WHERE id = ?1 AND state = ?5",
                params![id, step.as_str(), to_text(c), t, running],
            )?,
            None => tx.execute(
                "UPDATE jobs SET step = ?2, updated_at = ?3 WHERE id = ?1 AND state = ?4",
                params![id, step.as_str(), t, running],
            )?,
        };
        if changed == 0 {
            return Ok(false);
        }
        log_event(&tx, id, &t, step.as_str(), detail)?;
        tx.commit()?;
        crate::metrics::journal_commit("set_step", t0);
        Ok(true)
    }

    /// Start another attempt of a running job (after reconciliation showed nothing was printed).
    pub fn retry(&self, id: JobId, detail: &str) -> Result<(), JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let t = now();
        tx.execute(
            "UPDATE jobs SET step = ?2, counters_before = NULL, attempts = attempts + 1, updated_at = ?3 WHERE id = ?1",
            params![id, Step::Prepare.as_str(), t],
        )?;
        log_event(&tx, id, &t, "retry", Some(detail))?;
        tx.commit()?;
        Ok(())
    }

    /// End a job in a terminal state with its result or error. A sale's receipt also
    /// settles the sale (see [`crate::sales::settle`]), in the same transaction; its id is
    /// returned.
    pub fn finish(
        &self,
        id: JobId,
        state: JobState,
        result: Option<&JobResult>,
        error: Option<&DeviceError>,
    ) -> Result<Option<JobId>, JournalError> {
        debug_assert!(state.is_terminal());
        let t0 = std::time::Instant::now();
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        Self::finish_in(&tx, id, state, result, error)?;
        let mut settled = None;
        if let Some(job) = Self::get_in(&tx, id)?
            && let (Some(parent), JobKind::Receipt) = (job.parent_id, job.kind)
        {
            Self::settle_sale_in(&tx, parent, &job)?;
            settled = Some(parent);
        }
        tx.commit()?;
        crate::metrics::journal_commit("finish", t0);
        Ok(settled)
    }

    /// Terminal states never change again: a job already ended is left as it is.
    fn finish_in(
        tx: &Connection,
        id: JobId,
        state: JobState,
        result: Option<&JobResult>,
        error: Option<&DeviceError>,
    ) -> Result<(), JournalError> {
        let t = now();
        let error = error.map(to_text);
        tx.execute(
            "UPDATE jobs SET state = ?2, step = NULL, result = ?3, error = ?4, updated_at = ?5
             WHERE id = ?1 AND state IN ('queued', 'running')",
            params![
                id,
                state.as_str(),
                result.map(|r| r.to_json().to_string()),
                error,
                t
            ],
        )?;
        log_event(tx, id, &t, state.as_str(), error.as_deref())?;
        Ok(())
    }
}

/// A record's stored JSON text, with its keys in the order the journal has always used
/// (through [`Value`], whose maps are sorted), so hashes and stored text stay the same.
fn to_text<T: Serialize>(record: &T) -> String {
    serde_json::to_value(record)
        .unwrap_or(Value::Null)
        .to_string()
}

/// Append to a job's history (`job_events`): a state, a step or another event by name.
/// Every change of a job goes through here, so this is also where its fleet event is
/// written to the outbox (when `[fleet]` is on), in the caller's transaction.
fn log_event(
    conn: &Connection,
    id: JobId,
    at: &str,
    name: &str,
    detail: Option<&str>,
) -> Result<(), JournalError> {
    conn.execute(
        "INSERT INTO job_events (job_id, at, step, detail) VALUES (?1, ?2, ?3, ?4)",
        params![id, at, name, detail],
    )?;
    outbox::job_event(conn, id, at, name, detail)
}

#[cfg(test)]
mod tests;
