//! ECR-EFT (the Polish FROB protocol) as a [`PaymentTerminal`] driver: registration and
//! status by the communication test (T1/T2), a sale by S1 → I1… D2/D6/D3… S2, over a
//! serial port or TCP ([`transport`]).
//!
//! **Second-hand.** The protocol's facts come from public sources (see
//! `protocols/ecr_eft/README.md`). What this driver adds of its own is one constant or
//! one match arm each, documented where it is.
//!
//! - **Commit before acknowledge:** the link holds S2's ACK ([`ecr_eft::Link::hold_acks`])
//!   until [`FlowObserver::outcome`] returned [`Committed`].
//! - **Never resend S1:** the link never repeats it, and neither does this driver. No
//!   "result of the last transaction" query is known, so [`PaymentTerminal::last_transaction`]
//!   is [`LastTransaction::Unsupported`]: an interrupted sale becomes `needs_attention`.
//! - Only sales are known to the sources. Refunds, reversals (S1 type `C` is only our
//!   reading of "void", and the seam's reversal carries no amount, which S1 needs) and end
//!   of day are refused before anything is sent.

pub mod transport;

use crate::config::{SlipTarget, TerminalConfig};
use crate::device::terminal::{
    CardCommand, CardOutcome, Committed, FlowEnd, FlowError, FlowObserver, LastTransaction,
    LinkCounters, PaymentTerminal, TerminalCode, TerminalInfo,
};
use crate::device::{DeviceError, ErrorCategory};
use ecr_eft::frame::Token;
use ecr_eft::link::{FailReason, LinkConfig, LinkEvent, Role};
use ecr_eft::message::{
    DeviceInfo, ERROR_BUSY, Message, PLN, Transaction, TransactionResult, TransactionType,
};
use std::time::Duration;
use transport::{Transport, TransportError};

/// What the register says of itself in T2 (ours).
const OUR_VERSION: &str = "100";
const OUR_VENDOR: &str = "FISCALD";
const OUR_DEVICE_TYPE: &str = "ECR";
/// ISO 4217 numeric code of the only currency S1 is known to carry ([`PLN`]).
const PLN_NUMERIC: u16 = 985;
/// A transaction id that is not a number is kept as text and journaled under a trace
/// number derived from it (ours): FNV-1a of its bytes with the top bit set, so it never
/// equals a numeric id below 2³¹.
const DERIVED_TRACE_BIT: u32 = 1 << 31;
/// Most messages of an earlier flow read before giving up on a T2.
const MAX_FOREIGN: usize = 64;
/// How long the line is read before an S1 to learn whether the terminal closed it while
/// we were idle (ours).
const IDLE_CHECK: Duration = Duration::from_millis(20);
/// Between attempts to connect again before a sale (ours).
const RECONNECT_PAUSE: Duration = Duration::from_millis(250);
/// How long a sale waits for a terminal that answers busy (at least; the transaction
/// timeout when longer), and the quiet on the line before each new try (ours).
const BUSY_WAIT: Duration = Duration::from_secs(30);
const BUSY_QUIET: Duration = Duration::from_secs(1);

/// One ECR-EFT terminal.
pub struct EcrEft {
    config: TerminalConfig,
    target: String,
    link: LinkConfig,
    ecr_id: String,
    conn: Option<Transport>,
}

/// The link settings of `config` (the crate's defaults where a key is absent).
pub fn link_config(config: &TerminalConfig) -> LinkConfig {
    let mut l = LinkConfig::new(Role::Ecr);
    if let Some(ms) = config.ack_timeout_ms {
        l.ack_timeout = Duration::from_millis(ms);
    }
    if let Some(n) = config.max_retransmits {
        l.max_retransmits = n;
    }
    l.keepalive = config.keepalive_ms.map(Duration::from_millis);
    l
}

/// What ends a conversation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Goal {
    /// The T2 answering our T1 with this token.
    Info(Token),
    /// The S2 answering our S1 with this token.
    Result(Token),
    /// Nothing: answer the terminal until the line has been quiet for the wait.
    Quiet,
}

/// How a conversation ended.
enum Ended {
    Info(DeviceInfo),
    Outcome(CardOutcome),
    Quiet,
}

impl EcrEft {
    /// A driver for the terminal of `config`, reached at `target` (a device path or
    /// `tcp://...`).
    pub fn new(config: TerminalConfig, target: String) -> Self {
        let link = link_config(&config);
        let ecr_id = config.ecr_id.clone().unwrap_or_else(|| {
            config
                .id
                .chars()
                .filter(char::is_ascii_alphanumeric)
                .take(20)
                .collect()
        });
        EcrEft {
            config,
            target,
            link,
            ecr_id,
            conn: None,
        }
    }

