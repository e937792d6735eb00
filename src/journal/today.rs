//! The journal queries behind `GET /v1/today`: the jobs that ended since a moment, and each
//! printer's last daily report and the documents printed after it.

use super::stored::StoredJob;
use super::{JOB_COLUMNS, Journal, JournalError};
use crate::job::{Job, JobKind, JobState};
use rusqlite::{OptionalExtension, params};

impl Journal {
    /// Jobs that ended (any terminal state) at or after `since` (the journal's RFC 3339 UTC
    /// form), oldest first; only `owner`'s when given.
    pub fn ended_since(&self, since: &str, owner: Option<&str>) -> Result<Vec<Job>, JournalError> {
        let conn = self.lock();
        let mut stmt = conn.prepare(&format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE updated_at >= ?1
               AND state NOT IN (?2, ?3) AND (?4 IS NULL OR owner = ?4) ORDER BY id"
        ))?;
        let rows = stmt.query_map(
            params![
                since,
                JobState::Queued.as_str(),
                JobState::Running.as_str(),
                owner
            ],
            StoredJob::from_row,
        )?;
        rows.map(|row| StoredJob::decode(row?)).collect()
    }

    /// The last daily report printed on `printer`, if any.
    pub fn last_daily_report(&self, printer: &str) -> Result<Option<Job>, JournalError> {
        let conn = self.lock();
        let row = conn
            .query_row(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE device = ?1 AND kind = ?2 AND state = ?3
                       ORDER BY updated_at DESC, id DESC LIMIT 1"
                ),
                params![
                    printer,
                    JobKind::DailyReport.as_str(),
                    JobState::Done.as_str()
                ],
                StoredJob::from_row,
            )
            .optional()?;
        row.map(StoredJob::decode).transpose()
    }

    /// When the first receipt or invoice printed on `printer` after `after` (or ever) was
    /// printed, by the journal's clock: the fiscal day a daily report must close.
    pub fn first_document_after(
        &self,
        printer: &str,
        after: Option<&str>,
    ) -> Result<Option<String>, JournalError> {
        let conn = self.lock();
        Ok(conn.query_row(
            "SELECT MIN(updated_at) FROM jobs WHERE device = ?1 AND kind IN (?2, ?3) AND state = ?4
               AND (?5 IS NULL OR updated_at > ?5)",
            params![
                printer,
                JobKind::Receipt.as_str(),
                JobKind::Invoice.as_str(),
                JobState::Done.as_str(),
                after
            ],
            |r| r.get(0),
        )?)
    }
}
