//! A passive reading of a ZVT serial line: [`LinkSplitter`] cuts one direction of the line
//! into [`LinkItem`]s (frames, ACK, NAK, stray bytes) and answers nothing, has no timers
//! and never drops a byte. Wire traces record a line through it and `fiscald replay` reads
//! the register's side of a replayed line with it; [`super::SerialLink`] is the active
//! side (it answers, times and repeats).
//!
//! It reads the framing as [`super::SerialLink`] does: `DLE STX` starts a frame (also
//! inside one, which abandons the frame before), `DLE DLE` inside a frame is one data
//! byte, `DLE ETX` and two CRC bytes (sent raw) end it, and a `DLE` outside a frame
//! followed by anything but `STX` is stray. Where the active side would NAK a malformed
//! `DLE x` inside a frame, the splitter keeps both bytes as data, so the item still shows
//! what was on the line (its CRC will not match).

use super::{ACK, DLE, ETX, NAK, STX};

/// One thing on a ZVT serial line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkItem {
    /// `06`.
    Ack,
    /// `15`.
    Nak,
    /// `DLE STX … DLE ETX CRC`: the un-stuffed APDU and whether its CRC was right.
    Frame { apdu: Vec<u8>, crc_ok: bool },
    /// Bytes between frames that are neither ACK nor NAK (and the start of a frame that
    /// a new `DLE STX` abandoned).
    Other(Vec<u8>),
}

