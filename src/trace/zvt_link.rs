//! ZVT in wire traces: the serial link layer cut into items (frames, ACK, NAK, stray
//! bytes) and the one masking every ZVT trace line goes through, so the recorder and
//! `fiscald replay` see the same bytes for the same input.

use zvt::Apdu;

const DLE: u8 = 0x10;
const STX: u8 = 0x02;
const ETX: u8 = 0x03;
/// The link's positive acknowledgement byte.
pub const ACK: u8 = 0x06;
/// The link's negative acknowledgement byte.
pub const NAK: u8 = 0x15;

/// One thing on a ZVT serial line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkItem {
    /// `06`.
    Ack,
    /// `15`.
    Nak,
    /// `DLE STX … DLE ETX CRC`: the un-stuffed APDU and whether its CRC was right.
    Frame { apdu: Vec<u8>, crc_ok: bool },
    /// Bytes between frames that are neither ACK nor NAK.
    Other(Vec<u8>),
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
            self.state = match self.state {
                State::Idle => match b {
                    ACK | NAK => {
                        self.flush_other(&mut items);
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
                        self.flush_other(&mut items);
                        self.apdu.clear();
                        State::Data
                    }
                    _ => {
                        self.other.extend([DLE, b]);
                        State::Idle
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
                    let crc_ok = zvt::crc::frame_checksum(&apdu) == crc;
                    items.push(LinkItem::Frame { apdu, crc_ok });
                    State::Idle
                }
            };
        }
        if self.state == State::Idle {
            self.flush_other(&mut items);
        }
        items
    }

    /// Bytes of an unfinished frame or stray sequence held back.
    pub fn pending(&self) -> usize {
        match self.state {
            State::Idle => self.other.len(),
            _ => self.apdu.len() + 2,
        }
    }

    fn flush_other(&mut self, items: &mut Vec<LinkItem>) {
        if !self.other.is_empty() {
            items.push(LinkItem::Other(std::mem::take(&mut self.other)));
        }
    }
}

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

/// An APDU as every ZVT trace writes it: [`zvt::message::masked_apdu`] (card fields, the
/// password and card numbers in text masked, lengths kept), then a second net over the
/// bytes that read as text, for a card number in a field the first walk did not reach.
pub fn masked_apdu(apdu: &Apdu) -> Apdu {
    let mut m = zvt::message::masked_apdu(apdu);
    mask_text_bytes(&mut m.data);
    m
}

/// Replace the hidden digits of a card number in the printable runs of `bytes` by `*`.
fn mask_text_bytes(bytes: &mut [u8]) {
    let text: String = bytes
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b)
            } else {
                'x'
            }
        })
        .collect();
    let masked = zvt::pan::mask_in_text(&text);
    for (b, (was, is)) in bytes.iter_mut().zip(text.chars().zip(masked.chars())) {
        if was != is {
            *b = zvt::message::MASK_TEXT;
        }
    }
}

/// The wire bytes of an item as a trace writes them: a frame's APDU masked and framed
/// again (DLE stuffing redone, the CRC recomputed; a frame that arrived with a bad CRC is
/// written with a bad one), a frame that is not an APDU hidden byte for byte, stray bytes
/// with card numbers in text masked.
pub fn masked_item_bytes(item: &LinkItem) -> Vec<u8> {
    match item {
        LinkItem::Ack => vec![ACK],
        LinkItem::Nak => vec![NAK],
        LinkItem::Frame { apdu, crc_ok } => {
            let masked = match Apdu::decode(apdu) {
                Ok(a) => masked_apdu(&a).encode(),
                Err(_) => vec![zvt::message::MASK_BCD; apdu.len()],
            };
            let mut wire = zvt::link::encode_frame(&masked);
            if !crc_ok && let Some(last) = wire.last_mut() {
                *last ^= 0xFF;
            }
            wire
        }
        LinkItem::Other(bytes) => {
            let mut b = bytes.clone();
            mask_text_bytes(&mut b);
            b
        }
    }
}

/// An item for people (the trace's summary).
pub fn describe_item(item: &LinkItem) -> String {
    match item {
        LinkItem::Ack => "link ACK".into(),
        LinkItem::Nak => "link NAK".into(),
        LinkItem::Frame { apdu, crc_ok } => {
            let what = match Apdu::decode(apdu) {
                Ok(a) => super::zvt_name(&a),
                Err(e) => format!("not an APDU ({e})"),
            };
            if *crc_ok {
                format!("frame: {what}")
            } else {
                format!("frame with a bad CRC: {what}")
            }
        }
        LinkItem::Other(b) => format!("{} stray bytes", b.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_acks_and_stray_bytes_are_cut_whatever_the_chunks() {
        // The ecrterm authorisation vector (a stuffed 10), then ACK, then junk.
        let frame = hex::decode("100206010a04000000011010004909781003f2ff").unwrap();
        let mut wire = frame.clone();
        wire.extend([ACK, 0x41, 0x42]);
        for cut in 0..wire.len() {
            let mut s = LinkSplitter::default();
            let mut items = s.push(&wire[..cut]);
            items.extend(s.push(&wire[cut..]));
            let mut merged: Vec<LinkItem> = Vec::new();
            for it in items {
                match (merged.last_mut(), it) {
                    (Some(LinkItem::Other(a)), LinkItem::Other(b)) => a.extend(b),
                    (_, it) => merged.push(it),
                }
            }
            assert_eq!(merged.len(), 3, "cut at {cut}: {merged:?}");
            let LinkItem::Frame { apdu, crc_ok } = &merged[0] else {
                panic!("{merged:?}");
            };
            assert!(crc_ok);
            assert_eq!(apdu[..3], [0x06, 0x01, 0x0A]);
            assert_eq!(masked_item_bytes(&merged[0]), frame);
            assert_eq!(merged[1], LinkItem::Ack);
        }
    }

    #[test]
    fn a_masked_frame_is_framed_again_and_still_decodes() {
        // Registration: the password is zeroed, the CRC recomputed.
        let reg = zvt::EcrCommand::Registration {
            password: 123_456,
            config: 0x8E,
            currency: Some(985),
        }
        .to_apdu();
        let item = LinkItem::Frame {
            apdu: reg.encode(),
            crc_ok: true,
        };
        let wire = masked_item_bytes(&item);
        let mut s = LinkSplitter::default();
        let back = s.push(&wire);
        let [LinkItem::Frame { apdu, crc_ok: true }] = &back[..] else {
            panic!("{back:?}");
        };
        assert_eq!(apdu[3..6], [0, 0, 0]);
        assert!(!hex::encode(&wire).contains("123456"));
    }
}
