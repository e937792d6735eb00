//! The job journal: SQLite in WAL mode with `synchronous=FULL`, the single source of truth.
//!
//! A job is committed here before the API acknowledges it, and every device step that
//! matters for recovery is committed before the step is sent to the device.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A job's identifier.
pub type JobId = i64;

/// Where a job stands. Terminal states never change again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    Queued,
    Running,
    Done,
    Failed,
    NeedsAttention,
    Cancelled,
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Done => "done",
            JobState::Failed => "failed",
            JobState::NeedsAttention => "needs_attention",
            JobState::Cancelled => "cancelled",
        }
    }
    pub fn parse(s: &str) -> Option<JobState> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "done" => JobState::Done,
            "failed" => JobState::Failed,
            "needs_attention" => JobState::NeedsAttention,
            "cancelled" => JobState::Cancelled,
            _ => return None,
        })
    }
    pub fn is_terminal(self) -> bool {
        !matches!(self, JobState::Queued | JobState::Running)
    }
}

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    Receipt,
    DailyReport,
    Cash,
    Printout,
    /// A card payment (sale, refund or reversal) on a terminal.
    Payment,
    /// A terminal's end of day.
    EndOfDay,
    /// A card payment and its fiscal receipt together.
    Sale,
}

impl JobKind {
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Receipt => "receipt",
            JobKind::DailyReport => "daily_report",
            JobKind::Cash => "cash",
            JobKind::Printout => "printout",
            JobKind::Payment => "payment",
            JobKind::EndOfDay => "end_of_day",
            JobKind::Sale => "sale",
        }
    }
    fn parse(s: &str) -> JobKind {
        match s {
            "daily_report" => JobKind::DailyReport,
            "cash" => JobKind::Cash,
            "printout" => JobKind::Printout,
            "payment" => JobKind::Payment,
            "end_of_day" => JobKind::EndOfDay,
            "sale" => JobKind::Sale,
            _ => JobKind::Receipt,
        }
    }
}

/// A journaled job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub device: String,
    pub state: JobState,
    /// Internal recovery phase (`prepare`, `printing`, `closing`, `closed`).
    pub step: Option<String>,
    pub request: Value,
    pub result: Option<Value>,
    pub error: Option<Value>,
    /// Device counters recorded before the fiscal document was started.
    pub counters_before: Option<Value>,
    /// The sale a receipt or slip belongs to.
    pub parent_id: Option<JobId>,
    pub attempts: i64,
    pub created_at: String,
    pub updated_at: String,
    /// Who created it: a token's name, or `socket` (None for jobs from before access levels).
    pub owner: Option<String>,
}

/// A job to be queued.
pub struct NewJob {
    pub kind: JobKind,
    pub device: String,
    pub request: Value,
    pub idempotency_key: Option<String>,
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
    /// Whether an `Idempotency-Key` another client used may return that client's job.
    pub may_replay_others: bool,
}

/// One entry of the append-only audit log.
#[derive(Debug, Clone, Serialize)]
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

/// A card transaction outcome as a terminal reported it (masked card data only).
pub struct CardRecord {
    pub terminal: String,
    pub trace_number: u32,
    pub receipt_number: Option<u32>,
    pub result: Value,
}

/// The outcome of one submission: the job and whether it already existed.
pub type Submitted = Result<(Job, bool), JournalError>;

/// Journal failures the API reports distinctly.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("Idempotency-Key {0:?} was already used with a different request")]
    IdempotencyConflict(String),
    #[error(
        "Idempotency-Key {0:?} was already used by another client; every client needs its own keys"
    )]
    IdempotencyOwner(String),
    #[error("job {0} not found")]
    NotFound(JobId),
    #[error("job {id} is {state} and can no longer be cancelled")]
    NotCancellable { id: JobId, state: &'static str },
    #[error("journal: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("journal commit failed: {0}")]
    Commit(String),
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
    detail      TEXT
);
CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"#;

