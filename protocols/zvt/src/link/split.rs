//! Reading the framing of a ZVT serial line, once for both users:
//!
//! - [`Reader`] is the byte-by-byte frame reader. [`super::SerialLink`] (the active side:
//!   it answers, times and repeats) and [`LinkSplitter`] both feed every received byte
//!   through it and differ only in what they do with its [`Read`]s.
//! - [`LinkSplitter`] is the passive reading: it cuts one direction of a line into
//!   [`LinkItem`]s (frames, ACK, NAK, stray bytes, broken frames), answers nothing, has no
//!   timers and never drops a byte (a frame's CRC is kept as right or wrong, not as its
//!   two bytes). Wire traces record a line through it and
//!   `fiscald replay` reads the register's side of a replayed line with it.
//!
//! The framing: `DLE STX` starts a frame (also inside one, which abandons the frame before),
//! `DLE DLE` inside a frame is one data byte, `DLE ETX` and two CRC bytes (sent raw) end
//! it; any other `DLE x` inside a frame, or a frame longer than
//! [`super::MAX_FRAME_APDU`], breaks it. A `DLE` outside a frame that is not followed by
//! `STX` is a stray byte, and the byte after it is read on its own (so `DLE 06` still
//! holds an ACK).

use super::{ACK, DLE, ETX, MAX_FRAME_APDU, NAK, STX};

/// What a byte did, as [`Reader::byte`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// `06` between frames.
    Ack,
    /// `15` between frames.
    Nak,
    /// A byte outside any frame (a `DLE` that started nothing included).
    Stray(u8),
    /// `DLE STX`: a frame starts. `abandoned` holds the APDU bytes of a frame it cut short.
    Start { abandoned: Option<Vec<u8>> },
    /// `DLE ETX` and the CRC: the un-stuffed APDU and whether its CRC was right.
    Frame { apdu: Vec<u8>, crc_ok: bool },
    /// The frame in progress broke (a malformed `DLE` sequence, or too long); the reader is
    /// between frames again. Holds its APDU bytes so far.
    Broken(Vec<u8>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    Idle,
    /// A DLE outside a frame; STX would start one.
    Dle,
    /// Inside the APDU.
    Data,
    /// A DLE inside the APDU: DLE (a data byte), ETX (end) or STX (a new frame) follows.
    DataDle,
    /// After DLE ETX: waiting for the CRC's low byte.
    CrcLo,
    /// Waiting for the CRC's high byte; holds the low one.
    CrcHi(u8),
}

/// The byte-by-byte frame reader of a serial line (no timers, no answers).
#[derive(Debug)]
pub struct Reader {
    state: State,
    apdu: Vec<u8>,
}

impl Default for Reader {
    fn default() -> Self {
        Reader {
            state: State::Idle,
            apdu: Vec::new(),
        }
    }
}

impl Reader {
    /// Read one byte; every [`Read`] it completes goes to `out`, in order (none while a
    /// frame is still coming, two when a stray DLE is followed by an ACK, for example).
    pub fn byte(&mut self, b: u8, out: &mut impl FnMut(Read)) {
        match self.state {
            State::Idle => match b {
                ACK => out(Read::Ack),
                NAK => out(Read::Nak),
                DLE => self.state = State::Dle,
                _ => out(Read::Stray(b)),
            },
            State::Dle => match b {
                STX => {
                    self.state = State::Data;
                    self.apdu.clear();
                    out(Read::Start { abandoned: None });
                }
                // DLE DLE outside a frame: the first is stray, the second may start one.
                DLE => out(Read::Stray(DLE)),
                _ => {
                    out(Read::Stray(DLE));
                    self.state = State::Idle;
                    self.byte(b, out);
                }
            },
            State::Data => match b {
                DLE => self.state = State::DataDle,
                _ => self.push_data(b, out),
            },
            State::DataDle => match b {
                DLE => {
                    self.state = State::Data;
                    self.push_data(DLE, out);
                }
                ETX => self.state = State::CrcLo,
                STX => {
                    self.state = State::Data;
                    let abandoned = std::mem::take(&mut self.apdu);
                    out(Read::Start {
                        abandoned: Some(abandoned),
                    });
                }
                _ => self.broken(out),
            },
            State::CrcLo => self.state = State::CrcHi(b),
            State::CrcHi(lo) => {
                let crc_ok = u16::from_le_bytes([lo, b]) == crate::crc::frame_checksum(&self.apdu);
                self.state = State::Idle;
                out(Read::Frame {
                    apdu: std::mem::take(&mut self.apdu),
                    crc_ok,
                });
            }
        }
    }

    /// True between `DLE STX` and the end of the frame.
    pub fn in_frame(&self) -> bool {
        !matches!(self.state, State::Idle | State::Dle)
    }

    /// True after a DLE that may start a frame.
    pub fn holds_dle(&self) -> bool {
        self.state == State::Dle
    }

    /// The APDU bytes of the frame in progress.
    pub fn partial(&self) -> &[u8] {
        &self.apdu
    }

