//! APDUs: `CLASS INSTR LEN data`. LEN is one byte (0..=254), or `FF lo hi` (little-endian).

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

impl Apdu {
    pub fn new(class: u8, instr: u8, data: Vec<u8>) -> Self {
        Apdu { class, instr, data }
    }
    /// The two-byte control field, e.g. `0x0601`.
    pub fn control(&self) -> u16 {
        u16::from(self.class) << 8 | u16::from(self.instr)
    }
    /// Wire bytes (1-byte length up to 254, else `FF lo hi`).
    pub fn encode(&self) -> Vec<u8> {
        todo!("helper")
    }
    /// Decode exactly one APDU from `bytes` (no trailing data allowed).
    pub fn decode(bytes: &[u8]) -> Result<Apdu, ApduError> {
        todo!("helper")
    }
}

/// Incremental framing of bare APDUs on a TCP stream (any fragmentation).
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
        todo!("helper")
    }
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}