/// Columns of a job, in `row_to_job`'s order.
const JOB_COLUMNS: &str = "id, kind, device, state, step, request, result, error, counters_before, attempts, created_at, updated_at, parent_id, owner";

/// Idempotency keys are kept at least this long (the contract says 7 days).
const IDEMPOTENCY_RETENTION_DAYS: i64 = 30;

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn request_hash(kind: JobKind, device: &str, request: &Value) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(kind.as_str());
    h.update([0]);
    h.update(device);
    h.update([0]);
    h.update(request.to_string());
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
    /// and any sale it settled to the API's waiters. A journal failure is logged; the job
    /// then stays as it was and is picked up again.
    pub async fn end_job(
        &self,
        device: &str,
        events: &tokio::sync::broadcast::Sender<JobId>,
        id: JobId,
        state: JobState,
        result: Option<Value>,
        error: Option<Value>,
    ) {
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
            }
            Err(e) => tracing::error!(device, job = id, error = %e, "cannot journal the job's end"),
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
    /// [`Submitter`]. Each job gets its own outcome; a failed commit fails them all.
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
            Err(e) => {
                let msg = e.to_string();
                (0..1)
                    .map(|_| Err(JournalError::Commit(msg.clone())))
                    .collect()
            }
        }
    }

    fn submit_in(tx: &rusqlite::Transaction<'_>, new: NewJob) -> Result<(Job, bool), JournalError> {
        let hash = request_hash(new.kind, &new.device, &new.request);
        if let Some(key) = &new.idempotency_key {
            let found: Option<(JobId, String, Option<String>)> = tx
                .query_row(
                    "SELECT id, request_hash, owner FROM jobs WHERE idempotency_key = ?1",
                    [key],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .optional()?;
            if let Some((id, existing_hash, owner)) = found {
                if let (Some(actor), Some(owner)) = (&new.actor, owner)
                    && owner != actor.name
                    && !actor.may_replay_others
                {
                    return Err(JournalError::IdempotencyOwner(key.clone()));
                }
                if existing_hash != hash {
                    return Err(JournalError::IdempotencyConflict(key.clone()));
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
             VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?6, ?7)",
            params![new.kind.as_str(), new.device, new.request.to_string(), hash, new.idempotency_key, t,
                    new.actor.as_ref().map(|a| a.name.as_str())],
        )?;
        let id = tx.last_insert_rowid();
        tx.execute(
            "INSERT INTO job_events (job_id, at, step, detail) VALUES (?1, ?2, 'queued', NULL)",
            params![id, t],
        )?;
        if let Some(actor) = &new.actor {
            Self::audit_in(tx, actor, Some(id), "accepted", None)?;
        }
        let job = Self::get_in(tx, id)?.ok_or(JournalError::NotFound(id))?;
        Ok((job, false))
    }

    fn audit_in(
        conn: &Connection,
        actor: &Actor,
        job: Option<JobId>,
        outcome: &str,
        detail: Option<&str>,
    ) -> Result<(), JournalError> {
        conn.execute(
            "INSERT INTO audit (at, principal, role, operation, job_id, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                now(),
                actor.name,
                actor.role,
                actor.operation,
                job,
                outcome,
                detail
            ],
        )?;
        Ok(())
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
        self.lock().execute(
            "INSERT INTO audit (at, principal, role, operation, job_id, outcome, detail)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![now(), principal, role, operation, job, outcome, detail],
        )?;
        Ok(())
    }

    /// Append several audit entries in one transaction.
    pub fn audit_batch(&self, entries: &[NewAudit]) -> Result<(), JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        for e in entries {
            tx.execute(
                "INSERT INTO audit (at, principal, role, operation, job_id, outcome, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    now(),
                    e.principal,
                    e.role,
                    e.operation,
                    e.job,
                    e.outcome,
                    e.detail
                ],
            )?;
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

    fn get_in(conn: &Connection, id: JobId) -> Result<Option<Job>, JournalError> {
        Ok(conn
            .query_row(
                &format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1"),
                [id],
                row_to_job,
            )
            .optional()?)
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
            row_to_job,
        )?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Count of jobs per state for one device.
    pub fn queue_depth(&self, device: &str) -> Result<i64, JournalError> {
        Ok(self.lock().query_row(
            "SELECT COUNT(*) FROM jobs WHERE device = ?1 AND state IN ('queued', 'running')",
            [device],
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
            "UPDATE jobs SET state = 'cancelled', updated_at = ?2 WHERE id = ?1",
            params![id, t],
        )?;
        tx.execute(
            "INSERT INTO job_events (job_id, at, step, detail) VALUES (?1, ?2, 'cancelled', NULL)",
            params![id, t],
        )?;
        let job = Self::get_in(&tx, id)?.ok_or(JournalError::NotFound(id))?;
        tx.commit()?;
        Ok(job)
    }

    /// The job a device should work on next: one left running (to reconcile) first,
    /// then the oldest queued one.
    pub fn next_for_device(&self, device: &str) -> Result<Option<Job>, JournalError> {
        let conn = self.lock();
        let id: Option<JobId> = conn
            .query_row(
                "SELECT id FROM jobs WHERE device = ?1 AND state IN ('running', 'queued')
                   AND NOT (kind = 'sale' AND COALESCE(step, '') = 'printing')
                 ORDER BY CASE state WHEN 'running' THEN 0 ELSE 1 END, id LIMIT 1",
                [device],
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
        let conn = self.lock();
        let t = now();
        let n = conn.execute(
            "UPDATE jobs SET state = 'running', step = 'prepare', attempts = attempts + 1, updated_at = ?2
             WHERE id = ?1 AND state = 'queued'",
            params![id, t],
        )?;
        if n == 1 {
            conn.execute(
                "INSERT INTO job_events (job_id, at, step, detail) VALUES (?1, ?2, 'running', NULL)",
                params![id, t],
            )?;
        }
        Ok(n == 1)
    }

    /// Record a recovery step (committed before the step goes to the device). Returns false,
    /// changing nothing, when the job is no longer running (it was cancelled meanwhile).
    pub fn set_step(
        &self,
        id: JobId,
        step: &str,
        counters_before: Option<&Value>,
        detail: Option<&str>,
    ) -> Result<bool, JournalError> {
        let t0 = std::time::Instant::now();
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let t = now();
        let changed = match counters_before {
            Some(c) => tx.execute(
                "UPDATE jobs SET step = ?2, counters_before = ?3, updated_at = ?4 WHERE id = ?1 AND state = 'running'",
                params![id, step, c.to_string(), t],
            )?,
            None => tx.execute(
                "UPDATE jobs SET step = ?2, updated_at = ?3 WHERE id = ?1 AND state = 'running'",
                params![id, step, t],
            )?,
        };
        if changed == 0 {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO job_events (job_id, at, step, detail) VALUES (?1, ?2, ?3, ?4)",
            params![id, t, step, detail],
        )?;
        tx.commit()?;
        crate::metrics::journal_commit("set_step", t0);
        Ok(true)
    }

    /// Start another attempt of a running job (after reconciliation showed nothing was printed).
    pub fn retry(&self, id: JobId, detail: &str) -> Result<(), JournalError> {
        let conn = self.lock();
        let t = now();
        conn.execute(
            "UPDATE jobs SET step = 'prepare', counters_before = NULL, attempts = attempts + 1, updated_at = ?2 WHERE id = ?1",
            params![id, t],
        )?;
        conn.execute(
            "INSERT INTO job_events (job_id, at, step, detail) VALUES (?1, ?2, 'retry', ?3)",
            params![id, t, detail],
        )?;
        Ok(())
    }

    /// End a job in a terminal state with its result or error. A sale's receipt also
    /// settles the sale, in the same transaction; its id is returned.
    pub fn finish(
        &self,
        id: JobId,
        state: JobState,
        result: Option<&Value>,
        error: Option<&Value>,
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
            Self::settle_sale(&tx, parent, &job)?;
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
        result: Option<&Value>,
        error: Option<&Value>,
    ) -> Result<(), JournalError> {
        let t = now();
        tx.execute(
            "UPDATE jobs SET state = ?2, step = NULL, result = ?3, error = ?4, updated_at = ?5
             WHERE id = ?1 AND state IN ('queued', 'running')",
            params![
                id,
                state.as_str(),
                result.map(Value::to_string),
                error.map(Value::to_string),
                t
            ],
        )?;
        tx.execute(
            "INSERT INTO job_events (job_id, at, step, detail) VALUES (?1, ?2, ?3, ?4)",
            params![id, t, state.as_str(), error.map(Value::to_string)],
        )?;
        Ok(())
    }

    /// A sale's receipt ended: the sale is done with both parts, or needs attention with
    /// the approved payment in its result (the payment is never reversed on its own).
    fn settle_sale(tx: &Connection, sale_id: JobId, receipt: &Job) -> Result<(), JournalError> {
        let Some(sale) = Self::get_in(tx, sale_id)? else {
            return Ok(());
        };
        if sale.state != JobState::Running {
            return Ok(());
        }
        let mut result = sale.result.clone().unwrap_or_else(|| serde_json::json!({}));
        result["receipt"] = receipt.result.clone().unwrap_or(Value::Null);
        result["receipt_job"] = receipt.id.into();
        if receipt.state == JobState::Done {
            Self::finish_in(tx, sale_id, JobState::Done, Some(&result), None)
        } else {
            let why = receipt
                .error
                .as_ref()
                .and_then(|e| e["message"].as_str())
                .unwrap_or("the receipt was not printed")
                .to_string();
            let error = serde_json::json!({
                "code": "receipt_not_printed",
                "message": format!(
                    "the card payment was approved but the fiscal receipt (job {}) ended {}: {why}. \
                     Print the receipt again or reverse the payment with POST /v1/sales/{sale_id}/reverse.",
                    receipt.id, receipt.state.as_str()
                ),
                "field": null,
                "device_code": receipt.error.as_ref().and_then(|e| e.get("device_code").cloned()),
            });
            Self::finish_in(
                tx,
                sale_id,
                JobState::NeedsAttention,
                Some(&result),
                Some(&error),
            )
        }
    }

    /// Store a job's partial result (e.g. an approved payment) and step, in one transaction
    /// with the card transaction record: this is committed before the terminal is told the
    /// register accepted the result.
    pub fn record_card_result(
        &self,
        job_id: JobId,
        card: &CardRecord,
        step: &str,
        partial_result: &Value,
    ) -> Result<(), JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let t = now();
        tx.execute(
            "INSERT OR REPLACE INTO card_transactions (terminal, trace_number, receipt_number, job_id, result, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![card.terminal, card.trace_number, card.receipt_number, job_id, card.result.to_string(), t],
        )?;
        tx.execute(
            "UPDATE jobs SET step = ?2, result = ?3, updated_at = ?4 WHERE id = ?1",
            params![job_id, step, partial_result.to_string(), t],
        )?;
        tx.execute(
            "INSERT INTO job_events (job_id, at, step, detail) VALUES (?1, ?2, ?3, NULL)",
            params![job_id, t, step],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The job a terminal's trace number belongs to, if any.
    pub fn job_for_trace(
        &self,
        terminal: &str,
        trace_number: u32,
    ) -> Result<Option<JobId>, JournalError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT job_id FROM card_transactions WHERE terminal = ?1 AND trace_number = ?2",
                params![terminal, trace_number],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// An approved sale moves on to printing: record the payment in the sale and queue its
    /// receipt (and slip) on the printer, in one transaction. Returns the receipt job's id.
    pub fn queue_sale_receipt(
        &self,
        sale_id: JobId,
        printer: &str,
        receipt: &Value,
        slip: Option<&Value>,
        sale_result: &Value,
    ) -> Result<JobId, JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let t = now();
        let insert = |kind: JobKind, request: &Value| -> Result<JobId, JournalError> {
            let hash = request_hash(kind, printer, request);
            tx.execute(
                "INSERT INTO jobs (kind, device, state, request, request_hash, parent_id, created_at, updated_at, owner)
                 VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?6, (SELECT owner FROM jobs WHERE id = ?5))",
                params![kind.as_str(), printer, request.to_string(), hash, sale_id, t],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO job_events (job_id, at, step, detail) VALUES (?1, ?2, 'queued', ?3)",
                params![id, t, format!("for sale {sale_id}")],
            )?;
            Ok(id)
        };
        let receipt_id = insert(JobKind::Receipt, receipt)?;
        let mut result = sale_result.clone();
        result["receipt_job"] = receipt_id.into();
        if let Some(slip) = slip {
            result["slip_job"] = insert(JobKind::Printout, slip)?.into();
        }
        tx.execute(
            "UPDATE jobs SET step = 'printing', result = ?2, updated_at = ?3 WHERE id = ?1",
            params![sale_id, result.to_string(), t],
        )?;
        tx.execute(
            "INSERT INTO job_events (job_id, at, step, detail) VALUES (?1, ?2, 'printing', ?3)",
            params![sale_id, t, format!("receipt job {receipt_id}")],
        )?;
        tx.commit()?;
        Ok(receipt_id)
    }

    /// Sales still waiting for their receipt after `deadline`: cancel receipts that have not
    /// started and put the sales in `needs_attention`. Returns the sales settled.
    pub fn expire_sales(&self, older_than: &str) -> Result<Vec<JobId>, JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut stmt = tx.prepare(
            "SELECT s.id, r.id FROM jobs s JOIN jobs r ON r.parent_id = s.id AND r.kind = 'receipt'
             WHERE s.kind = 'sale' AND s.state = 'running' AND s.step = 'printing'
               AND s.updated_at < ?1
               AND (r.state = 'queued' OR (r.state = 'running' AND r.step = 'prepare'))",
        )?;
        let pairs: Vec<(JobId, JobId)> = stmt
            .query_map([older_than], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        drop(stmt);
        let mut settled = Vec::new();
        for (sale, receipt) in pairs {
            let err = serde_json::json!({
                "code": "printer_unavailable",
                "message": "the printer did not start the receipt before the sale's print deadline; the receipt was cancelled",
                "field": null, "device_code": null,
            });
            Self::finish_in(&tx, receipt, JobState::Cancelled, None, Some(&err))?;
            tx.execute(
                "UPDATE jobs SET state = 'cancelled', updated_at = ?2
                 WHERE parent_id = ?1 AND (state = 'queued' OR (state = 'running' AND step = 'prepare'))",
                params![sale, now()],
            )?;
            if let Some(job) = Self::get_in(&tx, receipt)? {
                Self::settle_sale(&tx, sale, &job)?;
            }
            settled.push(sale);
        }
        tx.commit()?;
        Ok(settled)
    }

    /// Record that a sale's payment is being reversed by `reversal_job`.
    pub fn note_sale_reversal(
        &self,
        sale_id: JobId,
        reversal_job: JobId,
    ) -> Result<(), JournalError> {
        let conn = self.lock();
        let t = now();
        conn.execute(
            "UPDATE jobs SET result = json_set(COALESCE(result, '{}'), '$.reversal_job', ?2), updated_at = ?3 WHERE id = ?1",
            params![sale_id, reversal_job, t],
        )?;
        conn.execute(
            "INSERT INTO job_events (job_id, at, step, detail) VALUES (?1, ?2, 'reversal', ?3)",
            params![sale_id, t, format!("reversal job {reversal_job}")],
        )?;
        Ok(())
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

type Reply = tokio::sync::oneshot::Sender<Submitted>;

/// Group commit for job submissions: one writer thread takes every submission waiting
/// at that moment and commits them in one transaction, so concurrent clients share an
/// fsync instead of queueing for one each.
#[derive(Clone)]
pub struct Submitter {
    queue: std::sync::mpsc::Sender<(NewJob, Reply)>,
}

/// Most submissions committed together.
const MAX_GROUP: usize = 64;

impl Submitter {
    /// Start the writer thread for `journal`.
    pub fn start(journal: Journal) -> std::io::Result<Submitter> {
        let (queue, rx) = std::sync::mpsc::channel::<(NewJob, Reply)>();
        std::thread::Builder::new()
            .name("journal-submit".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    let mut group = vec![first];
                    while group.len() < MAX_GROUP {
                        match rx.try_recv() {
                            Ok(next) => group.push(next),
                            Err(_) => break,
                        }
                    }
                    let (jobs, replies): (Vec<NewJob>, Vec<Reply>) = group.into_iter().unzip();
                    let n = jobs.len();
                    let mut outcomes = journal.submit_batch(jobs);
                    if outcomes.len() != n {
                        let msg = match outcomes.pop() {
                            Some(Err(e)) => e.to_string(),
                            _ => "journal commit failed".to_string(),
                        };
                        outcomes = (0..n)
                            .map(|_| Err(JournalError::Commit(msg.clone())))
                            .collect();
                    }
                    for (reply, outcome) in replies.into_iter().zip(outcomes) {
                        let _ = reply.send(outcome);
                    }
                }
            })?;
        Ok(Submitter { queue })
    }

    /// Submit a job; resolves once it is committed.
    pub async fn submit(&self, new: NewJob) -> Result<(Job, bool), JournalError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue
            .send((new, tx))
            .map_err(|_| JournalError::Commit("the journal writer has stopped".into()))?;
        rx.await
            .map_err(|_| JournalError::Commit("the journal writer has stopped".into()))?
    }
}

