//! Sans-IO implementation of the ZVT protocol between an electronic cash register (ECR)
//! and a payment terminal (PT).
//!
//! Layers, bottom up:
//! - [`crc`]: CRC-16/KERMIT of the serial transport.
//! - [`link`]: the serial link layer (DLE STX … DLE ETX CRC, DLE stuffing, ACK/NAK, T1/T2,
//!   repetition) as a state machine driven with explicit time, and a passive reading of the
//!   same framing ([`link::LinkSplitter`], for traces and replay) over one frame reader;
//!   [`apdu::ApduDecoder`] frames bare APDUs on TCP.
//! - [`apdu`]: `CLASS INSTR LEN data` with 1- and 3-byte lengths.
//! - [`bmp`]: BMP fields, BCD and the TLV container; [`pan`] masks card numbers.
//! - [`message`]: typed ECR commands and PT messages.
//! - [`error`]: result and error codes with plain-language messages.
//! - `model` (feature `model`): a behavioural model of a terminal, used by the emulator.
//!
//! Card data never leaves the codec unmasked: track data, CVV and full PANs are dropped or
//! masked when messages are decoded.

pub mod apdu;
pub mod bmp;
pub mod crc;
pub mod error;
pub mod link;
pub mod message;
#[cfg(feature = "model")]
pub mod model;
pub mod pan;

pub use apdu::{Apdu, ApduDecoder, ApduError};
pub use message::{EcrCommand, PtMessage, TransactionResult};

/// ISO 4217 numeric code of the Polish złoty.
pub const PLN: u16 = 985;
/// ISO 4217 numeric code of the euro.
pub const EUR: u16 = 978;
