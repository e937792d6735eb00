//! A behavioural model of a Novitus XML fiscal printer (feature `model`): the emulator's
//! brain. It takes a packet's body and the local time and answers like a printer: fiscal
//! memory (receipts, daily reports, cash operations, printouts), a VAT table, counters, the
//! open receipt, the last transaction with its `systemno`, paper and cover. No I/O.
//!
//! Rules (the reference's, or our choice where it leaves one; each choice is a constant or
//! a line here):
//! - Errors are never answered inline: a command that fails sets the error code
//!   (`<error action="get"/>`) and `lastcommanderror` in `<enq/>`; a packet's commands after
//!   a failed one are not run.
//! - Only queries are answered (`enq`, `dle`, `error get`, `info`, `taxrates`); a packet
//!   without one gets no reply.
//! - Without paper (or with the cover open) every printing command fails with
//!   [`NO_PAPER`] and does nothing; it may be sent again once paper is back.
//! - `receipt close` checks `total` against the lines (error 27) and the payments (26),
//!   and the buyer's NIP check digit (1098). Every document but a cancelled receipt takes
//!   the next printout number (`lastprintout`): our choice, not confirmed on a device.
//! - A power cycle keeps the open receipt open (the host must cancel it).

mod exec;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub use exec::Outcome;

/// "No paper" (litex's error table): also used for an open cover.
pub const NO_PAPER: u32 = 1037;
/// The model's identity (`info action="version"`), as a real POINT answered.
pub const VERSION: &str = "POINT 1.01";
/// Unique number of a fresh model printer.
pub const DEFAULT_UNIQUE_NUMBER: &str = "NOV12345678";
/// Most lines on one receipt.
pub const MAX_LINES: usize = 500;
/// Longest item name.
pub const MAX_NAME: usize = 40;

/// One PTU slot's rate: basis points, exempt (`free`) or not in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rate {
    BasisPoints(u32),
    Exempt,
    Inactive,
}

fn default_rates() -> [Rate; 7] {
    use Rate::*;
    [
        BasisPoints(2300),
        BasisPoints(800),
        BasisPoints(500),
        BasisPoints(0),
        Exempt,
        Inactive,
        Inactive,
    ]
}

fn default_unique() -> String {
    DEFAULT_UNIQUE_NUMBER.to_string()
}

/// The printer's persistent memory: the emulator's `--state` JSON file (the shape of `sim
/// posnet`'s). Amounts are grosze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    pub receipts: Vec<Receipt>,
    pub daily_reports: Vec<DailyReport>,
    pub cash_operations: Vec<CashOperation>,
    pub printouts: Vec<Printout>,
    /// True while a receipt is open.
    pub open_receipt: bool,
    #[serde(default)]
    pub counters: Counters,
    #[serde(default = "default_rates")]
    pub vat_rates: [Rate; 7],
    #[serde(default = "default_unique")]
    pub unique_number: String,
    #[serde(default)]
    pub transaction: Option<OpenReceipt>,
    /// The last receipt's state for `info action="lasttransaction"`.
    #[serde(default)]
    pub last_transaction: Option<LastTransaction>,
    #[serde(default)]
    pub cash_in_drawer: u64,
    /// Gross sales per VAT letter since the last daily report.
    #[serde(default)]
    pub day_totals: BTreeMap<String, u64>,
    /// Receipts since the last daily report.
    #[serde(default)]
    pub day_receipts: u64,
    /// The last command's error code (0: none).
    #[serde(default)]
    pub last_error: u32,
    /// `error action="set" value="silent"` was received.
    #[serde(default)]
    pub silent: bool,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            receipts: Vec::new(),
            daily_reports: Vec::new(),
            cash_operations: Vec::new(),
            printouts: Vec::new(),
            open_receipt: false,
            counters: Counters::default(),
            vat_rates: default_rates(),
            unique_number: default_unique(),
            transaction: None,
            last_transaction: None,
            cash_in_drawer: 0,
            day_totals: BTreeMap::new(),
            day_receipts: 0,
            last_error: 0,
            silent: false,
        }
    }
}

/// Document counters (`info action="checkout"`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Counters {
    /// `lastreceipt`: the last closed receipt's number.
    pub last_receipt: u64,
    /// `receiptcount`: receipts since the last daily report.
    pub receipt_count: u64,
    /// `lastprintout`: the last document number (every document but a cancelled receipt).
    pub last_printout: u64,
    /// `resetcount`: RAM resets.
    pub reset_count: u64,
}