    /// Forget the frame in progress (a T1 gap).
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.apdu.clear();
    }

    fn push_data(&mut self, b: u8, out: &mut impl FnMut(Read)) {
        if self.apdu.len() >= MAX_FRAME_APDU {
            self.broken(out);
        } else {
            self.apdu.push(b);
        }
    }

    fn broken(&mut self, out: &mut impl FnMut(Read)) {
        self.state = State::Idle;
        out(Read::Broken(std::mem::take(&mut self.apdu)));
    }
}

/// One thing on a ZVT serial line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkItem {
    /// `06`.
    Ack,
    /// `15`.
    Nak,
    /// `DLE STX … DLE ETX CRC`: the un-stuffed APDU and whether its CRC was right.
    Frame { apdu: Vec<u8>, crc_ok: bool },
    /// A frame that never ended: cut short by a new `DLE STX`, or broken by a malformed
    /// `DLE` sequence (or its length). The bytes as they were on the line, `DLE STX`
    /// included, up to where it broke.
    Broken(Vec<u8>),
    /// Bytes between frames that are neither ACK nor NAK.
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
            LinkItem::Broken(b) | LinkItem::Other(b) => b.clone(),
        }
    }
}

/// Cuts one direction of a serial line into [`LinkItem`]s, whatever the chunking.
#[derive(Debug, Default)]
pub struct LinkSplitter {
    reader: Reader,
    /// The wire bytes of the frame in progress, from its `DLE STX`.
    raw: Vec<u8>,
    other: Vec<u8>,
}

impl LinkSplitter {
    /// Feed bytes; returns the items they completed. Stray bytes are returned once the
    /// chunk ends outside a frame.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<LinkItem> {
        let mut items = Vec::new();
        for &b in bytes {
            let was_in_frame = self.reader.in_frame();
            let mut reads = Vec::new();
            self.reader.byte(b, &mut |r| reads.push(r));
            if reads.is_empty() && was_in_frame {
                self.raw.push(b);
            }
            for r in reads {
                self.read(r, b, &mut items);
            }
        }
        if !self.reader.in_frame() && !self.reader.holds_dle() {
            self.flush_other(&mut items);
        }
        items
    }

    fn read(&mut self, r: Read, b: u8, items: &mut Vec<LinkItem>) {
        match r {
            Read::Ack | Read::Nak => {
                self.flush_other(items);
                items.push(if r == Read::Ack {
                    LinkItem::Ack
                } else {
                    LinkItem::Nak
                });
            }
            Read::Stray(s) => self.other.push(s),
            Read::Start { abandoned } => {
                self.flush_other(items);
                if abandoned.is_some() {
                    // The DLE of this DLE STX was taken for the old frame's.
                    self.raw.pop();
                    items.push(LinkItem::Broken(std::mem::take(&mut self.raw)));
                }
                self.raw = vec![DLE, STX];
            }
            Read::Frame { apdu, crc_ok } => {
                self.raw.clear();
                items.push(LinkItem::Frame { apdu, crc_ok });
            }
            Read::Broken(_) => {
                self.raw.push(b);
                items.push(LinkItem::Broken(std::mem::take(&mut self.raw)));
            }
        }
    }

    /// True while a frame has started and not ended.
    pub fn in_frame(&self) -> bool {
        self.reader.in_frame()
    }

    /// Bytes of an unfinished frame or stray sequence held back.
    pub fn pending(&self) -> usize {
        if self.reader.in_frame() {
            self.raw.len()
        } else {
            self.other.len() + usize::from(self.reader.holds_dle())
        }
    }

    fn flush_other(&mut self, items: &mut Vec<LinkItem>) {
        if !self.other.is_empty() {
            items.push(LinkItem::Other(std::mem::take(&mut self.other)));
        }
    }
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
    fn broken_and_abandoned_frames_keep_their_wire_bytes() {
        // A malformed DLE 55 breaks the frame; the rest is stray up to the next frame.
        let mut s = LinkSplitter::default();
        let items = s.push(&[DLE, STX, 0x80, DLE, DLE, DLE, 0x55, 0x00]);
        assert_eq!(
            items,
            vec![
                LinkItem::Broken(vec![DLE, STX, 0x80, DLE, DLE, DLE, 0x55]),
                LinkItem::Other(vec![0x00])
            ]
        );
        // A new DLE STX inside a frame: the old one is broken, the new one read.
        let mut wire = vec![DLE, STX, 0x06, 0x01];
        let frame = super::super::encode_frame(&[0x80, 0, 0]);
        wire.extend(&frame);
        for cut in 0..wire.len() {
            let mut s = LinkSplitter::default();
            let mut items = s.push(&wire[..cut]);
            items.extend(s.push(&wire[cut..]));
            assert_eq!(
                items,
                vec![
                    LinkItem::Broken(vec![DLE, STX, 0x06, 0x01]),
                    LinkItem::Frame {
                        apdu: vec![0x80, 0, 0],
                        crc_ok: true
                    }
                ],
                "cut at {cut}"
            );
        }
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
