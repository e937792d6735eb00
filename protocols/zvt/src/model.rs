//! A behavioural model of a ZVT payment terminal (feature `model`), the emulator's brain.
//!
//! It behaves by amount, so tests and people can drive every path:
//! - last two digits (grosze) 51: declined;
//! - 52: approved and stored, but the Status-Information is never sent; the next command
//!   is answered as usual (status enquiry and repeat receipt recover it);
//! - 53: the card reader takes 20 s, with intermediate status messages meanwhile;
//! - 54: the connection is dropped after the Status-Information is sent, before the
//!   register acknowledges it (the payment stays approved);
//! - anything else: approved.
//!
//! The same rules apply to refunds. The receipt text goes out as print-line messages.
//! Time is passed in.
//!
//! Message sequences (ECR acknowledges every PT message except `80 00 00`/`84 xx`):
//! - sale/refund, approved: `80 00 00`, `04 0F` (27 00 …), `06 D1` × n (the last line has
//!   the cut attribute 0x81), `06 0F 00`;
//! - 51: `80 00 00`, `04 0F` (27 05, 3C text), `06 D1` × n ("ODMOWA"), `06 1E 05`;
//! - 52: `80 00 00` only;
//! - 53: `80 00 00`, `04 FF 0A` (insert card), then `04 FF 17` (please wait) every 2 s until
//!   20 s after the command, then as approved;
//! - 54: `80 00 00`, `04 0F` (27 00 …), then [`Event::DropConnection`].
//!
//! Decisions where real terminals differ:
//! - A payment is stored as `approved` when its Status-Information is sent. Real terminals
//!   commit on the register's `80 00 00` to it; this model keeps it approved when the
//!   connection is lost before that ack (amount 54 needs it), but if the connection stays
//!   and no ack comes within 30 s ([`ACK_TIMEOUT`]) it auto-reverses (status `reversed`,
//!   no reversal record). A negative ack other than `84 9C`/`84 00` to the
//!   Status-Information ("goods not issued") reverses it at once and ends with `06 1E 6C`.
//! - A PT message the register has not acknowledged is sent again every 5 s
//!   ([`REPEAT_INTERVAL`], the terminal's repeat timer) and at once when the serial link
//!   gave up on its frame ([`Terminal::link_failed`]), until [`ACK_TIMEOUT`]: a terminal on
//!   RS-232 cannot see the register go away, so it keeps repeating and stays master.
//! - `84 9C` to any PT message: sent again after 2 s, until 30 s after its first sending.
//!   Any other negative ack to a print line (e.g. `84 CC` printer not ready) is treated
//!   the same way; to other messages it counts as an ack.
//! - While a flow runs the terminal is master: register commands other than Abort (and
//!   acks) get `84 83 00`. Abort is accepted only while the card reader waits (53):
//!   `80 00 00`, then `06 1E 6C`, nothing stored.
//! - Reversal finds the last approved sale with that receipt number in the open batch:
//!   `80 00 00` then the flow as for a sale (04 0F carries 37, the original trace), or
//!   `80 00 00`, `06 1E B4` (already reversed) / `06 1E B5` (unknown receipt, declined,
//!   a refund, or another batch).
//! - Any password is accepted. A currency other than 978/985 gets `84 6F 00`. An amount
//!   of zero gets `84 83 00`.
//! - Repeat receipt with nothing stored: `80 00 00`, `06 1E 83`. The repeated
//!   Status-Information of an auto-reversed payment carries result code 6C.
//! - Trace numbers wrap after 999999 and receipt numbers after 9999 (BCD field sizes).
//! - Batch totals are sales minus refunds of approved (not reversed) payments, not below 0.

use crate::apdu::Apdu;
use crate::bmp::{Field, encode_fields, u64_to_bcd};
use crate::message::{EcrCommand, MessageError, PtMessage, TransactionResult};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

mod build;
pub mod hostile;

use build::*;

