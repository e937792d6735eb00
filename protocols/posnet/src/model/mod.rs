//! A behavioural model of a POSNET fiscal printer (feature `model`).
//!
//! It takes decoded command frames and the current local time and answers like a
//! printer: it keeps fiscal memory (receipts, daily reports, cash operations,
//! non-fiscal printouts), a VAT table, counters, the open transaction, the
//! name/rate lock database, paper and cover state, and makes the checks a real
//! device makes. It never does I/O: the emulator program feeds it and persists
//! [`FiscalMemory`] after every [`Outcome::fiscal_event`].
//!
//! Decisions where the reference leaves a choice:
//! - Rate lock order: exempt is the lowest rate, then percentages ascending
//!   (zw. < 0 % < 5 % < 8 % < 23 %). The product database is updated when a receipt
//!   completes (cancelled receipts lock nothing); lines of the open receipt also count.
//! - `bn` (last receipt) and `bt` (receipts incl. cancelled) never reset, unlike the
//!   real device's daily counters. `hn` is the next document number: every receipt,
//!   cancelled receipt, daily report, cash operation and form takes one.
//! - `dailyrep` with a date other than today's: command error 2023; without `da` it uses
//!   today (the operator's confirmation on a real keypad).
//! - Bill discounts: 1980 when there is nothing to discount, 1981 when the result would
//!   not stay above zero, 2601 for a zero or ≥ 100 % value, 2801 when `rw` disagrees
//!   with `rp`. `trend`: 2808 when `fp` ≠ the payments sent, 2809 when `re` ≠ the change,
//!   2041 when the total is not positive. Forms: 2501 bad form number, 2504 not
//!   started (or another form number), 2505 already started. Also: 1950 amount overflow,
//!   1953 a payment when the total is already covered, 2052 more than [`MAX_LINES`] lines,
//!   1990 storno after a bill discount or payment, 2851 storno of a line not on the receipt,
//!   2063 `cash kw0`, 502 drawer over the maximum. `scomm ts1` while a form is open.
//! - `trpayment re1` (change) is allowed with any payment type, as in the spec's example.
//! - While a command is held (paper out, cover open) every later command except the
//!   status commands and `rpt` queues behind it, up to [`MAX_HELD`] (then frame error 14).
//!   `rpt` for a token that is still held waits for that command.
//! - Documents beyond the receipt (see `fiscald`'s `posnet-documents` notes):
//!   - Percentages round half up, by `discounttypeset`: `dt0` (the default here) rounds the
//!     value after the discount, `dt1` the discount. A bill discount is resolved against the
//!     running total and then spread over the VAT letters by the calculation annex's
//!     accumulator rule (each rate `floor(v × after / before)`, remainders carried).
//!   - Deposits (`trpack`) are outside the fiscal total: `trend` checks `op`/`om` (2806,
//!     2807) and the customer pays `to + op − om`; a negative amount due is refused (2054;
//!     not measured on a device). Packaging, payments, `trnipset` and bill discounts inside
//!     an invoice answer 2060.
//!   - `trend fe0` leaves the footer open (`scomm ts16`) for `trftrln` until `trftrend`;
//!     `ftrcfg bc` and `qrcode tx` apply to the next receipt.
//!   - Invoices count on `fn` (cancelled ones on `fc`), take at most
//!     [`MAX_INVOICE_LINES`] lines, and need a buyer (2535) and a number (2533) at `trend`.
//!   - Periodic reports and copies take a document number (`hn`); a copy of a document not
//!     in memory answers [`DOCUMENT_NOT_FOUND`].

mod exec;
mod fields;
mod invoice;
mod receipt;

pub use invoice::DOCUMENT_NOT_FOUND;

use crate::frame::Frame;
use crate::reply::VatRate;
use chrono::{NaiveDate, NaiveDateTime};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};

/// Most lines on one VAT invoice.
pub const MAX_INVOICE_LINES: usize = 120;
/// Most free footer lines after one receipt.
pub const MAX_FOOTER_LINES: usize = 60;

