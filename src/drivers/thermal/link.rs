//! The line to one Thermal printer: the sans-IO [`thermal::session::Session`] on the
//! daemon's one [`Pump`]. It sends frames and single status queries and waits for what
//! comes back; what to wait for is the driver's business.

use crate::device::LinkStats;
use crate::port::{Pump, SansIo};
use std::sync::{Arc, Mutex};
use thermal::Frame;
use thermal::session::{Incoming, Session};
use tokio::time::Instant;

/// The session as the pump drives it (it has no timers: the driver's deadlines are the
/// pump's).
struct Machine(Session);

impl SansIo for Machine {
    fn handle_input(&mut self, bytes: &[u8], _now: std::time::Instant) {
        self.0.handle_input(bytes);
    }
    fn handle_timeout(&mut self, _now: std::time::Instant) {}
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.0.poll_transmit()
    }
    fn poll_timeout(&self) -> Option<std::time::Instant> {
        None
    }
}

/// An open serial connection to a Thermal printer.
pub struct Link {
    pump: Pump<tokio_serial::SerialStream>,
    session: Machine,
    stats: Arc<Mutex<LinkStats>>,
}

impl Link {
    /// Open `path` at `baud`, 8N1, exclusively.
    pub fn open(path: &str, baud: u32, stats: Arc<Mutex<LinkStats>>) -> Result<Link, String> {
        let port = crate::port::open_exclusive(path, baud, crate::port::StopBits::One)
            .map_err(|reason| format!("cannot open {path}: {reason}"))?;
        let tap = crate::drivers::wire_tap(path);
        Ok(Link {
            pump: Pump::new(port).with_tap(tap),
            session: Machine(Session::new()),
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

    /// Forget unread and partial input (a late answer to an earlier exchange).
    pub fn reset_input(&mut self) {
        self.session.0.reset_input();
    }

    /// Queue a frame.
    pub fn send_frame(&mut self, frame: &Frame) {
        tracing::debug!(target: "fiscald::wire", dir = "out", frame = %crate::drivers::wire_text(&String::from_utf8_lossy(&frame.encode())).escape_debug(), "frame");
        self.session.0.send_frame(frame);
    }

    /// Queue single bytes (ENQ, DLE).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.session.0.send_bytes(bytes);
    }

    /// The next thing from the printer, or `None` once `deadline` passed. An error: the
    /// line itself failed.
    pub async fn next(&mut self, deadline: Instant) -> Result<Option<Incoming>, String> {
        loop {
            if let Some(i) = self.session.0.poll_incoming() {
                if let Incoming::Frame(f) = &i {
                    tracing::debug!(target: "fiscald::wire", dir = "in", frame = %crate::drivers::wire_text(&String::from_utf8_lossy(&f.encode())).escape_debug(), "frame");
                }
                self.account();
                return Ok(Some(i));
            }
            let progressed = self.pump.turn(&mut self.session, Some(deadline)).await;
            self.account();
            match progressed {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(crate::port::PumpError::Closed(why)) => {
                    return Err(format!("the device went away ({why})"));
                }
            }
        }
    }

    /// Write everything queued.
    pub async fn flush(&mut self) -> Result<(), String> {
        self.pump
            .flush(&mut self.session)
            .await
            .map_err(|crate::port::PumpError::Closed(why)| format!("the device went away ({why})"))
    }
}