    /// Tests: talk over `stream` instead of opening `target`.
    #[cfg(test)]
    fn over(mut self, stream: Box<dyn transport::ByteStream>) -> Self {
        self.conn = Some(Transport::over_stream(stream, self.link.clone()));
        self
    }

    fn name(&self) -> String {
        format!("terminal {} (ECR-EFT)", self.config.id)
    }

    fn lost(&self, e: TransportError) -> DeviceError {
        DeviceError::link_lost(format!("{}: {e}", self.name()))
    }

    fn our_info(&self) -> Message {
        Message::T2(DeviceInfo {
            version: OUR_VERSION.into(),
            vendor: OUR_VENDOR.into(),
            device_type: OUR_DEVICE_TYPE.into(),
            device_id: self.ecr_id.clone(),
        })
    }

    /// Answer the terminal until `goal`'s reply. Display texts and slip lines go to
    /// `observer`; an S2 goes to it (the commit point) and is acknowledged only with the
    /// [`Committed`] it returns. An S2 of another flow goes to it only when
    /// `foreign_outcomes` is set (a registration's observer is the interrupted flow's), and
    /// is otherwise acknowledged as seen.
    async fn converse<O: FlowObserver>(
        &mut self,
        goal: Goal,
        mut observer: Option<&mut O>,
        foreign_outcomes: bool,
        wait: Duration,
    ) -> Result<Ended, FlowError<O::Error>> {
        let name = self.name();
        let our_info = self.our_info();
        let slip_ok = self.config.slip != SlipTarget::Terminal;
        let lost = |e: TransportError| DeviceError::link_lost(format!("{name}: {e}"));
        let t = self
            .conn
            .as_mut()
            .ok_or_else(|| DeviceError::link_lost(format!("{name}: not connected")))?;
        let (goal_token, goal_kind) = match goal {
            Goal::Info(t) => (Some(t), *b"T2"),
            Goal::Result(t) => (Some(t), *b"S2"),
            Goal::Quiet => (None, *b"--"),
        };
        let mut deadline = tokio::time::Instant::now() + wait;
        let mut seen_flow = false;
        let mut foreign = 0usize;
        loop {
            let ev = match t.next(deadline, wait).await {
                Err(TransportError::Timeout(_)) if goal == Goal::Quiet => return Ok(Ended::Quiet),
                ev => ev.map_err(lost)?,
            };
            let (frame, answers) = match ev {
                LinkEvent::Delivered { .. } => continue,
                LinkEvent::Failed {
                    token,
                    kind,
                    reason,
                } if Some(token) == goal_token => {
                    if kind == *b"S1" && reason == FailReason::NoAnswer {
                        // The terminal may have it: its S2 may still come.
                        tracing::warn!(terminal = %name, "S1 was not acknowledged; waiting for its result");
                        continue;
                    }
                    if kind == *b"S1" {
                        return Err(DeviceError::new(
                            ErrorCategory::Communication,
                            format!(
                                "{name} refused the transaction request (NAK); nothing was charged"
                            ),
                            None,
                        )
                        .into());
                    }
                    return Err(lost(TransportError::Timeout(wait)).into());
                }
                LinkEvent::Failed { kind, .. } => {
                    return Err(DeviceError::link_lost(format!(
                        "{name}: the terminal did not acknowledge our {}",
                        ecr_eft::frame::kind_str(&kind)
                    ))
                    .into());
                }
                LinkEvent::PeerLost => return Err(lost(TransportError::PeerLost).into()),
                LinkEvent::Received { repeat: true, .. } => {
                    // Already handled, but the terminal is alive: a slow card reader
                    // repeats the very same status (same token, same text).
                    deadline = tokio::time::Instant::now() + wait;
                    continue;
                }
                LinkEvent::Received { frame, answers, .. } => (frame, answers),
            };
            deadline = tokio::time::Instant::now() + wait;
            let ours = Some(frame.token) == goal_token && answers.is_some();
            let message = match Message::decode(&frame) {
                Ok(m) => m,
                Err(e) => {
                    if frame.kind == *b"S2" {
                        // An unreadable result is still a result: never take it for
                        // nothing, never acknowledge what was not journaled.
                        return Err(DeviceError::protocol(format!(
                            "{name}: an unreadable transaction result: {e}"
                        ))
                        .into());
                    }
                    tracing::warn!(terminal = %name, error = %e, "an unreadable message, ignored");
                    continue;
                }
            };
            match message {
                Message::T1 => t.reply(frame.token, &our_info).map_err(lost)?,
                Message::T2(info) if ours && goal_kind == *b"T2" => {
                    return Ok(Ended::Info(info));
                }
                Message::I1(p) => {
                    seen_flow = true;
                    let text = if p.message.is_empty() {
                        ecr_eft::message::status_text(p.status)
                            .unwrap_or("in progress")
                            .to_string()
                    } else {
                        p.message
                    };
                    if let Some(o) = observer.as_deref_mut() {
                        // Masked by the codec; masked again in case of a new pattern, as
                        // the slip lines are.
                        o.display(&zvt::pan::mask_in_text(&text));
                    }
                }
                Message::D2 => {
                    seen_flow = true;
                    t.reply(frame.token, &Message::D0 { ok: slip_ok })
                        .map_err(lost)?;
                }
                Message::D6 { lines } => {
                    for l in &lines {
                        if let Some(o) = observer.as_deref_mut() {
                            // Masked by the codec; masked again in case of a new pattern.
                            o.slip_line(&zvt::pan::mask_in_text(l));
                        }
                    }
                    t.reply(frame.token, &Message::D0 { ok: true })
                        .map_err(lost)?;
                }
                Message::D3 => t
                    .reply(frame.token, &Message::D0 { ok: true })
                    .map_err(lost)?,
                Message::S2(r) if ours && goal_kind == *b"S2" => {
                    if r.error == ERROR_BUSY {
                        // The terminal did not start our S1: nothing happened.
                        t.acknowledge().await.map_err(lost)?;
                        return Err(DeviceError::new(
                            ErrorCategory::TerminalBusy,
                            format!("{name} is busy with another transaction (error {ERROR_BUSY}); nothing was charged"),
                            Some(ERROR_BUSY),
                        )
                        .into());
                    }
                    let outcome = outcome(&r);
                    let committed = match observer.as_deref_mut() {
                        Some(o) => o.outcome(&outcome).await.map_err(FlowError::Observer)?,
                        None => Committed::journaled(),
                    };
                    ack(t, committed).await.map_err(lost)?;
                    return Ok(Ended::Outcome(outcome));
                }
                Message::S2(r) => {
                    foreign += 1;
                    let outcome = outcome(&r);
                    tracing::warn!(terminal = %name, transaction_id = %r.transaction_id, error = r.error, "a transaction result of an earlier flow");
                    let committed = match observer.as_deref_mut() {
                        Some(o) if foreign_outcomes => {
                            o.outcome(&outcome).await.map_err(FlowError::Observer)?
                        }
                        // Not a card flow's: only reported (recovery cannot use it).
                        _ => Committed::journaled(),
                    };
                    ack(t, committed).await.map_err(lost)?;
                }
                Message::L1 { message } if goal_kind == *b"S2" && !seen_flow => {
                    // Our reading: L1 before any sign of our flow means it was not taken.
                    if let Some(token) = goal_token {
                        t.close(token);
                    }
                    return Err(DeviceError::new(
                        ErrorCategory::TerminalError,
                        format!("{name} is unavailable ({message}); nothing was charged"),
                        None,
                    )
                    .into());
                }
                Message::L1 { message } => {
                    tracing::warn!(terminal = %name, reason = %message, "the terminal reports it is unavailable");
                }
                other => {
                    foreign += 1;
                    tracing::debug!(terminal = %name, kind = %ecr_eft::frame::kind_str(&other.kind()), "a message not for this flow, ignored");
                }
            }
            if foreign > MAX_FOREIGN && goal_kind == *b"T2" {
                return Err(DeviceError::protocol(format!(
                    "{name}: {foreign} messages of another flow instead of the T2"
                ))
                .into());
            }
        }
    }

