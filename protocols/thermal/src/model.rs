//! A behavioural model of a Thermal printer, the emulator's brain. Sans-IO: decoded items
//! in ([`Printer::input`]), bytes to send out; time is passed in.
//!
//! It keeps what the exactly-once rule reads: the TRF flag (cleared by `$h`, set by a good
//! close, cleared by a cancel; non-volatile), PAR_NUM (fiscal receipts since the last daily
//! report), the open transaction, and the number of the last printed document. Paper: when
//! the paper is out, a command that prints is held with everything behind it until paper is
//! back; DLE is answered at once (it works off-line), so a host sees `PE` and waits.
//! A power cycle cancels an open receipt (a guess: the reference says only that an open
//! receipt is cancelled after 20 minutes). The display error mode (0) behaves as silent here:
//! the model never halts for a key.

use crate::command::{Command, Dialect, ErrorMode, PaymentType};
use crate::error;
use crate::frame::{Frame, FrameError, Item};
use crate::reply::{self, Dle, Enq, Identity, Rate, Status};
use crate::text::Encoding;
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;

/// The error for `$h` or a report with a receipt open. Not in the reference (90–99 are
/// "transaction state" errors); a guess of the model.
pub const TRANSACTION_OPEN: u32 = 96;

/// One printed line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRecord {
    pub name: String,
    pub quantity: String,
    pub unit: Option<String>,
    pub vat: char,
    pub price: u64,
    pub gross: u64,
}

/// One payment of a receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    pub kind: PaymentType,
    pub amount: u64,
}

/// A completed fiscal receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// PAR_NUM after it: its number since the last daily report.
    pub number: u64,
    /// The printed document number.
    pub document: u64,
    pub lines: Vec<LineRecord>,
    pub payments: Vec<PaymentRecord>,
    pub total: u64,
    pub buyer_nip: Option<String>,
    pub cashier: String,
}

/// A daily (Z) report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyReport {
    pub date: NaiveDate,
    pub document: u64,
    pub receipts: u64,
    pub totals: [u64; 7],
}

/// A cash in or out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashOperation {
    pub deposit: bool,
    pub amount: u64,
    pub document: u64,
}

/// The receipt being built.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct OpenReceipt {
    pub lines: Vec<LineRecord>,
    pub payments: Vec<PaymentRecord>,
    pub buyer_nip: Option<String>,
}

/// Counters of the model's own (not the device's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Counters {
    /// Receipts cancelled (`0$e`, power cycles).
    pub cancelled: u64,
}

/// What survives a power cycle: the state file of `fiscald sim thermal`, the same shape as
/// `sim posnet`'s where they share a meaning.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    pub receipts: Vec<Receipt>,
    pub daily_reports: Vec<DailyReport>,
    pub cash_operations: Vec<CashOperation>,
    /// Non-fiscal printouts (not emulated: always empty).
    pub printouts: Vec<String>,
    /// True while a receipt is open.
    pub open_receipt: bool,
    #[serde(default)]
    pub open: Option<OpenReceipt>,
    /// TRF: the last transaction was completed.
    pub trf: bool,
    /// PAR_NUM: fiscal receipts since the last daily report.
    pub receipts_since_report: u64,
    /// The number of the last printed document (receipts, cash operations, reports).
    pub last_document: u64,
    /// Gross totals per VAT letter since the last daily report.
    pub totals: [u64; 7],
    /// Cash in the drawer.
    pub cash: u64,
    pub vat_rates: [Rate; 7],
    pub unique_number: String,
    pub resets: u32,
    pub last_report: Option<NaiveDate>,
    #[serde(default)]
    pub counters: Counters,
}

impl Default for Memory {
    fn default() -> Self {
        Memory {
            receipts: Vec::new(),
            daily_reports: Vec::new(),
            cash_operations: Vec::new(),
            printouts: Vec::new(),
            open_receipt: false,
            open: None,
            trf: true,
            receipts_since_report: 0,
            last_document: 0,
            totals: [0; 7],
            cash: 0,
            vat_rates: [
                Rate::Percent(2300),
                Rate::Percent(800),
                Rate::Percent(500),
                Rate::Percent(0),
                Rate::Exempt,
                Rate::Inactive,
                Rate::Inactive,
            ],
            unique_number: "THM12345678".into(),
            resets: 0,
            last_report: None,
            counters: Counters::default(),
        }
    }
}

