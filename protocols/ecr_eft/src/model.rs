//! A behavioural model of an ECR-EFT card terminal (feature `model`), the emulator's brain.
//!
//! It works on typed messages (the link below it does ACK/NAK, tokens and repetition) and
//! behaves by the gross amount's last two digits (grosze), like the ZVT model:
//! - 51: declined (`S2` with [`ERROR_DECLINED`], no slip);
//! - 52: approved and stored, but the `S2` is never sent (the result is lost);
//! - 53: the card reader takes [`SLOW_CARD`], with `I1 20` every [`STATUS_INTERVAL`]; `P1`
//!   meanwhile aborts (`I1 180`, `S2` with [`ERROR_ABORTED`], nothing stored);
//! - 54: approved, slip and `S2` sent, then the connection is dropped ([`Event::DropConnection`]);
//! - anything else: approved.
//!
//! Flow of an approved sale: `I1 20`, `I1 50`, `I1 140`, the slip (`D2`, and when the
//! register answers `D0` ok, `D6` with the lines and `D3`, each answered by `D0`), then
//! `S2` echoing the `S1` token. A `D0` refusal skips the rest of the slip; no `D0` within
//! [`PRINT_TIMEOUT`] does too. A transaction is stored when its `S2` is sent (52: when it
//! would have been). An `S1` while a flow runs gets frobd's busy answer ([`ERROR_BUSY`]).
//! `T1` is answered by `T2` at any time. An amount of 0, one too large for S2's field or a
//! currency other than PLN is refused (`S2` with [`ERROR_BAD_REQUEST`]). A void (`S1` type void) marks the approved sale
//! with the same payment id `voided`. The error codes other than busy are this model's
//! own: the specification's are unknown.

use crate::frame::Token;
use crate::message::{
    DeviceInfo, ERROR_APPROVED, ERROR_BUSY, Message, PLN, Progress, Transaction, TransactionResult,
    TransactionType,
};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long the slow card reader (amount 53) takes.
pub const SLOW_CARD: Duration = Duration::from_secs(20);
/// Interval of `I1 20` while the slow card reader waits.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(2);
/// How long the terminal waits for each `D0`.
pub const PRINT_TIMEOUT: Duration = Duration::from_secs(10);
/// The model's error codes (its own choice).
pub const ERROR_DECLINED: u32 = 51;
pub const ERROR_ABORTED: u32 = 180;
pub const ERROR_BAD_REQUEST: u32 = 30;
pub const ERROR_NOT_FOUND: u32 = 40;
/// A well-known test card (Luhn-valid); only its masked form is ever sent or stored.
pub const TEST_PAN: &str = "5454545454545454";
pub const DEFAULT_TERMINAL_ID: &str = "T0000001";
pub const DEFAULT_MERCHANT_ID: &str = "M000000001";
pub const PAYMENT_METHOD: &str = "CARD";

/// The terminal's persistent state: the emulator's `--state` JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalMemory {
    pub transactions: Vec<StoredTransaction>,
    #[serde(default = "default_tid")]
    pub terminal_id: String,
    #[serde(default = "default_mid")]
    pub merchant_id: String,
    /// The last transaction id used (0 = none yet).
    #[serde(default)]
    pub last_transaction: u32,
}

fn default_tid() -> String {
    DEFAULT_TERMINAL_ID.into()
}
fn default_mid() -> String {
    DEFAULT_MERCHANT_ID.into()
}

impl Default for TerminalMemory {
    fn default() -> Self {
        TerminalMemory {
            transactions: Vec::new(),
            terminal_id: default_tid(),
            merchant_id: default_mid(),
            last_transaction: 0,
        }
    }
}

/// One transaction as the terminal stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredTransaction {
    pub transaction_id: String,
    /// `sale` or `void`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Grosze.
    pub amount: u64,
    pub currency: String,
    /// `approved`, `declined` or `voided`.
    pub status: String,
    /// e.g. `545454******5454`.
    pub masked_pan: String,
    pub payment_id: String,
    pub ecr_id: String,
    /// The S2 error code sent (or meant to be sent).
    pub error: u32,
}

/// What the emulator should do besides sending messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Memory changed: persist it.
    Persist,
    /// Drop the connection now (amount 54).
    DropConnection,
}

/// A message to send: a reply echoing a token, or a request with a fresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outbound {
    Reply(Token, Message),
    Request(Message),
}

#[derive(Debug)]
enum Step {
    Send(Outbound),
    /// Wait for `D0`; a refusal drops the following `print` steps.
    AwaitD0,
    Store(StoredTransaction),
    Drop,
}

#[derive(Debug)]
struct Flow {
    token: Token,
    request: Transaction,
    /// Amount 53: when the card is "read", and the next `I1 20`.
    card_wait: Option<(Instant, Instant)>,
    steps: VecDeque<(Step, bool)>,
    d0_deadline: Option<Instant>,
}

/// A model terminal.
#[derive(Debug, Default)]
pub struct Terminal {
    memory: TerminalMemory,
    flow: Option<Flow>,
    outbox: VecDeque<Outbound>,
    events: VecDeque<Event>,
}