    /// The communication test: T1, then the T2 that answers it.
    async fn communication_test<O: FlowObserver>(
        &mut self,
        observer: Option<&mut O>,
        foreign_outcomes: bool,
    ) -> Result<TerminalInfo, FlowError<O::Error>> {
        let wait = self.config.command_timeout();
        let name = self.name();
        let token = self
            .conn
            .as_mut()
            .ok_or_else(|| DeviceError::link_lost(format!("{name}: not connected")))?
            .request(&Message::T1)
            .map_err(|e| DeviceError::link_lost(format!("{name}: {e}")))?;
        match self
            .converse(Goal::Info(token), observer, foreign_outcomes, wait)
            .await?
        {
            Ended::Info(info) => {
                tracing::debug!(terminal = %self.config.id, version = %info.version, vendor = %info.vendor, device_type = %info.device_type, "ECR-EFT communication test");
                Ok(TerminalInfo {
                    terminal_id: (!info.device_id.is_empty()).then_some(info.device_id),
                    fault: None,
                })
            }
            Ended::Outcome(_) | Ended::Quiet => {
                Err(DeviceError::protocol("a T1 ended without its T2").into())
            }
        }
    }

    /// A refusal of a flow the protocol (as known) does not have: nothing is sent.
    fn unsupported(&self, what: &str) -> DeviceError {
        DeviceError::new(
            ErrorCategory::NotPossible,
            format!(
                "{}: {what} is not supported by the ECR-EFT driver (the public sources describe sales only); \
                 nothing was sent to the terminal, use the terminal's own menu",
                self.name()
            ),
            None,
        )
    }
}