/// Device name reported by `sid`.
pub const MODEL_NAME: &str = "POSNET Thermal HD Online";
/// Firmware version reported by `sid`.
pub const FIRMWARE_VERSION: &str = "2.01";
/// Unique number of a fresh model printer.
pub const DEFAULT_UNIQUE_NUMBER: &str = "ABC 12345678";
/// How many tokened answers `rpt` can re-send.
pub const TOKEN_BUFFER: usize = 32;
/// How many commands can wait while the printer is held.
pub const MAX_HELD: usize = 16;
/// Most lines on one receipt.
pub const MAX_LINES: usize = 500;

/// The printer's persistent memory; this is the emulator's `--state` JSON file.
/// Amounts are integers in grosze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiscalMemory {
    /// Completed receipts, oldest first.
    pub receipts: Vec<Receipt>,
    /// Daily (Z) reports, oldest first.
    pub daily_reports: Vec<DailyReport>,
    /// Cash in/out operations (`cash`).
    pub cash_operations: Vec<CashOperation>,
    /// Completed non-fiscal forms.
    pub printouts: Vec<Printout>,
    /// Printed VAT invoices, oldest first.
    #[serde(default)]
    pub invoices: Vec<Invoice>,
    /// Periodic reports, oldest first.
    #[serde(default)]
    pub periodic_reports: Vec<PeriodicReport>,
    /// Copies printed from protected memory (`ecprndoc`), oldest first.
    #[serde(default)]
    pub copies: Vec<DocumentCopy>,
    /// `discounttypeset dt1`: a percentage discount itself is rounded (else the value after
    /// it is; `dt0`, the default).
    #[serde(default)]
    pub discount_first: bool,
    /// True between `trend fe0` and `trftrend`: the last receipt's footer is open.
    #[serde(default)]
    pub footer_open: bool,
    /// The barcode (`ftrcfg bc`) for the next receipt's footer.
    #[serde(default)]
    pub next_barcode: Option<String>,
    /// The QR code (`qrcode tx`) for the next receipt's footer.
    #[serde(default)]
    pub next_qr: Option<String>,
    /// True while a receipt is open (between `trinit` and `trend`/`prncancel`).
    pub open_receipt: bool,
    /// Document counters (`scnt`).
    #[serde(default)]
    pub counters: Counters,
    /// PTU slots A..G.
    #[serde(default = "default_vat_rates")]
    pub vat_rates: [VatRate; 7],
    /// The device's unique number (`nu`).
    #[serde(default = "default_unique_number")]
    pub unique_number: String,
    /// Name/rate lock database: normalised item name → lowest rate it was sold at.
    #[serde(default)]
    pub products: BTreeMap<String, VatRate>,
    /// The open receipt, if any (`open_receipt` mirrors it).
    #[serde(default)]
    pub transaction: Option<OpenReceipt>,
    /// The open non-fiscal form, if any.
    #[serde(default)]
    pub form: Option<OpenForm>,
    /// Cash in the drawer (grosze): cash payments less change, plus `cash` in/out.
    #[serde(default)]
    pub cash_in_drawer: u64,
    /// What happened since the last daily report.
    #[serde(default)]
    pub day: DayState,
    /// True if the last daily report was a zero report (no receipts).
    #[serde(default)]
    pub last_report_zero: bool,
}

/// A completed fiscal receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Receipt number (`scnt bn` after it was printed).
    pub number: u64,
    pub lines: Vec<ReceiptLine>,
    /// Payments (not the change), in the order sent.
    pub payments: Vec<ReceiptPayment>,
    /// Amount due (`trend to`).
    pub total: u64,
    /// Buyer's NIP (`trnipset`), or `null`.
    pub buyer_nip: Option<String>,
    /// Local time of `trend`, `yyyy-mm-ddThh:mm:ss`.
    #[serde(default)]
    pub printed_at: String,
    /// Change given back (grosze).
    #[serde(default)]
    pub change: u64,
    /// Discounts and surcharges on the whole bill, in order.
    #[serde(default, alias = "adjustments", skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<Adjustment>,
    /// Returnable packaging (deposits), issued and returned, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deposits: Vec<Deposit>,
    /// Deposits issued (`trend op`), outside the fiscal total.
    #[serde(default)]
    pub deposits_issued: u64,
    /// Deposits returned (`trend om`).
    #[serde(default)]
    pub deposits_returned: u64,
    /// What the customer pays: `total + deposits_issued − deposits_returned`.
    #[serde(default)]
    pub amount_due: u64,
    /// Gross sales per VAT letter after every discount and surcharge.
    #[serde(default)]
    pub vat_totals: BTreeMap<String, u64>,
    /// Free footer lines (`trftrln`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub footer: Vec<String>,
    /// The footer's barcode, if one was configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barcode: Option<String>,
    /// The footer's QR code, if one was prepared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr: Option<String>,
}

