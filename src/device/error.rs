//! The vendor-neutral device error: what went wrong in words a POS can act on, the
//! category it scripts against, and the device's own code for the technician.

use serde::{Deserialize, Serialize};

/// The vendor-neutral category of a device error (the API's `code`).
///
/// Protocol drivers map their own error catalogues onto these; the job outcomes the device
/// tasks decide (`needs_attention`, `not_charged`, ...) use the same field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCategory {
    PaperOut,
    CoverOpen,
    DailyReportRequired,
    ItemLocked,
    TotalMismatch,
    InvalidVat,
    MemoryFull,
    TransactionState,
    InvalidField,
    DeviceBusy,
    DeviceFault,
    Clock,
    Blocked,
    Transport,
    Protocol,
    Unknown,
    /// A device error without a finer category (e.g. attempts exhausted).
    DeviceError,
    /// The journaled job cannot be carried out by this device.
    InvalidJob,
    /// Whether the device completed the job cannot be proved: a person must settle it.
    NeedsAttention,
    /// The card terminal declined the payment.
    CardDeclined,
    /// The payment was reversed on the terminal (e.g. its receipt could not be printed).
    PaymentReversed,
    /// The card was not charged (the terminal aborted or refused before authorising).
    NotCharged,
    /// A sale's receipt was not printed.
    ReceiptNotPrinted,
    /// The printer a sale needs is not available.
    PrinterUnavailable,
    /// The card could not be read or is not accepted (expired, unknown type).
    CardError,
    /// The transaction was cancelled (abort key, customer timeout).
    Cancelled,
    /// The terminal is busy with something else; try again when it is idle.
    TerminalBusy,
    /// The terminal reported an internal error.
    TerminalError,
    /// The terminal cannot do this function now or in its configuration.
    NotPossible,
    /// The terminal could not reach its host (acquirer).
    Communication,
    /// The printer no longer holds the document asked for (a copy of an old receipt).
    DocumentNotFound,
}

impl ErrorCategory {
    /// The snake_case API name (`paper_out`, `needs_attention`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCategory::PaperOut => "paper_out",
            ErrorCategory::CoverOpen => "cover_open",
            ErrorCategory::DailyReportRequired => "daily_report_required",
            ErrorCategory::ItemLocked => "item_locked",
            ErrorCategory::TotalMismatch => "total_mismatch",
            ErrorCategory::InvalidVat => "invalid_vat",
            ErrorCategory::MemoryFull => "memory_full",
            ErrorCategory::TransactionState => "transaction_state",
            ErrorCategory::InvalidField => "invalid_field",
            ErrorCategory::DeviceBusy => "device_busy",
            ErrorCategory::DeviceFault => "device_fault",
            ErrorCategory::Clock => "clock",
            ErrorCategory::Blocked => "blocked",
            ErrorCategory::Transport => "transport",
            ErrorCategory::Protocol => "protocol",
            ErrorCategory::Unknown => "unknown",
            ErrorCategory::DeviceError => "device_error",
            ErrorCategory::InvalidJob => "invalid_job",
            ErrorCategory::NeedsAttention => "needs_attention",
            ErrorCategory::CardDeclined => "card_declined",
            ErrorCategory::PaymentReversed => "payment_reversed",
            ErrorCategory::NotCharged => "not_charged",
            ErrorCategory::ReceiptNotPrinted => "receipt_not_printed",
            ErrorCategory::PrinterUnavailable => "printer_unavailable",
            ErrorCategory::CardError => "card_error",
            ErrorCategory::Cancelled => "cancelled",
            ErrorCategory::TerminalBusy => "terminal_busy",
            ErrorCategory::TerminalError => "terminal_error",
            ErrorCategory::NotPossible => "not_possible",
            ErrorCategory::Communication => "communication",
            ErrorCategory::DocumentNotFound => "document_not_found",
        }
    }

    /// Every category.
    pub const ALL: [ErrorCategory; 31] = [
        ErrorCategory::PaperOut,
        ErrorCategory::CoverOpen,
        ErrorCategory::DailyReportRequired,
        ErrorCategory::ItemLocked,
        ErrorCategory::TotalMismatch,
        ErrorCategory::InvalidVat,
        ErrorCategory::MemoryFull,
        ErrorCategory::TransactionState,
        ErrorCategory::InvalidField,
        ErrorCategory::DeviceBusy,
        ErrorCategory::DeviceFault,
        ErrorCategory::Clock,
        ErrorCategory::Blocked,
        ErrorCategory::Transport,
        ErrorCategory::Protocol,
        ErrorCategory::Unknown,
        ErrorCategory::DeviceError,
        ErrorCategory::InvalidJob,
        ErrorCategory::NeedsAttention,
        ErrorCategory::CardDeclined,
        ErrorCategory::PaymentReversed,
        ErrorCategory::NotCharged,
        ErrorCategory::ReceiptNotPrinted,
        ErrorCategory::PrinterUnavailable,
        ErrorCategory::CardError,
        ErrorCategory::Cancelled,
        ErrorCategory::TerminalBusy,
        ErrorCategory::TerminalError,
        ErrorCategory::NotPossible,
        ErrorCategory::Communication,
        ErrorCategory::DocumentNotFound,
    ];

    /// The category of an API name (a protocol catalogue's category name); `unknown` for
    /// a name no category has.
    pub fn from_name(name: &str) -> ErrorCategory {
        ErrorCategory::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .unwrap_or(ErrorCategory::Unknown)
    }
}

