//! The ZVT serial link layer as a sans-IO state machine.
//!
//! Frames are `DLE STX <APDU, DLE doubled> DLE ETX <CRC lo> <CRC hi>`; the CRC bytes are
//! sent raw (a CRC byte equal to DLE is not doubled). The receiver answers every frame with
//! a bare ACK (0x06) or NAK (0x15). A sender repeats a frame after a NAK or when no answer
//! came within T2, at most `max_repeats` times, then reports a failure. A receiver NAKs a
//! frame whose bytes stop for longer than T1.
//!
//! Drive it like quinn-proto: feed bytes with [`SerialLink::handle_input`], call
//! [`SerialLink::handle_timeout`] at [`SerialLink::poll_timeout`], write what
//! [`SerialLink::poll_transmit`] returns, and read [`SerialLink::poll_event`]. The same
//! machine serves both the register and the terminal side.

use std::time::{Duration, Instant};

pub const DLE: u8 = 0x10;
pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
pub const ACK: u8 = 0x06;
pub const NAK: u8 = 0x15;

/// Timer settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkConfig {
    /// Longest gap between two bytes of a frame (T1, 200 ms).
    pub t1: Duration,
    /// Longest wait for ACK/NAK (T2, 5 s).
    pub t2: Duration,
    /// Repetitions after the first try (2).
    pub max_repeats: u8,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig { t1: Duration::from_millis(200), t2: Duration::from_secs(5), max_repeats: 2 }
    }
}

/// What the link reports to its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// A frame arrived intact (and was ACKed); its APDU bytes.
    Received(Vec<u8>),
    /// The peer ACKed the frame we sent.
    Delivered,
    /// The frame we sent was not ACKed after all repetitions.
    Failed,
}

/// Returned by [`SerialLink::send`] while a frame is still unacknowledged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a frame is still waiting for its ACK")]
pub struct Busy;

/// Wire bytes of one frame for `apdu`.
pub fn encode_frame(apdu: &[u8]) -> Vec<u8> {
    todo!("helper")
}

/// The link state machine.
#[derive(Debug)]
pub struct SerialLink {
    config: LinkConfig,
    // helper: receive state (in frame, after DLE, CRC bytes), last byte time, outgoing frame,
    // repeats used, ack deadline, transmit queue, event queue...
}

impl SerialLink {
    pub fn new(config: LinkConfig) -> Self {
        let _ = config;
        todo!("helper")
    }
    /// Queue `apdu` for sending. Only one frame may wait for its ACK at a time.
    pub fn send(&mut self, apdu: &[u8], now: Instant) -> Result<(), Busy> {
        todo!("helper")
    }
    /// True while a sent frame waits for ACK/NAK.
    pub fn is_busy(&self) -> bool {
        todo!("helper")
    }
    /// Bytes received from the line at `now`.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        todo!("helper")
    }
    /// Call when [`Self::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        todo!("helper")
    }
    /// Bytes to write to the line.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        todo!("helper")
    }
    /// The next moment a timer expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        todo!("helper")
    }
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        todo!("helper")
    }
    /// Forget partial input and any unacknowledged frame (after a reconnect).
    pub fn reset(&mut self) {
        todo!("helper")
    }
}
