//! The connection to one POSNET printer: the sans-IO [`posnet::session::Session`] (tokens,
//! `rpt`, resends, held commands) driven over the serial port by the daemon's one
//! [`Pump`]. This file only moves bytes and events; the session decides.

use crate::device::LinkStats;
use crate::port::{Pump, SansIo};
use posnet::session::{CommandFailure, Session, SessionConfig, SessionEvent};
use posnet::{Command, Frame};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why a command did not produce a good reply.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot open {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("the device went away ({0})")]
    Closed(String),
    #[error("text cannot be sent to the printer: {0}")]
    Text(String),
    /// The session gave up on the command.
    #[error("{0}")]
    Failed(CommandFailure),
}

/// What the driver decides about an event while a command is in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on waiting.
    Continue,
    /// Stop waiting for a held command (the session ends it as abandoned).
    Abandon,
}

/// The session as the pump drives it.
struct Machine(Session);

impl SansIo for Machine {
    fn handle_input(&mut self, bytes: &[u8], now: std::time::Instant) {
        self.0.handle_input(bytes, now);
    }
    fn handle_timeout(&mut self, now: std::time::Instant) {
        self.0.handle_timeout(now);
    }
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.0.poll_transmit()
    }
    fn poll_timeout(&self) -> Option<std::time::Instant> {
        self.0.poll_timeout()
    }
}

/// An open serial connection to a printer.
pub struct Link {
    pump: Pump<tokio_serial::SerialStream>,
    session: Machine,
    /// Shared counters, readable by the API.
    stats: Arc<Mutex<LinkStats>>,
}

/// A token to start from that differs on every connection, so that a late reply to a
/// command sent on an earlier connection (or by an earlier daemon) never matches.
fn first_token() -> u16 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_micros());
    (seed % 10_000) as u16
}

impl Link {
    /// Open `path` at `baud`, 8N1, exclusively.
    pub fn open(
        path: &str,
        baud: u32,
        stats: Arc<Mutex<LinkStats>>,
        config: SessionConfig,
    ) -> Result<Link, LinkError> {
        let port = crate::port::open_exclusive(path, baud, crate::port::StopBits::One).map_err(
            |reason| LinkError::Open {
                path: path.to_string(),
                reason,
            },
        )?;
        let tap = crate::drivers::wire_tap(path);
        Ok(Link {
            pump: Pump::new(port).with_tap(tap),
            session: Machine(Session::new(config, first_token())),
            stats,
        })
    }

    fn account(&self) {
        let s = self.session.0.stats();
        let mut out = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        *out = LinkStats {
            bytes_out: s.bytes_out,
            bytes_in: s.bytes_in,
            frames_out: s.frames_out,
            frames_in: s.frames_in,
            frame_errors: s.frame_errors,
            garbage_bytes: s.garbage_bytes,
        };
    }

    /// Run `command` to its end, with nothing else in flight. `on_event` sees what happens
    /// meanwhile (held, status, retries) and may abandon a held command.
    pub async fn run(
        &mut self,
        command: &Command,
        timeout: Duration,
        on_event: impl FnMut(&SessionEvent) -> Verdict,
    ) -> Result<Frame, LinkError> {
        if self.in_flight() > 0 || !self.start(command, timeout)? {
            // The session still waits for an earlier command's reply: what the printer did
            // is unknown, so the link is treated as lost (the task reopens and reconciles).
            return Err(LinkError::Closed("a command is still in flight".into()));
        }
        self.next_completion(on_event)
            .await?
            .map_err(LinkError::Failed)
    }

    /// Send `command` if the session's window has room for it (`Ok(false)` when it is
    /// full: wait for a completion first).
    pub fn start(&mut self, command: &Command, timeout: Duration) -> Result<bool, LinkError> {
        let frame = command.to_frame();
        match self
            .session
            .0
            .start_frame(frame.clone(), timeout, std::time::Instant::now())
        {
            Ok(()) => {
                tracing::debug!(target: "fiscald::wire", dir = "out", frame = %crate::drivers::wire_text(&crate::trace::describe_frame(&frame)), "frame");
                Ok(true)
            }
            Err(posnet::SessionError::Busy) => Ok(false),
            Err(e) => Err(LinkError::Text(e.to_string())),
        }
    }

    /// Whether the session's window has room for `command` now.
    pub fn has_room(&self, command: &Command) -> bool {
        // The frame plus its `@NNNN` token and tab, as the session counts it.
        self.session
            .0
            .has_room(command.to_frame().encode_raw().len() + 6)
    }

    /// How many commands are in flight.
    pub fn in_flight(&self) -> usize {
        self.session.0.in_flight()
    }

    /// Turn the line until the oldest command in flight completes, and give its result.
    /// `on_event` sees what happens meanwhile and may abandon what is held (every command
    /// in flight then completes as abandoned). An error: the line itself failed.
    pub async fn next_completion(
        &mut self,
        mut on_event: impl FnMut(&SessionEvent) -> Verdict,
    ) -> Result<Result<Frame, CommandFailure>, LinkError> {
        loop {
            while let Some(event) = self.session.0.poll_event() {
                match &event {
                    SessionEvent::Completed(done) => {
                        self.account();
                        return Ok(done.clone());
                    }
                    SessionEvent::Received(f) => {
                        tracing::debug!(target: "fiscald::wire", dir = "in", frame = %crate::drivers::wire_text(&crate::trace::describe_frame(f)), "frame");
                    }
                    SessionEvent::Discarded(f) => {
                        tracing::warn!(mnemonic = %f.mnemonic, token = ?f.token, "discarding a reply to another command");
                    }
                    SessionEvent::Invalid { error, raw } => {
                        tracing::warn!(%error, bytes = raw.len(), "invalid frame from printer");
                    }
                    SessionEvent::Garbage(g) => {
                        tracing::debug!(bytes = g.len(), "garbage on the line");
                    }
                    _ => {}
                }
                if on_event(&event) == Verdict::Abandon {
                    self.session.0.abandon(std::time::Instant::now());
                }
            }
            let turned = self.pump.turn(&mut self.session, None).await;
            self.account();
            turned.map_err(|crate::port::PumpError::Closed(why)| LinkError::Closed(why))?;
        }
    }

    /// Forget any partial input (after reconnecting the line may hold half a frame).
    pub fn reset_input(&mut self) {
        self.session.0.reset_input();
    }
}
