//! The host's side of the line, sans-IO: frames and single bytes out, decoded items in,
//! with the counters the daemon shows. Thermal has no tokens and most commands no reply, so
//! the session only moves bytes; the driver decides what to wait for (status bytes, `#E`,
//! `#X`) and for how long (time is the caller's).

use crate::frame::{Decoder, Frame, Item};
use std::collections::VecDeque;

/// Byte and frame counters of a session.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub frames_in: u64,
    pub frame_errors: u64,
    /// Bytes outside frames that are no status byte.
    pub garbage_bytes: u64,
}

/// What arrived from the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A reply frame.
    Frame(Frame),
    /// An ENQ answer (0x60–0x6F).
    Enq(crate::reply::Enq),
    /// A DLE answer (0x70–0x77).
    Dle(crate::reply::Dle),
}

/// The host's session.
#[derive(Debug, Default)]
pub struct Session {
    decoder: Decoder,
    out: VecDeque<Vec<u8>>,
    inbox: VecDeque<Incoming>,
    stats: Stats,
}

impl Session {
    pub fn new() -> Session {
        Session::default()
    }

    /// Queue a frame.
    pub fn send_frame(&mut self, frame: &Frame) {
        let bytes = frame.encode();
        self.stats.frames_out += 1;
        self.stats.bytes_out += bytes.len() as u64;
        self.out.push_back(bytes);
    }

    /// Queue single bytes (ENQ, DLE, CAN).
    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stats.bytes_out += bytes.len() as u64;
        self.out.push_back(bytes.to_vec());
    }

    /// Bytes from the device.
    pub fn handle_input(&mut self, bytes: &[u8]) {
        self.stats.bytes_in += bytes.len() as u64;
        self.decoder.push(bytes);
        while let Some(item) = self.decoder.next_item() {
            match item {
                Item::Frame(f) => {
                    self.stats.frames_in += 1;
                    self.inbox.push_back(Incoming::Frame(f));
                }
                Item::Byte(b) => {
                    if let Some(e) = crate::reply::Enq::from_byte(b) {
                        self.inbox.push_back(Incoming::Enq(e));
                    } else if let Some(d) = crate::reply::Dle::from_byte(b) {
                        self.inbox.push_back(Incoming::Dle(d));
                    } else {
                        self.stats.garbage_bytes += 1;
                    }
                }
                Item::Invalid { .. } => self.stats.frame_errors += 1,
            }
        }
    }

    /// The next bytes to write.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.out.pop_front()
    }

    /// The next thing that arrived.
    pub fn poll_incoming(&mut self) -> Option<Incoming> {
        self.inbox.pop_front()
    }

    /// Forget partial and unread input (before a new exchange, after reconnecting).
    pub fn reset_input(&mut self) {
        self.decoder.reset();
        self.inbox.clear();
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }
}
