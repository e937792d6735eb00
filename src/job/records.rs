//! The typed records a job carries: what was asked (its request), where it stands on the
//! device (its step) and what came of it (its result). They are stored as JSON text in the
//! `jobs` table in exactly the shapes the journal has always held, so older journals read
//! back unchanged.
//!
//! A job's `kind` is its own column, so requests and results are decoded by kind
//! ([`JobRequest::from_stored`], [`JobResult::from_stored`]) rather than by guessing from
//! their shape. Anything that does not fit is an error that names it.

use super::{JobId, JobKind};
use crate::document::{
    CardPayment, CashOperation, DocumentCopy, Invoice, PeriodicReport, Printout, Receipt,
};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// A job's recovery step: how far it got on its device. Recovery decides from it what may
/// have happened; each is committed before the step it names goes out to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Started; nothing fiscal (or no authorization) has been sent yet.
    Prepare,
    /// A printer job: the counters before the document are recorded and the document may be
    /// open. A sale: its payment was approved and its receipt is queued on the printer.
    Printing,
    /// The closing command (or a terminal's end of day) may have been sent.
    Closing,
    /// The closing command was answered (used by reconciliation; not stored).
    Closed,
    /// A card job: the authorization may have been sent to the terminal.
    Authorizing,
    /// A card job: the terminal approved; its outcome is journaled.
    Approved,
    /// A card job: the terminal declined; its outcome is journaled.
    Declined,
}

impl Step {
    /// Every step, for parsing.
    pub const ALL: [Step; 7] = [
        Step::Prepare,
        Step::Printing,
        Step::Closing,
        Step::Closed,
        Step::Authorizing,
        Step::Approved,
        Step::Declined,
    ];

    /// The name stored in the journal (`prepare`, `printing`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Prepare => "prepare",
            Step::Printing => "printing",
            Step::Closing => "closing",
            Step::Closed => "closed",
            Step::Authorizing => "authorizing",
            Step::Approved => "approved",
            Step::Declined => "declined",
        }
    }

    /// The step of a stored name; None for a name no step has.
    pub fn parse(s: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|step| step.as_str() == s)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The stored wrapper of every request: `{"document": ...}`.
#[derive(Serialize, Deserialize)]
struct Stored<D> {
    document: D,
}

/// The document of a job that needs none (a daily report, a terminal's end of day): `{}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct NoDocument {}

/// The payment part of a sale's request: `{"type": "sale", "amount", "currency"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SalePayment {
    /// Always `sale`.
    #[serde(rename = "type")]
    pub kind: String,
    /// In grosze.
    pub amount: u64,
    /// ISO 4217 numeric.
    pub currency: u16,
}

impl SalePayment {
    /// The card payment a terminal runs for it.
    pub fn card_payment(&self) -> CardPayment {
        CardPayment {
            kind: self.kind.clone(),
            amount: self.amount,
            currency: self.currency,
            reference: None,
            original_receipt_number: None,
        }
    }
}

/// A sale's request: the receipt to print once the card payment is approved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SaleRequest {
    /// The fiscal receipt, with the card payment among its payments.
    pub receipt: Receipt,
    /// The printer that prints it.
    pub printer: String,
    /// What the terminal charges.
    pub payment: SalePayment,
}

/// What a job asks for, by kind. Stored as `{"document": <the document>}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobRequest {
    /// A fiscal receipt (also a sale's receipt).
    Receipt(Receipt),
    /// The daily (Z) report.
    DailyReport,
    /// Cash in or out.
    Cash(CashOperation),
    /// A non-fiscal printout (also a sale's card slip).
    Printout(Printout),
    /// A card payment on a terminal.
    Payment(CardPayment),
    /// A terminal's end of day.
    EndOfDay,
    /// A card payment and its fiscal receipt together.
    Sale(SaleRequest),
    /// A VAT invoice.
    Invoice(Invoice),
    /// A periodic report by dates.
    PeriodicReport(PeriodicReport),
    /// A copy of a printed receipt or invoice.
    Copy(DocumentCopy),
}

