//! The POSNET session as a sans-IO state machine: commands in flight up to a window, with
//! tokens, `rpt` recovery of a lost reply, frame-error resends and commands held for paper.
//!
//! Drive it like quinn-proto (and `zvt::link`): call
//! [`Session::start`] with a command, write every [`Session::poll_transmit`] to the line,
//! feed what the line gives with [`Session::handle_input`], call
//! [`Session::handle_timeout`] once [`Session::poll_timeout`] has passed, and read
//! [`Session::poll_event`] until a [`SessionEvent::Completed`] ends the command. Time is
//! passed in; the session never reads a clock, sleeps or does I/O.
//!
//! # Rules
//!
//! - **Tokens.** Every frame the session sends (the command, each resend, each `sprn`)
//!   carries a fresh `@NNNN` token, counting up from the seed given to [`Session::new`]
//!   and wrapping after 9999. `rpt` carries the token of the command whose answer it asks
//!   for.
//! - **Matching.** A reply is the command's when its mnemonic (ignoring a leading `!`)
//!   is the command's and its token is the command's, or absent (printers that do not
//!   echo tokens). A frame error (`ERR`) is taken with a matching token, or without one;
//!   a token-less `ERR` belongs to the last frame sent (the status query or `rpt` while
//!   one is out, else the command). Everything else is a late answer to an earlier
//!   frame: [`SessionEvent::Discarded`], never mistaken for the current reply. The
//!   command's reply completes it in every phase, also while a status query is out.
//! - **Frame errors** (the printer did not take the frame intact): the command is sent
//!   again with a fresh token, up to [`SessionConfig::frame_error_resends`] times, then
//!   [`CommandFailure::FrameError`]. A frame error without a token may be a late answer
//!   to an earlier frame (a damaged `rpt` whose `ERR` came after the timeout), so before
//!   resending the session asks `rpt` with the command's token: the repeated reply
//!   completes the command; only an unknown token (13) proves it was not taken. A frame
//!   error with the command's token is its own and is resent at once.
//! - **Refusals:** a reply with an error code ends the command with
//!   [`CommandFailure::Refused`].
//! - **No reply within the command's timeout:** the session asks `!sprn` (own token,
//!   [`SessionConfig::status_timeout`]). No answer: [`CommandFailure::Silent`].
//!   - Paper out or cover open: the printer holds the command. [`SessionEvent::Held`];
//!     the session keeps listening for the reply and asks `!sprn` again every
//!     [`SessionConfig::held_poll`] until the condition clears, then gives the command
//!     its own timeout once more. The reply completes it whenever it comes; giving up is
//!     the caller's policy ([`Session::abandon`]).
//!   - Otherwise the reply was lost: `rpt` with the command's token. The repeated reply
//!     completes the command ([`Retry::Rpt`]). Frame error 13 (unknown token) means the
//!     printer never ran it (it never got it, or it restarted): the command is sent once
//!     more with a fresh token ([`Retry::Resend`]); a second unknown token ends it with
//!     [`CommandFailure::NoReply`]. No answer to `rpt`: [`CommandFailure::Silent`].
//!     A frame error to `rpt` itself (no token, or `cm rpt`) sends `rpt` again, up to
//!     `frame_error_resends` times (then `NoReply`); a frame error with the command's
//!     token and another `cm` is the printer's stored answer to the command, handled as
//!     the command's frame error. A frame error to `sprn` sends `sprn` again likewise
//!     (then [`CommandFailure::BadStatus`]).
//!   - A held command whose hold cleared and whose reply then does not come within its
//!     timeout is asked for with `rpt` directly.

mod types;

pub use types::{
    CommandFailure, Retry, SessionConfig, SessionError, SessionEvent, SessionStats, Window,
};

use crate::command::Command;
use crate::frame::{Decoded, Frame, FrameDecoder};
use crate::reply::Sprn;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Frame error code: `rpt` named a token the printer does not know.
pub const UNKNOWN_TOKEN: u32 = 13;

