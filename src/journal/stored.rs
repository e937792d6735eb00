//! A `jobs` row as SQLite holds it, and its decoding into a typed [`Job`]: nothing
//! unknown is ever read as something else.

use super::{Job, JobId, JobKind, JobState, JournalError};
use crate::device::{DeviceError, DocumentCounters};
use crate::job::records::{JobRequest, JobResult, Step};
use serde_json::Value;

/// A `jobs` row as stored: text columns not yet decoded.
pub(super) struct StoredJob {
    id: JobId,
    kind: String,
    device: String,
    state: String,
    step: Option<String>,
    request: String,
    result: Option<String>,
    error: Option<String>,
    counters_before: Option<String>,
    attempts: i64,
    created_at: String,
    updated_at: String,
    parent_id: Option<JobId>,
    owner: Option<String>,
}

impl StoredJob {
    pub(super) fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredJob> {
        Ok(StoredJob {
            id: r.get(0)?,
            kind: r.get(1)?,
            device: r.get(2)?,
            state: r.get(3)?,
            step: r.get(4)?,
            request: r.get(5)?,
            result: r.get(6)?,
            error: r.get(7)?,
            counters_before: r.get(8)?,
            attempts: r.get(9)?,
            created_at: r.get(10)?,
            updated_at: r.get(11)?,
            parent_id: r.get(12)?,
            owner: r.get(13)?,
        })
    }

    /// The typed job; anything unknown or unreadable is [`JournalError::Corrupt`], naming it.
    pub(super) fn decode(self) -> Result<Job, JournalError> {
        let id = self.id;
        let corrupt = |problem: String| JournalError::Corrupt { job: id, problem };
        let json = |column: &str, text: &str| {
            serde_json::from_str::<Value>(text)
                .map_err(|e| corrupt(format!("its {column} is not JSON: {e}")))
        };
        let kind = JobKind::parse(&self.kind)
            .ok_or_else(|| corrupt(format!("unknown kind {:?}", self.kind)))?;
        let state = JobState::parse(&self.state)
            .ok_or_else(|| corrupt(format!("unknown state {:?}", self.state)))?;
        let step = match &self.step {
            None => None,
            Some(s) => Some(Step::parse(s).ok_or_else(|| corrupt(format!("unknown step {s:?}")))?),
        };
        let request =
            JobRequest::from_stored(kind, json("request", &self.request)?).map_err(|e| {
                corrupt(format!(
                    "its request does not fit a {} job: {e}",
                    kind.as_str()
                ))
            })?;
        let result = match &self.result {
            None => None,
            Some(text) => Some(JobResult::from_stored(kind, json("result", text)?).map_err(
                |e| {
                    corrupt(format!(
                        "its result does not fit a {} job: {e}",
                        kind.as_str()
                    ))
                },
            )?),
        };
        let error = match &self.error {
            None => None,
            Some(text) => Some(
                serde_json::from_str::<DeviceError>(text)
                    .map_err(|e| corrupt(format!("its error is unreadable: {e}")))?,
            ),
        };
        let counters_before = match &self.counters_before {
            None => None,
            Some(text) => Some(
                serde_json::from_str::<DocumentCounters>(text)
                    .map_err(|e| corrupt(format!("its counters are unreadable: {e}")))?,
            ),
        };
        Ok(Job {
            id,
            kind,
            device: self.device,
            state,
            step,
            request,
            result,
            error,
            counters_before,
            parent_id: self.parent_id,
            attempts: self.attempts,
            created_at: self.created_at,
            updated_at: self.updated_at,
            owner: self.owner,
        })
    }
}