/// Acknowledge an S2: only with the proof that it was committed.
async fn ack(t: &mut Transport, _committed: Committed) -> Result<(), TransportError> {
    t.acknowledge().await
}

/// The observer of flows nobody observes.
enum Unobserved {}

impl FlowObserver for Unobserved {
    type Error = std::convert::Infallible;
    fn display(&mut self, _text: &str) {
        match *self {}
    }
    fn slip_line(&mut self, _line: &str) {
        match *self {}
    }
    async fn outcome(&mut self, _o: &CardOutcome) -> Result<Committed, Self::Error> {
        match *self {}
    }
}

impl PaymentTerminal for EcrEft {
    async fn connect(&mut self) -> Result<(), DeviceError> {
        self.conn = None;
        let t = Transport::open(
            &self.target,
            self.config.baud,
            self.config.command_timeout(),
            self.link.clone(),
        )
        .await
        .map_err(|e| self.lost(e))?;
        self.conn = Some(t);
        Ok(())
    }

    fn disconnect(&mut self) {
        self.conn = None;
    }

    fn is_connected(&self) -> bool {
        self.conn.is_some()
    }

    fn connection_per_exchange(&self) -> bool {
        false
    }

    fn counters(&self) -> Option<LinkCounters> {
        self.conn.as_ref().map(|t| LinkCounters {
            bytes_out: t.bytes_out(),
            bytes_in: t.bytes_in(),
        })
    }

    async fn register<O: FlowObserver>(
        &mut self,
        interrupted: &mut O,
    ) -> Result<TerminalInfo, FlowError<O::Error>> {
        self.communication_test(Some(interrupted), true).await
    }

    async fn status(&mut self) -> Result<TerminalInfo, DeviceError> {
        self.communication_test::<Unobserved>(None, false)
            .await
            .map_err(|e| match e {
                FlowError::Device(e) => e,
                FlowError::Observer(never) => match never {},
            })
    }

