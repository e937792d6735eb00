//! The session test pair: the sans-IO session and the printer model on a simulated line,
//! on a virtual clock, with faults in both directions. Shared by `session.rs` and
//! `pipeline.rs`.
#![allow(dead_code)]

use chrono::NaiveDateTime;
use posnet::model::Printer;
use posnet::session::{CommandFailure, Retry, Session, SessionConfig, SessionEvent, Window};
use posnet::{Command, DecodeError, Decoded, Frame, FrameDecoder, Line};
use rust_decimal::Decimal;
use std::time::{Duration, Instant};

pub const TIMEOUT: Duration = Duration::from_secs(3);
pub const FIRST_TOKEN: u16 = 4711;

pub fn config() -> SessionConfig {
    SessionConfig {
        held_poll: Duration::from_millis(500),
        frame_error_resends: 2,
        status_timeout: Duration::from_secs(5),
        ..SessionConfig::default()
    }
}

pub fn local() -> NaiveDateTime {
    NaiveDateTime::parse_from_str("2026-09-08 10:00", "%Y-%m-%d %H:%M").unwrap()
}

pub fn line() -> Command {
    Command::TrLine(Line {
        name: "Chleb".into(),
        vat_slot: 0,
        unit_price: 450,
        quantity: Decimal::ONE,
        amount: 450,
        unit: None,
        ..Line::default()
    })
}

pub fn decode(bytes: &[u8]) -> Frame {
    match FrameDecoder::new().feed(bytes).as_slice() {
        [Decoded::Frame(f)] => f.clone(),
        other => panic!("not one frame: {other:?}"),
    }
}

/// What the line does to one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Pass,
    /// Lost on the way.
    Drop,
    /// One byte flipped (the printer sees a bad CRC and answers `ERR ?5`).
    Corrupt,
    /// Held back until [`Pair::release`].
    Delay,
    /// Lost, and the printer restarts before it can answer again (forgets its tokens).
    DropAndRestart,
}

pub type FaultFn = Box<dyn FnMut(&Frame) -> Fault>;

/// The session and the model printer on a simulated line, on a virtual clock.
pub struct Pair {
    pub session: Session,
    pub printer: Printer,
    /// The printer's decoder.
    pub decoder: FrameDecoder,
    pub now: Instant,
    pub start: Instant,
    /// What happens to frames going to the printer.
    pub to_printer: FaultFn,
    /// What happens to frames coming from the printer.
    pub from_printer: FaultFn,
    /// Replies held back.
    pub delayed: Vec<Vec<u8>>,
    /// Whether replies after a held-back one wait for it (a serial line or a TCP stream
    /// never reorders). Off, a held-back reply arrives after later ones, as a targeted
    /// test of stale replies that carry a token.
    pub fifo: bool,
    /// Frames the session sent, with the time they went out.
    pub sent: Vec<(Duration, Frame)>,
    /// Every event, `Received` left out.
    pub events: Vec<SessionEvent>,
    /// Deliver the printer's bytes in pieces of this many bytes.
    pub chunk: usize,
}

impl Pair {
    pub fn new() -> Pair {
        let now = Instant::now();
        Pair {
            session: Session::new(config(), FIRST_TOKEN),
            printer: Printer::new(),
            decoder: FrameDecoder::new(),
            now,
            start: now,
            to_printer: Box::new(|_| Fault::Pass),
            from_printer: Box::new(|_| Fault::Pass),
            delayed: Vec::new(),
            fifo: false,
            sent: Vec::new(),
            events: Vec::new(),
            chunk: usize::MAX,
        }
    }

    /// A pair whose session pipelines up to `window`.
    pub fn with_window(window: Window) -> Pair {
        let mut pair = Pair::new();
        pair.session = Session::new(SessionConfig { window, ..config() }, FIRST_TOKEN);
        pair
    }

    /// Start every command before anything is delivered (they are all in flight), then
    /// move the frames.
    pub fn start_all(&mut self, commands: &[Command]) {
        for c in commands {
            self.session.start(c, TIMEOUT, self.now).unwrap();
        }
        self.flush();
    }

    /// Fire timers until nothing is in flight.
    pub fn run_until_idle(&mut self) {
        for _ in 0..1000 {
            if self.session.is_idle() {
                return;
            }
            assert!(self.tick(), "no timer while commands are in flight");
        }
        panic!("never idle: {:#?}", self.events);
    }

