//! The ECR-EFT link layer as a sans-IO state machine, for either side.
//!
//! - Every frame received is answered with ACK, or NAK when its LRC is wrong (or it is too
//!   long); intact frames are reported as [`LinkEvent::Received`].
//! - Frames are sent one at a time, each waiting for ACK/NAK up to
//!   [`LinkConfig::ack_timeout`]. A frame of a kind that may be repeated is sent again after
//!   NAK or the timeout, at most [`LinkConfig::max_retransmits`] times. A transaction request
//!   (S1, [`NEVER_RETRANSMIT`]) is never sent again: NAK or silence ends it with
//!   [`LinkEvent::Failed`] and the layer above decides (a charge must never be doubled).
//! - Tokens: [`Link::request`] takes a fresh token from the side's range
//!   ([`LinkConfig::tokens`]), wrapping to the start and skipping the tokens of requests
//!   still waiting for their reply; [`Link::reply`] echoes the request's token. A received
//!   frame whose token is an open request's is reported with `answers` set to that request's
//!   type; the request's final reply ([`reply_kind`]) closes it.
//! - Keep-alive: with [`LinkConfig::keepalive`] set, after that long without traffic and
//!   with no request open the link sends T1 itself and expects T2 within
//!   [`LinkConfig::ping_timeout`]; the T2 is consumed. After
//!   [`LinkConfig::max_missed_pings`] unanswered pings it reports [`LinkEvent::PeerLost`].
//!   Incoming T1 is reported like any frame (the user answers with T2).
//! - A frame identical to the one received just before it, within the peer's repetition
//!   window, is ACKed again and reported with `repeat` set (the peer did not get our ACK).
//! - Bytes between frames other than ACK/NAK (a NUL after a frame, keep-alive control
//!   characters, noise) are skipped. A partial frame whose bytes stop for
//!   [`LinkConfig::byte_timeout`] is dropped.
//!
//! Drive it like quinn-proto: [`Link::handle_input`], [`Link::handle_timeout`] at
//! [`Link::poll_timeout`], write [`Link::poll_transmit`], read [`Link::poll_event`].

use crate::frame::{ACK, Decoder, Frame, FrameError, Item, Kind, NAK, Token};
use std::collections::VecDeque;
use std::ops::Range;
use std::time::{Duration, Instant};

/// Kinds that are never sent again by the link (second-hand: frobd does not repeat S1).
pub const NEVER_RETRANSMIT: &[Kind] = &[*b"S1"];

/// Request → final reply (second-hand: frobd's `protocol.rl` flows and `frob.h` names).
/// Requests not listed (P1, I1, L1, M1) expect no reply of their own.
pub const REPLIES: &[(Kind, Kind)] = &[
    (*b"T1", *b"T2"),
    (*b"T3", *b"T4"),
    (*b"T4", *b"T5"),
    (*b"D4", *b"D5"),
    (*b"S1", *b"S2"),
    (*b"A1", *b"A2"),
    (*b"D1", *b"D0"),
    (*b"D2", *b"D0"),
    (*b"D3", *b"D0"),
    (*b"D6", *b"D0"),
    (*b"D7", *b"D8"),
    (*b"K1", *b"K0"),
    (*b"K2", *b"K0"),
    (*b"K3", *b"K0"),
    (*b"K4", *b"K0"),
    (*b"K5", *b"K0"),
    (*b"K6", *b"K0"),
    (*b"K7", *b"K0"),
    (*b"K8", *b"K0"),
    (*b"K9", *b"K0"),
    (*b"B1", *b"B2"),
    (*b"B3", *b"B4"),
];

/// The final reply to a request of `kind`, if it has one.
pub fn reply_kind(kind: &Kind) -> Option<Kind> {
    REPLIES.iter().find(|(q, _)| q == kind).map(|(_, a)| *a)
}

/// Which end of the line this link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The register.
    Ecr,
    /// The terminal.
    Eft,
}

/// Timers, limits and the token range. Every value is configuration: the specification
/// was not available, the defaults follow frobd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkConfig {
    /// Wait for ACK/NAK (frobd: 3 s).
    pub ack_timeout: Duration,
    /// Repetitions of a repeatable frame after the first try (frobd: 3).
    pub max_retransmits: u8,
    /// Longest gap between two bytes of one frame (ours: 1 s; not in the sources).
    pub byte_timeout: Duration,
    /// Idle time before a T1 ping; `None` sends no pings (frobd pings on inactivity). Idle
    /// time is counted from the last byte in either direction (none before the first).
    pub keepalive: Option<Duration>,
    /// Wait for T2 after our T1 (frobd: 10 s).
    pub ping_timeout: Duration,
    /// Unanswered pings before [`LinkEvent::PeerLost`] (frobd: 2).
    pub max_missed_pings: u8,
    /// Token values this side uses for its requests (frobd: the ECR below 10000, the EFT
    /// from 10000 below 20000).
    pub tokens: Range<u32>,
    /// Hex digits of the tokens we write (the reference's test frames use 6).
    pub token_digits: usize,
}

