//! Typed ZVT messages: commands from the register (ECR) and messages from the terminal (PT).

use crate::apdu::Apdu;

/// Why an APDU could not be read as a typed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("unknown command {0:04X}")]
    Unknown(u16),
    #[error("bad fields: {0}")]
    Fields(#[from] crate::bmp::BmpError),
    #[error("malformed {what}: {why}")]
    Malformed { what: &'static str, why: &'static str },
}

/// A message the register sends (commands, and its acknowledgements of PT messages).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcrCommand {
    /// `06 00`: register with the terminal (password, config byte, currency).
    Registration { password: u32, config: u8, currency: Option<u16> },
    /// `06 01`: authorize (sell) `amount` minor units.
    Authorization { amount: u64, currency: u16 },
    /// `06 30`: reverse the transaction with this receipt number.
    Reversal { password: u32, receipt_number: u32 },
    /// `06 31`: refund.
    Refund { password: u32, amount: u64, currency: u16 },
    /// `06 50`: end of day.
    EndOfDay { password: u32 },
    /// `05 01`: status enquiry.
    StatusEnquiry { password: Option<u32> },
    /// `06 20`: repeat the last receipt; service bit 0 = send the Status-Information again.
    RepeatReceipt { password: u32, service: u8 },
    /// `06 B0`: abort.
    Abort,
    /// `06 02`: log off.
    LogOff,
    /// `80 00 00`: positive acknowledgement of a PT message.
    Ack,
    /// `84 xx 00`: negative acknowledgement (e.g. `9C` "ask again", `CC` printer not ready).
    Nack(u8),
}

/// The outcome and data of a transaction (`04 0F` Status-Information), already stripped
/// of sensitive card data: only the masked PAN is kept; track data, CVV and expiry are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TransactionResult {
    /// BMP 27: 0 = approved.
    pub result_code: u8,
    /// BMP 04, minor units.
    pub amount: Option<u64>,
    /// BMP 49, ISO 4217 numeric.
    pub currency: Option<u16>,
    /// BMP 0B (or TLV 1F2B).
    pub trace_number: Option<u32>,
    /// BMP 37 (reversals).
    pub original_trace: Option<u32>,
    /// BMP 87.
    pub receipt_number: Option<u32>,
    /// BMP 88.
    pub turnover_number: Option<u32>,
    /// BMP 29, as digits.
    pub terminal_id: Option<String>,
    /// BMP 22, masked (at most first 6 and last 4 digits).
    pub masked_pan: Option<String>,
    /// BMP 8B.
    pub card_name: Option<String>,
    /// BMP 8A.
    pub card_type: Option<u8>,
    /// BMP 3B (authorisation attribute / approval code).
    pub auth_code: Option<String>,
    /// BMP 0C `hhmmss`.
    pub time: Option<String>,
    /// BMP 0D `mmdd`.
    pub date: Option<String>,
    /// BMP 19.
    pub payment_type: Option<u8>,
    /// BMP 2A.
    pub vu_number: Option<String>,
    /// BMP 3C.
    pub additional_text: Option<String>,
}

/// A message the terminal sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtMessage {
    /// `80 00 00` (also `84 00`).
    Ack,
    /// `84 xx`: the terminal refused the command with error `xx`.
    Nack(u8),
    /// `04 FF`: intermediate status (e.g. 0A insert card, 17 please wait).
    IntermediateStatus { status: u8, timeout_minutes: Option<u8>, text: Option<String> },
    /// `04 0F`: the transaction's outcome.
    StatusInformation(TransactionResult),
    /// `06 D1`: one receipt line.
    PrintLine { attribute: u8, text: String },
    /// `06 D3`: a block of receipt lines (TLV 25 with 07 lines).
    PrintTextBlock { receipt_type: Option<u8>, lines: Vec<String> },
    /// `06 0F`: completion; after a status enquiry it carries the terminal status code.
    Completion { terminal_status: Option<u8>, terminal_id: Option<String>, sw_version: Option<String> },
    /// `06 1E`: abort with a result code.
    Abort { result_code: u8, text: Option<String> },
}

impl EcrCommand {
    pub fn to_apdu(&self) -> Apdu {
        todo!("helper")
    }
    /// Read a register's APDU (used by the terminal emulator).
    pub fn from_apdu(apdu: &Apdu) -> Result<EcrCommand, MessageError> {
        todo!("helper")
    }
}

impl PtMessage {
    pub fn to_apdu(&self) -> Apdu {
        todo!("helper")
    }
    /// Read a terminal's APDU. Sensitive card data is dropped here.
    pub fn from_apdu(apdu: &Apdu) -> Result<PtMessage, MessageError> {
        todo!("helper")
    }
    /// True for messages the register must acknowledge (everything but Ack/Nack).
    pub fn needs_ack(&self) -> bool {
        !matches!(self, PtMessage::Ack | PtMessage::Nack(_))
    }
}

/// Hex of an APDU for logs with sensitive BMPs (22 except masked, 23, 24, 2D, 3A, 0E and
/// TLV 1F08–1F0A) replaced by `**`.
pub fn redacted_hex(apdu: &Apdu) -> String {
    todo!("helper")
}