/// Tokens run 0..=9999 and wrap.
const TOKENS: u16 = 10_000;

/// Where the command in flight is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The command was sent; its reply is due by `deadline`.
    Awaiting { deadline: Instant },
    /// A status query (`!sprn` with `token`) is out, due by `deadline`. `held`: an
    /// earlier poll already saw the command held.
    Status {
        token: u16,
        deadline: Instant,
        held: bool,
    },
    /// The command is held; the next status poll is at `next_poll`.
    Held { next_poll: Instant },
    /// The hold cleared; the command's reply is due by `deadline`.
    Released { deadline: Instant },
    /// `rpt` is out, due by `deadline`. `frame_error`: it asks because a frame error
    /// without a token came (its code), which may be a late answer to an earlier frame:
    /// only an unknown token proves the command was not taken.
    Repeat {
        deadline: Instant,
        frame_error: Option<u32>,
    },
}

/// The command in flight.
#[derive(Debug, Clone)]
struct InFlight {
    /// Its frame without a token (checked to encode).
    frame: Frame,
    /// Its mnemonic without a leading `!`.
    base: String,
    /// Its reply timeout.
    timeout: Duration,
    /// The token of the last attempt.
    token: u16,
    /// Frame-error resends so far.
    resends: u32,
    /// Frame errors to the current status query or `rpt` so far.
    query_errors: u32,
    /// True once a `rpt` found the token unknown and the command went out again (or, for
    /// a command probed after an earlier one was not taken, when it must not be).
    resent_unknown: bool,
    /// Its frame's length on the wire.
    bytes: usize,
    phase: Phase,
}

/// A command sent after the head, waiting for its turn.
#[derive(Debug, Clone)]
struct Behind {
    command: InFlight,
    /// Its reply, if it came before the command became the head.
    reply: Option<Frame>,
    /// An earlier command was not taken: ask for this one with `rpt` at once.
    probe: bool,
}

impl InFlight {
    fn held(&self) -> bool {
        matches!(
            self.phase,
            Phase::Held { .. } | Phase::Status { held: true, .. }
        )
    }
}

/// One POSNET session: commands in flight up to its window. See the [module docs](self).
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    next_token: u16,
    decoder: FrameDecoder,
    current: Option<InFlight>,
    /// Commands sent after the head, oldest first.
    behind: VecDeque<Behind>,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<SessionEvent>,
    stats: SessionStats,
}

/// What an incoming frame is, relative to what is in flight.
enum Role {
    /// The command's reply (or frame error).
    Reply,
    /// The answer to the status query.
    Status,
    /// The answer to `rpt` (frame error).
    RepeatError,
    /// The reply to the command at this place behind the head.
    Later(usize),
    /// Not ours.
    Stray,
}

