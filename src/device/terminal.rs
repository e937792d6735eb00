//! The payment-terminal driver seam: what the protocol-neutral terminal task
//! (`crate::terminal`) needs from a card-terminal protocol (ZVT today, ECR-EFT next), and
//! the neutral types both sides speak.
//!
//! A driver owns its connection and its protocol's rules; the task owns the journal, the
//! queue and every decision about money. They meet at [`PaymentTerminal`] and, inside a card
//! flow, at a [`FlowObserver`].
//!
//! # The commit point
//!
//! When the terminal reports a transaction's outcome (ZVT's Status-Information, ECR-EFT's
//! S2), the driver hands it to [`FlowObserver::outcome`] and awaits it. The observer
//! journals it; only when that returns a [`Committed`] may the driver acknowledge the outcome
//! to the terminal. If it returns an error, the driver must not acknowledge: it returns
//! [`FlowError::Observer`] and leaves the terminal to repeat the outcome (or recovery to ask
//! for it). A driver's acknowledging code takes the `Committed` value, so the ordering is
//! visible in its types: an outcome acknowledged before it is journaled could be a charge
//! that a crash forgets.

use super::{DeviceError, ErrorCategory};
use serde::{Deserialize, Serialize};
use std::future::Future;

/// One card flow the task asks a terminal to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CardCommand {
    /// Charge `amount` minor units of `currency` (ISO 4217 numeric).
    Sale { amount: u64, currency: u16 },
    /// Refund `amount` minor units to the card.
    Refund { amount: u64, currency: u16 },
    /// Reverse (void) the transaction with this terminal receipt number.
    Reversal { receipt_number: u32 },
    /// Close the terminal's day (settlement with the acquirer).
    EndOfDay,
}

/// A transaction outcome as the terminal reported it, holding only whitelisted fields:
/// no track data, no CVV, no expiry, no full card number. This is what is journaled (in
/// `card_transactions`) and what recovery matches by.
///
/// The field names are those the journal always stored, so older rows read back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CardOutcome {
    /// Whether the terminal approved the transaction.
    #[serde(default)]
    pub approved: bool,
    /// The terminal's result code (0 = approved for ZVT).
    pub result_code: u32,
    /// Minor units.
    pub amount: Option<u64>,
    /// ISO 4217 numeric.
    pub currency: Option<u16>,
    /// The terminal's trace number, the key recovery matches by.
    pub trace_number: Option<u32>,
    /// The terminal's receipt number (what a reversal names).
    pub receipt_number: Option<u32>,
    /// The terminal's id.
    pub terminal_id: Option<String>,
    /// The card number, masked by the driver (at most the first 6 and the last 4 digits).
    pub masked_pan: Option<String>,
    /// The card's brand or product name.
    pub card_name: Option<String>,
    /// The authorisation (approval) code.
    pub auth_code: Option<String>,
    /// The terminal's date of the transaction, as it sent it.
    pub date: Option<String>,
    /// The terminal's time of the transaction, as it sent it.
    pub time: Option<String>,
    /// The terminal's own transaction id, when the protocol has one as text (ECR-EFT's
    /// S2); `trace_number` is its numeric form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<String>,
}

/// One of the terminal's own result or error codes, explained by its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalCode {
    /// The code as a number (the API's `device_code`).
    pub code: u32,
    /// The code as the protocol's documents write it (`6C` for ZVT).
    pub shown: String,
    /// The vendor-neutral category.
    pub category: ErrorCategory,
    /// What it means and what to do, in plain words.
    pub message: String,
}

/// What registration or a status query learnt about the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TerminalInfo {
    /// The terminal's id, if it reported one.
    pub terminal_id: Option<String>,
    /// Why the terminal is not ready, if it is not.
    pub fault: Option<TerminalCode>,
}

/// How a card flow ended (its outcome, if any, has already been committed).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlowEnd {
    /// The outcome the terminal reported.
    pub outcome: Option<CardOutcome>,
    /// Why the terminal ended the flow without completing it, if it did (an abort, or no
    /// outcome at all).
    pub aborted: Option<TerminalCode>,
}

/// What the terminal says its last transaction was (recovery's question).
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub enum LastTransaction {
    /// The terminal's last transaction.
    Found(CardOutcome),
    /// The terminal has none to report (or refused to report one).
    Nothing,
    /// The protocol has no such query: the outcome of an interrupted flow cannot be learnt
    /// from the terminal, and a person must settle it.
    Unsupported,
}

/// Proof that an observer made an outcome durable. A driver acknowledges an outcome to the
/// terminal only with one of these in hand (see the module's "commit point").
#[derive(Debug)]
#[must_use = "the outcome may be acknowledged to the terminal now"]
pub struct Committed(());

impl Committed {
    /// Only a [`FlowObserver`] calls this, and only after the outcome is journaled (or
    /// after deciding that this flow's outcomes are not journaled, e.g. a reversal that the
    /// job's end records).
    pub fn journaled() -> Self {
        Committed(())
    }
}

/// Why a card flow stopped early.
#[derive(Debug)]
pub enum FlowError<E> {
    /// The terminal or the link failed; [`DeviceError::kind`] says whether anything happened.
    Device(DeviceError),
    /// The observer could not commit an outcome, so it was not acknowledged.
    Observer(E),
}

impl<E> From<DeviceError> for FlowError<E> {
    fn from(e: DeviceError) -> Self {
        FlowError::Device(e)
    }
}

