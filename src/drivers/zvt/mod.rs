//! ZVT as a [`PaymentTerminal`] driver: registration, status enquiry, the card flows
//! (authorization, refund, reversal, end of day) and repeat-receipt for recovery, over the
//! serial link layer or TCP ([`transport`]).

#[cfg(test)]
mod commit_tests;
mod recovery;
#[cfg(test)]
mod recovery_tests;
pub mod transport;

use crate::config::{SlipTarget, TerminalConfig};
use crate::device::terminal::{
    CardCommand, CardOutcome, Committed, FlowEnd, FlowError, FlowObserver, LastTransaction,
    LinkCounters, PaymentTerminal, TerminalCode, TerminalInfo,
};
use crate::device::{DeviceError, ErrorCategory, ErrorKind};
use std::convert::Infallible;
use transport::{Transport, TransportError};
use zvt::{EcrCommand, PtMessage, TransactionResult};

/// ZVT registration config: the register prints receipts via print-line messages (0x80),
/// payment receipts (0x02), wants intermediate status (0x08), amount entry (0x10) and
/// admin functions (0x20) on the terminal disabled.
const REGISTRATION_CONFIG: u8 = 0xBA;

/// The code a payment flow reads as when it completed with neither an outcome nor an
/// abort (`6C`, cancelled).
const NO_OUTCOME: u8 = 0x6C;
/// The code an end of day reads as when it completed without an outcome (`77`).
const NO_END_OF_DAY: u8 = 0x77;

/// One ZVT terminal.
pub struct Zvt {
    config: TerminalConfig,
    target: String,
    conn: Option<Transport>,
    /// False while the terminal may still be master of a flow this driver abandoned (or
    /// never saw: at start-up, after a lost link, after `84 83`): the line is drained
    /// before the next registration (see [`recovery`]).
    settled: bool,
    /// Tests connect over an in-memory pipe instead of `target`.
    #[cfg(test)]
    dial: Option<Box<dyn FnMut() -> Transport + Send + Sync>>,
}

impl Zvt {
    /// A driver for the terminal of `config`, reached at `target` (a device path or
    /// `tcp://...`).
    pub fn new(config: TerminalConfig, target: String) -> Self {
        Zvt {
            config,
            target,
            conn: None,
            settled: false,
            #[cfg(test)]
            dial: None,
        }
    }

    fn conn(&mut self) -> Result<&mut Transport, DeviceError> {
        self.conn
            .as_mut()
            .ok_or_else(|| DeviceError::link_lost("the terminal is not connected"))
    }

    fn status_enquiry(&self) -> EcrCommand {
        EcrCommand::StatusEnquiry {
            password: Some(self.config.password_number()),
        }
    }