/// A returnable-packaging line (`trpack`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposit {
    /// The packaging id (`na`).
    pub code: String,
    /// The description (`de`), if sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Deposit per piece.
    pub unit_price: u64,
    /// Pieces.
    pub quantity: u64,
    /// `unit_price × quantity`.
    pub amount: u64,
    /// True when paid back (`ne1`).
    pub returned: bool,
}

/// The buyer on a VAT invoice.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceBuyer {
    pub name: String,
    pub nip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A printed VAT invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// The printer's invoice counter after it (`scnt fn`).
    pub number: u64,
    /// The shop's invoice number (`trfvnumber nb`).
    pub invoice_number: String,
    pub buyer: InvoiceBuyer,
    pub lines: Vec<ReceiptLine>,
    /// The fiscal total (`trend to`).
    pub total: u64,
    /// Gross sales per VAT letter.
    pub vat_totals: BTreeMap<String, u64>,
    /// Copies printed after the original (`trfvinit cc`).
    pub copies: u8,
    /// Free lines (`trfvfreedata`), in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub free_data: Vec<String>,
    /// Local time of `trend`.
    pub printed_at: String,
}

/// A periodic report (`periodicrepbydates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodicReport {
    /// The document number it took (`scnt hn`).
    pub number: u64,
    /// First and last day, `yyyy-mm-dd`.
    pub from: String,
    pub to: String,
    /// The summary form rather than the full one.
    pub summary: bool,
    /// Daily reports in the range.
    pub daily_reports: u64,
    /// Gross sales per VAT letter over the range.
    pub totals: BTreeMap<String, u64>,
}

/// A copy printed from protected memory (`ecprndoc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentCopy {
    /// The document number it took (`scnt hn`).
    pub number: u64,
    /// `receipt` or `invoice`.
    pub of: String,
    /// The numbers of the documents copied.
    pub documents: Vec<u64>,
}

/// One sale line of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptLine {
    /// UTF-8, decoded from the Windows-1250 wire bytes.
    pub name: String,
    /// VAT letter A..G.
    pub vat: String,
    /// Exact decimal as a string, e.g. "1.5".
    pub quantity: String,
    /// Gross unit price (`pr`).
    pub unit_price: u64,
    /// Line value, unit price × quantity rounded half-up (before a line discount).
    pub amount: u64,
    /// A discount or surcharge on this line (`trline rp/rw`).
    #[serde(default, alias = "adjustment", skip_serializing_if = "Option::is_none")]
    pub discount: Option<Adjustment>,
    /// PKWiU (`np`, invoices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkwiu: Option<String>,
    /// Product code (`nc`, invoices).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// One payment of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptPayment {
    /// `cash`, `card`, `cheque`, `voucher`, `credit`, `other`, `transfer`.
    pub method: String,
    /// Amount paid (grosze).
    pub amount: u64,
}

/// Whether an [`Adjustment`] lowers or raises the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    /// Lowers the value (`rd1`, the default).
    Discount,
    /// Raises the value (`rd0`).
    Surcharge,
}

/// A discount or surcharge, resolved to grosze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    pub kind: AdjustmentKind,
    /// Resolved amount in grosze (a percentage is rounded half-up).
    pub amount: u64,
    /// The printed name (`na` / `rn`), if sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Adjustment {
    /// The signed effect on a value.
    pub fn signed(&self) -> i128 {
        match self.kind {
            AdjustmentKind::Discount => -i128::from(self.amount),
            AdjustmentKind::Surcharge => i128::from(self.amount),
        }
    }
}

/// A daily (Z) report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyReport {
    /// Report number (`scnt rd` after it was printed).
    pub number: u64,
    /// `yyyy-mm-dd`.
    pub date: String,
    /// Gross sales per VAT letter, e.g. {"A": 1230}.
    pub totals: std::collections::BTreeMap<String, u64>,
    /// Receipts completed since the previous report.
    #[serde(default)]
    pub receipts: u64,
    /// Receipts cancelled since the previous report.
    #[serde(default)]
    pub cancelled: u64,
}

