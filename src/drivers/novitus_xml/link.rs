//! The line to one Novitus XML printer: packets out, the incremental
//! [`novitus_xml::PacketDecoder`] in, on the daemon's one [`Pump`]. What to wait for is the
//! driver's business.

use crate::device::LinkStats;
use crate::port::{Pump, SansIo};
use novitus_xml::{Decoded, PacketDecoder};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// Bytes to write and what the decoder found (no timers: the driver's deadlines are the
/// pump's).
#[derive(Default)]
struct Machine {
    decoder: PacketDecoder,
    out: VecDeque<Vec<u8>>,
    found: VecDeque<Decoded>,
    stats: LinkStats,
}

impl SansIo for Machine {
    fn handle_input(&mut self, bytes: &[u8], _now: std::time::Instant) {
        self.stats.bytes_in += bytes.len() as u64;
        for d in self.decoder.feed(bytes) {
            match &d {
                Decoded::Packet(_) => self.stats.frames_in += 1,
                Decoded::Invalid { .. } => self.stats.frame_errors += 1,
                Decoded::Garbage(g) => self.stats.garbage_bytes += g.len() as u64,
            }
            self.found.push_back(d);
        }
    }
    fn handle_timeout(&mut self, _now: std::time::Instant) {}
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }
    fn poll_timeout(&self) -> Option<std::time::Instant> {
        None
    }
}

/// An open serial connection to a Novitus XML printer.
pub struct Link {
    pump: Pump<tokio_serial::SerialStream>,
    machine: Machine,
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
            machine: Machine::default(),
            stats,
        })
    }

    fn account(&self) {
        let mut out = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        *out = self.machine.stats;
    }

    /// Forget unread and partial input (a late answer to an earlier exchange).
    pub fn reset_input(&mut self) {
        self.machine.decoder.clear();
        self.machine.found.clear();
    }

    /// Queue a packet's bytes.
    pub fn send(&mut self, packet: Vec<u8>) {
        tracing::debug!(target: "fiscald::wire", dir = "out", packet = %crate::drivers::wire_text(&String::from_utf8_lossy(&packet)).escape_debug(), "packet");
        self.machine.stats.bytes_out += packet.len() as u64;
        self.machine.stats.frames_out += 1;
        self.machine.out.push_back(packet);
    }

    /// The next packet (or invalid packet) from the printer, or `None` once `deadline`
    /// passed; garbage between packets is counted and skipped. An error: the line failed.
    pub async fn next(&mut self, deadline: Instant) -> Result<Option<Decoded>, String> {
        loop {
            while let Some(d) = self.machine.found.pop_front() {
                if let Decoded::Garbage(_) = d {
                    continue;
                }
                if let Decoded::Packet(p) = &d {
                    tracing::debug!(target: "fiscald::wire", dir = "in", packet = %crate::drivers::wire_text(&p.body_text()).escape_debug(), "packet");
                }
                self.account();
                return Ok(Some(d));
            }
            let progressed = self.pump.turn(&mut self.machine, Some(deadline)).await;
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
}
