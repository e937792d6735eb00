//! The Thermal (ESC P) fiscal printer protocol, **sans-IO**: bytes in, typed frames out.
//!
//! Spoken by older Posnet printers (Thermal, Temo) and by Novitus "classic" devices. A frame
//! is `ESC P [Ps;…;Pn] <2-char command> <fields> [cc] ESC \`, with an XOR checksum `cc`;
//! most commands get no reply, and the host learns what happened from single status bytes
//! (ENQ, DLE) and the `#n` and `#s` queries.
//!
//! - [`frame`]: the checksum, [`Frame`] and the incremental [`Decoder`].
//! - [`text`]: the two code pages ([`Encoding`]), strict on the way out.
//! - [`command`]: typed host commands and their frames; [`command::Dialect`] for the payment
//!   type codes that differ between Posnet and Novitus.
//! - [`reply`]: status bytes (ENQ, DLE) and replies (`#E`, `#R`, `#X`).
//! - [`error`]: the device's error codes in plain words.
//! - `model` (feature `model`): a behavioural model of a printer, the emulator's brain.

pub mod command;
pub mod error;
pub mod field;
pub mod frame;
#[cfg(feature = "model")]
pub mod model;
pub mod reply;
pub mod session;
pub mod text;

pub use command::{Command, Dialect};
pub use frame::{Decoder, Frame, Item};
pub use text::Encoding;

/// ENQ: the single-byte query for the transaction status byte (0x60–0x6F).
pub const ENQ: u8 = 0x05;
/// DLE: the single-byte query for the device status byte (0x70–0x77); works off-line too.
pub const DLE: u8 = 0x10;
/// BEL: beep.
pub const BEL: u8 = 0x07;
/// CAN: abort the parsing of the current command.
pub const CAN: u8 = 0x18;
