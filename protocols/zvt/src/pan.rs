//! Card numbers: only a masked form (at most the first 6 and the last 4 digits) ever
//! leaves the codec.

/// Mask a PAN given as digits (and mask characters): keep at most the first 6 and the
/// last 4 digits, replace the rest with `*`. Digits the terminal already masked stay masked.
pub fn mask(pan: &str) -> String {
    todo!("helper")
}

/// Decode a BMP 22 value (BCD nibbles, `E` = masked digit, `F` = padding) to a masked string.
pub fn from_bcd(bytes: &[u8]) -> String {
    todo!("helper")
}