/// A closed receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub number: u64,
    pub lines: Vec<Line>,
    pub payments: Vec<ReceiptPayment>,
    pub total: u64,
    pub buyer_nip: Option<String>,
    /// The host's `systemno`.
    #[serde(default)]
    pub systemno: String,
    #[serde(default)]
    pub printed_at: String,
    /// Change given (a `rest` payment).
    #[serde(default)]
    pub change: u64,
}

/// One sold line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// UTF-8, decoded from the Windows-1250 wire bytes and unescaped.
    pub name: String,
    pub vat: String,
    /// Exact decimal as sent.
    pub quantity: String,
    #[serde(default)]
    pub unit: Option<String>,
    pub unit_price: u64,
    /// The line's value after its discount or markup.
    pub amount: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<LineDiscount>,
}

/// A line's discount or markup, in grosze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineDiscount {
    pub value: u64,
    pub markup: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// One payment of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptPayment {
    /// The protocol's `type` (`cash`, `card`, ...).
    pub method: String,
    pub amount: u64,
}

/// The receipt being built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenReceipt {
    pub lines: Vec<Line>,
    pub payments: Vec<ReceiptPayment>,
    pub change: u64,
}

/// What `info action="lasttransaction"` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastTransaction {
    /// `open`, `close` or `canceled`.
    pub state: String,
    pub number: u64,
    pub systemno: String,
    pub total: u64,
    pub date: String,
}

/// A daily report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyReport {
    pub number: u64,
    /// `yyyy-mm-dd`.
    pub date: String,
    pub totals: BTreeMap<String, u64>,
    #[serde(default)]
    pub receipts: u64,
}

/// A cash operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashOperation {
    /// `in` or `out`.
    pub direction: String,
    pub amount: u64,
    #[serde(default)]
    pub number: u64,
}

/// A non-fiscal printout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Printout {
    pub number: u64,
    pub lines: Vec<String>,
}

/// The model printer: memory plus what is not persisted (paper, cover).
#[derive(Debug, Clone, Default)]
pub struct Printer {
    memory: Memory,
    paper_out: bool,
    /// Lines that still print before the paper runs out.
    paper_left: Option<u32>,
    cover_open: bool,
}

impl Printer {
    /// A fresh printer.
    pub fn new() -> Printer {
        Printer::default()
    }

    /// A printer with `memory` (from a state file).
    pub fn from_memory(memory: Memory) -> Printer {
        Printer {
            memory,
            ..Printer::default()
        }
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The paper runs out now, or after `after` more printed lines.
    pub fn paper_out(&mut self, after: Option<u32>) {
        match after {
            None | Some(0) => {
                self.paper_out = true;
                self.paper_left = None;
            }
            Some(n) => self.paper_left = Some(n),
        }
    }

    pub fn paper_back(&mut self) {
        self.paper_out = false;
        self.paper_left = None;
    }

    pub fn set_cover_open(&mut self, open: bool) {
        self.cover_open = open;
    }

    pub fn is_paper_out(&self) -> bool {
        self.paper_out
    }

    /// Power off and on: paper and memory stay, the error mode and code are reset, a RAM
    /// reset is not counted. Returns whether memory changed.
    pub fn power_cycle(&mut self) -> bool {
        let changed = self.memory.silent || self.memory.last_error != 0;
        self.memory.silent = false;
        self.memory.last_error = 0;
        changed
    }

    /// Whether `lines` more lines can print now; takes them from the paper left.
    fn print_lines(&mut self, lines: u32) -> bool {
        if self.paper_out || self.cover_open {
            return false;
        }
        if let Some(left) = self.paper_left {
            if left < lines {
                self.paper_out = true;
                self.paper_left = None;
                return false;
            }
            self.paper_left = Some(left - lines);
        }
        true
    }
}

/// Whether a NIP has ten digits with a good check digit.
pub fn nip_ok(nip: &str) -> bool {
    let digits: Vec<u32> = nip.chars().filter_map(|c| c.to_digit(10)).collect();
    if digits.len() != 10 || nip.chars().count() != 10 {
        return false;
    }
    const W: [u32; 9] = [6, 5, 7, 2, 3, 4, 5, 6, 7];
    let sum: u32 = W.iter().zip(&digits).map(|(w, d)| w * d).sum();
    sum % 11 == digits[9]
}
