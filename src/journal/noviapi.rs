//! The NoviAPI facade's two-phase requests (`noviapi_requests`): a request POSTed to the
//! facade is stored here, validated but not queued; its PUT turns it into exactly one
//! fiscald job in the same transaction that records the confirmation, with an internal
//! idempotency key derived from the request's id, so a repeated PUT (or one after a crash)
//! finds the job instead of making a second.

use super::{Job, JobId, Journal, JournalError, NewJob, now};
use crate::job::JobKind;
use crate::job::records::JobRequest;
use rusqlite::{OptionalExtension, params};
use serde_json::Value;

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS noviapi_requests (
    id          TEXT PRIMARY KEY,
    endpoint    TEXT NOT NULL,
    state       TEXT NOT NULL,
    device      TEXT NOT NULL,
    kind        TEXT,
    request     TEXT NOT NULL,
    job_id      INTEGER REFERENCES jobs(id),
    response    TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS noviapi_requests_state ON noviapi_requests(state);
"#;

/// Where a facade request stands in the facade's own table; once confirmed, the job (if
/// any) tells the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoviState {
    /// POSTed: validated and stored, nothing queued.
    Stored,
    /// PUT: its job is queued (or it was answered at once, for a status read).
    Confirmed,
}

impl NoviState {
    pub fn as_str(self) -> &'static str {
        match self {
            NoviState::Stored => "stored",
            NoviState::Confirmed => "confirmed",
        }
    }
    fn parse(s: &str) -> Option<NoviState> {
        match s {
            "stored" => Some(NoviState::Stored),
            "confirmed" => Some(NoviState::Confirmed),
            _ => None,
        }
    }
}

/// What a stored request does once confirmed.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per request read; boxing buys nothing
pub enum NoviWork {
    /// A fiscald job on `device`.
    Job(JobRequest),
    /// A read answered by the facade itself (e.g. `status`): its query.
    Read(Value),
}

/// A stored facade request.
#[derive(Debug, Clone)]
pub struct NoviRequest {
    /// 32 lower-case hex digits.
    pub id: String,
    /// The NoviAPI endpoint (`receipt`, `daily_report`, ...).
    pub endpoint: String,
    pub state: NoviState,
    pub device: String,
    pub work: NoviWork,
    pub job_id: Option<JobId>,
    /// A read's answer, once confirmed.
    pub response: Option<Value>,
    pub created_at: String,
}

/// What a delete did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoviDeleted {
    NotFound,
    /// Its job has started (or it was answered): it stays.
    Started,
    /// Deleted; its queued job (if any) was cancelled.
    Deleted(Option<JobId>),
}

/// The internal idempotency key of a facade request's job.
pub fn noviapi_job_key(id: &str) -> super::IdempotencyKey {
    super::IdempotencyKey::Internal(format!("noviapi:{id}"))
}

impl Journal {
    pub(super) fn noviapi_schema(conn: &rusqlite::Connection) -> Result<(), JournalError> {
        conn.execute_batch(SCHEMA)?;
        Ok(())
    }

    /// Store a validated request (`STORED`).
    pub fn noviapi_store(&self, r: &NoviRequest) -> Result<(), JournalError> {
        let (kind, request) = match &r.work {
            NoviWork::Job(req) => (Some(req.kind().as_str()), req.to_json().to_string()),
            NoviWork::Read(q) => (None, q.to_string()),
        };
        let t = now();
        self.lock().execute(
            "INSERT INTO noviapi_requests (id, endpoint, state, device, kind, request, created_at, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
            params![r.id, r.endpoint, NoviState::Stored.as_str(), r.device, kind, request, t],
        )?;
        Ok(())
    }

    /// One facade request of `endpoint`.
    pub fn noviapi_get(
        &self,
        endpoint: &str,
        id: &str,
    ) -> Result<Option<NoviRequest>, JournalError> {
        let conn = self.lock();
        Self::noviapi_get_in(&conn, endpoint, id)
    }

