//! The fleet outbox: every journal change that head office hears about, written in the
//! same transaction as the change itself, with a per-till sequence number, until the
//! publisher (`crate::fleet`) has the broker's acknowledgement.
//!
//! It is on only when `[fleet]` is configured: [`Journal::enable_outbox`] puts the till
//! and the bounds into a per-connection `temp.fleet_config` row, which the writers read.
//! Without it nothing is written and the tables stay empty.
//!
//! Bounds: when the outbox holds more than `max_rows` rows or `max_bytes` bytes, the
//! oldest *sent* rows are pruned. Unsent rows are never dropped: the outbox then grows past
//! its bound, and [`OutboxStats::full`] says so (metric and `fleet` status).

use super::{Journal, JournalError, now};
use crate::fleet::event::{
    AuditEvent, DailyReportEvent, DeviceEvent, Envelope, FleetEvent, JobEvent,
};
use crate::job::records::JobResult;
use crate::job::{JobId, JobKind, JobState};
use rusqlite::{Connection, OptionalExtension, params};
use std::collections::BTreeMap;

pub(super) const OUTBOX_SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS fleet_outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    till        TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    subject     TEXT NOT NULL,
    payload     TEXT NOT NULL,
    bytes       INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    sent_at     TEXT,
    UNIQUE (till, seq)
);
CREATE INDEX IF NOT EXISTS fleet_outbox_unsent ON fleet_outbox(id) WHERE sent_at IS NULL;
-- One row per till: its last sequence number, and the outbox's size.
CREATE TABLE IF NOT EXISTS fleet_sequence (
    till   TEXT PRIMARY KEY,
    last   INTEGER NOT NULL,
    rows   INTEGER NOT NULL DEFAULT 0,
    bytes  INTEGER NOT NULL DEFAULT 0
);
CREATE TEMP TABLE IF NOT EXISTS fleet_config (
    till      TEXT NOT NULL,
    max_rows  INTEGER NOT NULL,
    max_bytes INTEGER NOT NULL
);
"#;

/// The outbox settings of this connection.
struct OutboxConfig {
    till: String,
    max_rows: i64,
    max_bytes: i64,
}

/// One unsent outbox row, as the publisher sends it.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    pub id: i64,
    pub till: String,
    pub seq: u64,
    /// `jobs`, `devices`, `reports` or `audit`.
    pub subject: String,
    pub payload: String,
}

/// The outbox at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboxStats {
    /// Rows not yet acknowledged by the broker.
    pub backlog: u64,
    /// When the oldest unsent row was written.
    pub oldest_unsent: Option<String>,
    /// All rows kept (sent and unsent), and their bytes.
    pub rows: u64,
    pub bytes: u64,
    /// The bound is reached and nothing sent is left to prune.
    pub full: bool,
    /// The last sequence number written.
    pub last_seq: u64,
}

fn config(conn: &Connection) -> Result<Option<OutboxConfig>, JournalError> {
    let mut stmt =
        conn.prepare_cached("SELECT till, max_rows, max_bytes FROM temp.fleet_config")?;
    Ok(stmt
        .query_row([], |r| {
            Ok(OutboxConfig {
                till: r.get(0)?,
                max_rows: r.get(1)?,
                max_bytes: r.get(2)?,
            })
        })
        .optional()?)
}