impl JobRequest {
    /// The kind of job this request makes.
    pub fn kind(&self) -> JobKind {
        match self {
            JobRequest::Receipt(_) => JobKind::Receipt,
            JobRequest::DailyReport => JobKind::DailyReport,
            JobRequest::Cash(_) => JobKind::Cash,
            JobRequest::Printout(_) => JobKind::Printout,
            JobRequest::Payment(_) => JobKind::Payment,
            JobRequest::EndOfDay => JobKind::EndOfDay,
            JobRequest::Sale(_) => JobKind::Sale,
            JobRequest::Invoice(_) => JobKind::Invoice,
            JobRequest::PeriodicReport(_) => JobKind::PeriodicReport,
            JobRequest::Copy(_) => JobKind::Copy,
        }
    }

    /// The stored JSON form, `{"document": ...}`.
    pub fn to_json(&self) -> Value {
        fn wrap<D: Serialize>(document: D) -> Value {
            // These documents are plain data: serialising them cannot fail.
            serde_json::to_value(Stored { document }).unwrap_or(Value::Null)
        }
        match self {
            JobRequest::Receipt(r) => wrap(r),
            JobRequest::DailyReport | JobRequest::EndOfDay => wrap(NoDocument {}),
            JobRequest::Cash(c) => wrap(c),
            JobRequest::Printout(p) => wrap(p),
            JobRequest::Payment(p) => wrap(p),
            JobRequest::Sale(s) => wrap(s),
            JobRequest::Invoice(i) => wrap(i),
            JobRequest::PeriodicReport(r) => wrap(r),
            JobRequest::Copy(c) => wrap(c),
        }
    }

    /// Read a stored request of a job of `kind`.
    pub fn from_stored(kind: JobKind, stored: Value) -> Result<JobRequest, serde_json::Error> {
        fn unwrap<D: serde::de::DeserializeOwned>(v: Value) -> Result<D, serde_json::Error> {
            serde_json::from_value::<Stored<D>>(v).map(|s| s.document)
        }
        Ok(match kind {
            JobKind::Receipt => JobRequest::Receipt(unwrap(stored)?),
            JobKind::DailyReport => {
                unwrap::<NoDocument>(stored)?;
                JobRequest::DailyReport
            }
            JobKind::Cash => JobRequest::Cash(unwrap(stored)?),
            JobKind::Printout => JobRequest::Printout(unwrap(stored)?),
            JobKind::Payment => JobRequest::Payment(unwrap(stored)?),
            JobKind::EndOfDay => {
                unwrap::<NoDocument>(stored)?;
                JobRequest::EndOfDay
            }
            JobKind::Sale => JobRequest::Sale(unwrap(stored)?),
            JobKind::Invoice => JobRequest::Invoice(unwrap(stored)?),
            JobKind::PeriodicReport => JobRequest::PeriodicReport(unwrap(stored)?),
            JobKind::Copy => JobRequest::Copy(unwrap(stored)?),
        })
    }

    /// The card payment a terminal runs for this job (a payment, or a sale's payment).
    pub fn card_payment(&self) -> Option<CardPayment> {
        match self {
            JobRequest::Payment(p) => Some(p.clone()),
            JobRequest::Sale(s) => Some(s.payment.card_payment()),
            _ => None,
        }
    }
}

/// A printed fiscal receipt.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptPrinted {
    /// The printer's receipt number.
    pub receipt_number: u64,
    /// In grosze.
    pub total: u64,
    /// The printer's clock, `YYYY-MM-DDTHH:MM:SS`.
    pub printed_at: String,
    /// The printer's id.
    pub printer: String,
    /// The printer's unique (serial) number, when it was read.
    pub printer_serial_number: Option<String>,
    /// Deposits issued and returned (outside `total`), and what the customer paid:
    /// `total + deposits_issued − deposits_returned`. Absent in results journaled before
    /// deposits existed (read back unchanged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposits_issued: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposits_returned: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub amount_due: Option<u64>,
    /// The lines with their final amounts (after their discounts and surcharges).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<PrintedLine>,
    /// Gross sales per VAT letter (`{"A": 4000, "B": 966}`), summing to `total`; absent in
    /// results journaled before them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vat_totals: BTreeMap<String, u64>,
}

impl ReceiptPrinted {
    /// The result of printing `receipt` as receipt `number`.
    pub fn of(
        receipt: &Receipt,
        number: u64,
        printed_at: String,
        printer: String,
        printer_serial_number: Option<String>,
    ) -> ReceiptPrinted {
        ReceiptPrinted {
            receipt_number: number,
            total: receipt.total,
            printed_at,
            printer,
            printer_serial_number,
            deposits_issued: Some(receipt.deposits_issued()),
            deposits_returned: Some(receipt.deposits_returned()),
            amount_due: Some(receipt.amount_due()),
            vat_totals: receipt.vat_totals(),
            lines: receipt
                .lines
                .iter()
                .map(|l| PrintedLine {
                    name: l.name.clone(),
                    amount: l.value(),
                })
                .collect(),
        }
    }
}