/// How long the terminal waits for the register's ack to each message.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(30);
/// How often an unacknowledged PT message is sent again (the terminal's repeat timer).
pub const REPEAT_INTERVAL: Duration = Duration::from_secs(5);
/// When a message is sent again after `84 9C` (and between intermediate statuses).
pub const RETRY_DELAY: Duration = Duration::from_secs(2);
/// How long the slow card reader (amount 53) takes.
pub const SLOW_CARD: Duration = Duration::from_secs(20);
/// Terminal id of a fresh model terminal (8 digits, BMP 29).
pub const DEFAULT_TERMINAL_ID: &str = "52500001";
/// Software version reported by status enquiry.
pub const SW_VERSION: &str = "fiscald-sim-1.0";

/// Print-line attribute of the last line of a receipt (cut point).
pub const ATTR_LAST_LINE: u8 = 0x81;

/// The terminal's persistent state; this is the emulator's `--state` JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalMemory {
    pub transactions: Vec<StoredTransaction>,
    pub batches: Vec<Batch>,
    /// 8 digits.
    #[serde(default = "default_terminal_id")]
    pub terminal_id: String,
    /// The last trace number used (0 = none yet).
    #[serde(default)]
    pub last_trace: u32,
    /// The last receipt number used (0 = none yet).
    #[serde(default)]
    pub last_receipt: u32,
    /// Number of the open batch (closed by end of day).
    #[serde(default = "one")]
    pub batch_number: u32,
    /// The register's last registration, until log-off.
    #[serde(default)]
    pub registration: Option<Registration>,
}

fn default_terminal_id() -> String {
    DEFAULT_TERMINAL_ID.to_string()
}

fn one() -> u32 {
    1
}

impl Default for TerminalMemory {
    fn default() -> Self {
        TerminalMemory {
            transactions: Vec::new(),
            batches: Vec::new(),
            terminal_id: default_terminal_id(),
            last_trace: 0,
            last_receipt: 0,
            batch_number: 1,
            registration: None,
        }
    }
}

/// What the register asked for in `06 00`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registration {
    /// The config byte.
    pub config: u8,
    /// ISO 4217 numeric, if sent.
    pub currency: Option<u16>,
}

/// One card transaction as the terminal stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTransaction {
    pub trace_number: u32,
    pub receipt_number: u32,
    /// `sale`, `refund` or `reversal`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Minor units.
    pub amount: u64,
    /// ISO 4217 numeric.
    pub currency: u16,
    /// `approved`, `declined` or `reversed`.
    pub status: String,
    /// Masked PAN, e.g. `545454******5454`.
    pub masked_pan: String,
    pub card_brand: String,
    pub auth_code: Option<String>,
    /// The batch it belongs to.
    #[serde(default)]
    pub batch: u32,
    /// BMP 27 as sent (0 approved, 5 declined).
    #[serde(default)]
    pub result_code: u8,
    #[serde(default)]
    pub terminal_id: String,
    /// ZVT card type (BMP 8A).
    #[serde(default)]
    pub card_type: Option<u8>,
    /// Local date and time, `yyyy-mm-dd hh:mm:ss`.
    #[serde(default)]
    pub time: String,
    /// Reversals: the reversed payment's trace number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_trace: Option<u32>,
    /// Reversals: the reversed payment's receipt number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_receipt: Option<u32>,
    /// Reversed payments: the receipt number of the reversal (none if auto-reversed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reversed_by: Option<u32>,
}

/// An end-of-day closing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub number: u32,
    pub count: u32,
    /// Net total in minor units (sales − refunds − reversals).
    pub total: u64,
}

/// What the emulator should do besides sending messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Memory changed: persist it.
    Persist,
    /// Drop the connection now (TCP: close; serial: the device goes away briefly).
    DropConnection,
}

/// A PT message waiting to be sent within the flow.
#[derive(Debug)]
struct Step {
    apdu: Apdu,
    /// A payment's Status-Information: this transaction reverses if never acked.
    commit: Option<usize>,
    /// Drop the connection right after sending (amount 54); the flow ends there.
    drop_after: bool,
    /// Keep sending it after negative acks (print lines).
    retry_on_nack: bool,
}

/// The message sent last, until the register acks it.
#[derive(Debug)]
struct Pending {
    step: Step,
    deadline: Instant,
    retry_at: Option<Instant>,
    /// When it is sent again if still unacknowledged ([`REPEAT_INTERVAL`]).
    repeat_at: Instant,
}

