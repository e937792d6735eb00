//! Typed commands the host sends to a POSNET printer.

use crate::frame::Frame;
use rust_decimal::Decimal;

/// An exact, positive quantity (never a float). The wire form uses `.` as separator.
pub type Quantity = Decimal;

/// A receipt line (`trline`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Item name (`na`), UTF-8; encoded to Windows-1250 on the wire.
    pub name: String,
    /// PTU slot index 0..=6 (A..G) (`vt`).
    pub vat_slot: u8,
    /// Gross unit price in grosze (`pr`).
    pub unit_price: u64,
    /// Quantity (`il`).
    pub quantity: Quantity,
    /// Line amount in grosze (`wa`); the printer checks it against price × quantity.
    pub amount: u64,
    /// Unit of measure (`jm`), at most 4 characters.
    pub unit: Option<String>,
}

/// Payment forms (`trpayment ty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PaymentKind {
    Cash,
    Card,
    Cheque,
    Voucher,
    Credit,
    Other,
    Transfer,
    Mobile,
}

impl PaymentKind {
    /// The `ty` code on the wire.
    pub fn code(self) -> u8 {
        match self {
            PaymentKind::Cash => 0,
            PaymentKind::Card => 2,
            PaymentKind::Cheque => 3,
            PaymentKind::Voucher => 4,
            PaymentKind::Credit => 5,
            PaymentKind::Other | PaymentKind::Mobile => 6,
            PaymentKind::Transfer => 8,
        }
    }
}

/// A command to the printer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `trinit bm0|bm1`: open a receipt.
    TrInit { block_mode: bool },
    /// `trline`: a sale line.
    TrLine(Line),
    /// `trnipset ni..`: the buyer's NIP (10 digits).
    TrNipSet { nip: String },
    /// `trdiscntbill`: a discount (or surcharge) on the whole bill, by amount in grosze.
    TrDiscntBill { amount: u64, surcharge: bool, name: Option<String> },
    /// `trpayment ty wa [na] re0|1`.
    TrPayment { kind: PaymentKind, amount: u64, name: Option<String>, change: bool },
    /// `trend to fp [re]`.
    TrEnd { total: u64, payments: u64, change: u64 },
    /// `prncancel`: cancel the open receipt or printout.
    PrnCancel,
    /// `dailyrep da<yyyy-mm-dd>`: the daily (Z) report.
    DailyRep { date: chrono::NaiveDate },
    /// `cash kw wp`: cash in (`deposit`) or out.
    Cash { amount: u64, deposit: bool },
    /// `formstart fn [fh]`: start a non-fiscal form.
    FormStart { form: u16, header: Option<u16> },
    /// `formline fn fl s1`: one form line.
    FormLine { form: u16, line: u16, text: String },
    /// `formend fn`.
    FormEnd { form: u16 },
    /// `vatget`: read the VAT table.
    VatGet,
    /// `rtcget`: read the clock.
    RtcGet,
    /// `scomm`: fiscal/transaction status.
    SComm,
    /// `scnt`: document counters.
    SCnt,
    /// `sdev` (immediate `!sdev` when `immediate`).
    SDev { immediate: bool },
    /// `sprn` (immediate `!sprn` when `immediate`).
    SPrn { immediate: bool },
    /// `sid`: device identity.
    SId,
}

impl Command {
    /// The mnemonic as sent (including `!` for immediate mode).
    pub fn mnemonic(&self) -> &'static str {
        todo!("helper")
    }

    /// True for commands that change fiscal memory or print (never resent blindly).
    pub fn is_fiscal(&self) -> bool {
        todo!("helper")
    }

    /// The frame for this command (no token). Amounts in grosze, quantity with `.`.
    pub fn to_frame(&self) -> Frame {
        todo!("helper")
    }
}