/// A printed line and its final amount.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintedLine {
    pub name: String,
    /// Grosze, after the line's discount or surcharge.
    pub amount: u64,
}

/// A printed daily (Z) report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyReportPrinted {
    /// The printer's report number.
    pub report_number: u64,
    /// The fiscal day, `YYYY-MM-DD`.
    pub date: String,
    /// The printer's clock, `YYYY-MM-DDTHH:MM:SS`.
    pub printed_at: String,
    /// The printer's id.
    pub printer: String,
}

/// A printed cash operation or non-fiscal printout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrintoutPrinted {
    /// The printout's number on the printer.
    pub printout_number: u64,
    /// The printer's clock, `YYYY-MM-DDTHH:MM:SS`.
    pub printed_at: String,
    /// The printer's id.
    pub printer: String,
}

/// A printed VAT invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoicePrinted {
    /// The shop's invoice number, as printed.
    pub invoice_number: String,
    /// The printer's own number for it (its invoice counter).
    pub document_number: u64,
    /// In grosze, after every discount and surcharge.
    pub total: u64,
    /// The buyer's NIP.
    pub buyer_nip: String,
    /// Copies printed after the original.
    pub copies: u8,
    /// The printer's clock, `YYYY-MM-DDTHH:MM:SS`.
    pub printed_at: String,
    /// The printer's id.
    pub printer: String,
    /// The printer's unique (serial) number, when it was read.
    pub printer_serial_number: Option<String>,
    /// The lines with their final amounts.
    pub lines: Vec<PrintedLine>,
    /// Gross sales per VAT letter, summing to `total`.
    pub vat_totals: BTreeMap<String, u64>,
}

impl InvoicePrinted {
    /// The result of printing `invoice` as the printer's invoice `number`.
    pub fn of(
        invoice: &Invoice,
        number: u64,
        printed_at: String,
        printer: String,
        printer_serial_number: Option<String>,
    ) -> InvoicePrinted {
        InvoicePrinted {
            invoice_number: invoice.number.clone(),
            document_number: number,
            total: invoice.total,
            buyer_nip: invoice.buyer.nip.clone(),
            copies: invoice.copies,
            printed_at,
            printer,
            printer_serial_number,
            vat_totals: invoice.vat_totals(),
            lines: invoice
                .lines
                .iter()
                .map(|l| PrintedLine {
                    name: l.name.clone(),
                    amount: l.value(),
                })
                .collect(),
        }
    }
}

/// A printed periodic report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodicReportPrinted {
    /// The printout's number on the printer.
    pub printout_number: u64,
    /// The first and last day covered, `YYYY-MM-DD`.
    pub from: String,
    pub to: String,
    pub summary: bool,
    /// The printer's clock, `YYYY-MM-DDTHH:MM:SS`.
    pub printed_at: String,
    /// The printer's id.
    pub printer: String,
}

/// A printed copy of a receipt or invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyPrinted {
    /// The printout's number on the printer.
    pub printout_number: u64,
    /// The job that printed the original.
    pub of_job: JobId,
    /// `receipt` or `invoice`.
    pub document: String,
    /// The original's number on the printer.
    pub document_number: u64,
    /// The printer's clock, `YYYY-MM-DDTHH:MM:SS`.
    pub printed_at: String,
    /// The printer's id.
    pub printer: String,
}

/// A card transaction's outcome as a terminal reported it (masked card data only).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CardOutcome {
    /// Whether the terminal approved it.
    pub approved: bool,
    /// In grosze.
    pub amount: Option<u64>,
    /// e.g. `PLN`.
    pub currency: Option<String>,
    /// At most the first 6 and last 4 digits.
    pub masked_pan: Option<String>,
    pub card_brand: Option<String>,
    pub auth_code: Option<String>,
    /// The terminal's trace number, by which an interrupted transaction is matched.
    pub trace_number: Option<u32>,
    /// The terminal's receipt number, by which a payment is reversed.
    pub terminal_receipt_number: Option<u32>,
    pub terminal_id: Option<String>,
    /// The terminal's result code (0: approved).
    pub result_code: u8,
    /// The card slip's lines.
    #[serde(default)]
    pub slip: Vec<String>,
    /// The terminal's id in the configuration.
    pub terminal: String,
    /// The terminal's own transaction id as text (ECR-EFT), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
    /// Who settled this payment by hand (`POST /v1/payments/{id}/resolve`), if anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_by: Option<String>,
}

