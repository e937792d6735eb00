//! Text on the wire: Windows-1250, no escaping, no control characters inside values.

/// Why a piece of text cannot be sent to the printer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The character has no Windows-1250 code, so the printer cannot print it.
    #[error("character {ch:?} (U+{code:04X}) at position {position} cannot be printed by the printer (not in Windows-1250)", code = *ch as u32)]
    Unprintable { ch: char, position: usize },
    /// A control character (TAB, STX, ETX, LF where not allowed, ...) would corrupt the frame.
    #[error("control character U+{code:04X} at position {position} is not allowed in printer text", code = *ch as u32)]
    Control { ch: char, position: usize },
}

/// Encode printer text to Windows-1250, refusing control characters and anything the
/// code page lacks. `allow_newline` lets LF through for the few multi-line fields.
pub fn encode(text: &str, allow_newline: bool) -> Result<Vec<u8>, TextError> {
    todo!("helper: strict encode via encoding_rs::WINDOWS_1250 (check each char), position = char index")
}

/// Encode without checks: every char is assumed to come from [`decode`]. Used for
/// re-encoding received frames byte-for-byte.
pub fn encode_lossless(text: &str) -> Vec<u8> {
    todo!("helper")
}

/// Decode Windows-1250 bytes. Total and lossless: every byte maps to one distinct char.
pub fn decode(bytes: &[u8]) -> String {
    todo!("helper")
}