/// Defaults (see each field).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(3);
pub const MAX_RETRANSMITS: u8 = 3;
pub const BYTE_TIMEOUT: Duration = Duration::from_secs(1);
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);
pub const MAX_MISSED_PINGS: u8 = 2;
pub const ECR_TOKENS: Range<u32> = 1..10_000;
pub const EFT_TOKENS: Range<u32> = 10_000..20_000;
pub const TOKEN_DIGITS: usize = 6;

impl LinkConfig {
    pub fn new(role: Role) -> LinkConfig {
        LinkConfig {
            ack_timeout: ACK_TIMEOUT,
            max_retransmits: MAX_RETRANSMITS,
            byte_timeout: BYTE_TIMEOUT,
            keepalive: None,
            ping_timeout: PING_TIMEOUT,
            max_missed_pings: MAX_MISSED_PINGS,
            tokens: match role {
                Role::Ecr => ECR_TOKENS,
                Role::Eft => EFT_TOKENS,
            },
            token_digits: TOKEN_DIGITS,
        }
    }
}

/// Why a sent frame was not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailReason {
    /// The peer NAKed it (it did not take the frame) and it may not be repeated, or the
    /// repetitions ran out.
    Nak,
    /// No ACK/NAK came: the peer may or may not have it.
    NoAnswer,
}

/// What the link reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkEvent {
    /// An intact frame (ACKed). `answers` is the type of our open request with the same
    /// token, if any. `repeat`: the same frame as the one received just before it, within
    /// the peer's repetition window (`ack_timeout × (max_retransmits + 1)`): most likely
    /// the peer repeating it because our ACK was lost (an S2 received twice is one result).
    Received {
        frame: Frame,
        answers: Option<Kind>,
        repeat: bool,
    },
    /// The peer ACKed our frame.
    Delivered { token: Token, kind: Kind },
    /// Our frame was not ACKed (see [`FailReason`]).
    Failed {
        token: Token,
        kind: Kind,
        reason: FailReason,
    },
    /// Keep-alive pings went unanswered.
    PeerLost,
}

#[derive(Debug)]
struct Outgoing {
    token: Token,
    kind: Kind,
    bytes: Vec<u8>,
    /// Internal T1 ping: its events are not reported.
    ping: bool,
}

#[derive(Debug)]
struct InFlight {
    out: Outgoing,
    tries: u8,
    deadline: Instant,
}

/// The link state machine.
#[derive(Debug)]
pub struct Link {
    config: LinkConfig,
    rx: Decoder,
    rx_last: Option<Instant>,
    queue: VecDeque<Outgoing>,
    in_flight: Option<InFlight>,
    /// Our requests waiting for their final reply.
    open: Vec<(Token, Kind)>,
    next_token: u32,
    last_activity: Option<Instant>,
    ping: Option<(Token, Instant)>,
    missed_pings: u8,
    /// The last frame received and when (to recognise the peer's repetition).
    last_received: Option<(Frame, Instant)>,
    /// Kinds whose ACK waits for [`Link::acknowledge`] ([`Link::hold_acks`]).
    held: Vec<Kind>,
    /// A frame of a held kind was received and is not acknowledged yet.
    awaiting_ack: bool,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<LinkEvent>,
}

impl Link {
    pub fn new(config: LinkConfig) -> Link {
        let next_token = config.tokens.start;
        Link {
            config,
            rx: Decoder::new(),
            rx_last: None,
            queue: VecDeque::new(),
            in_flight: None,
            open: Vec::new(),
            next_token,
            last_activity: None,
            ping: None,
            missed_pings: 0,
            last_received: None,
            held: Vec::new(),
            awaiting_ack: false,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
        }
    }
    pub fn config(&self) -> &LinkConfig {
        &self.config
    }

    /// Frames of these kinds are not ACKed when they arrive: the user calls
    /// [`Link::acknowledge`] once it has made them durable (the register holds S2's ACK
    /// until the outcome is journaled). A repetition of a frame already acknowledged is
    /// ACKed at once.
    pub fn hold_acks(&mut self, kinds: &[Kind]) {
        self.held = kinds.to_vec();
    }