    /// Every completion so far, in order.
    pub fn completions(&self) -> Vec<Result<Frame, CommandFailure>> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Completed(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    /// Faults for frames to the printer, by mnemonic and how many of them to hit.
    pub fn fault_out(&mut self, mnemonic: &'static str, fault: Fault, times: usize) {
        let mut left = times;
        self.to_printer = Box::new(move |f| {
            if f.mnemonic == mnemonic && left > 0 {
                left -= 1;
                fault
            } else {
                Fault::Pass
            }
        });
    }

    pub fn fault_in(&mut self, mnemonic: &'static str, fault: Fault, times: usize) {
        let mut left = times;
        self.from_printer = Box::new(move |f| {
            if f.mnemonic.trim_start_matches('!') == mnemonic && left > 0 {
                left -= 1;
                fault
            } else {
                Fault::Pass
            }
        });
    }

    pub fn start(&mut self, command: &Command) {
        self.session.start(command, TIMEOUT, self.now).unwrap();
        self.flush();
    }

    /// Give the session `bytes` from the printer.
    pub fn deliver(&mut self, bytes: &[u8]) {
        for piece in bytes.chunks(self.chunk.max(1)) {
            self.session.handle_input(piece, self.now);
        }
    }

    /// The printer answers `reply` to `to`, through the line's faults.
    pub fn answer(&mut self, reply: Frame) {
        let bytes = reply.encode_raw();
        match (self.from_printer)(&reply) {
            // The line is FIFO: what the printer sends after a delayed reply arrives after
            // it, never before (a serial line or a TCP stream does not reorder).
            Fault::Pass if self.fifo && !self.delayed.is_empty() => self.delayed.push(bytes),
            Fault::Pass => self.deliver(&bytes),
            Fault::Drop => {}
            Fault::DropAndRestart => {
                self.printer.power_cycle();
            }
            Fault::Delay => self.delayed.push(bytes),
            Fault::Corrupt => {
                let mut b = bytes;
                b[2] ^= 0x20;
                if !self.fifo || self.delayed.is_empty() {
                    self.deliver(&b);
                } else {
                    self.delayed.push(b);
                }
            }
        }
    }

    /// Move every pending frame across the line until nothing moves; collect events.
    pub fn flush(&mut self) {
        while let Some(bytes) = self.session.poll_transmit() {
            let frame = decode(&bytes);
            self.sent.push((self.now - self.start, frame.clone()));
            let bytes = match (self.to_printer)(&frame) {
                Fault::Pass => bytes,
                Fault::Drop | Fault::Delay => continue,
                Fault::DropAndRestart => {
                    self.printer.power_cycle();
                    continue;
                }
                Fault::Corrupt => {
                    let mut b = bytes;
                    b[2] ^= 0x20;
                    b
                }
            };
            for item in self.decoder.feed(&bytes) {
                match item {
                    Decoded::Frame(f) => {
                        if let Some(reply) = self.printer.handle(&f, local()).reply {
                            self.answer(reply);
                        }
                    }
                    // As the emulator does: a frame it cannot read gets a frame error.
                    Decoded::Invalid { error, .. } => {
                        let code = match error {
                            DecodeError::BadCrc { .. } => 5,
                            _ => 15,
                        };
                        self.answer(Frame::error_reply("ERR", code));
                    }
                    Decoded::Garbage(_) => {}
                }
            }
        }
        while let Some(e) = self.session.poll_event() {
            if !matches!(e, SessionEvent::Received(_)) {
                self.events.push(e);
            }
        }
    }

    /// Deliver the held-back replies now.
    pub fn release(&mut self) {
        for bytes in std::mem::take(&mut self.delayed) {
            self.deliver(&bytes);
        }
        self.flush();
    }

    /// Paper back: the printer runs what it held.
    pub fn paper_back(&mut self) {
        self.printer.paper_back();
        while let Some(outcome) = self.printer.resume(local()) {
            if let Some(reply) = outcome.reply {
                self.answer(reply);
            }
        }
        self.flush();
    }

    /// Advance the clock to the session's next timer and fire it.
    pub fn tick(&mut self) -> bool {
        let Some(at) = self.session.poll_timeout() else {
            return false;
        };
        self.now = self.now.max(at);
        self.session.handle_timeout(self.now);
        self.flush();
        true
    }

    /// Run until the command completes, calling `hook` before every timer.
    pub fn run_with(&mut self, mut hook: impl FnMut(&mut Pair)) -> Result<Frame, CommandFailure> {
        for _ in 0..1000 {
            if let Some(r) = self.completed() {
                return r;
            }
            hook(self);
            if let Some(r) = self.completed() {
                return r;
            }
            assert!(self.tick(), "no timer while a command is in flight");
        }
        panic!("the command never completed: {:#?}", self.events);
    }

    pub fn run(&mut self) -> Result<Frame, CommandFailure> {
        self.run_with(|_| {})
    }

    /// The last Completed result, if the session is idle.
    pub fn completed(&self) -> Option<Result<Frame, CommandFailure>> {
        if !self.session.is_idle() {
            return None;
        }
        self.events.iter().rev().find_map(|e| match e {
            SessionEvent::Completed(r) => Some(r.clone()),
            _ => None,
        })
    }

    /// The frames sent, as `mnemonic@token`.
    pub fn wire(&self) -> Vec<String> {
        self.sent
            .iter()
            .map(|(_, f)| match f.token {
                Some(t) => format!("{}@{t}", f.mnemonic),
                None => f.mnemonic.clone(),
            })
            .collect()
    }

    pub fn retries(&self) -> Vec<(u16, Retry)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::Retried { token, retry, .. } => Some((*token, *retry)),
                _ => None,
            })
            .collect()
    }

    pub fn count(&self, pred: impl Fn(&SessionEvent) -> bool) -> usize {
        self.events.iter().filter(|e| pred(e)).count()
    }
}

pub fn tok(n: u16) -> u16 {
    (FIRST_TOKEN + n) % 10_000
}

pub fn w(mnemonic: &str, n: u16) -> String {
    format!("{mnemonic}@{}", tok(n))
}
