//! Sans-IO codec for the POSNET fiscal printer protocol.
//!
//! Layers, bottom up:
//! - [`crc`]: CRC-16/XMODEM over the frame payload.
//! - [`text`]: UTF-8 ⇄ Windows-1250 with strict checks for values that go to the printer.
//! - [`frame`]: bytes ⇄ [`Frame`]s, with an incremental [`FrameDecoder`] that resynchronises on garbage.
//! - [`command`]: typed commands the host sends, turned into frames.
//! - [`reply`]: typed views of the printer's replies.
//! - [`error`]: the catalogue of POSNET error codes with vendor-neutral categories.
//! - [`session`]: the session as a sans-IO state machine: tokens, `rpt`, frame-error
//!   resends and commands held for paper, with time passed in.
//! - `model` (feature `model`): a behavioural model of a printer, used by the emulator.
//!
//! Nothing here does I/O or reads a clock: time is passed in where it matters.

pub mod command;
pub mod crc;
pub mod error;
pub mod frame;
#[cfg(feature = "model")]
pub mod model;
pub mod reply;
pub mod session;
pub mod text;

pub use command::{
    Adjustment, Closing, Command, CopyOf, InvoiceBuyer, Line, Pack, PaymentKind, Quantity,
};
pub use error::{Category, ErrorInfo};
pub use frame::{DecodeError, Decoded, Frame, FrameDecoder};
pub use session::{
    CommandFailure, Retry, Session, SessionConfig, SessionError, SessionEvent, SessionStats,
};
pub use text::TextError;