    /// Run one command flow: send, wait for its answer (`80 00 00`, or `84 xx`: refused),
    /// then answer every terminal message until completion or abort. A Status-Information
    /// goes to `observer` (the commit point) and is acknowledged only once it returned
    /// [`Committed`].
    ///
    /// Messages that arrive before the answer belong to a flow the terminal is still
    /// finishing (ours was abandoned, or they crossed our command on the line): they are
    /// answered as the drain answers them ([`recovery::answer_foreign`]); a foreign
    /// Status-Information goes to `observer` only when `foreign_outcomes` is set (a
    /// registration's observer is the interrupted flow's).
    async fn exchange<O: FlowObserver>(
        &mut self,
        command: &EcrCommand,
        mut observer: Option<&mut O>,
        foreign_outcomes: bool,
    ) -> Result<Exchange, FlowError<O::Error>> {
        let (command_timeout, transaction_timeout) = (
            self.config.command_timeout(),
            self.config.transaction_timeout(),
        );
        self.settled = false;
        let t = self
            .conn
            .as_mut()
            .ok_or_else(|| DeviceError::link_lost("the terminal is not connected"))?;
        t.send(&command.to_apdu()).await.map_err(link)?;
        let mut foreign = 0usize;
        loop {
            let apdu = t.recv(command_timeout).await.map_err(link)?;
            match PtMessage::from_apdu(&apdu) {
                Ok(PtMessage::Ack) => break,
                Ok(PtMessage::Nack(code)) => {
                    // Refused: nothing started. Busy, or talking about another flow: the
                    // terminal is not settled.
                    self.settled = code != 0x83 && foreign == 0;
                    return Err(refused(code).into());
                }
                Ok(other) => {
                    foreign += 1;
                    if foreign > recovery::MAX_FOREIGN {
                        return Err(DeviceError::protocol(format!(
                            "the terminal sent {foreign} messages of another flow instead of answering"
                        ))
                        .into());
                    }
                    tracing::info!(message = ?recovery::kind_of(&other), "a message of an earlier flow before the answer");
                    let o = if foreign_outcomes {
                        observer.as_deref_mut()
                    } else {
                        None
                    };
                    recovery::answer_foreign(t, other, o).await?;
                }
                Err(e) => {
                    foreign += 1;
                    tracing::warn!(error = %e, "an unreadable message before the answer");
                }
            }
        }
        let mut ex = Exchange::default();
        if matches!(command, EcrCommand::Abort | EcrCommand::LogOff) {
            self.settled = foreign == 0;
            return Ok(ex);
        }
        loop {
            let apdu = t.recv(transaction_timeout).await.map_err(link)?;
            let msg =
                PtMessage::from_apdu(&apdu).map_err(|e| DeviceError::protocol(e.to_string()))?;
            match msg {
                PtMessage::IntermediateStatus { status, text, .. } => {
                    let shown = text
                        .map(|t| zvt::pan::mask_in_text(&t))
                        .unwrap_or_else(|| intermediate_text(status).to_string());
                    if let Some(o) = observer.as_deref_mut() {
                        o.display(&shown);
                    }
                }
                PtMessage::StatusInformation(r) => {
                    let outcome = outcome(&r);
                    let committed = match observer.as_deref_mut() {
                        Some(o) => o.outcome(&outcome).await.map_err(FlowError::Observer)?,
                        // Not a card flow (status, registration, recovery's query): the
                        // outcome is only reported, and the caller journals what it decides.
                        None => Committed::journaled(),
                    };
                    ex.result = Some(outcome);
                    ack(t, committed).await?;
                    continue;
                }
                // Receipt text is free text: mask any card number a terminal prints in clear.
                PtMessage::PrintLine { text, .. } => {
                    let line = zvt::pan::mask_in_text(&text);
                    if let Some(o) = observer.as_deref_mut() {
                        o.slip_line(&line);
                    }
                }
                PtMessage::PrintTextBlock { lines, .. } => {
                    for l in &lines {
                        let line = zvt::pan::mask_in_text(l);
                        if let Some(o) = observer.as_deref_mut() {
                            o.slip_line(&line);
                        }
                    }
                }
                PtMessage::Completion {
                    terminal_status,
                    terminal_id,
                    ..
                } => {
                    ex.terminal_status = terminal_status;
                    ex.terminal_id = terminal_id;
                    t.send(&EcrCommand::Ack.to_apdu()).await.map_err(link)?;
                    self.settled = foreign == 0;
                    return Ok(ex);
                }
                PtMessage::Abort { result_code, .. } => {
                    ex.aborted = Some(result_code);
                    t.send(&EcrCommand::Ack.to_apdu()).await.map_err(link)?;
                    self.settled = foreign == 0;
                    return Ok(ex);
                }
                // A late answer to nothing we sent in this flow.
                PtMessage::Ack | PtMessage::Nack(_) => continue,
            }
            t.send(&EcrCommand::Ack.to_apdu()).await.map_err(link)?;
        }
    }

    /// A flow without an observer (its outcomes are only reported).
    async fn plain(&mut self, command: &EcrCommand) -> Result<Exchange, DeviceError> {
        self.exchange::<Unobserved>(command, None, false)
            .await
            .map_err(|e| match e {
                FlowError::Device(e) => e,
                FlowError::Observer(never) => match never {},
            })
    }

    fn info(&self, ex: &Exchange) -> TerminalInfo {
        TerminalInfo {
            terminal_id: ex.terminal_id.clone(),
            fault: ex
                .terminal_status
                .filter(|c| *c != 0)
                .map(|c| explain(u32::from(c))),
        }
    }
}

/// Acknowledge a Status-Information: only with the proof that it was committed.
async fn ack(t: &mut Transport, _committed: Committed) -> Result<(), DeviceError> {
    t.send(&EcrCommand::Ack.to_apdu()).await.map_err(link)
}

