//! What a job is: its id, kind and state, and the typed records it carries
//! ([`records`]: requests, steps, results). The journal stores them; the sales rules, the
//! device tasks and the API read them. This module depends on neither.

pub mod records;

use crate::device::{DeviceError, DocumentCounters};
use records::{JobRequest, JobResult, Step};
use serde::{Deserialize, Serialize};

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
    /// Every state, for parsing.
    pub const ALL: [JobState; 6] = [
        JobState::Queued,
        JobState::Running,
        JobState::Done,
        JobState::Failed,
        JobState::NeedsAttention,
        JobState::Cancelled,
    ];

    /// The state's API and journal name (`queued`, `needs_attention`, ...).
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

    /// The state of a name; None for a name no state has.
    pub fn parse(s: &str) -> Option<JobState> {
        JobState::ALL.into_iter().find(|state| state.as_str() == s)
    }

    /// Whether the job has ended (it never changes again).
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
    /// A VAT invoice.
    Invoice,
    /// A periodic report by dates.
    PeriodicReport,
    /// A non-fiscal copy of a printed receipt or invoice.
    Copy,
}

impl JobKind {
    /// Every kind, for parsing.
    pub const ALL: [JobKind; 10] = [
        JobKind::Receipt,
        JobKind::DailyReport,
        JobKind::Cash,
        JobKind::Printout,
        JobKind::Payment,
        JobKind::EndOfDay,
        JobKind::Sale,
        JobKind::Invoice,
        JobKind::PeriodicReport,
        JobKind::Copy,
    ];

    /// The kind's API and journal name (`receipt`, `daily_report`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Receipt => "receipt",
            JobKind::DailyReport => "daily_report",
            JobKind::Cash => "cash",
            JobKind::Printout => "printout",
            JobKind::Payment => "payment",
            JobKind::EndOfDay => "end_of_day",
            JobKind::Sale => "sale",
            JobKind::Invoice => "invoice",
            JobKind::PeriodicReport => "periodic_report",
            JobKind::Copy => "copy",
        }
    }

    /// The kind of a name; None for a name no kind has.
    pub fn parse(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|kind| kind.as_str() == s)
    }

    /// Whether jobs of this kind run on a card terminal (else on a printer).
    pub fn is_terminal_job(self) -> bool {
        matches!(self, JobKind::Payment | JobKind::EndOfDay | JobKind::Sale)
    }
}

/// A journaled job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: JobId,
    pub kind: JobKind,
    pub device: String,
    pub state: JobState,
    /// The recovery step while it runs (None once it has ended, or while queued).
    pub step: Option<Step>,
    /// What was asked; its kind is always `kind`.
    pub request: JobRequest,
    /// What came of it (partly, while a card job runs).
    pub result: Option<JobResult>,
    /// Why it failed or needs attention.
    pub error: Option<DeviceError>,
    /// Device counters recorded before the fiscal document was started.
    pub counters_before: Option<DocumentCounters>,
    /// The sale a receipt or slip belongs to.
    pub parent_id: Option<JobId>,
    pub attempts: i64,
    pub created_at: String,
    pub updated_at: String,
    /// Who created it: a token's name, or `socket` (None for jobs from before access levels).
    pub owner: Option<String>,
}
