//! BMP fields, BCD numbers and the TLV container (BMP 06).

/// Why a field list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BmpError {
    #[error("BMP {bmp:02X} is truncated")]
    Truncated { bmp: u8 },
    #[error("unknown BMP {0:02X}: its length cannot be known")]
    Unknown(u8),
    #[error("bad LLVAR length prefix in BMP {0:02X}")]
    BadLength(u8),
    #[error("bad TLV: {0}")]
    Tlv(&'static str),
}

/// One BMP field: its number and raw value (length prefix removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub bmp: u8,
    pub value: Vec<u8>,
}

/// Parse a sequence of BMP fields (fixed lengths, LLVAR, LLLVAR, and 06 with BER length).
pub fn parse_fields(data: &[u8]) -> Result<Vec<Field>, BmpError> {
    todo!("helper")
}

/// Encode fields back to bytes (inverse of [`parse_fields`]).
pub fn encode_fields(fields: &[Field]) -> Vec<u8> {
    todo!("helper")
}

/// An amount in minor units as 6 BCD bytes (BMP 04).
pub fn amount_to_bcd(amount: u64) -> [u8; 6] {
    todo!("helper")
}

/// BCD bytes to a number; `None` if a nibble is not a digit.
pub fn bcd_to_u64(bytes: &[u8]) -> Option<u64> {
    todo!("helper")
}

/// A number as `len` BCD bytes (leading zeros); `None` if it does not fit.
pub fn u64_to_bcd(value: u64, len: usize) -> Option<Vec<u8>> {
    todo!("helper")
}

/// One TLV data object (tag as its full BER bytes combined, e.g. 0x1F07).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u32,
    /// Primitive value, or for constructed tags the encoded children.
    pub value: Vec<u8>,
}

/// Parse a TLV container's content (BER tags and lengths: `nn`, `81 nn`, `82 hh ll`).
pub fn parse_tlv(data: &[u8]) -> Result<Vec<Tlv>, BmpError> {
    todo!("helper")
}

/// Encode TLV objects.
pub fn encode_tlv(items: &[Tlv]) -> Vec<u8> {
    todo!("helper")
}