/// What one ZVT command flow produced.
#[derive(Debug, Default)]
struct Exchange {
    /// The Status-Information, if one came.
    result: Option<CardOutcome>,
    /// `06 1E` result code, if the terminal aborted.
    aborted: Option<u8>,
    /// Terminal status from a completion (a status enquiry's).
    terminal_status: Option<u8>,
    terminal_id: Option<String>,
}

/// The observer of flows nobody observes.
enum Unobserved {}

impl FlowObserver for Unobserved {
    type Error = Infallible;
    fn display(&mut self, _text: &str) {
        match *self {}
    }
    fn slip_line(&mut self, _line: &str) {
        match *self {}
    }
    async fn outcome(&mut self, _outcome: &CardOutcome) -> Result<Committed, Infallible> {
        match *self {}
    }
}

impl PaymentTerminal for Zvt {
    async fn connect(&mut self) -> Result<(), DeviceError> {
        self.conn = None;
        #[cfg(test)]
        if let Some(dial) = self.dial.as_mut() {
            self.conn = Some(dial());
            return Ok(());
        }
        let t = Transport::open(
            &self.target,
            self.config.baud,
            self.config.command_timeout(),
        )
        .await
        .map_err(link)?;
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
        self.target.starts_with("tcp://")
    }

    fn needs_registration(&self) -> bool {
        !self.settled
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
        let config = if self.config.slip == SlipTarget::Terminal {
            REGISTRATION_CONFIG & !0x02
        } else {
            REGISTRATION_CONFIG
        };
        let reg = EcrCommand::Registration {
            password: self.config.password_number(),
            config,
            currency: Some(self.config.currency_code()),
        };
        let registered = self.register_after_drain(&reg, interrupted).await?;
        let enquiry = self
            .exchange(&self.status_enquiry(), Some(interrupted), true)
            .await?;
        let mut info = self.info(&enquiry);
        info.terminal_id = registered.terminal_id.or(info.terminal_id);
        Ok(info)
    }

    async fn status(&mut self) -> Result<TerminalInfo, DeviceError> {
        let ex = self.plain(&self.status_enquiry()).await?;
        Ok(self.info(&ex))
    }

    async fn run<O: FlowObserver>(
        &mut self,
        _payment_id: &str,
        command: &CardCommand,
        observer: &mut O,
    ) -> Result<FlowEnd, FlowError<O::Error>> {
        let password = self.config.password_number();
        let (zvt_command, fallback) = match *command {
            CardCommand::Sale { amount, currency } => {
                (EcrCommand::Authorization { amount, currency }, NO_OUTCOME)
            }
            CardCommand::Refund { amount, currency } => (
                EcrCommand::Refund {
                    password,
                    amount,
                    currency,
                },
                NO_OUTCOME,
            ),
            CardCommand::Reversal { receipt_number } => (
                EcrCommand::Reversal {
                    password,
                    receipt_number,
                },
                NO_OUTCOME,
            ),
            CardCommand::EndOfDay => (EcrCommand::EndOfDay { password }, NO_END_OF_DAY),
        };
        let ex = self.exchange(&zvt_command, Some(observer), false).await?;
        let aborted = match (ex.aborted, &ex.result) {
            (Some(code), _) => Some(abort_code(code)),
            (None, None) => Some(abort_code(fallback)),
            (None, Some(_)) => None,
        };
        Ok(FlowEnd {
            outcome: ex.result,
            aborted,
        })
    }

    async fn last_transaction(&mut self) -> Result<LastTransaction, DeviceError> {
        // Repeat receipt, service 03: the Status-Information again, no printout.
        let cmd = EcrCommand::RepeatReceipt {
            password: self.config.password_number(),
            service: 0x03,
        };
        match self.plain(&cmd).await {
            Ok(Exchange {
                result: Some(r), ..
            }) => Ok(LastTransaction::Found(r)),
            Ok(_) => Ok(LastTransaction::Nothing),
            Err(e) if e.is_refusal() => Ok(LastTransaction::Nothing),
            Err(e) => Err(e),
        }
    }

    fn explain(&self, code: u32) -> TerminalCode {
        explain(code)
    }
}

