//! APDUs: `CLASS INSTR LEN data`. LEN is one byte (0..=254), or `FF lo hi` (little-endian).

/// The largest data block an APDU can carry (the 2-byte extended length).
pub const MAX_DATA: usize = 0xFFFF;

/// One APDU: a command (`CLASS INSTR`) or a response (`80 00`, `84 xx`) with its data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Apdu {
    pub class: u8,
    pub instr: u8,
    pub data: Vec<u8>,
}

/// Why bytes are not a valid APDU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApduError {
    #[error("APDU is shorter than its header")]
    Short,
    #[error("APDU length field says {declared} data bytes but {actual} are present")]
    Length { declared: usize, actual: usize },
    #[error("APDU data of {0} bytes is longer than 65535")]
    TooLong(usize),
}

/// The length of the header and the declared data length, once enough header bytes are there.
fn header(bytes: &[u8]) -> Option<(usize, usize)> {
    match *bytes {
        [_, _, 0xFF, lo, hi, ..] => Some((5, usize::from(u16::from_le_bytes([lo, hi])))),
        [_, _, 0xFF, ..] => None,
        [_, _, len, ..] => Some((3, usize::from(len))),
        _ => None,
    }
}

impl Apdu {
    pub fn new(class: u8, instr: u8, data: Vec<u8>) -> Self {
        Apdu { class, instr, data }
    }
    /// The two-byte control field, e.g. `0x0601`.
    pub fn control(&self) -> u16 {
        u16::from(self.class) << 8 | u16::from(self.instr)
    }
    /// Wire bytes (1-byte length up to 254, else `FF lo hi`).
    ///
    /// Data longer than 65535 bytes cannot be framed; it is cut at 65535 bytes (use
    /// [`Self::try_encode`] to get an error instead).
    pub fn encode(&self) -> Vec<u8> {
        let data = &self.data[..self.data.len().min(MAX_DATA)];
        let mut out = Vec::with_capacity(data.len() + 5);
        out.push(self.class);
        out.push(self.instr);
        match u8::try_from(data.len()) {
            Ok(n) if n < 0xFF => out.push(n),
            _ => {
                let n = u16::try_from(data.len()).unwrap_or(u16::MAX);
                out.push(0xFF);
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
        out.extend_from_slice(data);
        out
    }
    /// Wire bytes, or [`ApduError::TooLong`] when the data exceeds 65535 bytes.
    pub fn try_encode(&self) -> Result<Vec<u8>, ApduError> {
        if self.data.len() > MAX_DATA {
            return Err(ApduError::TooLong(self.data.len()));
        }
        Ok(self.encode())
    }
    /// Decode exactly one APDU from `bytes` (no trailing data allowed).
    ///
    /// A non-minimal extended length (`FF 05 00`) is accepted; [`Self::encode`] writes the
    /// minimal form.
    pub fn decode(bytes: &[u8]) -> Result<Apdu, ApduError> {
        let (head, declared) = header(bytes).ok_or(ApduError::Short)?;
        let actual = bytes.len() - head;
        if actual != declared {
            return Err(ApduError::Length { declared, actual });
        }
        Ok(Apdu::new(bytes[0], bytes[1], bytes[head..].to_vec()))
    }
    /// The number of bytes the APDU at the start of `bytes` occupies, once its header is
    /// complete (the data may still be missing).
    pub fn wire_len(bytes: &[u8]) -> Option<usize> {
        header(bytes).map(|(head, len)| head + len)
    }
}

/// Incremental framing of bare APDUs on a TCP stream (any fragmentation).
///
/// The declared length is trusted: an APDU is returned only once all its data bytes have
/// arrived, however the stream was split.
#[derive(Debug, Default)]
pub struct ApduDecoder {
    buf: Vec<u8>,
}

impl ApduDecoder {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }
    /// The next complete APDU, or `None` when more bytes are needed.
    pub fn next_apdu(&mut self) -> Option<Apdu> {
        let (head, len) = header(&self.buf)?;
        let total = head + len;
        if self.buf.len() < total {
            return None;
        }
        let rest = self.buf.split_off(total);
        let frame = std::mem::replace(&mut self.buf, rest);
        Some(Apdu::new(frame[0], frame[1], frame[head..].to_vec()))
    }
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
    /// Drop buffered bytes (after the connection was closed).
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths() {
        assert_eq!(Apdu::new(0x80, 0, vec![]).encode(), [0x80, 0, 0]);
        let a = Apdu::new(6, 0xD3, vec![7; 254]);
        assert_eq!(a.encode()[2], 254);
        let b = Apdu::new(6, 0xD3, vec![7; 255]);
        assert_eq!(b.encode()[2..5], [0xFF, 0xFF, 0x00]);
        let c = Apdu::new(6, 0xD3, vec![7; 0x461]);
        assert_eq!(c.encode()[2..5], [0xFF, 0x61, 0x04]);
        for x in [a, b, c] {
            assert_eq!(Apdu::decode(&x.encode()), Ok(x));
        }
        assert_eq!(Apdu::decode(&[6, 1]), Err(ApduError::Short));
        assert_eq!(Apdu::decode(&[6, 1, 0xFF, 1]), Err(ApduError::Short));
        assert_eq!(
            Apdu::decode(&[6, 1, 2, 1]),
            Err(ApduError::Length {
                declared: 2,
                actual: 1
            })
        );
        assert_eq!(
            Apdu::decode(&[6, 1, 0, 1]),
            Err(ApduError::Length {
                declared: 0,
                actual: 1
            })
        );
        assert_eq!(
            Apdu::new(1, 2, vec![0; 70_000]).try_encode(),
            Err(ApduError::TooLong(70_000))
        );
        assert_eq!(
            Apdu::new(1, 2, vec![0; 70_000]).encode().len(),
            5 + MAX_DATA
        );
        assert_eq!(
            Apdu::decode(&[6, 1, 0xFF, 1, 0, 9]),
            Ok(Apdu::new(6, 1, vec![9]))
        );
    }

    #[test]
    fn decoder_waits_for_declared_length() {
        let mut d = ApduDecoder::new();
        d.push(&[0x06, 0xD3, 0xFF, 0x02]);
        assert_eq!(d.next_apdu(), None);
        d.push(&[0x00, 0xAA]);
        assert_eq!(d.next_apdu(), None);
        d.push(&[0xBB, 0x80, 0x00]);
        assert_eq!(d.next_apdu(), Some(Apdu::new(6, 0xD3, vec![0xAA, 0xBB])));
        assert_eq!(d.next_apdu(), None);
        assert_eq!(d.pending(), 2);
        d.push(&[0x00]);
        assert_eq!(d.next_apdu(), Some(Apdu::new(0x80, 0, vec![])));
        assert_eq!(d.pending(), 0);
    }
}
