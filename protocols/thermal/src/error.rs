//! The device's error codes (as `#n`, ENQ's CMD bit and `#s`'s Pe report them) in plain
//! words, each with a vendor-neutral [`Category`].
//!
//! Codes 1–9 are generic, 16–29 concern lines and the close, 35–36 the daily report
//! (Posnet Thermal DPL-I-DEV-03, as summarised in the reference). Novitus adds 1000–1120
//! and 9999 (second-hand: `litex-novitus`'s exception table); they map to
//! [`Category::Unknown`] with their number.

/// What kind of refusal an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    InvalidField,
    InvalidVat,
    TotalMismatch,
    TransactionState,
    DailyReportRequired,
    Clock,
    MemoryFull,
    DeviceFault,
    Protocol,
    Cancelled,
    Unknown,
}

/// One error code's meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorInfo {
    pub code: u32,
    pub message: &'static str,
    pub category: Category,
}

/// The checksum was wrong (the command was not taken).
pub const BAD_CHECKSUM: u32 = 2;
/// The gross value of a line is not round(price × quantity).
pub const LINE_MISMATCH: u32 = 20;
/// A line, payment or close without an open transaction.
pub const NOT_IN_TRANSACTION: u32 = 21;
/// The close's total differs from the lines'.
pub const BAD_TOTAL: u32 = 27;
/// A daily report for this date exists already.
pub const REPORT_EXISTS: u32 = 36;
/// An unknown command.
pub const UNKNOWN_COMMAND: u32 = 255;

const TABLE: &[(u32, &str, Category)] = &[
    (1, "the clock is not set", Category::Clock),
    (2, "bad checksum", Category::Protocol),
    (3, "wrong number of parameters", Category::Protocol),
    (4, "bad data", Category::InvalidField),
    (5, "clock error", Category::Clock),
    (6, "fiscal memory error", Category::DeviceFault),
    (
        7,
        "the date is earlier than the last fiscal memory record",
        Category::Clock,
    ),
    (
        8,
        "the totalizers are not zero",
        Category::DailyReportRequired,
    ),
    (9, "input/output error", Category::DeviceFault),
    (16, "bad item name", Category::InvalidField),
    (17, "bad quantity", Category::InvalidField),
    (
        18,
        "bad or inactive VAT rate, or the item is locked by the name/rate check",
        Category::InvalidVat,
    ),
    (19, "bad price", Category::InvalidField),
    (
        20,
        "the line's gross value is not price × quantity",
        Category::TotalMismatch,
    ),
    (21, "no transaction is open", Category::TransactionState),
    (22, "storno error", Category::InvalidField),
    (
        23,
        "ending a receipt without a sale",
        Category::TransactionState,
    ),
    (25, "bad cashier code", Category::InvalidField),
    (26, "bad payment", Category::TotalMismatch),
    (
        27,
        "the total differs from the sum of the lines",
        Category::TotalMismatch,
    ),
    (28, "totalizer overflow", Category::MemoryFull),
    (29, "end without a start", Category::TransactionState),
    (30, "bad amount", Category::InvalidField),
    (35, "the totalizers are zero", Category::TransactionState),
    (
        36,
        "a fiscal memory record for this date exists already",
        Category::TransactionState,
    ),
    (37, "cancelled from the keyboard", Category::Cancelled),
    (40, "no header is set", Category::DeviceFault),
    (
        82,
        "the device's service time expired",
        Category::DeviceFault,
    ),
    (85, "no VAT rates are set", Category::InvalidVat),
    (255, "unknown command", Category::Protocol),
];

/// What `code` means.
pub fn info(code: u32) -> ErrorInfo {
    let (message, category) = TABLE
        .iter()
        .find(|(c, _, _)| *c == code)
        .map(|(_, m, c)| (*m, *c))
        .unwrap_or(match code {
            90..=99 => ("transaction state error", Category::TransactionState),
            110..=113 => (
                "electronic journal or currency error",
                Category::DeviceFault,
            ),
            _ => (
                "an error this codec does not know (see the printer's manual)",
                Category::Unknown,
            ),
        });
    ErrorInfo {
        code,
        message,
        category,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_code_has_a_message() {
        assert_eq!(super::info(27).category, super::Category::TotalMismatch);
        assert_eq!(super::info(1050).category, super::Category::Unknown);
        assert_eq!(super::info(95).category, super::Category::TransactionState);
    }
}