/// What the task hears during a card flow.
pub trait FlowObserver: Send {
    /// Why a commit failed (a journal error).
    type Error: Send;
    /// The terminal shows `text` (card numbers in it already masked).
    fn display(&mut self, text: &str);
    /// The terminal sent a slip line (card numbers in it already masked).
    fn slip_line(&mut self, line: &str);
    /// The commit point: the terminal reported `outcome`. Journal it; the driver
    /// acknowledges it to the terminal only on `Ok`.
    fn outcome(
        &mut self,
        outcome: &CardOutcome,
    ) -> impl Future<Output = Result<Committed, Self::Error>> + Send;
}

/// Byte counters of the current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkCounters {
    /// Bytes written to the terminal.
    pub bytes_out: u64,
    /// Bytes read from the terminal.
    pub bytes_in: u64,
}

/// A card-terminal protocol driver. One driver value serves one terminal for the life of
/// its task; it owns the connection (reopening it on [`PaymentTerminal::connect`]).
///
/// Invariants a driver keeps:
/// - **Commit before acknowledge:** every transaction outcome of [`PaymentTerminal::run`]
///   goes through [`FlowObserver::outcome`] and is acknowledged only after it returned
///   [`Committed`] (see the module docs).
/// - **Never resend an authorization:** a flow that failed with an unknown outcome is not
///   retried by the driver; the task reconciles it with [`PaymentTerminal::status`] and
///   [`PaymentTerminal::last_transaction`].
/// - **Masked card data only:** [`CardOutcome`], display texts and slip lines carry masked
///   card numbers.
/// - Errors are [`DeviceError`]s whose [`DeviceError::kind`] tells a refusal (nothing
///   happened) from a lost link (outcome unknown) and a protocol violation.
///
/// A terminal may still be finishing an interrupted flow when the task reconnects (it
/// repeats an unacknowledged outcome, sends the rest of a slip). A driver that drains the
/// line before registering hands such an outcome to the `interrupted` observer of
/// [`PaymentTerminal::register`]: it is the commit point of the interrupted payment.
pub trait PaymentTerminal: Send {
    /// Open the connection (closing any old one).
    fn connect(&mut self) -> impl Future<Output = Result<(), DeviceError>> + Send;
    /// Close the connection.
    fn disconnect(&mut self);
    /// Whether a connection is open.
    fn is_connected(&self) -> bool;
    /// Whether each exchange needs its own connection and registration (ZVT over TCP):
    /// the task then disconnects after every job or status query.
    fn connection_per_exchange(&self) -> bool;
    /// Whether the terminal must be registered again before the next job: it may still be
    /// finishing a flow that was abandoned or refused as busy, so the driver wants to drain
    /// the line first (see [`PaymentTerminal::register`]). The connection stays open.
    fn needs_registration(&self) -> bool {
        false
    }
    /// Byte counters of the open connection, if one is open.
    fn counters(&self) -> Option<LinkCounters>;
    /// Register with the terminal and read its status. A transaction outcome the terminal
    /// still delivers from an interrupted flow goes to `interrupted` before it is
    /// acknowledged, as in [`PaymentTerminal::run`].
    fn register<O: FlowObserver>(
        &mut self,
        interrupted: &mut O,
    ) -> impl Future<Output = Result<TerminalInfo, FlowError<O::Error>>> + Send;
    /// Ask the terminal for its status (is it idle, does it work).
    fn status(&mut self) -> impl Future<Output = Result<TerminalInfo, DeviceError>> + Send;
    /// Run one card flow to its end, reporting display texts, slip lines and the outcome to
    /// `observer`. `payment_id` is the journal's name for the flow (protocols that carry
    /// one, like ECR-EFT, send it).
    fn run<O: FlowObserver>(
        &mut self,
        payment_id: &str,
        command: &CardCommand,
        observer: &mut O,
    ) -> impl Future<Output = Result<FlowEnd, FlowError<O::Error>>> + Send;
    /// The terminal's last transaction, for recovery. Never starts a transaction.
    fn last_transaction(
        &mut self,
    ) -> impl Future<Output = Result<LastTransaction, DeviceError>> + Send;
    /// Explain one of the terminal's result codes (e.g. a decline's).
    fn explain(&self, code: u32) -> TerminalCode;
}

/// Currency code → name for results.
pub fn currency_name(code: u16) -> &'static str {
    match code {
        985 => "PLN",
        978 => "EUR",
        _ => "XXX",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outcome_stored_before_drivers_reads_back() {
        // A row written when the whole ZVT result was stored.
        let old = serde_json::json!({"result_code": 0, "amount": 3990, "currency": 985,
            "trace_number": 17, "original_trace": null, "receipt_number": 5, "turnover_number": 9,
            "terminal_id": "52500038", "masked_pan": "545454******5454", "card_name": "Mastercard",
            "card_type": 6, "auth_code": "A1", "time": "101500", "date": "1201", "payment_type": 64,
            "vu_number": "X", "additional_text": "hello"});
        let o: CardOutcome = serde_json::from_value(old).unwrap();
        assert_eq!(o.trace_number, Some(17));
        assert_eq!(o.receipt_number, Some(5));
        let stored = serde_json::to_value(&o).unwrap();
        for gone in [
            "card_type",
            "vu_number",
            "additional_text",
            "turnover_number",
        ] {
            assert!(stored.get(gone).is_none(), "{gone} is not whitelisted");
        }
    }

    #[test]
    fn currency_names() {
        assert_eq!(currency_name(985), "PLN");
        assert_eq!(currency_name(978), "EUR");
        assert_eq!(currency_name(840), "XXX");
    }
}