/// A cash deposit or withdrawal (`cash`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashOperation {
    /// `in` or `out`.
    pub direction: String,
    /// Amount in grosze.
    pub amount: u64,
}

/// A completed non-fiscal form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Printout {
    /// Document number (the `scnt hn` it took).
    pub number: u64,
    /// `s1` of each `formline`, in order.
    pub lines: Vec<String>,
}

/// Document counters, as reported by `scnt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// `rd`: daily reports made.
    pub daily_reports: u64,
    /// `hn`: the next document number.
    pub next_printout: u64,
    /// `bn`: the last completed receipt's number.
    pub last_receipt: u64,
    /// `bc`: cancelled receipts.
    pub cancelled: u64,
    /// `bt`: receipts including cancelled ones.
    pub receipts_total: u64,
    /// `fn`: VAT invoices printed.
    pub invoices: u64,
    /// `fc`: VAT invoices cancelled.
    pub cancelled_invoices: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            daily_reports: 0,
            next_printout: 1,
            last_receipt: 0,
            cancelled: 0,
            receipts_total: 0,
            invoices: 0,
            cancelled_invoices: 0,
        }
    }
}

/// Sales since the last daily report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DayState {
    /// Gross sales per VAT letter.
    pub totals: BTreeMap<String, u64>,
    /// Completed receipts.
    pub receipts: u64,
    /// Cancelled receipts.
    pub cancelled: u64,
    /// Printed VAT invoices.
    pub invoices: u64,
    /// Date of the first sale since the last report; a sale on a later day needs a report first (383).
    pub first_sale: Option<NaiveDate>,
}

/// A receipt between `trinit` and `trend`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenReceipt {
    /// `bm1`: lines are printed at `trend`.
    pub block_mode: bool,
    /// Sale lines so far.
    pub lines: Vec<OpenLine>,
    /// Bill discounts/surcharges.
    #[serde(alias = "adjustments")]
    pub discounts: Vec<Adjustment>,
    /// Gross sales per VAT letter after the bill discounts so far (each is spread over
    /// the letters when it is given).
    pub vat_totals: BTreeMap<String, u64>,
    /// Returnable packaging so far.
    pub deposits: Vec<Deposit>,
    /// Set for a VAT invoice (`trfvinit`).
    pub invoice: Option<OpenInvoice>,
    /// Payments so far.
    pub payments: Vec<ReceiptPayment>,
    /// Change declared with `trpayment re1`.
    pub change: u64,
    /// Buyer's NIP (`trnipset`; the last one counts).
    pub buyer_nip: Option<String>,
    /// Local time of `trinit`.
    pub started_at: String,
}

/// The invoice part of an open transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OpenInvoice {
    pub copies: u8,
    pub buyer: Option<InvoiceBuyer>,
    pub number: Option<String>,
    pub free_data: Vec<String>,
}

/// A line of the open receipt, with what the model needs to check it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenLine {
    /// The line as it will be stored.
    pub line: ReceiptLine,
    /// PTU slot index 0..=6.
    pub slot: u8,
    /// The rate of that slot when sold.
    pub rate: VatRate,
    /// The rate-lock key (normalised name).
    pub key: String,
}

/// A non-fiscal form between `formstart` and `formend`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenForm {
    /// The form number (`fn`).
    pub form: u32,
    /// `s1` of each `formline`.
    pub lines: Vec<String>,
}

fn default_vat_rates() -> [VatRate; 7] {
    [
        VatRate::Percent(2300),
        VatRate::Percent(800),
        VatRate::Percent(500),
        VatRate::Percent(0),
        VatRate::Exempt,
        VatRate::Inactive,
        VatRate::Inactive,
    ]
}

fn default_unique_number() -> String {
    DEFAULT_UNIQUE_NUMBER.to_string()
}