impl std::fmt::Display for ErrorCategory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a device error means for the operation that was in flight. Device tasks decide on
/// this, never on a protocol's codes: a refusal is final, an unknown outcome is reconciled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorKind {
    /// The device refused or reported the error itself: nothing happened.
    #[default]
    Refused,
    /// The line or connection was lost: what was in flight may or may not have happened.
    OutcomeUnknown,
    /// The device sent something the protocol does not allow here; treat the outcome as
    /// unknown and reconnect.
    ProtocolViolation,
}

/// One device error, as a job's `error` and the API show it:
/// `{"code": <category>, "message": ..., "field": null, "device_code": <the device's own code>}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceError {
    /// The vendor-neutral category.
    #[serde(rename = "code")]
    pub category: ErrorCategory,
    /// What happened, on which device, and what to do.
    pub message: String,
    /// Always null for device errors; present so the shape matches API validation errors.
    #[serde(default)]
    pub field: Option<String>,
    /// The device's own error code (a POSNET error number, a ZVT result code), if it gave one.
    #[serde(default)]
    pub device_code: Option<u32>,
    /// What the error means for the operation in flight (not part of the JSON form).
    #[serde(skip)]
    pub kind: ErrorKind,
}

impl DeviceError {
    /// An error of `category` with a plain message and the device's own code; its kind is
    /// [`ErrorKind::Refused`].
    pub fn new(
        category: ErrorCategory,
        message: impl Into<String>,
        device_code: Option<u32>,
    ) -> Self {
        DeviceError {
            category,
            message: message.into(),
            field: None,
            device_code,
            kind: ErrorKind::Refused,
        }
    }

    /// The link was lost mid-operation: the outcome is unknown ([`ErrorKind::OutcomeUnknown`]).
    pub fn link_lost(message: impl Into<String>) -> Self {
        DeviceError {
            kind: ErrorKind::OutcomeUnknown,
            ..DeviceError::new(ErrorCategory::Transport, message, None)
        }
    }

    /// The device broke the protocol ([`ErrorKind::ProtocolViolation`]).
    pub fn protocol(message: impl Into<String>) -> Self {
        DeviceError {
            kind: ErrorKind::ProtocolViolation,
            ..DeviceError::new(ErrorCategory::Protocol, message, None)
        }
    }

    /// Whether the device refused: nothing happened, so the operation may be settled as
    /// not done without asking the device again.
    pub fn is_refusal(&self) -> bool {
        self.kind == ErrorKind::Refused
    }
}

impl std::fmt::Display for DeviceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeviceError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_form_is_the_api_error_shape() {
        let e = DeviceError::new(ErrorCategory::ItemLocked, "printer fp1 refused", Some(2106));
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"code": "item_locked", "message": "printer fp1 refused", "field": null, "device_code": 2106})
        );
        assert_eq!(serde_json::from_value::<DeviceError>(v).unwrap(), e);
    }

    #[test]
    fn every_category_has_its_name_and_json_form() {
        for c in ErrorCategory::ALL {
            assert_eq!(ErrorCategory::from_name(c.as_str()), c);
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
        }
        assert_eq!(ErrorCategory::from_name("exploded"), ErrorCategory::Unknown);
    }
}
