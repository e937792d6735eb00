//! Packets: `<packet [crc="XXXXXXXX"]>` commands… `</packet>`, in Windows-1250, and the
//! incremental decoder that finds them in a byte stream.
//!
//! - The CRC is zlib's CRC-32 over every byte between the opening and the closing tag,
//!   whitespace included. It is optional; fiscald sends it with 8 uppercase hex digits and
//!   accepts any case and fewer digits (one client drops leading zeros).
//! - Printers also answer in a Polish-tag dialect (`<pakiet>`); it is read the same way.
//! - The printer's buffer is 5000 bytes ([`MAX_PACKET`]).

use crc::{CRC_32_ISO_HDLC, Crc};

/// The printer's communication buffer: the longest packet it takes.
pub const MAX_PACKET: usize = 5000;
/// The longest opening tag read (`<packet crc="XXXXXXXX">` with some room).
const MAX_OPENING_TAG: usize = 64;

const CRC32: Crc<u32> = Crc::<u32>::new(&CRC_32_ISO_HDLC);

/// zlib's CRC-32 of `bytes`.
pub fn crc32(bytes: &[u8]) -> u32 {
    CRC32.checksum(bytes)
}

/// The packet's tag language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// `<packet>`.
    English,
    /// `<pakiet>`.
    Polish,
}

impl Dialect {
    fn tag(self) -> &'static [u8] {
        match self {
            Dialect::English => b"packet",
            Dialect::Polish => b"pakiet",
        }
    }
}

/// One packet: its body (the bytes between the tags) and the CRC it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub dialect: Dialect,
    /// The CRC the packet carried (already checked against the body when decoded).
    pub crc: Option<u32>,
    /// The Windows-1250 bytes between the opening and closing tags.
    pub body: Vec<u8>,
}

impl Packet {
    /// An English packet around `body`.
    pub fn new(body: Vec<u8>) -> Packet {
        Packet {
            dialect: Dialect::English,
            crc: None,
            body,
        }
    }

    /// The packet's bytes; with `with_crc`, the CRC of the body as 8 uppercase hex digits.
    pub fn encode(&self, with_crc: bool) -> Vec<u8> {
        let tag = self.dialect.tag();
        let mut out = Vec::with_capacity(self.body.len() + 40);
        out.push(b'<');
        out.extend_from_slice(tag);
        if with_crc {
            out.extend_from_slice(format!(" crc=\"{:08X}\"", crc32(&self.body)).as_bytes());
        }
        out.push(b'>');
        out.extend_from_slice(&self.body);
        out.extend_from_slice(b"</");
        out.extend_from_slice(tag);
        out.push(b'>');
        out
    }

    /// The body as text.
    pub fn body_text(&self) -> String {
        crate::text::decode(&self.body)
    }
}

/// Why bytes that looked like a packet are not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("bad CRC: the packet says {declared:08X}, its body has {computed:08X}")]
    BadCrc { declared: u32, computed: u32 },
    #[error("the opening tag cannot be read")]
    BadOpeningTag,
    #[error("a new packet began before this one ended")]
    Truncated,
    #[error("longer than the printer's {MAX_PACKET}-byte buffer")]
    TooLong,
}

/// What the decoder found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    Packet(Packet),
    /// Bytes that began like a packet but are not a good one.
    Invalid {
        error: PacketError,
        raw: Vec<u8>,
    },
    /// Bytes outside any packet.
    Garbage(Vec<u8>),
}