impl LinkItem {
    /// The item's bytes as they go on the line (a frame stuffed again, its CRC as it was:
    /// right, or wrong by a flipped last byte).
    pub fn to_wire(&self) -> Vec<u8> {
        match self {
            LinkItem::Ack => vec![ACK],
            LinkItem::Nak => vec![NAK],
            LinkItem::Frame { apdu, crc_ok } => {
                let mut wire = super::encode_frame(apdu);
                if !crc_ok && let Some(last) = wire.last_mut() {
                    *last ^= 0xFF;
                }
                wire
            }
            LinkItem::Other(b) => b.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Idle,
    Dle,
    Data,
    DataDle,
    CrcLo,
    CrcHi(u8),
}

/// Cuts one direction of a serial line into [`LinkItem`]s, whatever the chunking.
#[derive(Debug)]
pub struct LinkSplitter {
    state: State,
    apdu: Vec<u8>,
    other: Vec<u8>,
}

impl Default for LinkSplitter {
    fn default() -> Self {
        LinkSplitter {
            state: State::Idle,
            apdu: Vec::new(),
            other: Vec::new(),
        }
    }
}

impl LinkSplitter {
    /// Feed bytes; returns the items they completed. Stray bytes are returned once the
    /// chunk ends outside a frame.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<LinkItem> {
        let mut items = Vec::new();
        for &b in bytes {
            self.byte(b, &mut items);
        }
        if self.state == State::Idle {
            self.flush_other(&mut items);
        }
        items
    }

    /// True while a frame has started and not ended.
    pub fn in_frame(&self) -> bool {
        !matches!(self.state, State::Idle | State::Dle)
    }

    /// Bytes of an unfinished frame or stray sequence held back.
    pub fn pending(&self) -> usize {
        match self.state {
            State::Idle => self.other.len(),
            State::Dle => self.other.len() + 1,
            _ => self.apdu.len() + 2,
        }
    }

    fn byte(&mut self, b: u8, items: &mut Vec<LinkItem>) {
        self.state = match self.state {
            State::Idle => match b {
                ACK | NAK => {
                    self.flush_other(items);
                    items.push(if b == ACK {
                        LinkItem::Ack
                    } else {
                        LinkItem::Nak
                    });
                    State::Idle
                }
                DLE => State::Dle,
                _ => {
                    self.other.push(b);
                    State::Idle
                }
            },
            State::Dle => match b {
                STX => {
                    self.flush_other(items);
                    self.apdu.clear();
                    State::Data
                }
                // DLE DLE outside a frame: the first is stray, the second may start one.
                DLE => {
                    self.other.push(DLE);
                    State::Dle
                }
                // A stray DLE; the byte after it is read on its own (an ACK stays an ACK).
                _ => {
                    self.other.push(DLE);
                    self.state = State::Idle;
                    self.byte(b, items);
                    return;
                }
            },
            State::Data => match b {
                DLE => State::DataDle,
                _ => {
                    self.apdu.push(b);
                    State::Data
                }
            },
            State::DataDle => match b {
                DLE => {
                    self.apdu.push(DLE);
                    State::Data
                }
                ETX => State::CrcLo,
                STX => {
                    // A new frame starts: what came before was a broken one.
                    let broken = std::mem::take(&mut self.apdu);
                    items.push(LinkItem::Other(stuffed_start(&broken)));
                    State::Data
                }
                _ => {
                    self.apdu.extend([DLE, b]);
                    State::Data
                }
            },
            State::CrcLo => State::CrcHi(b),
            State::CrcHi(lo) => {
                let crc = u16::from_le_bytes([lo, b]);
                let apdu = std::mem::take(&mut self.apdu);
                let crc_ok = crate::crc::frame_checksum(&apdu) == crc;
                items.push(LinkItem::Frame { apdu, crc_ok });
                State::Idle
            }
        };
    }

    fn flush_other(&mut self, items: &mut Vec<LinkItem>) {
        if !self.other.is_empty() {
            items.push(LinkItem::Other(std::mem::take(&mut self.other)));
        }
    }
}

/// The bytes of a frame's start as they were on the line (`DLE STX`, data stuffed).
fn stuffed_start(apdu: &[u8]) -> Vec<u8> {
    let mut v = vec![DLE, STX];
    for &b in apdu {
        v.push(b);
        if b == DLE {
            v.push(DLE);
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn merged(items: Vec<LinkItem>) -> Vec<LinkItem> {
        let mut out: Vec<LinkItem> = Vec::new();
        for it in items {
            match (out.last_mut(), it) {
                (Some(LinkItem::Other(a)), LinkItem::Other(b)) => a.extend(b),
                (_, it) => out.push(it),
            }
        }
        out
    }

    #[test]
    fn frames_acks_and_stray_bytes_are_cut_whatever_the_chunks() {
        // The reference's authorisation vector (a stuffed 10), then ACK, then junk.
        let frame = hex::decode("100206010a04000000011010004909781003f2ff").unwrap();
        let mut wire = frame.clone();
        wire.extend([ACK, 0x41, 0x42]);
        for cut in 0..wire.len() {
            let mut s = LinkSplitter::default();
            let mut items = s.push(&wire[..cut]);
            items.extend(s.push(&wire[cut..]));
            let items = merged(items);
            assert_eq!(items.len(), 3, "cut at {cut}: {items:?}");
            let LinkItem::Frame { apdu, crc_ok } = &items[0] else {
                panic!("{items:?}");
            };
            assert!(crc_ok);
            assert_eq!(apdu[..3], [0x06, 0x01, 0x0A]);
            assert_eq!(items[0].to_wire(), frame);
            assert_eq!(items[1], LinkItem::Ack);
            assert_eq!(items[2], LinkItem::Other(vec![0x41, 0x42]));
        }
    }

    #[test]
    fn a_stray_dle_does_not_hide_the_byte_after_it() {
        let mut s = LinkSplitter::default();
        let items = s.push(&[DLE, ACK, DLE, DLE]);
        assert_eq!(items, vec![LinkItem::Other(vec![DLE]), LinkItem::Ack]);
        assert_eq!(s.pending(), 2);
        // DLE DLE STX: the second DLE starts the frame.
        let mut wire = vec![STX];
        wire.extend(&super::super::encode_frame(&[0x80, 0, 0])[2..]);
        let items = s.push(&wire);
        assert_eq!(items[0], LinkItem::Other(vec![DLE]));
        assert_eq!(
            items[1],
            LinkItem::Frame {
                apdu: vec![0x80, 0, 0],
                crc_ok: true
            }
        );
    }

    #[test]
    fn a_bad_crc_is_kept_and_written_back_bad() {
        let mut wire = super::super::encode_frame(&[0x06, 0xD1, 0x01, 0x41]);
        *wire.last_mut().unwrap() ^= 0x55;
        let items = LinkSplitter::default().push(&wire);
        let [LinkItem::Frame { crc_ok: false, .. }] = &items[..] else {
            panic!("{items:?}");
        };
        let again = LinkSplitter::default().push(&items[0].to_wire());
        assert_eq!(again, items);
    }
}
