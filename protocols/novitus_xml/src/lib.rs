//! The Novitus XML protocol of fiscal printers, **sans-IO**: bytes in, typed packets out;
//! commands in, bytes out. No I/O, no clock, no sleeps.
//!
//! - [`packet`]: `<packet [crc="…"]>…</packet>` (or the Polish `<pakiet>`), the CRC-32 over
//!   the bytes between the tags, and [`PacketDecoder`], an incremental decoder that finds
//!   packets in a byte stream, resynchronises after garbage and gives the same packets
//!   however the bytes are split.
//! - [`text`]: UTF-8 ⇄ Windows-1250, refusing what the code page cannot hold.
//! - [`command`]: typed commands written as XML with a real writer (every attribute value
//!   escaped, so a name with `"`, `<` or `&` prints as typed).
//! - [`reply`]: typed replies read with a real XML reader.
//!
//! The facts (packet shape, CRC, commands, replies, test vectors) are in the project's
//! reference notes on the Novitus/Thermal family; what is second-hand is marked where it is
//! used.

pub mod command;
#[cfg(feature = "model")]
pub mod model;
pub mod packet;
pub mod reply;
pub mod text;

pub use command::{Command, Item, ItemDiscount, Payment, PaymentType};
pub use packet::{Decoded, Dialect, Packet, PacketDecoder, PacketError, crc32};
pub use reply::{Checkout, Dle, Element, ReplyError, TaxRate};