/// A payment waiting for the (slow) card reader.
#[derive(Debug, Clone, Copy)]
struct Payment {
    kind: Kind,
    amount: u64,
    currency: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Sale,
    Refund,
}

#[derive(Debug)]
struct CardWait {
    payment: Payment,
    until: Instant,
    next_status: Instant,
}

/// The flow in progress while the terminal is master.
#[derive(Debug, Default)]
struct Flow {
    card_wait: Option<CardWait>,
    steps: VecDeque<Step>,
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Outgoing {
    apdu: Apdu,
    drop_after: bool,
    /// A repetition of the unacknowledged message.
    repeat: bool,
}

/// One APDU the terminal sends, from [`Terminal::poll_message`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// The message.
    pub apdu: Apdu,
    /// True if it repeats the unacknowledged message (a serial transport whose link is
    /// still repeating that frame itself may skip it).
    pub repeat: bool,
}

/// A model terminal.
#[derive(Debug)]
pub struct Terminal {
    memory: TerminalMemory,
    flow: Option<Flow>,
    outbox: VecDeque<Outgoing>,
    events: VecDeque<Event>,
    /// Local wall-clock seconds since 1970 (see [`Terminal::set_clock`]).
    clock: i64,
    /// Send [`TEST_PAN`] in clear on the wire, like a terminal that breaks PCI rules
    /// (see [`hostile`]).
    clear_pan: Option<hostile::Leaker>,
}

/// A well-known test card number (Luhn-valid), sent only in "clear PAN" mode so tests can
/// prove the register never stores or logs a full card number. Never stored in memory.
pub const TEST_PAN: &str = "5454545454545454";