impl Session {
    /// A session whose first token is `first_token` (taken modulo 10000). Seed a new
    /// start per connection, so that a late answer to a frame sent on an earlier
    /// connection never matches.
    pub fn new(config: SessionConfig, first_token: u16) -> Session {
        Session {
            config,
            next_token: first_token % TOKENS,
            decoder: FrameDecoder::new(),
            current: None,
            behind: VecDeque::new(),
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            stats: SessionStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// Start one command with its reply `timeout`. Errors: the window is full (one command
    /// in flight without pipelining), or its text cannot be encoded (nothing is sent, no
    /// token is used).
    pub fn start(
        &mut self,
        command: &Command,
        timeout: Duration,
        now: Instant,
    ) -> Result<(), SessionError> {
        self.start_frame(command.to_frame(), timeout, now)
    }

    /// Like [`Session::start`], for a command frame built by hand (any token it carries
    /// is replaced).
    pub fn start_frame(
        &mut self,
        mut frame: Frame,
        timeout: Duration,
        now: Instant,
    ) -> Result<(), SessionError> {
        frame.token = None;
        frame.payload()?;
        // The token's `@NNNN` and its tab come on top of the frame without one.
        let bytes = frame.encode_raw().len() + 6;
        if !self.has_room(bytes) {
            return Err(SessionError::Busy);
        }
        let base = frame.mnemonic.trim_start_matches('!').to_string();
        let command = InFlight {
            frame,
            base,
            timeout,
            token: 0,
            resends: 0,
            query_errors: 0,
            resent_unknown: false,
            bytes,
            phase: Phase::Awaiting { deadline: now },
        };
        if self.current.is_none() {
            self.current = Some(command);
            self.send_command(now);
        } else {
            let token = self.take_token();
            let frame = command.frame.clone().with_token(token);
            self.push_frame(&frame);
            self.behind.push_back(Behind {
                command: InFlight { token, ..command },
                reply: None,
                probe: false,
            });
        }
        Ok(())
    }

    /// Whether a command of `bytes` may be started now (the window has room for it).
    pub fn has_room(&self, bytes: usize) -> bool {
        let Some(head) = &self.current else {
            return true;
        };
        let window = self.config.window;
        let in_flight = 1 + self.behind.len();
        let used: usize = head.bytes + self.behind.iter().map(|b| b.command.bytes).sum::<usize>();
        in_flight < window.commands && used.saturating_add(bytes) <= window.bytes
    }

    /// How many commands are in flight.
    pub fn in_flight(&self) -> usize {
        usize::from(self.current.is_some()) + self.behind.len()
    }

    /// Bytes received from the line at `now`.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        self.stats.bytes_in += bytes.len() as u64;
        self.decoder.push(bytes);
        while let Some(item) = self.decoder.next_item() {
            match item {
                Decoded::Frame(f) => {
                    self.stats.frames_in += 1;
                    self.events.push_back(SessionEvent::Received(f.clone()));
                    self.on_frame(f, now);
                }
                Decoded::Invalid { error, raw } => {
                    self.stats.frame_errors += 1;
                    self.events.push_back(SessionEvent::Invalid { error, raw });
                }
                Decoded::Garbage(g) => {
                    self.stats.garbage_bytes += g.len() as u64;
                    self.events.push_back(SessionEvent::Garbage(g));
                }
            }
        }
    }

    /// Call when [`Session::poll_timeout`] has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let Some(cur) = &self.current else { return };
        let status_timeout = self.config.status_timeout;
        match cur.phase {
            Phase::Awaiting { deadline } if now >= deadline => self.send_status(now, false),
            Phase::Held { next_poll } if now >= next_poll => self.send_status(now, true),
            Phase::Released { deadline } if now >= deadline => self.send_repeat(now),
            Phase::Status { deadline, .. } | Phase::Repeat { deadline, .. } if now >= deadline => {
                self.complete(Err(CommandFailure::Silent(status_timeout)), now);
            }
            _ => {}
        }
    }

