//! A behavioural model of a POSNET fiscal printer (feature `model`).
//!
//! It takes decoded command frames and the current local time and answers like a
//! printer: it keeps fiscal memory (receipts, daily reports, cash operations,
//! non-fiscal printouts), a VAT table, counters, the open transaction, the
//! name/rate lock database, paper and cover state, and makes the checks a real
//! device makes. It never does I/O: the emulator program feeds it and persists
//! [`FiscalMemory`] after every [`Outcome::fiscal_event`].

use crate::frame::Frame;
use chrono::NaiveDateTime;
use serde::{Deserialize, Serialize};

/// The printer's persistent memory; this is the emulator's `--state` JSON file.
/// Amounts are integers in grosze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiscalMemory {
    pub receipts: Vec<Receipt>,
    pub daily_reports: Vec<DailyReport>,
    pub cash_operations: Vec<CashOperation>,
    pub printouts: Vec<Printout>,
    /// True while a receipt is open (between `trinit` and `trend`/`prncancel`).
    pub open_receipt: bool,
    // helper: more fields as needed (counters, VAT table, name-lock database,
    // cancelled count, cash in drawer, unique number, the open transaction itself...),
    // all with #[serde(default)] so older files still load.
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub number: u64,
    pub lines: Vec<ReceiptLine>,
    pub payments: Vec<ReceiptPayment>,
    pub total: u64,
    pub buyer_nip: Option<String>,
    // helper: may add `printed_at` (ISO local time), discounts, change
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptLine {
    /// UTF-8, decoded from the Windows-1250 wire bytes.
    pub name: String,
    /// VAT letter A..G.
    pub vat: String,
    /// Exact decimal as a string, e.g. "1.5".
    pub quantity: String,
    pub unit_price: u64,
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptPayment {
    /// `cash`, `card`, `cheque`, `voucher`, `credit`, `other`, `transfer`.
    pub method: String,
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyReport {
    pub number: u64,
    /// `yyyy-mm-dd`.
    pub date: String,
    /// Gross sales per VAT letter, e.g. {"A": 1230}.
    pub totals: std::collections::BTreeMap<String, u64>,
    // helper: receipts count etc. may be added
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashOperation {
    /// `in` or `out`.
    pub direction: String,
    pub amount: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Printout {
    pub number: u64,
    pub lines: Vec<String>,
}

/// What the model did with one command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// The reply to send, or `None` when the printer holds the command (paper out, cover
    /// open) until [`Printer::resume`] is called after the condition clears.
    pub reply: Option<Frame>,
    /// True if fiscal memory changed and must be persisted before the reply goes out.
    pub fiscal_event: bool,
}

/// A model printer.
#[derive(Debug, Clone)]
pub struct Printer {
    memory: FiscalMemory,
    // helper: volatile state (paper, cover, paper-out-after-N-lines countdown, held command,
    // token answer buffer for `rpt`) lives here, not in FiscalMemory.
}

impl Printer {
    /// A fresh fiscal printer: VAT A 23, B 8, C 5, D 0, E exempt, F/G inactive.
    pub fn new() -> Self {
        todo!("helper")
    }
    /// A printer that continues from saved memory.
    pub fn from_memory(memory: FiscalMemory) -> Self {
        todo!("helper")
    }
    pub fn memory(&self) -> &FiscalMemory {
        &self.memory
    }
    /// Handle one decoded command frame at local time `now`.
    pub fn handle(&mut self, command: &Frame, now: NaiveDateTime) -> Outcome {
        todo!("helper")
    }
    /// Paper runs out now (`lines == None`) or after `lines` more printed lines.
    pub fn paper_out(&mut self, after_lines: Option<u32>) {
        todo!("helper")
    }
    /// Paper is back.
    pub fn paper_back(&mut self) {
        todo!("helper")
    }
    /// Open or close the cover.
    pub fn set_cover_open(&mut self, open: bool) {
        todo!("helper")
    }
    /// Power failure and restart: an open receipt is cancelled as a real printer does;
    /// volatile state is reset. Returns true if memory changed.
    pub fn power_cycle(&mut self) -> bool {
        todo!("helper")
    }
    /// After paper is back / the cover closed: the held command's outcome, if any.
    pub fn resume(&mut self, now: NaiveDateTime) -> Option<Outcome> {
        todo!("helper")
    }
}

impl Default for Printer {
    fn default() -> Self {
        Self::new()
    }
}
