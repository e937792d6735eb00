//! The POSNET error catalogue: device codes → plain-language messages and
//! vendor-neutral categories that the daemon's API exposes.

/// Vendor-neutral error category (serialised in snake_case in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
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
}

impl Category {
    /// The snake_case name used in the API (`paper_out`, ...).
    pub fn as_str(self) -> &'static str {
        todo!("helper")
    }
}

/// What the catalogue knows about one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorInfo {
    pub code: u32,
    /// The spec's mnemonic where it has one, e.g. `ERR_TR_FLD_VAT`.
    pub name: Option<&'static str>,
    /// Plain language: what happened and what to do.
    pub message: &'static str,
    pub category: Category,
}

/// Look up a command-error code (`?NNNN` in a reply to a command).
pub fn command_error(code: u32) -> ErrorInfo {
    todo!("helper")
}

/// Look up a frame-error code (`ERR ?N`, 1..=15).
pub fn frame_error(code: u32) -> ErrorInfo {
    todo!("helper")
}