    /// The next frame's bytes to write to the line.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let bytes = self.transmit.pop_front()?;
        self.stats.bytes_out += bytes.len() as u64;
        self.stats.frames_out += 1;
        Some(bytes)
    }

    /// When [`Session::handle_timeout`] must be called next; `None` while idle.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.current.as_ref().map(|c| match c.phase {
            Phase::Awaiting { deadline }
            | Phase::Status { deadline, .. }
            | Phase::Released { deadline }
            | Phase::Repeat { deadline, .. } => deadline,
            Phase::Held { next_poll } => next_poll,
        })
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Stop waiting for the commands in flight (the caller's paper-wait policy ran out
    /// while the head is held, or the daemon shuts down): each completes with
    /// [`CommandFailure::Abandoned`], in order. The printer may still run held commands
    /// later; their replies are then [`SessionEvent::Discarded`]. Does nothing while idle.
    pub fn abandon(&mut self, _now: Instant) {
        if self.current.take().is_some() {
            self.events
                .push_back(SessionEvent::Completed(Err(CommandFailure::Abandoned)));
        }
        for _ in self.behind.drain(..) {
            self.events
                .push_back(SessionEvent::Completed(Err(CommandFailure::Abandoned)));
        }
    }

    /// Forget partial input (after reconnecting).
    pub fn reset_input(&mut self) {
        self.decoder.clear();
    }

    /// True when no command is in flight.
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.behind.is_empty()
    }

    /// True while the command in flight is held by the printer (paper out, cover open).
    pub fn is_held(&self) -> bool {
        self.current.as_ref().is_some_and(InFlight::held)
    }

    /// The token the command in flight carries now (its last attempt).
    pub fn current_token(&self) -> Option<u16> {
        self.current.as_ref().map(|c| c.token)
    }

    /// The token the next frame will carry.
    pub fn next_token(&self) -> u16 {
        self.next_token
    }

    /// Byte and frame counters.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    fn take_token(&mut self) -> u16 {
        let t = self.next_token;
        self.next_token = (t + 1) % TOKENS;
        t
    }

    fn push_frame(&mut self, frame: &Frame) {
        // The command's text was checked in `start`, and tokens stay below 10000, so
        // `encode` succeeds; `encode_raw` gives the same bytes for checked text.
        let bytes = frame.encode().unwrap_or_else(|_| frame.encode_raw());
        self.transmit.push_back(bytes);
    }

    /// Send the command (again) with a fresh token and its own timeout.
    fn send_command(&mut self, now: Instant) {
        let token = self.take_token();
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        cur.token = token;
        cur.phase = Phase::Awaiting {
            deadline: now + cur.timeout,
        };
        let frame = cur.frame.clone().with_token(token);
        self.push_frame(&frame);
    }

    /// Ask `!sprn` with a fresh token.
    fn send_status(&mut self, now: Instant, held: bool) {
        let token = self.take_token();
        let deadline = now + self.config.status_timeout;
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        cur.phase = Phase::Status {
            token,
            deadline,
            held,
        };
        let frame = Command::SPrn { immediate: true }
            .to_frame()
            .with_token(token);
        self.push_frame(&frame);
    }

    /// Ask `rpt` for the command's token.
    fn send_repeat(&mut self, now: Instant) {
        self.send_repeat_for(now, None);
    }

    /// Ask `rpt` for the command's token; `frame_error`: because of a token-less frame
    /// error with this code.
    fn send_repeat_for(&mut self, now: Instant, frame_error: Option<u32>) {
        let deadline = now + self.config.status_timeout;
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        cur.phase = Phase::Repeat {
            deadline,
            frame_error,
        };
        let frame = Command::rpt_frame(cur.token);
        self.push_frame(&frame);
    }

    /// The head ended with `result`; the next command behind it becomes the head (and
    /// completes at once if its reply is already here).
    fn complete(&mut self, result: Result<Frame, CommandFailure>, now: Instant) {
        let not_taken = matches!(result, Err(CommandFailure::NotTaken { .. }));
        self.current = None;
        self.events.push_back(SessionEvent::Completed(result));
        if not_taken {
            for b in &mut self.behind {
                b.probe = true;
            }
        }
        let Some(next) = self.behind.pop_front() else {
            return;
        };
        let mut head = next.command;
        head.phase = Phase::Awaiting {
            deadline: now + head.timeout,
        };
        if next.probe {
            // Never sent again: a later command was sent after it.
            head.resent_unknown = true;
        }
        self.current = Some(head);
        match next.reply {
            Some(reply) => self.on_reply(reply, now),
            None if next.probe => self.send_repeat(now),
            None => {}
        }
    }

    /// Whether a command the printer did not take may be sent again without landing
    /// behind a later one.
    fn may_resend(&self) -> bool {
        self.behind.is_empty()
    }

    /// The head was not taken and commands were sent after it: it ends, never resent.
    fn not_taken(&mut self, now: Instant) {
        let mnemonic = self
            .current
            .as_ref()
            .map_or_else(String::new, |c| c.frame.mnemonic.clone());
        self.complete(Err(CommandFailure::NotTaken { mnemonic }), now);
    }

    fn retried(&mut self, retry: Retry) {
        if let Some(cur) = &self.current {
            self.events.push_back(SessionEvent::Retried {
                mnemonic: cur.frame.mnemonic.clone(),
                token: cur.token,
                retry,
            });
        }
    }

    fn role(&self, f: &Frame) -> Role {
        let Some(cur) = &self.current else {
            return Role::Stray;
        };
        let status_token = match cur.phase {
            Phase::Status { token, .. } => Some(token),
            _ => None,
        };
        let repeating = matches!(cur.phase, Phase::Repeat { .. });
        let base = f.mnemonic.trim_start_matches('!');
        if let Some(t) = f.token
            && t != cur.token
            && Some(t) != status_token
            && let Some(i) = self.behind.iter().position(|b| {
                b.command.token == t && (f.is_frame_error() || b.command.base == base)
            })
        {
            return Role::Later(i);
        }
        if f.is_frame_error() {
            return match f.token {
                Some(t) if Some(t) == status_token => Role::Status,
                Some(t) if t == cur.token && repeating => Role::RepeatError,
                Some(t) if t == cur.token => Role::Reply,
                Some(_) => Role::Stray,
                None if status_token.is_some() => Role::Status,
                None if repeating => Role::RepeatError,
                None => Role::Reply,
            };
        }
        if base == cur.base && (f.token.is_none() || f.token == Some(cur.token)) {
            return Role::Reply;
        }
        if base == "sprn"
            && status_token.is_some()
            && (f.token.is_none() || f.token == status_token)
        {
            return Role::Status;
        }
        Role::Stray
    }

    fn on_frame(&mut self, f: Frame, now: Instant) {
        match self.role(&f) {
            Role::Stray => self.events.push_back(SessionEvent::Discarded(f)),
            Role::Reply => self.on_reply(f, now),
            Role::Status => self.on_status(f, now),
            Role::RepeatError => self.on_repeat_error(f, now),
            Role::Later(i) => self.on_later(i, f, now),
        }
    }

    /// The reply to a command behind the head: kept for its turn. The printer answers
    /// commands in order, after running each, so the head's own reply was lost: ask for it
    /// now. (A frame error is answered on arrival, before earlier commands ran, so it says
    /// nothing about the head.)
    fn on_later(&mut self, i: usize, f: Frame, now: Instant) {
        let executed = !f.is_frame_error();
        if let Some(b) = self.behind.get_mut(i) {
            if b.reply.is_some() {
                self.events.push_back(SessionEvent::Discarded(f));
                return;
            }
            b.reply = Some(f);
        }
        if let Some(cur) = &self.current
            && executed
            && matches!(cur.phase, Phase::Awaiting { .. } | Phase::Released { .. })
        {
            self.send_repeat(now);
        }
    }

    /// The command's own reply (or a frame error to it).
    fn on_reply(&mut self, f: Frame, now: Instant) {
        if self.current.is_none() {
            return;
        }
        if f.is_frame_error() && f.token.is_none() {
            // A frame error carries no token when the printer could not read the frame,
            // so it may answer an earlier frame and arrive late: resending now could run
            // the command twice. Ask for the command's answer; an unknown token proves it
            // was not taken ([`Session::on_repeat_error`]).
            self.send_repeat_for(now, Some(f.error_code.unwrap_or(0)));
            return;
        }
        self.on_frame_error_or_reply(f, now);
    }

    /// The command's reply, or a frame error known to be the command's.
    fn on_frame_error_or_reply(&mut self, f: Frame, now: Instant) {
        let Some(cur) = &self.current else { return };
        if f.is_frame_error() {
            if !self.may_resend() {
                self.not_taken(now);
            } else if cur.resends < self.config.frame_error_resends {
                self.retried(Retry::FrameError);
                if let Some(cur) = self.current.as_mut() {
                    cur.resends += 1;
                }
                self.send_command(now);
            } else {
                let mnemonic = cur.frame.mnemonic.clone();
                self.complete(
                    Err(CommandFailure::FrameError {
                        mnemonic,
                        code: f.error_code.unwrap_or(0),
                    }),
                    now,
                );
            }
            return;
        }
        if matches!(cur.phase, Phase::Repeat { .. }) {
            self.retried(Retry::Rpt);
        }
        if self.is_held() {
            self.events
                .push_back(SessionEvent::Status(Sprn { code: 0 }));
        }
        let result = match f.error_code {
            Some(code) => Err(CommandFailure::Refused {
                mnemonic: self
                    .current
                    .as_ref()
                    .map_or_else(String::new, |c| c.frame.mnemonic.clone()),
                code,
            }),
            None => Ok(f),
        };
        self.complete(result, now);
    }

    /// The answer to the status query.
    fn on_status(&mut self, f: Frame, now: Instant) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        let Phase::Status { held, .. } = cur.phase else {
            return;
        };
        if f.is_frame_error() {
            if cur.query_errors < self.config.frame_error_resends {
                cur.query_errors += 1;
                self.send_status(now, held);
            } else {
                self.complete(
                    Err(CommandFailure::BadStatus(format!(
                        "frame error {} to sprn",
                        f.error_code.unwrap_or(0)
                    ))),
                    now,
                );
            }
            return;
        }
        let sprn = match Sprn::from_frame(&f) {
            Ok(s) => s,
            Err(e) => {
                self.complete(Err(CommandFailure::BadStatus(e.to_string())), now);
                return;
            }
        };
        cur.query_errors = 0;
        self.events.push_back(SessionEvent::Status(sprn));
        if sprn.paper_out() || sprn.cover_open() {
            cur.phase = Phase::Held {
                next_poll: now + self.config.held_poll,
            };
            self.events.push_back(SessionEvent::Held(sprn));
        } else if held {
            // The condition cleared: the held command runs now; give it its timeout.
            cur.phase = Phase::Released {
                deadline: now + cur.timeout,
            };
        } else {
            self.send_repeat(now);
        }
    }

    /// A frame error in answer to `rpt`.
    fn on_repeat_error(&mut self, f: Frame, now: Instant) {
        let Some(cur) = self.current.as_mut() else {
            return;
        };
        let frame_error = match cur.phase {
            Phase::Repeat { frame_error, .. } => frame_error,
            _ => None,
        };
        if f.error_code == Some(UNKNOWN_TOKEN)
            && let Some(code) = frame_error
        {
            // The command was not taken: the token-less frame error was its own. Resend
            // it as a frame error (within `frame_error_resends`), or end it as not taken.
            cur.query_errors = 0;
            let mut own = Frame::error_reply("ERR", code);
            own.token = Some(cur.token);
            self.on_frame_error_or_reply(own, now);
        } else if f.error_code == Some(UNKNOWN_TOKEN) {
            cur.query_errors = 0;
            if cur.resent_unknown {
                self.complete(Err(CommandFailure::NoReply), now);
            } else if !self.behind.is_empty() {
                self.not_taken(now);
            } else {
                cur.resent_unknown = true;
                self.retried(Retry::Resend);
                self.send_command(now);
            }
        } else if f.token.is_none() || f.get("cm").is_some_and(|cm| cm == "rpt") {
            // The printer did not take the `rpt` frame itself (a garbled frame gets an
            // `ERR` without a token): ask again.
            if cur.query_errors < self.config.frame_error_resends {
                cur.query_errors += 1;
                self.send_repeat(now);
            } else {
                // The command may have run; only reconciliation can tell.
                self.complete(Err(CommandFailure::NoReply), now);
            }
        } else {
            // The stored answer to the command (it carries the command's token) was a
            // frame error: the command never ran.
            self.on_frame_error_or_reply(f, now);
        }
    }
}