fn parse_json(s: Option<String>) -> Option<Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

fn row_to_job(r: &rusqlite::Row<'_>) -> rusqlite::Result<Job> {
    let state: String = r.get(3)?;
    let kind: String = r.get(1)?;
    Ok(Job {
        id: r.get(0)?,
        kind: JobKind::parse(&kind),
        device: r.get(2)?,
        state: JobState::parse(&state).unwrap_or(JobState::NeedsAttention),
        step: r.get(4)?,
        request: parse_json(r.get(5)?).unwrap_or(Value::Null),
        result: parse_json(r.get(6)?),
        error: parse_json(r.get(7)?),
        counters_before: parse_json(r.get(8)?),
        attempts: r.get(9)?,
        created_at: r.get(10)?,
        updated_at: r.get(11)?,
        parent_id: r.get(12)?,
        owner: r.get(13)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn journal() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        (dir, j)
    }

    fn new(key: Option<&str>, body: Value) -> NewJob {
        NewJob {
            kind: JobKind::Receipt,
            device: "fp1".into(),
            request: body,
            idempotency_key: key.map(String::from),
            actor: None,
        }
    }

    #[test]
    fn idempotent_submit_returns_the_same_job_and_conflicts_on_another_body() {
        let (_d, j) = journal();
        let (a, existed) = j.submit(new(Some("k1"), json!({"x": 1}))).unwrap();
        assert!(!existed);
        let (b, existed) = j.submit(new(Some("k1"), json!({"x": 1}))).unwrap();
        assert!(existed);
        assert_eq!(a.id, b.id);
        assert!(matches!(
            j.submit(new(Some("k1"), json!({"x": 2}))),
            Err(JournalError::IdempotencyConflict(_))
        ));
    }

    #[test]
    fn journal_is_wal_with_full_sync_and_private_mode() {
        let (d, j) = journal();
        let conn = j.lock();
        let sync: i64 = conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(d.path().join("j.db"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn running_jobs_come_before_queued_and_cancel_only_while_queued() {
        let (_d, j) = journal();
        let (a, _) = j.submit(new(None, json!(1))).unwrap();
        let (b, _) = j.submit(new(None, json!(2))).unwrap();
        assert_eq!(j.next_for_device("fp1").unwrap().unwrap().id, a.id);
        assert!(j.start(b.id).unwrap());
        assert_eq!(j.next_for_device("fp1").unwrap().unwrap().id, b.id);
        assert!(matches!(
            j.cancel(b.id),
            Err(JournalError::NotCancellable { .. })
        ));
        assert_eq!(j.cancel(a.id).unwrap().state, JobState::Cancelled);
        assert!(!j.start(a.id).unwrap());
    }

    fn actor(name: &str, may_replay_others: bool) -> Actor {
        Actor {
            name: name.into(),
            role: "cashier".into(),
            operation: "POST /v1/receipts".into(),
            may_replay_others,
        }
    }

    #[test]
    fn jobs_keep_their_owner_and_keys_are_not_shared_between_cashiers() {
        let (_d, j) = journal();
        let mut a = new(Some("k1"), json!({"x": 1}));
        a.actor = Some(actor("pos-1", false));
        let (job, _) = j.submit(a).unwrap();
        assert_eq!(job.owner.as_deref(), Some("pos-1"));
        let mut other = new(Some("k1"), json!({"x": 1}));
        other.actor = Some(actor("pos-2", false));
        assert!(matches!(
            j.submit(other),
            Err(JournalError::IdempotencyOwner(_))
        ));
        let mut boss = new(Some("k1"), json!({"x": 1}));
        boss.actor = Some(actor("boss", true));
        let (replayed, existed) = j.submit(boss).unwrap();
        assert!(existed);
        assert_eq!(replayed.id, job.id);
        assert_eq!(j.list(None, 10, Some("pos-1")).unwrap().len(), 1);
        assert!(j.list(None, 10, Some("pos-2")).unwrap().is_empty());
        let audit = j.audit_page(None, 10).unwrap();
        let outcomes: Vec<&str> = audit.iter().map(|e| e.outcome.as_str()).collect();
        assert_eq!(outcomes, ["replayed", "accepted"]);
        assert_eq!(audit[1].principal, "pos-1");
        assert_eq!(audit[1].job, Some(job.id));
    }

    #[test]
    fn the_audit_log_is_append_only_and_pages_newest_first() {
        let (_d, j) = journal();
        for i in 0..5 {
            j.audit(
                "socket",
                Some("cashier"),
                "POST /v1/cash",
                None,
                "refused:403",
                Some(&i.to_string()),
            )
            .unwrap();
        }
        let page = j.audit_page(None, 2).unwrap();
        assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [5, 4]);
        let page = j.audit_page(Some(4), 10).unwrap();
        assert_eq!(page.iter().map(|e| e.id).collect::<Vec<_>>(), [3, 2, 1]);
        let conn = j.lock();
        let e = conn
            .execute("UPDATE audit SET outcome = 'accepted'", [])
            .unwrap_err();
        assert!(e.to_string().contains("append-only"), "{e}");
        assert!(conn.execute("DELETE FROM audit", []).is_err());
    }

    #[test]
    fn an_old_journal_gets_the_owner_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, device TEXT NOT NULL,
                 state TEXT NOT NULL, step TEXT, request TEXT NOT NULL, request_hash TEXT NOT NULL,
                 idempotency_key TEXT UNIQUE, result TEXT, error TEXT, counters_before TEXT,
                 parent_id INTEGER REFERENCES jobs(id), attempts INTEGER NOT NULL DEFAULT 0,
                 created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
                 INSERT INTO jobs (kind, device, state, request, request_hash, created_at, updated_at)
                 VALUES ('receipt', 'fp1', 'done', '{}', 'h', 't', 't');",
            )
            .unwrap();
        }
        let j = Journal::open(&path).unwrap();
        let job = j.get(1).unwrap().unwrap();
        assert_eq!(job.owner, None);
        let mut a = new(None, json!(1));
        a.actor = Some(actor("pos-1", false));
        assert_eq!(j.submit(a).unwrap().0.owner.as_deref(), Some("pos-1"));
    }
}
