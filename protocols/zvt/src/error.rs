//! ZVT result and error codes (BMP 27, `84 xx`, `06 1E`) with plain-language messages.

/// What the catalogue knows about a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultInfo {
    pub code: u8,
    pub message: &'static str,
    /// Vendor-neutral category: `approved`, `card_declined`, `card_error`, `cancelled`,
    /// `terminal_busy`, `terminal_error`, `not_possible`, `communication`, `protocol`.
    pub category: &'static str,
}

/// Look up a result code (00 = approved; 01–63 from the host = declined; 64–FF see spec).
pub fn describe(code: u8) -> ResultInfo {
    todo!("helper")
}
