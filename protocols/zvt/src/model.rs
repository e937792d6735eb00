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
//! The receipt text goes out as print-line messages. Time is passed in.

use crate::apdu::Apdu;
use serde::{Deserialize, Serialize};
use std::time::Instant;

/// The terminal's persistent state; this is the emulator's `--state` JSON.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TerminalMemory {
    pub transactions: Vec<StoredTransaction>,
    pub batches: Vec<Batch>,
    // helper: counters (next trace / receipt), terminal id, registration... with serde(default)
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
    // helper: batch number, time, original receipt for reversals...
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

/// A model terminal.
#[derive(Debug)]
pub struct Terminal {
    memory: TerminalMemory,
    // helper: the flow in progress, waiting-for-ack state, outgoing queue, timers, events
}

impl Terminal {
    pub fn new() -> Self {
        todo!("helper")
    }
    pub fn from_memory(memory: TerminalMemory) -> Self {
        let _ = memory;
        todo!("helper")
    }
    pub fn memory(&self) -> &TerminalMemory {
        &self.memory
    }
    /// An APDU from the register arrived at `now`.
    pub fn handle_apdu(&mut self, apdu: &Apdu, now: Instant) {
        todo!("helper")
    }
    /// Time passed (call at [`Self::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Instant) {
        todo!("helper")
    }
    /// The next APDU to send to the register, if one is due.
    pub fn poll_send(&mut self) -> Option<Apdu> {
        todo!("helper")
    }
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!("helper")
    }
    pub fn poll_event(&mut self) -> Option<Event> {
        todo!("helper")
    }
    /// The connection was lost (or re-established): abandon the flow in progress as a real
    /// terminal would, keeping stored transactions.
    pub fn connection_lost(&mut self, now: Instant) {
        todo!("helper")
    }
}

impl Default for Terminal {
    fn default() -> Self {
        Self::new()
    }
}
