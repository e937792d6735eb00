//! The API's request and response bodies as types. The daemon serialises them and
//! `fiscald ctl` deserialises (or builds) the same types, so the client and the server
//! cannot drift apart. Field names here are the API contract (see the README).

use crate::device::{DeviceError, DeviceState};
use crate::journal::{Job, JobId, JobKind, JobResult, JobState};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

pub use crate::journal::AuditEntry;

/// The body of every error answer: `{"error": {"code", "message", "field", "device_code"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// An error: the code a program acts on, the message a person reads, the offending field
/// (for validation errors) and the device's own code (for device errors).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// e.g. `invalid_request`, `forbidden`, `journal_unavailable`.
    pub code: String,
    pub message: String,
    /// e.g. `lines[2].vat`.
    #[serde(default)]
    pub field: Option<String>,
    #[serde(default)]
    pub device_code: Option<u32>,
}

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// `ok`, or `degraded` when any device is not up.
    pub status: HealthStatus,
    /// The daemon's version.
    pub version: String,
    /// Each device's state by id.
    pub devices: BTreeMap<String, DeviceState>,
    /// The fleet link (`[fleet]`), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fleet: Option<FleetView>,
}

/// The fleet link to NATS JetStream, as `/v1/health` and `GET /v1/fleet` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetView {
    /// `connected`, `disconnected` or `outbox_full` (unsent rows past the outbox's bound).
    pub state: String,
    pub till: String,
    pub stream: String,
    /// Connected to the broker, with the stream checked.
    pub connected: bool,
    /// Outbox rows not yet acknowledged by the broker.
    pub backlog: u64,
    /// Seconds since the oldest unsent row was written.
    pub oldest_unsent_age: Option<u64>,
    /// When the broker last acknowledged a message, and its sequence number.
    pub last_ack: Option<String>,
    pub last_ack_seq: Option<u64>,
    /// The last sequence number written to the outbox.
    pub last_seq: u64,
    pub outbox_rows: u64,
    pub outbox_bytes: u64,
    pub outbox_full: bool,
    /// Messages acknowledged since the start, and how many of them were duplicates.
    pub published: u64,
    pub duplicates: u64,
    pub last_error: Option<String>,
}

/// Whether every device is up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthStatus {
    Ok,
    Degraded,
}

/// `GET /v1/devices`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceList {
    pub devices: Vec<DeviceView>,
}

/// One device as the API shows it, by `kind`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DeviceView {
    FiscalPrinter(PrinterView),
    PaymentTerminal(TerminalView),
}

impl DeviceView {
    /// The device's id.
    pub fn id(&self) -> &str {
        match self {
            DeviceView::FiscalPrinter(p) => &p.id,
            DeviceView::PaymentTerminal(t) => &t.id,
        }
    }

    /// Its `kind` (`fiscal_printer`, `payment_terminal`).
    pub fn kind(&self) -> &'static str {
        match self {
            DeviceView::FiscalPrinter(_) => "fiscal_printer",
            DeviceView::PaymentTerminal(_) => "payment_terminal",
        }
    }

    /// Its state.
    pub fn state(&self) -> DeviceState {
        match self {
            DeviceView::FiscalPrinter(p) => p.state,
            DeviceView::PaymentTerminal(t) => t.state,
        }
    }

    /// Its last problem, in plain words.
    pub fn last_error(&self) -> Option<&str> {
        match self {
            DeviceView::FiscalPrinter(p) => p.last_error.as_deref(),
            DeviceView::PaymentTerminal(t) => t.last_error.as_deref(),
        }
    }

    /// Jobs queued or running on it.
    pub fn queue_depth(&self) -> i64 {
        match self {
            DeviceView::FiscalPrinter(p) => p.queue_depth,
            DeviceView::PaymentTerminal(t) => t.queue_depth,
        }
    }
}

/// A fiscal printer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrinterView {
    pub id: String,
    /// e.g. `posnet`.
    pub protocol: String,
    pub port: String,
    pub state: DeviceState,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub serial_number: Option<String>,
    /// The printer's VAT table, once read.
    pub vat: Option<Vec<VatView>>,
    pub last_error: Option<String>,
    pub current_job: Option<JobId>,
    pub queue_depth: i64,
    pub link: PrinterLink,
}

/// One VAT slot of a printer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VatView {
    pub letter: char,
    /// The rate in percent as a decimal string (`23`, `8`, `0`), or null.
    pub rate: Option<String>,
    pub exempt: bool,
    pub active: bool,
}

/// A printer's line counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PrinterLink {
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub frames_in: u64,
    pub frame_errors: u64,
    pub garbage_bytes: u64,
}

/// A card terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalView {
    pub id: String,
    /// e.g. `zvt`.
    pub protocol: String,
    pub port: String,
    pub state: DeviceState,
    pub terminal_id: Option<String>,
    /// What the terminal shows during a transaction.
    pub display: Option<String>,
    pub last_error: Option<String>,
    pub current_job: Option<JobId>,
    pub queue_depth: i64,
    /// Where the card slip goes.
    pub slip: crate::config::SlipTarget,
    pub link: TerminalLink,
}

/// A terminal's line counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TerminalLink {
    pub bytes_out: u64,
    pub bytes_in: u64,
}