/// The outcome of one input.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Bytes to send back (a reply frame, a status byte).
    pub reply: Vec<u8>,
    /// The fiscal memory changed (the emulator saves it).
    pub fiscal_event: bool,
}

/// A Thermal printer.
#[derive(Debug)]
pub struct Printer {
    memory: Memory,
    pub dialect: Dialect,
    pub encoding: Encoding,
    error_mode: ErrorMode,
    last_error: u32,
    command_ok: bool,
    paper_out: bool,
    /// Printed lines until the paper runs out.
    paper_left: Option<u32>,
    cover_open: bool,
    /// Input held while the paper is out.
    held: VecDeque<Item>,
}

/// Whether a command prints (and so waits for paper).
fn prints(c: &Command) -> bool {
    matches!(
        c,
        Command::Line(_)
            | Command::Close { .. }
            | Command::CashIn(_)
            | Command::CashOut(_)
            | Command::DailyReport { .. }
            | Command::Begin { .. }
    )
}

impl Printer {
    pub fn new(memory: Memory, dialect: Dialect, encoding: Encoding) -> Printer {
        Printer {
            memory,
            dialect,
            encoding,
            error_mode: ErrorMode::Display,
            last_error: 0,
            command_ok: true,
            paper_out: false,
            paper_left: None,
            cover_open: false,
            held: VecDeque::new(),
        }
    }

    pub fn memory(&self) -> &Memory {
        &self.memory
    }

    /// The paper runs out now, or after `lines` more printed lines.
    pub fn paper_out(&mut self, lines: Option<u32>) {
        match lines {
            None | Some(0) => self.paper_out = true,
            Some(n) => self.paper_left = Some(n),
        }
    }

    pub fn paper_back(&mut self) {
        self.paper_out = false;
        self.paper_left = None;
    }

    /// An open cover shows as a mechanism error (DLE's ERR) and holds printing like paper.
    pub fn set_cover_open(&mut self, open: bool) {
        self.cover_open = open;
    }

    fn holding(&self) -> bool {
        self.paper_out || self.cover_open
    }

    /// The power went off and on: held input is lost, an open receipt is cancelled, the
    /// error mode goes back to display. Returns whether the fiscal memory changed.
    pub fn power_cycle(&mut self) -> bool {
        self.held.clear();
        self.error_mode = ErrorMode::Display;
        self.last_error = 0;
        self.command_ok = true;
        self.memory.resets += 1;
        if self.memory.open.take().is_some() {
            self.memory.open_receipt = false;
            self.memory.trf = false;
            self.memory.counters.cancelled += 1;
        }
        true
    }

    /// The DLE status byte now.
    pub fn dle(&self) -> Dle {
        Dle {
            online: true,
            paper_end: self.paper_out,
            error: self.cover_open,
        }
    }

    /// The ENQ status byte now.
    pub fn enq(&self) -> Enq {
        Enq {
            fiscal: true,
            command_ok: self.command_ok,
            in_transaction: self.memory.open.is_some(),
            transaction_ok: self.memory.trf,
        }
    }

    /// Take one decoded item, on `today` by the printer's clock.
    pub fn input(&mut self, item: Item, today: NaiveDate) -> Outcome {
        // DLE works at any time, even with input held.
        if item == Item::Byte(crate::DLE) {
            return Outcome {
                reply: vec![self.dle().to_byte()],
                fiscal_event: false,
            };
        }
        if !self.held.is_empty() {
            self.held.push_back(item);
            return Outcome::default();
        }
        self.run(item, today)
    }

    /// Run held input once the paper is back; each outcome in order.
    pub fn resume(&mut self, today: NaiveDate) -> Vec<Outcome> {
        let mut out = Vec::new();
        while !self.holding() {
            let Some(item) = self.held.pop_front() else {
                break;
            };
            out.push(self.run(item, today));
        }
        out
    }

    /// Whether input is held (for the status summary).
    pub fn held(&self) -> usize {
        self.held.len()
    }