/// Append one event (inside the caller's transaction) when the outbox is on.
pub(super) fn append(conn: &Connection, at: &str, event: &FleetEvent) -> Result<(), JournalError> {
    let Some(cfg) = config(conn)? else {
        return Ok(());
    };
    let seq: i64 = conn
        .prepare_cached(
            "INSERT INTO fleet_sequence (till, last) VALUES (?1, 1)
             ON CONFLICT (till) DO UPDATE SET last = last + 1 RETURNING last",
        )?
        .query_row([&cfg.till], |r| r.get(0))?;
    let payload = serde_json::to_string(&Envelope {
        schema: crate::fleet::event::SCHEMA,
        till: &cfg.till,
        seq: seq as u64,
        at,
        event,
    })
    .map_err(|e| JournalError::Commit(format!("fleet event: {e}")))?;
    let bytes = payload.len() as i64;
    conn.prepare_cached(
        "INSERT INTO fleet_outbox (till, seq, subject, payload, bytes, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        cfg.till,
        seq,
        event.subject_kind(),
        payload,
        bytes,
        at
    ])?;
    let (rows, total): (i64, i64) = conn
        .prepare_cached(
            "UPDATE fleet_sequence SET rows = rows + 1, bytes = bytes + ?2 WHERE till = ?1
             RETURNING rows, bytes",
        )?
        .query_row(params![cfg.till, bytes], |r| Ok((r.get(0)?, r.get(1)?)))?;
    if rows > cfg.max_rows || total > cfg.max_bytes {
        prune(conn, &cfg, rows, total)?;
    }
    Ok(())
}

/// Delete the oldest sent rows until the outbox is within its bounds (or nothing sent is
/// left).
fn prune(conn: &Connection, cfg: &OutboxConfig, rows: i64, bytes: i64) -> Result<(), JournalError> {
    // Prune a tenth of the bound at once, so a full outbox is not pruned on every insert.
    let excess_rows = (rows - cfg.max_rows).max(0) + cfg.max_rows / 10;
    let mut stmt = conn.prepare_cached(
        "SELECT id, bytes FROM fleet_outbox WHERE till = ?1 AND sent_at IS NOT NULL ORDER BY id LIMIT ?2",
    )?;
    let candidates: Vec<(i64, i64)> = stmt
        .query_map(params![cfg.till, excess_rows.max(1) * 2], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })?
        .collect::<Result<_, _>>()?;
    let (mut n, mut freed, mut last) = (0i64, 0i64, None);
    for (id, b) in candidates {
        let over_rows = rows - n > cfg.max_rows - cfg.max_rows / 10;
        let over_bytes = bytes - freed > cfg.max_bytes - cfg.max_bytes / 10;
        if !over_rows && !over_bytes {
            break;
        }
        n += 1;
        freed += b;
        last = Some(id);
    }
    if let Some(last) = last {
        conn.execute(
            "DELETE FROM fleet_outbox WHERE till = ?1 AND sent_at IS NOT NULL AND id <= ?2",
            params![cfg.till, last],
        )?;
        conn.execute(
            "UPDATE fleet_sequence SET rows = rows - ?2, bytes = bytes - ?3 WHERE till = ?1",
            params![cfg.till, n, freed],
        )?;
    }
    Ok(())
}

/// The job history entry `name` of job `id` was just written: its event, and a daily
/// report's totals when one ended `done`.
pub(super) fn job_event(
    conn: &Connection,
    id: JobId,
    at: &str,
    name: &str,
    detail: Option<&str>,
) -> Result<(), JournalError> {
    if config(conn)?.is_none() {
        return Ok(());
    }
    let Some(job) = Journal::get_in(conn, id)? else {
        return Ok(());
    };
    append(conn, at, &FleetEvent::Job(JobEvent::of(&job, name, detail)))?;
    if let (JobKind::DailyReport, JobState::Done, Some(JobResult::DailyReport(r))) =
        (job.kind, job.state, &job.result)
        && name == JobState::Done.as_str()
    {
        let report = daily_totals(conn, &job.device, id, r)?;
        append(conn, at, &FleetEvent::DailyReport(report))?;
    }
    Ok(())
}

