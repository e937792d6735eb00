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
//!
//! [`split::LinkSplitter`] reads the same framing passively (no answers, no timers), for
//! wire traces and replay.

pub mod split;

use split::Read;
pub use split::{LinkItem, LinkSplitter};

use std::collections::VecDeque;
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
        LinkConfig {
            t1: Duration::from_millis(200),
            t2: Duration::from_secs(5),
            max_repeats: 2,
        }
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
    let mut out = Vec::with_capacity(apdu.len() + 8);
    out.extend_from_slice(&[DLE, STX]);
    for &b in apdu {
        out.push(b);
        if b == DLE {
            out.push(DLE);
        }
    }
    out.extend_from_slice(&[DLE, ETX]);
    out.extend_from_slice(&crate::crc::frame_checksum(apdu).to_le_bytes());
    out
}

/// The longest APDU a frame may carry (header plus 65535 data bytes); a longer frame is
/// NAKed.
pub const MAX_FRAME_APDU: usize = 5 + crate::apdu::MAX_DATA;

/// The link state machine.
///
/// Receiving: a frame with a good CRC is answered with ACK and reported as
/// [`LinkEvent::Received`]; a bad CRC, a malformed DLE sequence, an oversized frame or a
/// gap of T1 or more between two bytes of a frame is answered with NAK and the frame is
/// dropped. Bytes between frames are ignored, except ACK and NAK while a sent frame waits
/// for its answer.
///
/// ZVT frames carry no sequence number, so a frame the peer repeats because our ACK was
/// lost cannot be told from a new one: it is ACKed and reported again, and the layer above
/// (which knows what it expects next) deals with the duplicate.
///
/// Sending: [`SerialLink::send`] queues the frame and starts T2 at once (the driver writes
/// it immediately; at 9600 baud even a 1 kB frame leaves well within T2). ACK ends the
/// exchange with [`LinkEvent::Delivered`]; NAK or T2 repeats the frame up to
/// `max_repeats` times, then [`LinkEvent::Failed`].
#[derive(Debug)]
pub struct SerialLink {
    config: LinkConfig,
    /// The frame reader (shared with the passive [`LinkSplitter`]).
    rx: split::Reader,
    /// When the last byte of the current frame arrived.
    rx_last: Option<Instant>,
    /// The frame waiting for ACK/NAK, its repetitions so far and its deadline.
    outgoing: Option<Vec<u8>>,
    repeats: u8,
    ack_deadline: Option<Instant>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
}

impl SerialLink {
    pub fn new(config: LinkConfig) -> Self {
        SerialLink {
            config,
            rx: split::Reader::default(),
            rx_last: None,
            outgoing: None,
            repeats: 0,
            ack_deadline: None,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
    /// The timer settings.
    pub fn config(&self) -> LinkConfig {
        self.config
    }
    /// Queue `apdu` for sending. Only one frame may wait for its ACK at a time.
    pub fn send(&mut self, apdu: &[u8], now: Instant) -> Result<(), Busy> {
        if self.outgoing.is_some() {
            return Err(Busy);
        }
        let frame = encode_frame(apdu);
        self.transmit.push_back(frame.clone());
        self.outgoing = Some(frame);
        self.repeats = 0;
        self.ack_deadline = Some(now + self.config.t2);
        Ok(())
    }
    /// True while a sent frame waits for ACK/NAK.
    pub fn is_busy(&self) -> bool {
        self.outgoing.is_some()
    }
    /// Bytes received from the line at `now`.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if bytes.is_empty() {
            return;
        }
        // A gap the driver did not report through handle_timeout still counts.
        self.expire_frame(now);
        for &b in bytes {
            self.byte(b, now);
        }
    }
    /// Call when [`Self::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_frame(now);
        if self.ack_deadline.is_some_and(|d| now >= d) {
            self.repeat_or_fail(now);
        }
    }
    /// Bytes to write to the line.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }
    /// The next moment a timer expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let t1 = self.t1_deadline();
        match (t1, self.ack_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }
    /// Forget partial input and any unacknowledged frame (after a reconnect), together
    /// with queued output and unread events.
    pub fn reset(&mut self) {
        *self = SerialLink::new(self.config);
    }

    fn in_frame(&self) -> bool {
        self.rx.in_frame()
    }

    fn t1_deadline(&self) -> Option<Instant> {
        if self.in_frame() {
            self.rx_last.map(|t| t + self.config.t1)
        } else {
            None
        }
    }

    /// NAK a frame whose bytes stopped for T1 or longer.
    fn expire_frame(&mut self, now: Instant) {
        if self.t1_deadline().is_some_and(|d| now >= d) {
            self.reject();
        }
    }

    fn reject(&mut self) {
        self.transmit.push_back(vec![NAK]);
        self.idle();
    }

    fn idle(&mut self) {
        self.rx.reset();
        self.rx_last = None;
    }

    fn byte(&mut self, b: u8, now: Instant) {
        if self.in_frame() {
            self.rx_last = Some(now);
        }
        let mut reads = Vec::new();
        self.rx.byte(b, &mut |r| reads.push(r));
        for r in reads {
            match r {
                Read::Ack => self.answer(ACK, now),
                Read::Nak => self.answer(NAK, now),
                Read::Stray(_) => {}
                // A new frame starts (the peer gave up on one in progress, if any).
                Read::Start { .. } => self.rx_last = Some(now),
                Read::Frame { apdu, crc_ok: true } => {
                    self.transmit.push_back(vec![ACK]);
                    self.events.push_back(LinkEvent::Received(apdu));
                    self.idle();
                }
                Read::Frame { crc_ok: false, .. } | Read::Broken(_) => self.reject(),
            }
        }
    }

    /// ACK or NAK from the peer (ignored when nothing waits for one).
    fn answer(&mut self, b: u8, now: Instant) {
        if self.outgoing.is_none() {
            return;
        }
        if b == ACK {
            self.outgoing = None;
            self.ack_deadline = None;
            self.events.push_back(LinkEvent::Delivered);
        } else {
            self.repeat_or_fail(now);
        }
    }

    fn repeat_or_fail(&mut self, now: Instant) {
        match &self.outgoing {
            Some(frame) if self.repeats < self.config.max_repeats => {
                self.transmit.push_back(frame.clone());
                self.repeats += 1;
                self.ack_deadline = Some(now + self.config.t2);
            }
            Some(_) => {
                self.outgoing = None;
                self.ack_deadline = None;
                self.events.push_back(LinkEvent::Failed);
            }
            None => self.ack_deadline = None,
        }
    }
}