impl Default for FiscalMemory {
    /// The memory of a fresh fiscal printer.
    fn default() -> Self {
        FiscalMemory {
            receipts: Vec::new(),
            daily_reports: Vec::new(),
            cash_operations: Vec::new(),
            printouts: Vec::new(),
            invoices: Vec::new(),
            periodic_reports: Vec::new(),
            copies: Vec::new(),
            discount_first: false,
            footer_open: false,
            next_barcode: None,
            next_qr: None,
            open_receipt: false,
            counters: Counters::default(),
            vat_rates: default_vat_rates(),
            unique_number: default_unique_number(),
            products: BTreeMap::new(),
            transaction: None,
            form: None,
            cash_in_drawer: 0,
            day: DayState::default(),
            last_report_zero: false,
        }
    }
}

/// What the model did with one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The reply to send, or `None` when the printer holds the command (paper out, cover
    /// open) until [`Printer::resume`] is called after the condition clears.
    pub reply: Option<Frame>,
    /// True if fiscal memory changed and must be persisted before the reply goes out.
    /// Lines, payments and other progress inside an open document change only the
    /// volatile `transaction`/`form` parts and are not fiscal events.
    pub fiscal_event: bool,
}

/// A model printer.
#[derive(Debug, Clone)]
pub struct Printer {
    memory: FiscalMemory,
    /// Paper is out now.
    paper_out: bool,
    /// Lines that can still be printed before the paper runs out.
    lines_left: Option<u32>,
    cover_open: bool,
    /// Commands waiting for paper / a closed cover, oldest first.
    held: VecDeque<Frame>,
    /// Tokened answers for `rpt`, oldest first.
    answers: VecDeque<(u16, Frame)>,
    /// Set by handlers that change `memory`.
    changed: bool,
}

impl Printer {
    /// A fresh fiscal printer: VAT A 23, B 8, C 5, D 0, E exempt, F/G inactive.
    pub fn new() -> Self {
        Self::from_memory(FiscalMemory::default())
    }
    /// A printer that continues from saved memory.
    ///
    /// An open transaction stays open. A memory with `open_receipt: true` but no stored
    /// transaction (e.g. a hand-written state file) gets an empty open receipt.
    pub fn from_memory(mut memory: FiscalMemory) -> Self {
        if memory.open_receipt && memory.transaction.is_none() {
            memory.transaction = Some(OpenReceipt::default());
        }
        memory.open_receipt = memory.transaction.is_some();
        Printer {
            memory,
            paper_out: false,
            lines_left: None,
            cover_open: false,
            held: VecDeque::new(),
            answers: VecDeque::new(),
            changed: false,
        }
    }
    /// The fiscal memory (persist it after every [`Outcome::fiscal_event`]).
    pub fn memory(&self) -> &FiscalMemory {
        &self.memory
    }
    /// Handle one decoded command frame at local time `now`.
    pub fn handle(&mut self, command: &Frame, now: NaiveDateTime) -> Outcome {
        self.handle_frame(command, now)
    }
    /// Paper runs out now (`lines == None`) or after `lines` more printed lines.
    ///
    /// With `Some(n)` the paper counts as present until a printed line finds none left.
    pub fn paper_out(&mut self, after_lines: Option<u32>) {
        match after_lines {
            None => {
                self.paper_out = true;
                self.lines_left = None;
            }
            Some(n) => {
                self.paper_out = false;
                self.lines_left = Some(n);
            }
        }
    }
    /// Paper is back.
    pub fn paper_back(&mut self) {
        self.paper_out = false;
        self.lines_left = None;
    }
    /// Open or close the cover.
    pub fn set_cover_open(&mut self, open: bool) {
        self.cover_open = open;
    }
    /// Power failure and restart: an open receipt is cancelled as a real printer does;
    /// volatile state is reset. Returns true if memory changed.
    pub fn power_cycle(&mut self) -> bool {
        self.held.clear();
        self.answers.clear();
        self.changed = false;
        self.cancel_open_documents();
        std::mem::take(&mut self.changed)
    }
    /// After paper is back / the cover closed: the held command's outcome, if any.
    pub fn resume(&mut self, now: NaiveDateTime) -> Option<Outcome> {
        self.resume_held(now)
    }
    /// True while the paper is out.
    pub fn is_paper_out(&self) -> bool {
        self.paper_out
    }
    /// True while the cover is open.
    pub fn is_cover_open(&self) -> bool {
        self.cover_open
    }
    /// Number of commands held until paper is back / the cover is closed.
    pub fn held_commands(&self) -> usize {
        self.held.len()
    }
}

impl Default for Printer {
    fn default() -> Self {
        Self::new()
    }
}