    fn run(&mut self, item: Item, today: NaiveDate) -> Outcome {
        match item {
            Item::Byte(crate::ENQ) => Outcome {
                reply: vec![self.enq().to_byte()],
                fiscal_event: false,
            },
            Item::Byte(_) => Outcome::default(),
            Item::Invalid { error, .. } => {
                self.fail(match error {
                    FrameError::BadChecksum { .. } => error::BAD_CHECKSUM,
                    _ => 3,
                });
                Outcome::default()
            }
            Item::Frame(frame) => self.frame(frame, today),
        }
    }

    fn fail(&mut self, code: u32) {
        self.command_ok = false;
        self.last_error = code;
    }

    fn frame(&mut self, frame: Frame, today: NaiveDate) -> Outcome {
        let command = match Command::from_frame(&frame, self.dialect, self.encoding) {
            Ok(c) => c,
            Err(crate::command::CommandError::Frame(_)) => {
                self.fail(error::BAD_CHECKSUM);
                return Outcome::default();
            }
            Err(crate::command::CommandError::Unknown(_)) => {
                self.fail(error::UNKNOWN_COMMAND);
                return Outcome::default();
            }
            Err(_) => {
                self.fail(4);
                return Outcome::default();
            }
        };
        if prints(&command) && self.holding() {
            self.held.push_back(Item::Frame(frame));
            return Outcome::default();
        }
        let mut reply = Vec::new();
        let result = match command {
            Command::ErrorQuery => {
                reply = reply::error_reply(self.last_error).encode();
                return Outcome {
                    reply,
                    fiscal_event: false,
                };
            }
            Command::Identity => {
                let id = match self.dialect {
                    Dialect::Posnet => ("Thermal HS FV EJ", "1.01"),
                    Dialect::Novitus => ("POINT", "1.01"),
                };
                let f = Identity {
                    model: id.0.into(),
                    version: id.1.into(),
                }
                .to_frame();
                return Outcome {
                    reply: f.encode(),
                    fiscal_event: false,
                };
            }
            Command::Status { mode } => {
                let f = self.status_frame(mode, today);
                self.last_error = 0;
                return Outcome {
                    reply: f.encode(),
                    fiscal_event: false,
                };
            }
            Command::SetErrorMode(m) => {
                self.error_mode = m;
                Ok(false)
            }
            other => self.fiscal(other, today),
        };
        let fiscal_event = match result {
            Ok(changed) => {
                self.command_ok = true;
                self.last_error = 0;
                changed
            }
            Err(code) => {
                self.fail(code);
                false
            }
        };
        if fiscal_event {
            self.memory.open_receipt = self.memory.open.is_some();
        }
        reply.clear();
        Outcome {
            reply,
            fiscal_event,
        }
    }

    fn status_frame(&self, mode: u32, today: NaiveDate) -> Frame {
        if mode == 50 {
            return reply::last_document_reply(self.memory.last_document);
        }
        let m = &self.memory;
        let s = Status {
            last_error: self.last_error,
            fiscal: true,
            in_transaction: m.open.is_some(),
            trf: m.trf,
            resets: m.resets,
            date: (
                today.year().rem_euclid(100) as u32,
                today.month(),
                today.day(),
            ),
            vat: m.vat_rates,
            receipts: m.receipts_since_report,
            totals: m.totals,
            cash: m.cash,
            unique: m.unique_number.clone(),
        };
        let form = match (self.dialect, mode) {
            (Dialect::Novitus, _) | (Dialect::Posnet, 23) => 2,
            _ => 1,
        };
        s.to_frame(form, self.encoding)
    }

    /// One printed line: the paper may run out after it.
    fn printed(&mut self) {
        if let Some(n) = self.paper_left {
            if n <= 1 {
                self.paper_left = None;
                self.paper_out = true;
            } else {
                self.paper_left = Some(n - 1);
            }
        }
    }