impl Terminal {
    pub fn new() -> Self {
        Self::from_memory(TerminalMemory::default())
    }
    pub fn from_memory(memory: TerminalMemory) -> Self {
        let mut memory = memory;
        if memory.terminal_id.len() != 8 || !memory.terminal_id.bytes().all(|b| b.is_ascii_digit())
        {
            memory.terminal_id = default_terminal_id();
        }
        if memory.batch_number == 0 {
            memory.batch_number = 1;
        }
        Terminal {
            memory,
            flow: None,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            clock: 0,
            clear_pan: None,
        }
    }
    pub fn memory(&self) -> &TerminalMemory {
        &self.memory
    }
    /// Set the wall clock used for receipt dates and BMPs 0C/0D: local time as seconds
    /// since 1970-01-01 00:00:00 (the emulator calls this before each input).
    pub fn set_clock(&mut self, local_seconds: i64) {
        self.clock = local_seconds;
    }
    /// True while a flow is in progress (the terminal is master).
    pub fn is_busy(&self) -> bool {
        self.flow.is_some()
    }
    /// An APDU from the register arrived at `now`.
    pub fn handle_apdu(&mut self, apdu: &Apdu, now: Instant) {
        match EcrCommand::from_apdu(apdu) {
            Ok(EcrCommand::Ack) => self.on_ack(None, now),
            Ok(EcrCommand::Nack(code)) => self.on_ack(Some(code), now),
            Ok(EcrCommand::Abort) => self.on_abort(now),
            Ok(_) if self.flow.is_some() => self.respond(nack(0x83)),
            Ok(cmd) => self.on_command(cmd, now),
            Err(MessageError::Unknown(_)) => self.respond(nack(0x83)),
            Err(_) => self.respond(nack(0x9A)),
        }
    }
    /// Time passed (call at [`Self::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired = self
            .flow
            .as_ref()
            .and_then(|f| f.pending.as_ref())
            .is_some_and(|p| now >= p.deadline);
        if expired {
            let commit = self
                .flow
                .take()
                .and_then(|f| f.pending)
                .and_then(|p| p.step.commit);
            if let Some(idx) = commit {
                self.reverse(idx, None);
            }
            return;
        }
        self.advance(now);
    }
    /// The next APDU to send to the register, if one is due.
    pub fn poll_send(&mut self) -> Option<Apdu> {
        self.poll_message().map(|o| o.apdu)
    }

    /// [`Self::poll_send`], also telling whether the APDU is a repetition.
    pub fn poll_message(&mut self) -> Option<Outbound> {
        let out = self.outbox.pop_front()?;
        if out.drop_after {
            self.events.push_back(Event::DropConnection);
        }
        let repeat = out.repeat;
        let Some(leaker) = self.clear_pan.as_mut() else {
            return Some(Outbound {
                apdu: out.apdu,
                repeat,
            });
        };
        let mut apdus = leaker.leak(out.apdu).into_iter();
        let first = apdus.next()?;
        // A message the fault adds is one more step of the flow, acknowledged as usual.
        if let Some(flow) = self.flow.as_mut() {
            for extra in apdus.rev() {
                flow.steps.push_front(plain(extra));
            }
        }
        Some(Outbound {
            apdu: first,
            repeat,
        })
    }

    /// The serial link gave up on a frame (no ACK after its repetitions): the message
    /// still waiting for the register's acknowledgement is sent again now.
    pub fn link_failed(&mut self, now: Instant) {
        let Some(p) = self.flow.as_mut().and_then(|f| f.pending.as_mut()) else {
            return;
        };
        if p.retry_at.is_none() {
            p.repeat_at = now;
            self.advance(now);
        }
    }

    /// Misbehave like a terminal that sends full card numbers in every text field and
    /// separator style (see [`hostile`]); stored transactions stay masked.
    pub fn set_clear_pan(&mut self, on: bool) {
        if on != self.clear_pan.is_some() {
            self.clear_pan = on.then(hostile::Leaker::default);
        }
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        let flow = self.flow.as_ref()?;
        if let Some(p) = &flow.pending {
            let next = p.retry_at.unwrap_or(p.repeat_at);
            return Some(next.min(p.deadline));
        }
        flow.card_wait.as_ref().map(|w| w.until.min(w.next_status))
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
    /// The connection was lost (or re-established): abandon the flow in progress as a real
    /// terminal would, keeping stored transactions.
    pub fn connection_lost(&mut self, now: Instant) {
        let _ = now;
        // A card wait ends with nothing stored; an approved payment whose
        // Status-Information went out stays approved (see the module doc).
        self.flow = None;
        self.outbox.clear();
    }

    // ---- register input ----

    fn respond(&mut self, apdu: Apdu) {
        self.outbox.push_back(Outgoing {
            apdu,
            drop_after: false,
            repeat: false,
        });
    }

    fn persist(&mut self) {
        if self.events.back() != Some(&Event::Persist) {
            self.events.push_back(Event::Persist);
        }
    }

    fn on_ack(&mut self, nack_code: Option<u8>, now: Instant) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        let Some(pending) = flow.pending.as_mut() else {
            return;
        };
        if pending.retry_at.is_some() {
            // Already told to wait; the message is not outstanding right now.
            return;
        }
        let mut reverse = None;
        match nack_code {
            None | Some(0) => flow.pending = None,
            Some(0x9C) => pending.retry_at = Some(now + RETRY_DELAY),
            Some(_) if pending.step.retry_on_nack => pending.retry_at = Some(now + RETRY_DELAY),
            Some(_) => {
                reverse = pending.step.commit;
                flow.pending = None;
                if reverse.is_some() {
                    // Goods not issued: reverse and abort.
                    flow.steps.clear();
                    flow.steps.push_back(plain(abort_apdu(0x6C, None)));
                }
            }
        }
        if let Some(idx) = reverse {
            self.reverse(idx, None);
        }
        self.advance(now);
    }

    fn on_abort(&mut self, now: Instant) {
        match self.flow.as_mut() {
            None => self.respond(ack()),
            Some(flow) if flow.card_wait.is_some() => {
                *flow = Flow::default();
                flow.steps.push_back(plain(abort_apdu(0x6C, None)));
                self.respond(ack());
                self.advance(now);
            }
            Some(_) => self.respond(nack(0x83)),
        }
    }

    fn on_command(&mut self, cmd: EcrCommand, now: Instant) {
        match cmd {
            EcrCommand::Registration {
                config, currency, ..
            } => {
                if currency.is_some_and(|c| !currency_ok(c)) {
                    return self.respond(nack(0x6F));
                }
                let reg = Registration { config, currency };
                if self.memory.registration.as_ref() != Some(&reg) {
                    self.memory.registration = Some(reg);
                    self.persist();
                }
                let mut fields = vec![
                    Field {
                        bmp: 0x19,
                        value: vec![0x00],
                    },
                    Field {
                        bmp: 0x29,
                        value: self.tid_bcd(),
                    },
                ];
                if let Some(c) = currency {
                    fields.push(Field {
                        bmp: 0x49,
                        value: bcd(u64::from(c), 2),
                    });
                }
                self.start(
                    vec![plain(Apdu::new(0x06, 0x0F, encode_fields(&fields)))],
                    now,
                );
            }
            EcrCommand::Authorization { amount, currency } => {
                self.payment(Kind::Sale, amount, currency, now)
            }
            EcrCommand::Refund {
                amount, currency, ..
            } => self.payment(Kind::Refund, amount, currency, now),
            EcrCommand::Reversal { receipt_number, .. } => self.reversal(receipt_number, now),
            EcrCommand::EndOfDay { .. } => self.end_of_day(now),
            EcrCommand::StatusEnquiry { .. } => {
                let done = PtMessage::Completion {
                    terminal_status: Some(0x00),
                    terminal_id: Some(self.memory.terminal_id.clone()),
                    sw_version: Some(SW_VERSION.to_string()),
                };
                self.start(vec![plain(done.to_apdu())], now);
            }
            EcrCommand::RepeatReceipt { service, .. } => self.repeat_receipt(service, now),
            EcrCommand::LogOff => {
                if self.memory.registration.take().is_some() {
                    self.persist();
                }
                self.respond(ack());
            }
            // Handled by the caller.
            EcrCommand::Abort | EcrCommand::Ack | EcrCommand::Nack(_) => {}
        }
    }

    /// Answer `80 00 00` and become master with these messages to send.
    fn start(&mut self, steps: Vec<Step>, now: Instant) {
        self.respond(ack());
        self.flow = Some(Flow {
            card_wait: None,
            steps: steps.into(),
            pending: None,
        });
        self.advance(now);
    }

    fn payment(&mut self, kind: Kind, amount: u64, currency: u16, now: Instant) {
        if !currency_ok(currency) {
            return self.respond(nack(0x6F));
        }
        if amount == 0 {
            return self.respond(nack(0x83));
        }
        let payment = Payment {
            kind,
            amount,
            currency,
        };
        if amount % 100 == 53 {
            self.respond(ack());
            let mut flow = Flow {
                card_wait: Some(CardWait {
                    payment,
                    until: now + SLOW_CARD,
                    next_status: now + RETRY_DELAY,
                }),
                ..Flow::default()
            };
            flow.steps.push_back(plain(intermediate(0x0A)));
            self.flow = Some(flow);
            self.advance(now);
        } else {
            let steps = self.finish_payment(payment);
            self.start(steps, now);
        }
    }

    /// The card was read: decide, store, and return the messages that follow.
    fn finish_payment(&mut self, p: Payment) -> Vec<Step> {
        let magic = p.amount % 100;
        let declined = magic == 51;
        let trace = self.next_trace();
        let receipt = self.next_receipt();
        let (brand, pan, card_type) = card_for(trace);
        let tx = StoredTransaction {
            trace_number: trace,
            receipt_number: receipt,
            kind: match p.kind {
                Kind::Sale => "sale",
                Kind::Refund => "refund",
            }
            .to_string(),
            amount: p.amount,
            currency: p.currency,
            status: if declined { "declined" } else { "approved" }.to_string(),
            masked_pan: pan,
            card_brand: brand.to_string(),
            auth_code: (!declined).then(|| auth_code_for(trace)),
            batch: self.memory.batch_number,
            result_code: if declined { 0x05 } else { 0x00 },
            terminal_id: self.memory.terminal_id.clone(),
            card_type: Some(card_type),
            time: self.datetime_text(),
            original_trace: None,
            original_receipt: None,
            reversed_by: None,
        };
        self.memory.transactions.push(tx);
        self.persist();
        let idx = self.memory.transactions.len() - 1;
        let tx = &self.memory.transactions[idx];
        let status = status_apdu(tx);
        match magic {
            52 => Vec::new(),
            54 => vec![Step {
                apdu: status,
                commit: None,
                drop_after: true,
                retry_on_nack: false,
            }],
            _ => {
                let mut steps = vec![Step {
                    apdu: status,
                    commit: (!declined).then_some(idx),
                    drop_after: false,
                    retry_on_nack: false,
                }];
                steps.extend(receipt_steps(tx));
                steps.push(plain(if declined {
                    abort_apdu(0x05, None)
                } else {
                    completion()
                }));
                steps
            }
        }
    }

    fn reversal(&mut self, receipt_number: u32, now: Instant) {
        let batch = self.memory.batch_number;
        let found = self
            .memory
            .transactions
            .iter()
            .rposition(|t| t.receipt_number == receipt_number && t.kind == "sale");
        let idx = match found {
            Some(i) if self.memory.transactions[i].batch == batch => i,
            _ => return self.start(vec![plain(abort_apdu(0xB5, None))], now),
        };
        match self.memory.transactions[idx].status.as_str() {
            "approved" => {}
            "reversed" => return self.start(vec![plain(abort_apdu(0xB4, None))], now),
            _ => return self.start(vec![plain(abort_apdu(0xB5, None))], now),
        }
        let trace = self.next_trace();
        let receipt = self.next_receipt();
        let time = self.datetime_text();
        let orig = &mut self.memory.transactions[idx];
        orig.status = "reversed".to_string();
        orig.reversed_by = Some(receipt);
        let rev = StoredTransaction {
            trace_number: trace,
            receipt_number: receipt,
            kind: "reversal".to_string(),
            amount: orig.amount,
            currency: orig.currency,
            status: "approved".to_string(),
            masked_pan: orig.masked_pan.clone(),
            card_brand: orig.card_brand.clone(),
            auth_code: Some(auth_code_for(trace)),
            batch,
            result_code: 0,
            terminal_id: self.memory.terminal_id.clone(),
            card_type: orig.card_type,
            time,
            original_trace: Some(orig.trace_number),
            original_receipt: Some(orig.receipt_number),
            reversed_by: None,
        };
        self.memory.transactions.push(rev);
        self.persist();
        let tx = self.memory.transactions.last().expect("just pushed");
        let mut steps = vec![plain(status_apdu(tx))];
        steps.extend(receipt_steps(tx));
        steps.push(plain(completion()));
        self.start(steps, now);
    }

    fn end_of_day(&mut self, now: Instant) {
        let number = self.memory.batch_number;
        let (mut count, mut sales, mut refunds) = (0u32, 0u64, 0u64);
        for t in self
            .memory
            .transactions
            .iter()
            .filter(|t| t.batch == number && t.status == "approved")
        {
            match t.kind.as_str() {
                "sale" => sales = sales.saturating_add(t.amount),
                "refund" => refunds = refunds.saturating_add(t.amount),
                _ => continue,
            }
            count = count.saturating_add(1);
        }
        let total = sales.saturating_sub(refunds);
        self.memory.batches.push(Batch {
            number,
            count,
            total,
        });
        self.memory.batch_number = number.wrapping_add(1).max(1);
        self.persist();
        let (time, date) = self.bmp_time_date();
        let result = TransactionResult {
            result_code: 0,
            amount: Some(total),
            terminal_id: Some(self.memory.terminal_id.clone()),
            time: Some(time),
            date: Some(date),
            ..TransactionResult::default()
        };
        let lines = vec![
            "  fiscald sim terminal".to_string(),
            format!("TID {}", self.memory.terminal_id),
            self.datetime_text(),
            "ZAMKNIECIE DNIA".to_string(),
            format!("PARTIA {number:06}"),
            format!("TRANSAKCJE {count}"),
            format!("SUMA {}", money(total, crate::PLN)),
            "ZAKONCZONO".to_string(),
        ];
        let mut steps = vec![plain(PtMessage::StatusInformation(result).to_apdu())];
        steps.extend(print_steps(lines));
        steps.push(plain(completion()));
        self.start(steps, now);
    }

    fn repeat_receipt(&mut self, service: u8, now: Instant) {
        let Some(tx) = self.memory.transactions.last() else {
            return self.start(vec![plain(abort_apdu(0x83, None))], now);
        };
        let mut steps = Vec::new();
        if service & 0x01 != 0 {
            steps.push(plain(status_apdu(tx)));
        }
        if service & 0x02 == 0 {
            steps.extend(receipt_steps(tx));
        }
        steps.push(plain(if tx.result_code == 0 {
            completion()
        } else {
            abort_apdu(tx.result_code, None)
        }));
        self.start(steps, now);
    }

    // ---- the flow ----

    /// Send what is due; end the flow when nothing is left.
    fn advance(&mut self, now: Instant) {
        loop {
            let Some(flow) = self.flow.as_mut() else {
                return;
            };
            if let Some(p) = flow.pending.as_mut() {
                if p.retry_at.is_some_and(|t| now >= t) {
                    p.retry_at = None;
                    p.repeat_at = now + REPEAT_INTERVAL;
                    let apdu = p.step.apdu.clone();
                    self.respond(apdu);
                } else if p.retry_at.is_none() && now >= p.repeat_at {
                    p.repeat_at = now + REPEAT_INTERVAL;
                    let apdu = p.step.apdu.clone();
                    self.outbox.push_back(Outgoing {
                        apdu,
                        drop_after: false,
                        repeat: true,
                    });
                }
                return;
            }
            if let Some(step) = flow.steps.pop_front() {
                let drop_after = step.drop_after;
                self.outbox.push_back(Outgoing {
                    apdu: step.apdu.clone(),
                    drop_after,
                    repeat: false,
                });
                if drop_after {
                    self.flow = None;
                    return;
                }
                flow.pending = Some(Pending {
                    step,
                    deadline: now + ACK_TIMEOUT,
                    retry_at: None,
                    repeat_at: now + REPEAT_INTERVAL,
                });
                continue;
            }
            if let Some(wait) = flow.card_wait.as_mut() {
                if now >= wait.until {
                    let payment = wait.payment;
                    flow.card_wait = None;
                    let steps = self.finish_payment(payment);
                    if let Some(flow) = self.flow.as_mut() {
                        flow.steps.extend(steps);
                    }
                    continue;
                }
                if now >= wait.next_status {
                    wait.next_status = now + RETRY_DELAY;
                    flow.steps.push_back(plain(intermediate(0x17)));
                    continue;
                }
                return;
            }
            self.flow = None;
            return;
        }
    }

    /// Mark a payment reversed without a reversal record (auto-reversal).
    fn reverse(&mut self, idx: usize, by: Option<u32>) {
        if let Some(t) = self.memory.transactions.get_mut(idx)
            && t.status == "approved"
        {
            t.status = "reversed".to_string();
            t.reversed_by = by;
            self.persist();
        }
    }

    fn next_trace(&mut self) -> u32 {
        self.memory.last_trace = self.memory.last_trace % 999_999 + 1;
        self.memory.last_trace
    }

    fn next_receipt(&mut self) -> u32 {
        self.memory.last_receipt = self.memory.last_receipt % 9_999 + 1;
        self.memory.last_receipt
    }

    fn tid_bcd(&self) -> Vec<u8> {
        bcd(self.memory.terminal_id.parse().unwrap_or(0), 4)
    }

    fn civil(&self) -> (i64, u32, u32, u32, u32, u32) {
        let days = self.clock.div_euclid(86_400);
        let secs = self.clock.rem_euclid(86_400) as u32;
        let (y, m, d) = civil_from_days(days);
        (y, m, d, secs / 3600, secs / 60 % 60, secs % 60)
    }

    fn datetime_text(&self) -> String {
        let (y, mo, d, h, mi, s) = self.civil();
        format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
    }

    /// BMP 0C `hhmmss` and 0D `mmdd`.
    fn bmp_time_date(&self) -> (String, String) {
        let (_, mo, d, h, mi, s) = self.civil();
        (format!("{h:02}{mi:02}{s:02}"), format!("{mo:02}{d:02}"))
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}
