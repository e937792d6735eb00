//! Sans-IO implementation of ECR-EFT, the Polish protocol (created on FROB's initiative)
//! between an electronic cash register (ECR) and a card terminal (EFT).
//!
//! **Second-hand.** The specification could not be obtained; everything here follows one
//! public proof of concept (frobd) and NoviAPI's `/eft` request. Every such fact is one
//! constant or one table row (see the crate README), so a correction is a one-line change.
//!
//! Layers, bottom up:
//! - [`frame`]: `STX token FS type FS fields… ETX LRC`, an incremental decoder.
//! - [`link`]: ACK/NAK, retransmission (never of S1), tokens, keep-alive, as a quinn-style
//!   state machine with explicit time.
//! - [`layout`]: message layouts as data tables; [`text`]: the fields' code page.
//! - [`message`]: typed messages (T1/T2, S1/S2, I1, P1, D0/D2/D6/D3, L1).
//! - `model` (feature `model`): a behavioural model of a terminal, the emulator's brain.
//!
//! Card data never leaves the codec unmasked: free text, slip lines and a card token that
//! looks like a card number are masked as terminal messages are decoded.

pub mod frame;
pub mod layout;
pub mod link;
pub mod message;
#[cfg(feature = "model")]
pub mod model;
pub mod text;

pub use frame::{Decoder, Frame, Item, Kind, Token};
pub use layout::MessageError;
pub use link::{Link, LinkConfig, LinkEvent, Role};
pub use message::{Message, PLN, Transaction, TransactionResult, TransactionType};