fn progress(status: u32, message: &str) -> Message {
    Message::I1(Progress {
        status,
        message: message.into(),
    })
}

impl Terminal {
    pub fn new() -> Terminal {
        Terminal::default()
    }
    pub fn from_memory(memory: TerminalMemory) -> Terminal {
        Terminal {
            memory,
            ..Terminal::default()
        }
    }
    pub fn memory(&self) -> &TerminalMemory {
        &self.memory
    }
    /// True while a transaction flow runs.
    pub fn is_busy(&self) -> bool {
        self.flow.is_some()
    }

    /// A message from the register, with its frame's token.
    pub fn handle_message(&mut self, token: Token, message: Message, now: Instant) {
        match message {
            Message::T1 => self.outbox.push_back(Outbound::Reply(
                token,
                Message::T2(DeviceInfo {
                    version: "170".into(),
                    vendor: "FISCALD".into(),
                    device_type: "SIM".into(),
                    device_id: self.memory.terminal_id.clone(),
                }),
            )),
            Message::S1(t) if self.flow.is_some() => {
                let _ = t;
                self.outbox
                    .push_back(Outbound::Reply(token, Message::S2(busy())));
            }
            Message::S1(t) => self.start(token, t, now),
            Message::P1 => self.abort(now),
            Message::D0 { ok } => self.d0(ok, now),
            _ => {}
        }
    }