/// Finds packets in a byte stream; the same packets whatever the chunks.
#[derive(Debug, Default)]
pub struct PacketDecoder {
    buf: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where the next opening tag starts, and its dialect.
fn next_opening(buf: &[u8]) -> Option<(usize, Dialect)> {
    let english = find(buf, b"<packet").map(|i| (i, Dialect::English));
    let polish = find(buf, b"<pakiet").map(|i| (i, Dialect::Polish));
    match (english, polish) {
        (Some(e), Some(p)) => Some(if e.0 <= p.0 { e } else { p }),
        (e, p) => e.or(p),
    }
}

/// How many bytes at the end of `buf` could be the start of an opening tag.
fn partial_opening(buf: &[u8]) -> usize {
    (1..=buf.len().min(6))
        .rev()
        .find(|&n| {
            let tail = &buf[buf.len() - n..];
            b"<packet".starts_with(tail) || b"<pakiet".starts_with(tail)
        })
        .unwrap_or(0)
}

/// The `crc` attribute of an opening tag (`<packet crc="…">`): `Ok(None)` without one.
fn opening_crc(tag: &[u8]) -> Result<Option<u32>, PacketError> {
    let text = std::str::from_utf8(tag).map_err(|_| PacketError::BadOpeningTag)?;
    let inner = text[7..text.len() - 1].trim();
    if inner.is_empty() {
        return Ok(None);
    }
    let value = inner
        .strip_prefix("crc")
        .map(str::trim_start)
        .and_then(|r| r.strip_prefix('='))
        .map(str::trim_start)
        .and_then(|r| {
            let q = r.chars().next()?;
            (q == '"' || q == '\'').then(|| r[1..].strip_suffix(q))?
        })
        .ok_or(PacketError::BadOpeningTag)?;
    if value.is_empty() || value.len() > 8 || !value.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(PacketError::BadOpeningTag);
    }
    u32::from_str_radix(value, 16)
        .map(Some)
        .map_err(|_| PacketError::BadOpeningTag)
}

impl PacketDecoder {
    pub fn new() -> PacketDecoder {
        PacketDecoder::default()
    }

    /// Bytes from the line.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes held for an item not complete yet.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Forget partial input.
    pub fn clear(&mut self) {
        self.buf.clear();
    }