    /// Send the ACK of the held frame, if one waits for it.
    pub fn acknowledge(&mut self) {
        if std::mem::take(&mut self.awaiting_ack) {
            self.transmit.push_back(vec![ACK]);
        }
    }

    /// True while a held frame waits for [`Link::acknowledge`].
    pub fn awaiting_ack(&self) -> bool {
        self.awaiting_ack
    }

    /// Send a request with a fresh token (returned). It goes out after the frames queued
    /// before it have been answered.
    pub fn request(
        &mut self,
        kind: Kind,
        fields: Vec<Vec<u8>>,
        now: Instant,
    ) -> Result<Token, FrameError> {
        let token = self.fresh_token();
        self.enqueue(Frame::new(token, kind, fields), false, now)?;
        if reply_kind(&kind).is_some() {
            self.open.push((token, kind));
        }
        Ok(token)
    }
    /// Send a reply (or a message within a flow) echoing `token`.
    pub fn reply(
        &mut self,
        token: Token,
        kind: Kind,
        fields: Vec<Vec<u8>>,
        now: Instant,
    ) -> Result<(), FrameError> {
        self.enqueue(Frame::new(token, kind, fields), false, now)
    }
    /// Stop waiting for the reply to the request with `token` (the caller gave up on it);
    /// its token may be used again.
    pub fn close(&mut self, token: Token) {
        self.open.retain(|(t, _)| *t != token);
    }
    /// The requests waiting for their reply.
    pub fn open_requests(&self) -> &[(Token, Kind)] {
        &self.open
    }
    /// True while a frame waits for ACK/NAK or is queued.
    pub fn is_busy(&self) -> bool {
        self.in_flight.is_some() || !self.queue.is_empty()
    }

    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        if bytes.is_empty() {
            return;
        }
        self.expire_partial(now);
        self.last_activity = Some(now);
        let mut items = Vec::new();
        for &b in bytes {
            self.rx.byte(b, &mut items);
            if self.rx.in_frame() {
                self.rx_last = Some(now);
            }
        }
        for item in items {
            self.item(item, now);
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire_partial(now);
        if self.in_flight.as_ref().is_some_and(|f| now >= f.deadline) {
            self.retry_or_fail(FailReason::NoAnswer, now);
        }
        if let Some((token, at)) = self.ping
            && now >= at + self.config.ping_timeout
        {
            self.ping = None;
            self.close(token);
            self.missed_pings += 1;
            if self.missed_pings >= self.config.max_missed_pings {
                self.missed_pings = 0;
                self.last_activity = Some(now);
                self.events.push_back(LinkEvent::PeerLost);
            } else {
                self.send_ping(now);
            }
        }
        if self.keepalive_due().is_some_and(|d| now >= d) {
            self.send_ping(now);
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        let partial = if self.rx.in_frame() {
            self.rx_last.map(|t| t + self.config.byte_timeout)
        } else {
            None
        };
        [
            partial,
            self.in_flight.as_ref().map(|f| f.deadline),
            self.ping.map(|(_, at)| at + self.config.ping_timeout),
            self.keepalive_due(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn poll_event(&mut self) -> Option<LinkEvent> {
        self.events.pop_front()
    }

    /// Forget everything in progress (after a reconnect); the token counter goes on.
    pub fn reset(&mut self) {
        let next = self.next_token;
        let held = std::mem::take(&mut self.held);
        *self = Link::new(self.config.clone());
        self.next_token = next;
        self.held = held;
    }

    // ---- internals ----

    fn fresh_token(&mut self) -> Token {
        let range = self.config.tokens.clone();
        let span = range.end.saturating_sub(range.start).max(1);
        for _ in 0..span {
            let value = self.next_token;
            self.next_token = if value + 1 >= range.end || value < range.start {
                range.start
            } else {
                value + 1
            };
            let t = Token::new(value, self.config.token_digits);
            if !self.open.iter().any(|(o, _)| *o == t) {
                return t;
            }
        }
        // Every token of the range is open: reuse the oldest (cannot happen in practice).
        let (t, _) = self.open.remove(0);
        t
    }

    fn enqueue(&mut self, frame: Frame, ping: bool, now: Instant) -> Result<(), FrameError> {
        let bytes = frame.encode()?;
        self.queue.push_back(Outgoing {
            token: frame.token,
            kind: frame.kind,
            bytes,
            ping,
        });
        self.pump(now);
        Ok(())
    }

    fn pump(&mut self, now: Instant) {
        if self.in_flight.is_some() {
            return;
        }
        let Some(out) = self.queue.pop_front() else {
            return;
        };
        self.transmit.push_back(out.bytes.clone());
        self.last_activity = Some(now);
        self.in_flight = Some(InFlight {
            out,
            tries: 0,
            deadline: now + self.config.ack_timeout,
        });
    }

    fn expire_partial(&mut self, now: Instant) {
        if self.rx.in_frame()
            && self
                .rx_last
                .is_some_and(|t| now >= t + self.config.byte_timeout)
        {
            self.rx.reset();
            self.rx_last = None;
        }
    }

    fn item(&mut self, item: Item, now: Instant) {
        match item {
            Item::Ack => self.answered(true, now),
            Item::Nak => self.answered(false, now),
            Item::Stray(_) => {}
            Item::Oversized | Item::Frame { lrc_ok: false, .. } => {
                self.transmit.push_back(vec![NAK]);
            }
            Item::Frame {
                frame,
                lrc_ok: true,
            } => {
                self.missed_pings = 0;
                let window = self.config.ack_timeout * (u32::from(self.config.max_retransmits) + 1);
                let repeat = self.last_received.as_ref().is_some_and(|(f, at)| {
                    *f == frame && f.token.to_wire() == frame.token.to_wire() && now < *at + window
                });
                // A repetition of a frame already acknowledged is ACKed at once.
                if self.held.contains(&frame.kind) && (!repeat || self.awaiting_ack) {
                    self.awaiting_ack = true;
                } else {
                    self.transmit.push_back(vec![ACK]);
                }
                self.last_received = Some((frame.clone(), now));
                if repeat {
                    self.events.push_back(LinkEvent::Received {
                        frame,
                        answers: None,
                        repeat,
                    });
                    return;
                }
                if let Some((t, _)) = self.ping
                    && t == frame.token
                    && frame.kind == *b"T2"
                {
                    self.ping = None;
                    self.close(t);
                    return;
                }
                let answers = self
                    .open
                    .iter()
                    .position(|(t, _)| *t == frame.token)
                    .map(|i| {
                        let kind = self.open[i].1;
                        if reply_kind(&kind) == Some(frame.kind) {
                            self.open.remove(i);
                        }
                        kind
                    });
                self.events.push_back(LinkEvent::Received {
                    frame,
                    answers,
                    repeat,
                });
            }
        }
    }

    fn answered(&mut self, ack: bool, now: Instant) {
        if self.in_flight.is_none() {
            return;
        }
        if ack {
            if let Some(f) = self.in_flight.take()
                && !f.out.ping
            {
                self.events.push_back(LinkEvent::Delivered {
                    token: f.out.token,
                    kind: f.out.kind,
                });
            }
            self.pump(now);
        } else {
            self.retry_or_fail(FailReason::Nak, now);
        }
    }

    fn retry_or_fail(&mut self, reason: FailReason, now: Instant) {
        let Some(f) = self.in_flight.as_mut() else {
            return;
        };
        let repeatable = !NEVER_RETRANSMIT.contains(&f.out.kind);
        if repeatable && f.tries < self.config.max_retransmits {
            f.tries += 1;
            f.deadline = now + self.config.ack_timeout;
            self.transmit.push_back(f.out.bytes.clone());
            self.last_activity = Some(now);
            return;
        }
        let Some(f) = self.in_flight.take() else {
            return;
        };
        if f.out.ping {
            // The ping's own timer counts the miss.
        } else {
            if reason == FailReason::Nak || f.out.kind != *b"S1" {
                // Not taken (or never to be answered): its reply will not come.
                self.close(f.out.token);
            }
            self.events.push_back(LinkEvent::Failed {
                token: f.out.token,
                kind: f.out.kind,
                reason,
            });
        }
        self.pump(now);
    }

    fn keepalive_due(&self) -> Option<Instant> {
        let idle = self.config.keepalive?;
        if self.ping.is_some() || self.is_busy() || !self.open.is_empty() {
            return None;
        }
        Some(self.last_activity? + idle)
    }

    fn send_ping(&mut self, now: Instant) {
        let token = self.fresh_token();
        self.open.push((token, *b"T1"));
        self.ping = Some((token, now));
        // T1 has no fields; encoding cannot fail.
        let _ = self.enqueue(Frame::new(token, *b"T1", Vec::new()), true, now);
    }
}