    /// Time passed (call at [`Self::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        if let Some((until, next)) = flow.card_wait {
            if now >= until {
                flow.card_wait = None;
                self.decide(now);
            } else if now >= next {
                flow.card_wait = Some((until, now + STATUS_INTERVAL));
                let token = flow.token;
                self.outbox
                    .push_back(Outbound::Reply(token, progress(20, "Włóż kartę")));
            }
            return;
        }
        if flow.d0_deadline.is_some_and(|d| now >= d) {
            self.d0(false, now);
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let flow = self.flow.as_ref()?;
        if let Some((until, next)) = flow.card_wait {
            return Some(until.min(next));
        }
        flow.d0_deadline
    }
    pub fn poll_send(&mut self) -> Option<Outbound> {
        self.outbox.pop_front()
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// The connection was lost: the flow in progress is abandoned (what was stored stays).
    pub fn connection_lost(&mut self) {
        self.flow = None;
        self.outbox.clear();
    }

    // ---- flows ----

    fn start(&mut self, token: Token, t: Transaction, now: Instant) {
        // The result echoes the amounts: they must fit S2's fields.
        let fits = |v: Option<u64>, field| {
            v.is_none_or(|v| crate::layout::max_number(b"S2", field).is_some_and(|m| v <= m))
        };
        let error = if t.gross == 0
            || t.currency != PLN
            || !fits(Some(t.gross), "amount")
            || !fits(t.cashback, "cashback")
        {
            Some(ERROR_BAD_REQUEST)
        } else {
            None
        };
        if let Some(error) = error {
            let r = TransactionResult {
                error,
                message: "Nieprawidłowe żądanie".into(),
                ..self.result_base()
            };
            self.outbox
                .push_back(Outbound::Reply(token, Message::S2(r)));
            return;
        }
        self.outbox
            .push_back(Outbound::Reply(token, progress(20, "Włóż kartę")));
        let slow = t.kind == TransactionType::Sale && t.gross % 100 == 53;
        self.flow = Some(Flow {
            token,
            request: t,
            card_wait: slow.then(|| (now + SLOW_CARD, now + STATUS_INTERVAL)),
            steps: VecDeque::new(),
            d0_deadline: None,
        });
        if !slow {
            self.decide(now);
        }
    }

    fn abort(&mut self, now: Instant) {
        let Some(flow) = self.flow.as_ref() else {
            return;
        };
        if flow.card_wait.is_none() {
            return; // Too late: the card was read.
        }
        let token = flow.token;
        self.flow = None;
        self.outbox
            .push_back(Outbound::Reply(token, progress(180, "Przerwano")));
        let r = TransactionResult {
            error: ERROR_ABORTED,
            message: "Transakcja przerwana".into(),
            ..self.result_base()
        };
        self.outbox
            .push_back(Outbound::Reply(token, Message::S2(r)));
        let _ = now;
    }

    fn result_base(&self) -> TransactionResult {
        TransactionResult {
            error: ERROR_APPROVED,
            card_token: String::new(),
            mid: self.memory.merchant_id.clone(),
            tid: self.memory.terminal_id.clone(),
            transaction_id: String::new(),
            amount: None,
            cashback: None,
            payment_method: PAYMENT_METHOD.into(),
            message: String::new(),
        }
    }

    /// The card is read: build the rest of the flow.
    fn decide(&mut self, now: Instant) {
        let Some(flow) = self.flow.as_ref() else {
            return;
        };
        let token = flow.token;
        let t = flow.request.clone();
        self.memory.last_transaction = self.memory.last_transaction % 999_999 + 1;
        let id = format!("{:06}", self.memory.last_transaction);
        let masked = zvt::pan::mask(TEST_PAN);
        let magic = t.gross % 100;
        let mut stored = StoredTransaction {
            transaction_id: id.clone(),
            kind: "sale".into(),
            amount: t.gross,
            currency: t.currency.clone(),
            status: "approved".into(),
            masked_pan: masked.clone(),
            payment_id: t.payment_id.clone(),
            ecr_id: t.ecr_id.clone(),
            error: ERROR_APPROVED,
        };
        let mut result = TransactionResult {
            card_token: format!(
                "{:016X}",
                0xC0DE_0000_0000u64 + u64::from(self.memory.last_transaction)
            ),
            transaction_id: id.clone(),
            amount: Some(t.gross),
            cashback: t.cashback,
            message: "Zaakceptowano".into(),
            ..self.result_base()
        };
        let mut steps: Vec<(Step, bool)> = vec![(
            Step::Send(Outbound::Reply(token, progress(50, "Autoryzacja"))),
            false,
        )];
        if t.kind == TransactionType::Void {
            stored.kind = "void".into();
            let original = self.memory.transactions.iter().position(|o| {
                o.kind == "sale" && o.status == "approved" && o.payment_id == t.payment_id
            });
            match original {
                Some(i) => {
                    self.memory.transactions[i].status = "voided".into();
                    result.message = "Anulowano".into();
                }
                None => {
                    stored.status = "declined".into();
                    stored.error = ERROR_NOT_FOUND;
                    result.error = ERROR_NOT_FOUND;
                    result.message = "Brak transakcji".into();
                }
            }
        } else if magic == 51 {
            stored.status = "declined".into();
            stored.error = ERROR_DECLINED;
            result.error = ERROR_DECLINED;
            result.card_token.clear();
            result.message = "Odmowa".into();
            steps.push((Step::Send(Outbound::Reply(token, progress(150, ""))), false));
        } else {
            steps.push((Step::Send(Outbound::Reply(token, progress(140, ""))), false));
            steps.extend(self.slip(&t, &id, &masked));
        }
        steps.push((Step::Store(stored), false));
        if magic != 52 || t.kind == TransactionType::Void {
            steps.push((
                Step::Send(Outbound::Reply(token, Message::S2(result))),
                false,
            ));
        }
        if magic == 54 && t.kind == TransactionType::Sale {
            steps.push((Step::Drop, false));
        }
        if let Some(flow) = self.flow.as_mut() {
            flow.steps = steps.into();
        }
        self.advance(now);
    }

    fn slip(&self, t: &Transaction, id: &str, masked: &str) -> Vec<(Step, bool)> {
        let amount = format!("{}.{:02} {}", t.gross / 100, t.gross % 100, t.currency);
        let lines = vec![
            "TERMINAL PLATNICZY".to_string(),
            format!(
                "TID {} MID {}",
                self.memory.terminal_id, self.memory.merchant_id
            ),
            "SPRZEDAZ".to_string(),
            format!("KARTA {masked}"),
            format!("KWOTA {amount}"),
            format!("NR TRANS. {id}"),
            "ZAAKCEPTOWANO".to_string(),
        ];
        vec![
            (Step::Send(Outbound::Request(Message::D2)), false),
            (Step::AwaitD0, false),
            (Step::Send(Outbound::Request(Message::D6 { lines })), true),
            (Step::AwaitD0, true),
            (Step::Send(Outbound::Request(Message::D3)), true),
            (Step::AwaitD0, true),
        ]
    }

    fn d0(&mut self, ok: bool, now: Instant) {
        let Some(flow) = self.flow.as_mut() else {
            return;
        };
        if flow.d0_deadline.take().is_none() {
            return;
        }
        if !ok {
            while flow.steps.front().is_some_and(|(_, print)| *print) {
                flow.steps.pop_front();
            }
        }
        self.advance(now);
    }

    fn advance(&mut self, now: Instant) {
        while let Some(flow) = self.flow.as_mut() {
            let Some((step, _)) = flow.steps.pop_front() else {
                self.flow = None;
                return;
            };
            match step {
                Step::Send(o) => self.outbox.push_back(o),
                Step::AwaitD0 => {
                    flow.d0_deadline = Some(now + PRINT_TIMEOUT);
                    return;
                }
                Step::Store(s) => {
                    self.memory.transactions.push(s);
                    self.events.push_back(Event::Persist);
                }
                Step::Drop => {
                    self.events.push_back(Event::DropConnection);
                    self.flow = None;
                    return;
                }
            }
        }
    }
}

/// frobd's busy answer.
fn busy() -> TransactionResult {
    TransactionResult {
        error: ERROR_BUSY,
        card_token: String::new(),
        mid: "M000".into(),
        tid: "T000".into(),
        transaction_id: "N/A".into(),
        amount: None,
        cashback: None,
        payment_method: "NONE".into(),
        message: "Payment endpoint busy".into(),
    }
}
