//! The vocabulary every device shares, whatever its protocol: its state as the API shows it,
//! the vendor-neutral device error, and the live status cell that publishes changes.
//!
//! Nothing here knows a protocol. Printer and terminal drivers, the device tasks, the API,
//! events and metrics all speak these types, so none of them imports from another.

mod error;
pub mod handle;
pub mod printer;
mod status;
pub mod terminal;

pub use error::{DeviceError, ErrorCategory, ErrorKind};
pub use handle::{DeviceConfig, DeviceHandle, HandleStatus};
pub use status::{Observable, StatePublisher, StatusCell};

use serde::{Deserialize, Serialize};

/// What the API shows of a device's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    Ready,
    Busy,
    Offline,
    PaperOut,
    /// The paper is running low (POSNET `sdev` `pe`): documents still print.
    PaperLow,
    CoverOpen,
    Error,
}

impl DeviceState {
    /// The state as its API name (`ready`, `paper_out`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceState::Ready => "ready",
            DeviceState::Busy => "busy",
            DeviceState::Offline => "offline",
            DeviceState::PaperOut => "paper_out",
            DeviceState::PaperLow => "paper_low",
            DeviceState::CoverOpen => "cover_open",
            DeviceState::Error => "error",
        }
    }

    /// Whether the device takes work in this state (health checks count it as up).
    pub fn is_up(self) -> bool {
        matches!(
            self,
            DeviceState::Ready | DeviceState::Busy | DeviceState::PaperLow
        )
    }
}

/// The document counters a fiscal printer keeps, in a protocol-neutral form. Recovery
/// compares them before and after a document to decide whether it was printed.
///
/// The JSON field names are those the journal has always stored (POSNET `scnt`'s), so
/// journals written before drivers existed read back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DocumentCounters {
    /// The number of the last completed receipt.
    pub last_receipt: u64,
    /// How many daily (Z) reports the printer has made.
    pub daily_reports: u64,
    /// The number the next non-fiscal printout (or cash operation) will get.
    pub next_printout: u64,
    /// How many VAT invoices the printer has made (absent, so 0, in journals written before
    /// invoices existed; no invoice job of theirs needs it).
    #[serde(default)]
    pub invoices: u64,
}

/// Byte and frame counters of one device link, in both directions (the API's `link`).
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct LinkStats {
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub frames_out: u64,
    pub frames_in: u64,
    /// Frames that arrived damaged (bad CRC, bad structure).
    pub frame_errors: u64,
    /// Bytes between frames that belonged to none.
    pub garbage_bytes: u64,
}