/// The whitelisted, masked part of a Status-Information (the PAN is masked once more, in
/// case a terminal sent more digits than the codec's mask keeps).
pub fn outcome(r: &TransactionResult) -> CardOutcome {
    CardOutcome {
        approved: r.result_code == 0,
        result_code: u32::from(r.result_code),
        amount: r.amount,
        currency: r.currency,
        trace_number: r.trace_number,
        receipt_number: r.receipt_number,
        terminal_id: r.terminal_id.clone(),
        masked_pan: r.masked_pan.as_deref().map(zvt::pan::mask),
        card_name: r.card_name.clone(),
        auth_code: r.auth_code.clone(),
        date: r.date.clone(),
        time: r.time.clone(),
        transaction_id: None,
    }
}

/// A ZVT code with its catalogue entry.
pub fn explain(code: u32) -> TerminalCode {
    let byte = u8::try_from(code).unwrap_or(0xFF);
    let info = zvt::error::describe(byte);
    TerminalCode {
        code,
        shown: format!("{byte:02X}"),
        category: category(info.category),
        message: info.message.to_string(),
    }
}

/// An abort's code: in the host's range (below 64) it is a decline.
fn abort_code(code: u8) -> TerminalCode {
    let mut c = explain(u32::from(code));
    if code < 0x64 {
        c.category = ErrorCategory::CardDeclined;
    }
    c
}

/// `zvt::error`'s category names as the neutral categories.
fn category(name: &str) -> ErrorCategory {
    match name {
        "card_declined" | "approved" => ErrorCategory::CardDeclined,
        "card_error" => ErrorCategory::CardError,
        "cancelled" => ErrorCategory::Cancelled,
        "terminal_busy" => ErrorCategory::TerminalBusy,
        "not_possible" => ErrorCategory::NotPossible,
        "communication" => ErrorCategory::Communication,
        "protocol" => ErrorCategory::Protocol,
        _ => ErrorCategory::TerminalError,
    }
}

/// `84 xx`: the terminal refused the command; nothing happened.
fn refused(code: u8) -> DeviceError {
    let c = explain(u32::from(code));
    DeviceError {
        kind: ErrorKind::Refused,
        ..DeviceError::new(
            c.category,
            format!("{} (code {})", c.message, c.shown),
            Some(c.code),
        )
    }
}

/// A transport failure: the outcome of what was in flight is unknown.
fn link(e: TransportError) -> DeviceError {
    DeviceError::link_lost(e.to_string())
}

/// Plain words for the common intermediate status codes.
fn intermediate_text(code: u8) -> &'static str {
    match code {
        0x00 => "awaiting amount confirmation",
        0x01 | 0x02 => "watch the PIN pad",
        0x04 => "waiting for the host",
        0x0A => "insert card",
        0x0B => "remove card",
        0x0E | 0x17 => "please wait",
        0x15 => "incorrect PIN",
        0x1D => "declined",
        _ => "in progress",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whitelisted_fields_leave_the_driver() {
        let r = TransactionResult {
            result_code: 0,
            amount: Some(3990),
            masked_pan: Some("5454545454545454".into()),
            vu_number: Some("merchant".into()),
            additional_text: Some("free text".into()),
            card_type: Some(6),
            trace_number: Some(7),
            ..Default::default()
        };
        let o = outcome(&r);
        assert!(o.approved);
        assert_eq!(o.masked_pan.as_deref(), Some("545454******5454"));
        let v = serde_json::to_value(&o).unwrap();
        assert!(v.get("vu_number").is_none() && v.get("additional_text").is_none());
    }

    #[test]
    fn codes_read_as_neutral_categories() {
        assert_eq!(explain(0x6C).category, ErrorCategory::Cancelled);
        assert_eq!(explain(0x6C).shown, "6C");
        assert_eq!(explain(0x9C).category, ErrorCategory::TerminalBusy);
        assert_eq!(abort_code(0x05).category, ErrorCategory::CardDeclined);
        assert_eq!(abort_code(0x00).category, ErrorCategory::CardDeclined);
        let e = refused(0x83);
        assert!(e.is_refusal());
        assert_eq!(e.device_code, Some(0x83));
        assert!(e.message.ends_with("(code 83)"), "{}", e.message);
    }
}