    fn noviapi_get_in(
        conn: &rusqlite::Connection,
        endpoint: &str,
        id: &str,
    ) -> Result<Option<NoviRequest>, JournalError> {
        let row = conn
            .query_row(
                "SELECT id, endpoint, state, device, kind, request, job_id, response, created_at
                   FROM noviapi_requests WHERE id = ?1 AND endpoint = ?2",
                params![id, endpoint],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, Option<String>>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, Option<JobId>>(6)?,
                        r.get::<_, Option<String>>(7)?,
                        r.get::<_, String>(8)?,
                    ))
                },
            )
            .optional()?;
        let Some((id, endpoint, state, device, kind, request, job_id, response, created_at)) = row
        else {
            return Ok(None);
        };
        let corrupt = |problem: String| JournalError::Corrupt {
            job: job_id.unwrap_or(0),
            problem: format!("NoviAPI request {id}: {problem}"),
        };
        let state =
            NoviState::parse(&state).ok_or_else(|| corrupt(format!("unknown state {state:?}")))?;
        let request: Value = serde_json::from_str(&request)
            .map_err(|e| corrupt(format!("its request is not JSON: {e}")))?;
        let work = match kind {
            None => NoviWork::Read(request),
            Some(k) => {
                let kind =
                    JobKind::parse(&k).ok_or_else(|| corrupt(format!("unknown kind {k:?}")))?;
                NoviWork::Job(
                    JobRequest::from_stored(kind, request)
                        .map_err(|e| corrupt(format!("its request does not fit: {e}")))?,
                )
            }
        };
        let response = match response {
            None => None,
            Some(t) => Some(
                serde_json::from_str(&t)
                    .map_err(|e| corrupt(format!("its response is not JSON: {e}")))?,
            ),
        };
        Ok(Some(NoviRequest {
            id,
            endpoint,
            state,
            device,
            work,
            job_id,
            response,
            created_at,
        }))
    }

    /// Confirm a stored request: queue its job (`new`, keyed by [`noviapi_job_key`]) and
    /// record it, in one transaction. A request already confirmed returns its job as it
    /// stands and queues nothing. Returns the request, its job (None for a read) and
    /// whether the job was created now.
    pub fn noviapi_confirm(
        &self,
        endpoint: &str,
        id: &str,
        new: Option<NewJob>,
        response: Option<&Value>,
    ) -> Result<Option<(NoviRequest, Option<Job>, bool)>, JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let Some(r) = Self::noviapi_get_in(&tx, endpoint, id)? else {
            return Ok(None);
        };
        if r.state == NoviState::Confirmed {
            let job = match r.job_id {
                Some(j) => Self::get_in(&tx, j)?,
                None => None,
            };
            return Ok(Some((r, job, false)));
        }
        let t = now();
        let (job, created) = match new {
            Some(new) => {
                let (job, existed) = Self::submit_in(&tx, new)?;
                (Some(job), !existed)
            }
            None => (None, false),
        };
        tx.execute(
            "UPDATE noviapi_requests SET state = ?2, job_id = ?3, response = ?4, updated_at = ?5
              WHERE id = ?1",
            params![
                id,
                NoviState::Confirmed.as_str(),
                job.as_ref().map(|j| j.id),
                response.map(|v| v.to_string()),
                t
            ],
        )?;
        let r = Self::noviapi_get_in(&tx, endpoint, id)?;
        tx.commit()?;
        Ok(r.map(|r| (r, job, created)))
    }

    /// Delete a request that has not started: a stored one, or a confirmed one whose job is
    /// still queued (the job is cancelled in the same transaction).
    pub fn noviapi_delete(&self, endpoint: &str, id: &str) -> Result<NoviDeleted, JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let Some(r) = Self::noviapi_get_in(&tx, endpoint, id)? else {
            return Ok(NoviDeleted::NotFound);
        };
        if let Some(job) = r.job_id {
            if !Self::cancel_queued_in(&tx, job)? {
                return Ok(NoviDeleted::Started);
            }
        } else if r.state == NoviState::Confirmed {
            return Ok(NoviDeleted::Started);
        }
        tx.execute("DELETE FROM noviapi_requests WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(NoviDeleted::Deleted(r.job_id))
    }

    /// NoviAPI's clean-up at a daily report, done lazily: once `printer` has printed a daily
    /// report, requests stored (never confirmed) before it are gone, and once it has printed
    /// another, every ended request from before the previous one. Returns how many went.
    pub fn noviapi_prune(&self, printer: &str) -> Result<usize, JournalError> {
        let conn = self.lock();
        let reports: Vec<String> = {
            let mut stmt = conn.prepare(
                "SELECT updated_at FROM jobs WHERE device = ?1 AND kind = 'daily_report'
                   AND state = 'done' ORDER BY updated_at DESC, id DESC LIMIT 2",
            )?;
            let rows = stmt.query_map([printer], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut n = 0;
        if let Some(last) = reports.first() {
            n += conn.execute(
                "DELETE FROM noviapi_requests WHERE state = 'stored' AND created_at < ?1",
                [last],
            )?;
        }
        if let Some(previous) = reports.get(1) {
            n += conn.execute(
                "DELETE FROM noviapi_requests WHERE created_at < ?1 AND (job_id IS NULL OR job_id IN
                   (SELECT id FROM jobs WHERE state NOT IN ('queued', 'running')))",
                [previous],
            )?;
        }
        Ok(n)
    }

    /// A daily report request on `device` that is stored or whose job has not ended, if any.
    pub fn noviapi_waiting_daily_report(
        &self,
        device: &str,
    ) -> Result<Option<String>, JournalError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT r.id FROM noviapi_requests r LEFT JOIN jobs j ON j.id = r.job_id
                  WHERE r.endpoint = 'daily_report' AND r.device = ?1
                    AND (r.state = 'stored' OR j.state IN ('queued', 'running'))
                  ORDER BY r.created_at DESC LIMIT 1",
                [device],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Requests not yet running: stored ones and confirmed ones whose job is still queued.
    pub fn noviapi_waiting(&self) -> Result<i64, JournalError> {
        Ok(self.lock().query_row(
            "SELECT COUNT(*) FROM noviapi_requests r LEFT JOIN jobs j ON j.id = r.job_id
              WHERE r.state = 'stored' OR (r.job_id IS NOT NULL AND j.state = 'queued')",
            [],
            |r| r.get(0),
        )?)
    }

    /// Remove every request not yet running (their queued jobs are cancelled); returns the
    /// requests removed and the jobs cancelled.
    pub fn noviapi_clear(&self) -> Result<(usize, Vec<JobId>), JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let ids: Vec<(String, Option<JobId>)> = {
            let mut stmt = tx.prepare(
                "SELECT r.id, r.job_id FROM noviapi_requests r LEFT JOIN jobs j ON j.id = r.job_id
                  WHERE r.state = 'stored' OR (r.job_id IS NOT NULL AND j.state = 'queued')",
            )?;
            let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut n = 0;
        let mut cancelled = Vec::new();
        for (id, job) in ids {
            if let Some(job) = job {
                if !Self::cancel_queued_in(&tx, job)? {
                    continue;
                }
                cancelled.push(job);
            }
            tx.execute("DELETE FROM noviapi_requests WHERE id = ?1", [&id])?;
            n += 1;
        }
        tx.commit()?;
        Ok((n, cancelled))
    }

    /// Cancel `job` if it is still queued; false if it has started or ended.
    fn cancel_queued_in(tx: &rusqlite::Transaction<'_>, job: JobId) -> Result<bool, JournalError> {
        let t = now();
        let n = tx.execute(
            "UPDATE jobs SET state = 'cancelled', updated_at = ?2 WHERE id = ?1 AND state = 'queued'",
            params![job, t],
        )?;
        if n == 1 {
            super::log_event(tx, job, &t, "cancelled", Some("NoviAPI DELETE"))?;
        }
        Ok(n == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::Printout;

    fn journal() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        (dir, j)
    }

    fn stored(id: &str) -> NoviRequest {
        NoviRequest {
            id: id.into(),
            endpoint: "nf_printout".into(),
            state: NoviState::Stored,
            device: "fp1".into(),
            work: NoviWork::Job(JobRequest::Printout(Printout {
                lines: vec!["x".into()],
            })),
            job_id: None,
            response: None,
            created_at: String::new(),
        }
    }

    fn new_job(r: &NoviRequest) -> NewJob {
        let NoviWork::Job(req) = &r.work else {
            unreachable!()
        };
        NewJob {
            device: r.device.clone(),
            request: req.clone(),
            idempotency_key: Some(noviapi_job_key(&r.id)),
            actor: None,
        }
    }

    #[test]
    fn a_repeated_confirm_makes_one_job() {
        let (_d, j) = journal();
        let r = stored("0123456789abcdef0123456789abcdef");
        j.noviapi_store(&r).unwrap();
        assert_eq!(j.noviapi_waiting().unwrap(), 1);
        let (_, job1, created1) = j
            .noviapi_confirm("nf_printout", &r.id, Some(new_job(&r)), None)
            .unwrap()
            .unwrap();
        let (again, job2, created2) = j
            .noviapi_confirm("nf_printout", &r.id, Some(new_job(&r)), None)
            .unwrap()
            .unwrap();
        assert!(created1 && !created2);
        assert_eq!(job1.unwrap().id, job2.unwrap().id);
        assert_eq!(again.state, NoviState::Confirmed);
        assert_eq!(j.list(None, 10, None).unwrap().len(), 1);
        // Another endpoint does not see it.
        assert!(j.noviapi_get("receipt", &r.id).unwrap().is_none());
    }

    #[test]
    fn delete_and_clear_touch_only_what_has_not_started() {
        let (_d, j) = journal();
        let a = stored("a".repeat(32).as_str());
        let b = stored("b".repeat(32).as_str());
        let c = stored("c".repeat(32).as_str());
        for r in [&a, &b, &c] {
            j.noviapi_store(r).unwrap();
        }
        let (_, job_b, _) = j
            .noviapi_confirm("nf_printout", &b.id, Some(new_job(&b)), None)
            .unwrap()
            .unwrap();
        let (_, job_c, _) = j
            .noviapi_confirm("nf_printout", &c.id, Some(new_job(&c)), None)
            .unwrap()
            .unwrap();
        assert!(j.start(job_c.unwrap().id).unwrap());
        assert_eq!(
            j.noviapi_delete("nf_printout", &c.id).unwrap(),
            NoviDeleted::Started
        );
        assert_eq!(
            j.noviapi_delete("nf_printout", &a.id).unwrap(),
            NoviDeleted::Deleted(None)
        );
        assert_eq!(
            j.noviapi_delete("nf_printout", &a.id).unwrap(),
            NoviDeleted::NotFound
        );
        assert_eq!(j.noviapi_waiting().unwrap(), 1);
        let job_b = job_b.unwrap().id;
        assert_eq!(j.noviapi_clear().unwrap(), (1, vec![job_b]));
        let job_b = j.get(job_b).unwrap().unwrap();
        assert_eq!(job_b.state, crate::job::JobState::Cancelled);
        assert_eq!(j.noviapi_waiting().unwrap(), 0);
    }

    #[test]
    fn a_daily_report_prunes_what_was_never_confirmed() {
        use crate::job::records::{DailyReportPrinted, JobResult};
        let (_d, j) = journal();
        let report = |j: &Journal| {
            let (job, _) = j
                .submit(NewJob {
                    device: "fp1".into(),
                    request: JobRequest::DailyReport,
                    idempotency_key: None,
                    actor: None,
                })
                .unwrap();
            assert!(j.start(job.id).unwrap());
            let printed = JobResult::DailyReport(DailyReportPrinted {
                report_number: 1,
                date: "2026-12-02".into(),
                printed_at: "2026-12-02T20:00:00".into(),
                printer: "fp1".into(),
            });
            j.finish(job.id, crate::job::JobState::Done, Some(&printed), None)
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(5));
        };
        let stored_before = stored("1".repeat(32).as_str());
        let confirmed_before = stored("2".repeat(32).as_str());
        j.noviapi_store(&stored_before).unwrap();
        j.noviapi_store(&confirmed_before).unwrap();
        let (_, job, _) = j
            .noviapi_confirm(
                "nf_printout",
                &confirmed_before.id,
                Some(new_job(&confirmed_before)),
                None,
            )
            .unwrap()
            .unwrap();
        let job = job.unwrap().id;
        assert!(j.start(job).unwrap());
        j.finish(job, crate::job::JobState::Done, None, None)
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(j.noviapi_prune("fp1").unwrap(), 0, "no report yet");
        report(&j);
        let after = stored("3".repeat(32).as_str());
        j.noviapi_store(&after).unwrap();
        assert_eq!(j.noviapi_prune("fp1").unwrap(), 1);
        assert!(
            j.noviapi_get("nf_printout", &stored_before.id)
                .unwrap()
                .is_none()
        );
        assert!(
            j.noviapi_get("nf_printout", &confirmed_before.id)
                .unwrap()
                .is_some()
        );
        report(&j);
        // The second report: everything ended from before the first goes; the request
        // stored between the two is unconfirmed at the second.
        assert_eq!(j.noviapi_prune("fp1").unwrap(), 2);
        assert!(
            j.noviapi_get("nf_printout", &confirmed_before.id)
                .unwrap()
                .is_none()
        );
        assert!(j.noviapi_get("nf_printout", &after.id).unwrap().is_none());
    }
}