    async fn run<O: FlowObserver>(
        &mut self,
        payment_id: &str,
        command: &CardCommand,
        observer: &mut O,
    ) -> Result<FlowEnd, FlowError<O::Error>> {
        let (amount, currency) = match *command {
            CardCommand::Sale { amount, currency } => (amount, currency),
            CardCommand::Refund { .. } => return Err(self.unsupported("a refund").into()),
            CardCommand::Reversal { .. } => return Err(self.unsupported("a reversal").into()),
            CardCommand::EndOfDay => return Err(self.unsupported("the end of day").into()),
        };
        if currency != PLN_NUMERIC {
            return Err(DeviceError::new(
                ErrorCategory::NotPossible,
                format!(
                    "{}: only PLN is known to ECR-EFT; nothing was sent",
                    self.name()
                ),
                None,
            )
            .into());
        }
        let s1 = Message::S1(Transaction {
            kind: TransactionType::Sale,
            ecr_id: self.ecr_id.clone(),
            payment_id: payment_id.chars().take(20).collect(),
            gross: amount,
            net: None,
            vat: None,
            currency: PLN.into(),
            cashback: None,
            max_cashback: None,
        });
        let wait = self.config.transaction_timeout();
        let name = self.name();
        // S1 is never sent twice, so it must not go out on a connection the terminal has
        // already closed (as it may right after its last result): a sale written into a
        // dead socket would end needs_attention with nothing charged. Connect again first;
        // if that fails, nothing was sent.
        let closed = match self.conn.as_mut() {
            Some(t) => t.check_open(IDLE_CHECK).await.err(),
            None => None,
        };
        if let Some(e) = closed {
            tracing::info!(terminal = %name, error = %e, "the connection was closed while idle; connecting again before the sale");
            // A terminal on a serial line comes back after a moment (a new device).
            let until = tokio::time::Instant::now() + self.config.command_timeout();
            let failed = loop {
                match self.connect().await {
                    Ok(()) => break None,
                    Err(e) if tokio::time::Instant::now() >= until => break Some(e),
                    Err(_) => tokio::time::sleep(RECONNECT_PAUSE).await,
                }
            };
            if let Some(e) = failed {
                return Err(DeviceError::new(
                    ErrorCategory::Transport,
                    format!("{}; the sale was not sent, nothing was charged", e.message),
                    None,
                )
                .into());
            }
        }
        // A busy answer (993) echoing our S1's token says the terminal did not take it (it
        // is still in a flow a restart abandoned): nothing happened, so the S1 goes again
        // once the line is quiet, for up to BUSY_WAIT. The only case an S1 is sent again.
        let busy_until = tokio::time::Instant::now() + BUSY_WAIT.max(wait);
        loop {
            let t = self
                .conn
                .as_mut()
                .ok_or_else(|| DeviceError::link_lost(format!("{name}: not connected")))?;
            // Encoding is checked before anything is written: a refusal, nothing happened.
            let token = t.request(&s1).map_err(|e| {
                DeviceError::new(
                    ErrorCategory::InvalidField,
                    format!("{name}: the sale cannot be sent: {e}"),
                    None,
                )
            })?;
            match self
                .converse(Goal::Result(token), Some(&mut *observer), false, wait)
                .await
            {
                Ok(Ended::Outcome(o)) => {
                    return Ok(FlowEnd {
                        outcome: Some(o),
                        aborted: None,
                    });
                }
                Ok(_) => return Err(DeviceError::protocol("an S1 ended without its S2").into()),
                Err(FlowError::Device(e))
                    if e.device_code == Some(ERROR_BUSY)
                        && e.is_refusal()
                        && tokio::time::Instant::now() < busy_until =>
                {
                    tracing::info!(terminal = %name, "the terminal is busy with an earlier flow; the sale goes again once the line is quiet");
                    self.converse::<O>(Goal::Quiet, None, false, BUSY_QUIET)
                        .await?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn last_transaction(&mut self) -> Result<LastTransaction, DeviceError> {
        // No such query is known (see the crate README): a person settles the job.
        Ok(LastTransaction::Unsupported)
    }

    fn explain(&self, code: u32) -> TerminalCode {
        explain(code)
    }
}

/// The trace number an S2's transaction id is journaled under: the id itself when it is
/// a number below 2³¹, else a value derived from its text ([`DERIVED_TRACE_BIT`]).
pub fn trace_number(transaction_id: &str) -> Option<u32> {
    let id = transaction_id.trim();
    if id.is_empty() {
        return None;
    }
    if let Ok(n) = id.parse::<u32>()
        && n < DERIVED_TRACE_BIT
    {
        return Some(n);
    }
    let mut h: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    Some(h | DERIVED_TRACE_BIT)
}

/// The whitelisted, masked part of an S2: the card token (masked once more if it is a card
/// number) in `masked_pan`, the transaction id, TID, amount and payment method.
pub fn outcome(r: &TransactionResult) -> CardOutcome {
    let text = |s: &str| (!s.trim().is_empty()).then(|| zvt::pan::mask_in_text(s.trim()));
    CardOutcome {
        approved: r.approved(),
        result_code: r.error,
        amount: r.amount,
        currency: Some(PLN_NUMERIC),
        trace_number: trace_number(&r.transaction_id),
        receipt_number: None,
        terminal_id: text(&r.tid),
        masked_pan: text(&r.card_token),
        card_name: text(&r.payment_method),
        auth_code: None,
        date: None,
        time: None,
        transaction_id: text(&r.transaction_id),
    }
}

/// An S2 error code in plain words. The sources know only 0 (approved, our assumption)
/// and 993 (busy); any other code is a decline whose meaning is the terminal's.
pub fn explain(code: u32) -> TerminalCode {
    let (category, message) = match code {
        0 => (ErrorCategory::CardDeclined, "approved".to_string()),
        ERROR_BUSY => (
            ErrorCategory::TerminalBusy,
            "the terminal is busy with another transaction".to_string(),
        ),
        _ => (
            ErrorCategory::CardDeclined,
            "the terminal declined the transaction (see its display or printout; ECR-EFT's error codes are not known to fiscald)".to_string(),
        ),
    };
    TerminalCode {
        code,
        shown: format!("{code:03}"),
        category,
        message,
    }
}

#[cfg(test)]
mod tests;