/// The totals of the receipts and invoices a daily report closes: those that ended `done`
/// on its printer after the previous daily report.
fn daily_totals(
    conn: &Connection,
    printer: &str,
    job: JobId,
    r: &crate::job::records::DailyReportPrinted,
) -> Result<DailyReportEvent, JournalError> {
    let previous: Option<String> = conn.query_row(
        "SELECT MAX(updated_at) FROM jobs WHERE device = ?1 AND kind = ?2 AND state = ?3 AND id != ?4",
        params![printer, JobKind::DailyReport.as_str(), JobState::Done.as_str(), job],
        |r| r.get(0),
    )?;
    let mut stmt = conn.prepare(
        "SELECT id FROM jobs WHERE device = ?1 AND kind IN (?2, ?3) AND state = ?4
           AND (?5 IS NULL OR updated_at > ?5) ORDER BY id",
    )?;
    let ids: Vec<JobId> = stmt
        .query_map(
            params![
                printer,
                JobKind::Receipt.as_str(),
                JobKind::Invoice.as_str(),
                JobState::Done.as_str(),
                previous
            ],
            |r| r.get(0),
        )?
        .collect::<Result<_, _>>()?;
    let mut report = DailyReportEvent {
        job,
        printer: printer.to_string(),
        report_number: r.report_number,
        date: r.date.clone(),
        printed_at: r.printed_at.clone(),
        receipts: 0,
        invoices: 0,
        total: 0,
        vat_totals: BTreeMap::new(),
        payments: BTreeMap::new(),
    };
    for id in ids {
        let Some(doc) = Journal::get_in(conn, id)? else {
            continue;
        };
        let e = JobEvent::of(&doc, "done", None);
        match doc.kind {
            JobKind::Invoice => report.invoices += 1,
            _ => report.receipts += 1,
        }
        report.total += e.total.unwrap_or(0);
        for (letter, v) in e.vat_totals.unwrap_or_default() {
            *report.vat_totals.entry(letter).or_default() += v;
        }
        for p in e.payments {
            let method = serde_json::to_value(p.method)
                .ok()
                .and_then(|v| v.as_str().map(String::from))
                .unwrap_or_default();
            *report.payments.entry(method).or_default() += p.amount;
        }
    }
    Ok(report)
}

/// An audit record was just written.
pub(super) fn audit_event(
    conn: &Connection,
    at: &str,
    event: AuditEvent,
) -> Result<(), JournalError> {
    append(conn, at, &FleetEvent::Audit(event))
}

