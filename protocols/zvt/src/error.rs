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
///
/// Codes the catalogue does not list read as a terminal error whose message names the code.
pub fn describe(code: u8) -> ResultInfo {
    let (message, category) = match code {
        0x00 => ("Approved.", "approved"),
        0x01..=0x63 => (
            "The card issuer declined the payment. Ask the customer for another card or another way to pay.",
            "card_declined",
        ),
        0x64 => (
            "The card could not be read. Ask the customer to insert, tap or swipe it again, or use another card.",
            "card_error",
        ),
        0x65 => (
            "The terminal got no card data. Present the card again.",
            "card_error",
        ),
        0x66 => (
            "The terminal hit a processing error. Try again; if it persists, restart the terminal.",
            "terminal_error",
        ),
        0x6B => (
            "The terminal refused the function: it is switched off or the register is not registered. Register again, or have the function enabled.",
            "not_possible",
        ),
        0x6C => (
            "The transaction was cancelled, by the abort key or because the customer took too long. Start it again if the customer still wants to pay.",
            "cancelled",
        ),
        0x6F => (
            "The terminal does not accept this currency. Check the currency configured for the terminal.",
            "not_possible",
        ),
        0x77 => (
            "End of day is not possible right now. Try again later; if it persists, contact the terminal's service.",
            "not_possible",
        ),
        0x78 => (
            "The card has expired. Ask the customer for another card.",
            "card_error",
        ),
        0x7A => (
            "The terminal does not know this card type. Ask the customer for another card.",
            "card_error",
        ),
        0x83 => (
            "The terminal cannot do this function now. Wait until it is idle and try again.",
            "not_possible",
        ),
        0x9A => (
            "The terminal reported a protocol error in the register's message. Try again; if it persists, report it as a bug.",
            "protocol",
        ),
        0x9B => (
            "The terminal could not dial its host. Check the terminal's network connection and try again.",
            "communication",
        ),
        0x9C => (
            "The terminal is busy. Wait a moment and try again.",
            "terminal_busy",
        ),
        0xA0 => (
            "The receiving side was not ready. Try again in a moment.",
            "communication",
        ),
        0xA1 => (
            "The remote side (the payment host) did not answer. Check the terminal's network connection and try again.",
            "communication",
        ),
        0xA3 => (
            "The terminal has no connection to its host. Check its network or phone line, then try again.",
            "communication",
        ),
        0xA5 => (
            "Card-data security rules (PCI DSS / P2PE) do not allow this function.",
            "not_possible",
        ),
        0xB4 => (
            "This transaction was already reversed. Nothing more to do.",
            "not_possible",
        ),
        0xB5 => (
            "The transaction cannot be reversed (not found, or the day was already closed). Use a refund instead.",
            "not_possible",
        ),
        0xB7 | 0xB8 => (
            "The pre-authorisation could not be processed (it is missing, or one is still open). Check open pre-authorisations on the terminal.",
            "not_possible",
        ),
        0xC2 => (
            "The terminal needs a diagnosis run. Run diagnosis on the terminal, then try again.",
            "terminal_error",
        ),
        0xC3 => (
            "The amount is above the terminal's maximum. Split the payment or use another way to pay.",
            "not_possible",
        ),
        0xCC => (
            "The printer is not ready. Check paper and cover, then try again.",
            "terminal_error",
        ),
        0xDC => (
            "A card is still inserted. Ask the customer to remove it, then try again.",
            "terminal_busy",
        ),
        0xE4 => (
            "The terminal must be activated first. Contact the terminal's service.",
            "terminal_error",
        ),
        0xF0 => (
            "The terminal has an open batch that must be closed. Run end of day, then try again.",
            "terminal_error",
        ),
        0xFF => (
            "The terminal reported a system error. Try again; if it persists, restart the terminal and contact its service.",
            "terminal_error",
        ),
        _ => (
            "The terminal reported an error this software does not know. Try again; if it persists, contact the terminal's service with the code.",
            "terminal_error",
        ),
    };
    ResultInfo {
        code,
        message,
        category,
    }
}

/// All codes with their own catalogue entry (besides the 01–63 host range).
pub const KNOWN_CODES: &[u8] = &[
    0x00, 0x64, 0x65, 0x66, 0x6B, 0x6C, 0x6F, 0x77, 0x78, 0x7A, 0x83, 0x9A, 0x9B, 0x9C, 0xA0, 0xA1,
    0xA3, 0xA5, 0xB4, 0xB5, 0xB7, 0xB8, 0xC2, 0xC3, 0xCC, 0xDC, 0xE4, 0xF0, 0xFF,
];

#[cfg(test)]
mod tests {
    use super::*;

    const CATEGORIES: &[&str] = &[
        "approved",
        "card_declined",
        "card_error",
        "cancelled",
        "terminal_busy",
        "terminal_error",
        "not_possible",
        "communication",
        "protocol",
    ];

    #[test]
    fn catalogue() {
        assert_eq!(describe(0).category, "approved");
        assert_eq!(describe(0x05).category, "card_declined");
        assert_eq!(describe(0x63).category, "card_declined");
        assert_eq!(describe(0x6C).category, "cancelled");
        assert_eq!(describe(0x9C).category, "terminal_busy");
        assert_eq!(describe(0x9A).category, "protocol");
        assert_eq!(describe(0xA3).category, "communication");
        assert_eq!(describe(0xB5).category, "not_possible");
        let unknown = describe(0x70).message;
        for c in 0..=255u8 {
            let info = describe(c);
            assert_eq!(info.code, c);
            assert!(CATEGORIES.contains(&info.category), "{c:02X}");
            assert!(info.message.ends_with('.'), "{c:02X}");
            if KNOWN_CODES.contains(&c) {
                assert_ne!(info.message, unknown, "{c:02X}");
            }
        }
    }
}