/// A payment job's result. A payment that ended `done` holds the outcome itself; while it
/// runs, and when it was declined, the outcome is under `payment`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PaymentResult {
    /// `{"payment": {...}}`: journaled at the terminal's commit point, or declined.
    Recorded {
        /// The outcome.
        payment: CardOutcome,
    },
    /// `{...}`: the approved payment of a job that ended `done`.
    Completed(CardOutcome),
}

impl PaymentResult {
    /// The card outcome, however it is stored.
    pub fn outcome(&self) -> &CardOutcome {
        match self {
            PaymentResult::Recorded { payment } | PaymentResult::Completed(payment) => payment,
        }
    }
}

/// A terminal's end of day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndOfDayResult {
    /// The batch total in grosze.
    pub total: Option<u64>,
    /// e.g. `PLN`.
    pub currency: String,
    /// The terminal's id.
    pub terminal: String,
    /// The report's lines.
    #[serde(default)]
    pub slip: Vec<String>,
}

/// A sale's result: its payment, and as it goes on, its receipt and slip jobs, the
/// receipt's result and the reversal job.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SaleResult {
    /// The card payment's outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment: Option<CardOutcome>,
    /// The receipt job, once queued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receipt_job: Option<JobId>,
    /// The slip printout job, when the slip goes to the printer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slip_job: Option<JobId>,
    /// Once the receipt ended: its result (`null` when it was not printed).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub receipt: Option<Option<ReceiptPrinted>>,
    /// The job reversing the payment, once asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversal_job: Option<JobId>,
}

/// A field that is present (even as `null`) is `Some`.
fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// What came of a job, by kind. Serialised as the record itself, without a tag.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
// A result lives as long as one job is read or written; boxing the sale would only add an
// allocation to every one.
#[allow(clippy::large_enum_variant)]
pub enum JobResult {
    /// A receipt job.
    Receipt(ReceiptPrinted),
    /// A daily report job.
    DailyReport(DailyReportPrinted),
    /// A cash or printout job.
    Printout(PrintoutPrinted),
    /// A payment job.
    Payment(PaymentResult),
    /// An end-of-day job.
    EndOfDay(EndOfDayResult),
    /// A sale.
    Sale(SaleResult),
    /// An invoice job.
    Invoice(InvoicePrinted),
    /// A periodic report job.
    PeriodicReport(PeriodicReportPrinted),
    /// A copy job.
    Copy(CopyPrinted),
}

impl JobResult {
    /// Read a stored result of a job of `kind`.
    pub fn from_stored(kind: JobKind, stored: Value) -> Result<JobResult, serde_json::Error> {
        Ok(match kind {
            JobKind::Receipt => JobResult::Receipt(serde_json::from_value(stored)?),
            JobKind::DailyReport => JobResult::DailyReport(serde_json::from_value(stored)?),
            JobKind::Cash | JobKind::Printout => {
                JobResult::Printout(serde_json::from_value(stored)?)
            }
            JobKind::Payment => JobResult::Payment(serde_json::from_value(stored)?),
            JobKind::EndOfDay => JobResult::EndOfDay(serde_json::from_value(stored)?),
            JobKind::Sale => JobResult::Sale(serde_json::from_value(stored)?),
            JobKind::Invoice => JobResult::Invoice(serde_json::from_value(stored)?),
            JobKind::PeriodicReport => JobResult::PeriodicReport(serde_json::from_value(stored)?),
            JobKind::Copy => JobResult::Copy(serde_json::from_value(stored)?),
        })
    }

    /// The stored JSON form.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// A card job's result at the terminal's commit point (or a decline): the outcome
    /// under `payment`, for a payment job or a sale.
    pub fn recorded_payment(kind: JobKind, payment: CardOutcome) -> JobResult {
        match kind {
            JobKind::Sale => JobResult::Sale(SaleResult {
                payment: Some(payment),
                ..SaleResult::default()
            }),
            _ => JobResult::Payment(PaymentResult::Recorded { payment }),
        }
    }