impl Journal {
    /// Turn the outbox on for this journal handle (and every clone of it): events of
    /// `till` are written from now on, within `max_rows` and `max_bytes`.
    pub fn enable_outbox(
        &self,
        till: &str,
        max_rows: u64,
        max_bytes: u64,
    ) -> Result<(), JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        tx.execute("DELETE FROM temp.fleet_config", [])?;
        tx.execute(
            "INSERT INTO temp.fleet_config (till, max_rows, max_bytes) VALUES (?1, ?2, ?3)",
            params![
                till,
                max_rows.min(i64::MAX as u64) as i64,
                max_bytes.min(i64::MAX as u64) as i64
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A device's state changed: its event, in a transaction of its own (the state itself
    /// lives in memory, so this row is its only durable record).
    pub fn record_device_state(&self, event: DeviceEvent) -> Result<(), JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        append(&tx, &now(), &FleetEvent::Device(event))?;
        tx.commit()?;
        Ok(())
    }

    /// Up to `limit` unsent rows, oldest first.
    pub fn outbox_unsent(&self, limit: u32) -> Result<Vec<OutboxRow>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn.prepare_cached(
            "SELECT id, till, seq, subject, payload FROM fleet_outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?1",
        )?;
        let rows = stmt.query_map([limit], |r| {
            Ok(OutboxRow {
                id: r.get(0)?,
                till: r.get(1)?,
                seq: r.get::<_, i64>(2)? as u64,
                subject: r.get(3)?,
                payload: r.get(4)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The broker acknowledged every row up to `id`.
    pub fn outbox_mark_sent(&self, id: i64) -> Result<(), JournalError> {
        self.lock()
            .prepare_cached(
                "UPDATE fleet_outbox SET sent_at = ?2 WHERE sent_at IS NULL AND id <= ?1",
            )?
            .execute(params![id, now()])?;
        Ok(())
    }

    /// The outbox's size and backlog.
    pub fn outbox_stats(&self) -> Result<OutboxStats, JournalError> {
        let conn = self.lock();
        let (backlog, oldest): (i64, Option<String>) = conn.query_row(
            "SELECT COUNT(*), MIN(created_at) FROM fleet_outbox WHERE sent_at IS NULL",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let (rows, bytes, last): (i64, i64, i64) = conn.query_row(
            "SELECT COALESCE(SUM(rows), 0), COALESCE(SUM(bytes), 0), COALESCE(MAX(last), 0) FROM fleet_sequence",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let cfg = config(&conn)?;
        let full = cfg.is_some_and(|c| rows > c.max_rows || bytes > c.max_bytes);
        Ok(OutboxStats {
            backlog: backlog as u64,
            oldest_unsent: oldest,
            rows: rows as u64,
            bytes: bytes as u64,
            full,
            last_seq: last as u64,
        })
    }

    /// Every kept outbox row of `till` as `(seq, payload)`, in order (tests, diagnosis).
    pub fn outbox_events(&self, till: &str) -> Result<Vec<(u64, String)>, JournalError> {
        let conn = self.lock();
        let mut stmt =
            conn.prepare("SELECT seq, payload FROM fleet_outbox WHERE till = ?1 ORDER BY seq")?;
        let rows = stmt.query_map([till], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{JobRequest, NewJob};
    use super::*;
    use crate::document::CashOperation;

    fn cash(j: &Journal, amount: u64) -> JobId {
        let new = NewJob {
            device: "fp1".into(),
            request: JobRequest::Cash(CashOperation {
                deposit: true,
                amount,
            }),
            idempotency_key: None,
            actor: None,
        };
        j.submit(new).unwrap().0.id
    }

    #[test]
    fn off_without_fleet_and_in_order_with_it() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        cash(&j, 1);
        assert_eq!(j.outbox_stats().unwrap(), OutboxStats::default());
        j.enable_outbox("t1", 1000, 1 << 20).unwrap();
        let id = cash(&j, 2);
        assert!(j.start(id).unwrap());
        j.finish(id, JobState::Failed, None, None).unwrap();
        j.audit("socket", None, "GET /x", None, "refused", None)
            .unwrap();
        let rows = j.outbox_unsent(100).unwrap();
        let seqs: Vec<u64> = rows.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [1, 2, 3, 4]);
        let subjects: Vec<&str> = rows.iter().map(|r| r.subject.as_str()).collect();
        assert_eq!(subjects, ["jobs", "jobs", "jobs", "audit"]);
        let last: serde_json::Value = serde_json::from_str(&rows[2].payload).unwrap();
        assert_eq!(last["schema"], 1);
        assert_eq!(last["till"], "t1");
        assert_eq!(last["type"], "job");
        assert_eq!(last["state"], "failed");
        assert_eq!(last["job"], id);
        j.outbox_mark_sent(rows[1].id).unwrap();
        assert_eq!(j.outbox_stats().unwrap().backlog, 2);
    }

    #[test]
    fn prunes_sent_rows_first_and_never_unsent_ones() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        j.enable_outbox("t1", 100, 1 << 30).unwrap();
        for i in 0..150 {
            cash(&j, i + 1);
        }
        // Nothing was sent: every row is kept and the outbox says it is full.
        let s = j.outbox_stats().unwrap();
        assert_eq!((s.rows, s.backlog, s.full), (150, 150, true));
        let last = j.outbox_unsent(1000).unwrap().last().unwrap().id;
        j.outbox_mark_sent(last).unwrap();
        cash(&j, 1000);
        let s = j.outbox_stats().unwrap();
        assert!(s.rows <= 100, "{s:?}");
        assert_eq!((s.backlog, s.full, s.last_seq), (1, false, 151));
        // The unsent row survived and the numbering goes on.
        assert_eq!(j.outbox_unsent(10).unwrap()[0].seq, 151);
    }
}