    /// A fiscal command: `Ok(changed)` or the error code.
    fn fiscal(&mut self, c: Command, today: NaiveDate) -> Result<bool, u32> {
        let m = &mut self.memory;
        match c {
            Command::Begin { buyer_nip } => {
                if m.open.is_some() {
                    return Err(TRANSACTION_OPEN);
                }
                m.open = Some(OpenReceipt {
                    buyer_nip,
                    ..OpenReceipt::default()
                });
                m.trf = false;
                Ok(true)
            }
            Command::Line(l) => {
                let vat_slot = reply::LETTERS.iter().position(|x| *x == l.vat);
                let rate = vat_slot.map(|i| m.vat_rates[i]);
                let open = m.open.as_mut().ok_or(error::NOT_IN_TRANSACTION)?;
                if l.number == 0 {
                    return Err(22);
                }
                if usize::from(l.number) != open.lines.len() + 1 {
                    return Err(4);
                }
                if l.name.trim().is_empty() || l.name.chars().count() > 40 {
                    return Err(16);
                }
                if l.quantity <= rust_decimal::Decimal::ZERO {
                    return Err(17);
                }
                if matches!(rate, None | Some(Rate::Inactive)) {
                    return Err(18);
                }
                let exact = l.quantity * rust_decimal::Decimal::from(l.price);
                let rounded = exact.round_dp_with_strategy(
                    0,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                );
                if u64::try_from(rounded).ok() != Some(l.gross) {
                    return Err(error::LINE_MISMATCH);
                }
                open.lines.push(LineRecord {
                    name: l.name,
                    quantity: l.quantity.normalize().to_string(),
                    unit: l.unit,
                    vat: l.vat,
                    price: l.price,
                    gross: l.gross,
                });
                self.printed();
                Ok(true)
            }
            Command::Payment { kind, amount } => {
                let open = m.open.as_mut().ok_or(error::NOT_IN_TRANSACTION)?;
                if amount == 0 {
                    return Err(26);
                }
                open.payments.push(PaymentRecord { kind, amount });
                Ok(true)
            }
            Command::Close { cashier, total, .. } => {
                let open = m.open.as_ref().ok_or(29u32)?;
                if open.lines.is_empty() {
                    return Err(23);
                }
                let sum: u64 = open.lines.iter().map(|l| l.gross).sum();
                if sum != total {
                    return Err(error::BAD_TOTAL);
                }
                let paid: u64 = open.payments.iter().map(|p| p.amount).sum();
                if !open.payments.is_empty() && paid < total {
                    return Err(26);
                }
                let open = m.open.take().unwrap_or_default();
                for l in &open.lines {
                    if let Some(i) = reply::LETTERS.iter().position(|x| *x == l.vat) {
                        m.totals[i] += l.gross;
                    }
                }
                let cash_paid: u64 = open
                    .payments
                    .iter()
                    .filter(|p| p.kind == PaymentType::Cash)
                    .map(|p| p.amount)
                    .sum();
                m.cash += if open.payments.is_empty() {
                    total
                } else {
                    cash_paid.min(total)
                };
                m.receipts_since_report += 1;
                m.last_document += 1;
                m.trf = true;
                m.receipts.push(Receipt {
                    number: m.receipts_since_report,
                    document: m.last_document,
                    lines: open.lines,
                    payments: open.payments,
                    total,
                    buyer_nip: open.buyer_nip,
                    cashier,
                });
                self.printed();
                Ok(true)
            }
            Command::Cancel => {
                if m.open.take().is_some() {
                    m.trf = false;
                    m.counters.cancelled += 1;
                    return Ok(true);
                }
                Ok(false)
            }
            Command::CashIn(a) | Command::CashOut(a) => {
                let deposit = matches!(c, Command::CashIn(_));
                if m.open.is_some() {
                    return Err(TRANSACTION_OPEN);
                }
                if a == 0 || (!deposit && a > m.cash) {
                    return Err(30);
                }
                if deposit {
                    m.cash += a;
                } else {
                    m.cash -= a;
                }
                m.last_document += 1;
                m.cash_operations.push(CashOperation {
                    deposit,
                    amount: a,
                    document: m.last_document,
                });
                self.printed();
                Ok(true)
            }
            Command::DailyReport { date } => {
                if m.open.is_some() {
                    return Err(TRANSACTION_OPEN);
                }
                if date != today {
                    return Err(7);
                }
                if m.last_report == Some(date) {
                    return Err(error::REPORT_EXISTS);
                }
                m.last_document += 1;
                m.daily_reports.push(DailyReport {
                    date,
                    document: m.last_document,
                    receipts: m.receipts_since_report,
                    totals: m.totals,
                });
                m.receipts_since_report = 0;
                m.totals = [0; 7];
                m.last_report = Some(date);
                self.printed();
                Ok(true)
            }
            Command::ErrorQuery
            | Command::Identity
            | Command::Status { .. }
            | Command::SetErrorMode(_) => Ok(false),
        }
    }
}
