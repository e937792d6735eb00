//! What a till sends to head office: one [`FleetEvent`] per journal change, wrapped in an
//! [`Envelope`] with the schema version, the till and its sequence number. The JSON shape
//! is documented in the README ("Fleet (NATS JetStream)"); a change to it bumps [`SCHEMA`].

use crate::device::{DeviceError, DeviceState};
use crate::document::Method;
use crate::job::records::{CardOutcome, JobRequest, JobResult};
use crate::job::{Job, JobId};
use serde::Serialize;
use std::collections::BTreeMap;

/// The message schema's version (the `schema` field of every message).
pub const SCHEMA: u32 = 1;

/// One message as it is stored in the outbox and sent: `{"schema":1,"till":..,"seq":..,
/// "at":..,"type":"job",...}`.
#[derive(Debug, Clone, Serialize)]
pub struct Envelope<'a> {
    pub schema: u32,
    pub till: &'a str,
    /// The till's outbox sequence number: 1, 2, 3, … without gaps.
    pub seq: u64,
    /// When the change was committed (journal clock, RFC 3339 UTC).
    pub at: &'a str,
    #[serde(flatten)]
    pub event: &'a FleetEvent,
}

/// A change in the journal that head office hears about.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
// An event lives for one outbox insert; boxing the job event would only add an allocation.
#[allow(clippy::large_enum_variant)]
pub enum FleetEvent {
    /// A job's state or recovery step changed (subject `.jobs`).
    Job(JobEvent),
    /// A printer's or terminal's state changed (subject `.devices`).
    Device(DeviceEvent),
    /// A daily (Z) report was printed, with the day's totals (subject `.reports`).
    DailyReport(DailyReportEvent),
    /// An audit record (subject `.audit`).
    Audit(AuditEvent),
}

impl FleetEvent {
    /// The last subject token: `jobs`, `devices`, `reports` or `audit`.
    pub fn subject_kind(&self) -> &'static str {
        match self {
            FleetEvent::Job(_) => "jobs",
            FleetEvent::Device(_) => "devices",
            FleetEvent::DailyReport(_) => "reports",
            FleetEvent::Audit(_) => "audit",
        }
    }
}

/// A payment line of a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PaymentLine {
    pub method: Method,
    /// Grosze.
    pub amount: u64,
}

/// A card transaction (masked card number only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CardEvent {
    pub approved: bool,
    pub amount: Option<u64>,
    pub currency: Option<String>,
    /// At most the first 6 and last 4 digits.
    pub masked_pan: Option<String>,
    pub card_brand: Option<String>,
    pub auth_code: Option<String>,
    pub trace_number: Option<u32>,
    pub terminal_receipt_number: Option<u32>,
    /// The terminal's own id (TID).
    pub terminal_id: Option<String>,
    /// The terminal's id in the configuration.
    pub terminal: String,
    pub result_code: u8,
}

impl From<&CardOutcome> for CardEvent {
    fn from(c: &CardOutcome) -> Self {
        CardEvent {
            approved: c.approved,
            amount: c.amount,
            currency: c.currency.clone(),
            masked_pan: c.masked_pan.clone(),
            card_brand: c.card_brand.clone(),
            auth_code: c.auth_code.clone(),
            trace_number: c.trace_number,
            terminal_receipt_number: c.terminal_receipt_number,
            terminal_id: c.terminal_id.clone(),
            terminal: c.terminal.clone(),
            result_code: c.result_code,
        }
    }
}

/// A job's change, with its result so far.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    pub job: JobId,
    /// `receipt`, `sale`, `payment`, `daily_report`, …
    pub kind: &'static str,
    pub device: String,
    /// `queued`, `running`, `done`, `failed`, `cancelled`, `needs_attention`.
    pub state: &'static str,
    /// What happened, as the job's history names it: a state, a step (`printing`,
    /// `closing`, `approved`, …) or `retry`.
    pub event: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<JobId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receipt_number: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invoice_number: Option<String>,
    /// The fiscal total in grosze (requested while it runs, printed once done).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// The printed totals per VAT letter, in grosze.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vat_totals: Option<BTreeMap<String, u64>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub payments: Vec<PaymentLine>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub card: Option<CardEvent>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<DeviceError>,
}

impl JobEvent {
    /// The event of `job` as it is now, after history entry `event`.
    pub fn of(job: &Job, event: &str, detail: Option<&str>) -> JobEvent {
        let (mut total, payments) = match &job.request {
            JobRequest::Receipt(r) => (Some(r.total), pay(&r.payments)),
            JobRequest::Sale(s) => (Some(s.receipt.total), pay(&s.receipt.payments)),
            JobRequest::Invoice(i) => (Some(i.total), pay(&i.payments)),
            _ => (None, Vec::new()),
        };
        let (mut receipt_number, mut invoice_number, mut vat_totals) = (None, None, None);
        let mut card = None;
        match &job.result {
            Some(JobResult::Receipt(r)) => {
                receipt_number = Some(r.receipt_number);
                total = Some(r.total);
                vat_totals = Some(r.vat_totals.clone());
            }
            Some(JobResult::Invoice(i)) => {
                invoice_number = Some(i.invoice_number.clone());
                total = Some(i.total);
                vat_totals = Some(i.vat_totals.clone());
            }
            Some(JobResult::Sale(s)) => {
                if let Some(Some(r)) = &s.receipt {
                    receipt_number = Some(r.receipt_number);
                    total = Some(r.total);
                    vat_totals = Some(r.vat_totals.clone());
                }
            }
            _ => {}
        }
        if let Some(c) = job.result.as_ref().and_then(JobResult::card_outcome) {
            card = Some(CardEvent::from(c));
        }
        JobEvent {
            job: job.id,
            kind: job.kind.as_str(),
            device: job.device.clone(),
            state: job.state.as_str(),
            event: event.to_string(),
            detail: detail.map(String::from),
            parent: job.parent_id,
            receipt_number,
            invoice_number,
            total,
            vat_totals,
            payments,
            card,
            error: job.error.clone(),
        }
    }
}

fn pay(p: &[crate::document::Payment]) -> Vec<PaymentLine> {
    p.iter()
        .map(|p| PaymentLine {
            method: p.method,
            amount: p.amount,
        })
        .collect()
}

/// A device's change of state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeviceEvent {
    pub device: String,
    /// `fiscal_printer` or `payment_terminal`.
    pub kind: &'static str,
    pub state: DeviceState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A printed daily report and the totals of the documents it closed (the receipts and
/// invoices that ended `done` on the printer since its previous daily report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyReportEvent {
    pub job: JobId,
    pub printer: String,
    pub report_number: u64,
    /// The fiscal day, `YYYY-MM-DD`.
    pub date: String,
    pub printed_at: String,
    pub receipts: u64,
    pub invoices: u64,
    /// Grosze.
    pub total: u64,
    pub vat_totals: BTreeMap<String, u64>,
    /// Grosze by payment method.
    pub payments: BTreeMap<String, u64>,
}

/// An audit record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditEvent {
    pub principal: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub operation: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job: Option<JobId>,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// For counted unauthenticated refusals: how many this record adds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}