    /// Push `bytes` and take every complete item.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Decoded> {
        self.push(bytes);
        std::iter::from_fn(|| self.next_item()).collect()
    }

    fn take(&mut self, n: usize) -> Vec<u8> {
        self.buf.drain(..n).collect()
    }

    /// The next complete item, if any.
    pub fn next_item(&mut self) -> Option<Decoded> {
        let Some((start, dialect)) = next_opening(&self.buf) else {
            let keep = partial_opening(&self.buf);
            let garbage = self.buf.len() - keep;
            return (garbage > 0).then(|| Decoded::Garbage(self.take(garbage)));
        };
        if start > 0 {
            return Some(Decoded::Garbage(self.take(start)));
        }
        // The opening tag: `<packet` then attributes up to `>`.
        let Some(close) = self
            .buf
            .iter()
            .take(MAX_OPENING_TAG)
            .position(|&b| b == b'>')
        else {
            if self.buf.len() >= MAX_OPENING_TAG {
                return Some(self.invalid_up_to_next(PacketError::BadOpeningTag));
            }
            return None;
        };
        let tag = &self.buf[..=close];
        // `<packetX` is not our tag: the byte after the name must end it or start attributes.
        if !matches!(tag.get(7), Some(b'>' | b' ' | b'\t' | b'\r' | b'\n')) {
            return Some(self.invalid_up_to_next(PacketError::BadOpeningTag));
        }
        let declared = match opening_crc(tag) {
            Ok(c) => c,
            Err(e) => return Some(self.invalid_up_to_next(e)),
        };
        let body_start = close + 1;
        let mut closing = b"</".to_vec();
        closing.extend_from_slice(dialect.tag());
        closing.push(b'>');
        let rest = &self.buf[body_start..];
        let end = find(rest, &closing);
        // A new packet that begins before this one ends: this one was cut short.
        let next = next_opening(rest).map(|(i, _)| i);
        match (end, next) {
            (Some(e), Some(n)) if n < e => {
                let raw = self.take(body_start + n);
                Some(Decoded::Invalid {
                    error: PacketError::Truncated,
                    raw,
                })
            }
            (Some(e), _) => {
                let total = body_start + e + closing.len();
                let raw = self.take(total);
                let body = raw[body_start..body_start + e].to_vec();
                if let Some(declared) = declared {
                    let computed = crc32(&body);
                    if computed != declared {
                        return Some(Decoded::Invalid {
                            error: PacketError::BadCrc { declared, computed },
                            raw,
                        });
                    }
                }
                Some(Decoded::Packet(Packet {
                    dialect,
                    crc: declared,
                    body,
                }))
            }
            (None, Some(n)) => {
                let raw = self.take(body_start + n);
                Some(Decoded::Invalid {
                    error: PacketError::Truncated,
                    raw,
                })
            }
            (None, None) if self.buf.len() > MAX_PACKET + MAX_OPENING_TAG + closing.len() => {
                Some(self.invalid_up_to_next(PacketError::TooLong))
            }
            (None, None) => None,
        }
    }

    /// Give up on the item at the front: everything up to the next `<` after its first byte.
    fn invalid_up_to_next(&mut self, error: PacketError) -> Decoded {
        let n = self.buf[1..]
            .iter()
            .position(|&b| b == b'<')
            .map_or(self.buf.len(), |i| i + 1);
        Decoded::Invalid {
            error,
            raw: self.take(n),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_crc_vectors() {
        assert_eq!(
            crc32(b"\r\n  <info action=\"transaction\"/>\r\n"),
            0xBB1E_3EC8
        );
        assert_eq!(crc32(b"<dle/>"), 0x4259_D34E);
        assert_eq!(
            crc32(b"\r\n  <informacja akcja=\"transakcja\"/>\r\n"),
            0x67D8_58E7
        );
        assert_eq!(
            Packet::new(b"<dle/>".to_vec()).encode(true),
            b"<packet crc=\"4259D34E\"><dle/></packet>"
        );
    }

    #[test]
    fn a_real_devices_polish_packet_decodes_with_its_crc() {
        let bytes = b"<pakiet crc=\"15FD5D77\"><informacja akcja=\"wersja\" wersja=\"POINT 1.01\" />\n</pakiet>";
        let items = PacketDecoder::new().feed(bytes);
        let [Decoded::Packet(p)] = items.as_slice() else {
            panic!("{items:?}")
        };
        assert_eq!(p.dialect, Dialect::Polish);
        assert_eq!(p.crc, Some(0x15FD_5D77));
        assert!(p.body_text().contains("POINT 1.01"));
    }

    #[test]
    fn crc_in_any_case_and_with_fewer_digits() {
        let body = b"<enq/>".to_vec();
        let crc = crc32(&body);
        for text in [format!("{crc:08x}"), format!("{crc:x}")] {
            let bytes = format!("<packet crc=\"{text}\"><enq/></packet>");
            let items = PacketDecoder::new().feed(bytes.as_bytes());
            assert!(
                matches!(items.as_slice(), [Decoded::Packet(_)]),
                "{items:?}"
            );
        }
    }

    #[test]
    fn a_bad_crc_garbage_and_a_cut_packet_are_reported_and_the_next_packet_is_found() {
        let good = Packet::new(b"<dle/>".to_vec()).encode(true);
        let mut bytes = b"xx\x00".to_vec();
        bytes.extend_from_slice(b"<packet crc=\"00000001\"><dle/></packet>");
        bytes.extend_from_slice(b"<packet><enq/>");
        bytes.extend_from_slice(&good);
        let items = PacketDecoder::new().feed(&bytes);
        assert!(matches!(items[0], Decoded::Garbage(_)), "{items:?}");
        assert!(matches!(
            items[1],
            Decoded::Invalid {
                error: PacketError::BadCrc { .. },
                ..
            }
        ));
        assert!(matches!(
            items[2],
            Decoded::Invalid {
                error: PacketError::Truncated,
                ..
            }
        ));
        assert!(matches!(&items[3], Decoded::Packet(p) if p.body == b"<dle/>"));
        assert_eq!(items.len(), 4);
    }

    #[test]
    fn a_packet_longer_than_the_buffer_is_refused() {
        let mut d = PacketDecoder::new();
        d.push(b"<packet>");
        d.push(&vec![b' '; MAX_PACKET + 100]);
        assert!(matches!(
            d.next_item(),
            Some(Decoded::Invalid {
                error: PacketError::TooLong,
                ..
            })
        ));
    }
}