    /// The card outcome of a payment or sale, if one is recorded.
    pub fn card_outcome(&self) -> Option<&CardOutcome> {
        match self {
            JobResult::Payment(p) => Some(p.outcome()),
            JobResult::Sale(s) => s.payment.as_ref(),
            _ => None,
        }
    }

    /// A sale's result, if this is one.
    pub fn as_sale(&self) -> Option<&SaleResult> {
        match self {
            JobResult::Sale(s) => Some(s),
            _ => None,
        }
    }

    /// A receipt's result, if this is one.
    pub fn as_receipt(&self) -> Option<&ReceiptPrinted> {
        match self {
            JobResult::Receipt(r) => Some(r),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn receipt() -> Value {
        json!({"lines": [{"name": "Chleb", "quantity": "1.5", "unit_price": 450, "amount": 675, "vat": "A", "unit": null}],
               "payments": [{"method": "card", "amount": 675}], "buyer_nip": null, "total": 675})
    }

    #[test]
    fn every_request_reads_back_as_it_was_stored() {
        let stored = [
            (JobKind::Receipt, json!({"document": receipt()})),
            (JobKind::DailyReport, json!({"document": {}})),
            (
                JobKind::Cash,
                json!({"document": {"deposit": true, "amount": 500}}),
            ),
            (JobKind::Printout, json!({"document": {"lines": ["a", ""]}})),
            (
                JobKind::Payment,
                json!({"document": {"type": "reversal", "amount": 2500, "currency": 985,
                                    "reference": "sale 4", "original_receipt_number": 12}}),
            ),
            (JobKind::EndOfDay, json!({"document": {}})),
            (
                JobKind::Sale,
                json!({"document": {"receipt": receipt(), "printer": "fp1",
                                    "payment": {"type": "sale", "amount": 675, "currency": 985}}}),
            ),
        ];
        for (kind, json) in stored {
            let request = JobRequest::from_stored(kind, json.clone()).unwrap();
            assert_eq!(request.kind(), kind);
            assert_eq!(request.to_json(), json, "{kind:?}");
        }
    }

    #[test]
    fn every_result_reads_back_as_it_was_stored() {
        let payment = json!({"approved": true, "amount": 675, "currency": "PLN", "masked_pan": "411111******1111",
            "card_brand": "VISA", "auth_code": "123456", "trace_number": 7, "terminal_receipt_number": 3,
            "terminal_id": "29001234", "result_code": 0, "slip": ["a"], "terminal": "t1"});
        let printed = json!({"receipt_number": 12, "total": 675, "printed_at": "2026-11-26T10:15:00",
            "printer": "fp1", "printer_serial_number": null});
        let stored = [
            (JobKind::Receipt, printed.clone()),
            (
                JobKind::DailyReport,
                json!({"report_number": 3, "date": "2026-11-26", "printed_at": "2026-11-26T22:00:00", "printer": "fp1"}),
            ),
            (
                JobKind::Cash,
                json!({"printout_number": 4, "printed_at": "2026-11-26T10:15:00", "printer": "fp1"}),
            ),
            (JobKind::Payment, payment.clone()),
            (JobKind::Payment, json!({"payment": payment})),
            (
                JobKind::EndOfDay,
                json!({"total": 1000, "currency": "PLN", "terminal": "t1", "slip": []}),
            ),
            (JobKind::Sale, json!({"payment": payment})),
            (
                JobKind::Sale,
                json!({"payment": payment, "receipt_job": 8, "slip_job": 9, "receipt": printed}),
            ),
            (
                JobKind::Sale,
                json!({"payment": payment, "receipt_job": 8, "receipt": null, "reversal_job": 10}),
            ),
        ];
        for (kind, json) in stored {
            let result = JobResult::from_stored(kind, json.clone()).unwrap();
            assert_eq!(result.to_json(), json, "{kind:?}");
        }
    }

    #[test]
    fn a_result_that_does_not_fit_its_kind_is_an_error() {
        assert!(JobResult::from_stored(JobKind::Receipt, json!({"report_number": 3})).is_err());
        assert!(
            JobRequest::from_stored(JobKind::Cash, json!({"document": {"lines": []}})).is_err()
        );
    }

    #[test]
    fn steps_parse_by_their_stored_names_only() {
        for step in Step::ALL {
            assert_eq!(Step::parse(step.as_str()), Some(step));
            assert_eq!(
                serde_json::to_value(step).unwrap(),
                Value::String(step.as_str().into())
            );
        }
        assert_eq!(Step::parse("printed"), None);
    }
}