/// A job as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "JobViewWire")]
pub struct JobView {
    pub id: JobId,
    pub kind: JobKind,
    /// The printer or terminal it runs on.
    pub device: String,
    /// The device again, for printer jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub printer: Option<String>,
    /// The device again, for terminal jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminal: Option<String>,
    /// The sale a receipt or slip belongs to.
    pub sale: Option<JobId>,
    pub owner: Option<String>,
    pub state: JobState,
    pub created_at: String,
    pub updated_at: String,
    pub attempts: i64,
    pub result: Option<JobResult>,
    pub error: Option<DeviceError>,
}

impl From<&Job> for JobView {
    fn from(job: &Job) -> Self {
        let on_terminal = job.kind.is_terminal_job();
        JobView {
            id: job.id,
            kind: job.kind,
            device: job.device.clone(),
            printer: (!on_terminal).then(|| job.device.clone()),
            terminal: on_terminal.then(|| job.device.clone()),
            sale: job.parent_id,
            owner: job.owner.clone(),
            state: job.state,
            created_at: job.created_at.clone(),
            updated_at: job.updated_at.clone(),
            attempts: job.attempts,
            result: job.result.clone(),
            error: job.error.clone(),
        }
    }
}

impl JobView {
    /// Whether it is still queued or running.
    pub fn is_pending(&self) -> bool {
        !self.state.is_terminal()
    }
}

/// A job as it comes over the wire: its result is read by its kind.
#[derive(Deserialize)]
struct JobViewWire {
    id: JobId,
    kind: JobKind,
    device: String,
    #[serde(default)]
    printer: Option<String>,
    #[serde(default)]
    terminal: Option<String>,
    #[serde(default)]
    sale: Option<JobId>,
    #[serde(default)]
    owner: Option<String>,
    state: JobState,
    created_at: String,
    updated_at: String,
    attempts: i64,
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<DeviceError>,
}

impl TryFrom<JobViewWire> for JobView {
    type Error = String;

    fn try_from(w: JobViewWire) -> Result<Self, String> {
        let result = w
            .result
            .map(|r| JobResult::from_stored(w.kind, r))
            .transpose()
            .map_err(|e| format!("job {}: its result does not fit its kind: {e}", w.id))?;
        Ok(JobView {
            id: w.id,
            kind: w.kind,
            device: w.device,
            printer: w.printer,
            terminal: w.terminal,
            sale: w.sale,
            owner: w.owner,
            state: w.state,
            created_at: w.created_at,
            updated_at: w.updated_at,
            attempts: w.attempts,
            result,
            error: w.error,
        })
    }
}

/// `GET /v1/jobs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobList {
    /// Newest first.
    pub jobs: Vec<JobView>,
}

/// `GET /v1/audit`: a page of the audit log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass as `before=` for the next page; null on the last one.
    pub next_before: Option<i64>,
}

/// The `data` of the `reset` event of `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetEvent {
    /// Always `reset`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Why the client must read the state again.
    pub reason: String,
}

/// `POST /v1/payments`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentBody {
    /// `sale`, `refund` or `reversal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// In grosze.
    pub amount: u64,
    /// `PLN` or `EUR`; the terminal's when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<String>,
    /// For a reversal: the terminal's receipt number of the payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_receipt_number: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terminal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// `POST /v1/cash`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashBody {
    /// `in` or `out`.
    pub direction: String,
    /// In grosze.
    pub amount: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub printer: Option<String>,
}

/// `POST /v1/printouts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintoutBody {
    pub lines: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub printer: Option<String>,
}

/// `POST /v1/reports/daily`: `{}` or `{"printer": id}`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DailyReportBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub printer: Option<String>,
}

/// The body of `POST /v1/reports/periodic` as `fiscald ctl` sends it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeriodicReportBody {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monthly: Option<String>,
    pub summary: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub printer: Option<String>,
}

/// A body as JSON with its keys sorted, the order the API has always answered in.
pub fn to_json<T: Serialize>(body: &T) -> Value {
    serde_json::to_value(body).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_job_reads_back_as_the_api_wrote_it() {
        let wire = json!({"id": 7, "kind": "receipt", "device": "fp1", "printer": "fp1", "sale": null,
            "owner": "socket", "state": "done", "created_at": "a", "updated_at": "b", "attempts": 1,
            "result": {"receipt_number": 12, "total": 675, "printed_at": "2026-11-26T10:15:00",
                       "printer": "fp1", "printer_serial_number": null},
            "error": null});
        let job: JobView = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(to_json(&job), wire);
        let bad = json!({"id": 7, "kind": "receipt", "device": "fp1", "state": "done", "created_at": "a",
            "updated_at": "b", "attempts": 1, "result": {"report_number": 3}});
        assert!(serde_json::from_value::<JobView>(bad).is_err());
    }

    #[test]
    fn devices_are_tagged_by_kind() {
        let wire = json!({"devices": [{"kind": "payment_terminal", "id": "t1", "protocol": "zvt", "port": "sim",
            "state": "ready", "terminal_id": null, "display": null, "last_error": null, "current_job": null,
            "queue_depth": 0, "slip": "printer", "link": {"bytes_out": 1, "bytes_in": 2}}]});
        let list: DeviceList = serde_json::from_value(wire.clone()).unwrap();
        assert_eq!(list.devices[0].kind(), "payment_terminal");
        assert_eq!(to_json(&list), wire);
    }
}
