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
    TrDiscntBill {
        amount: u64,
        surcharge: bool,
        name: Option<String>,
    },
    /// `trpayment ty wa [na] re0|1`.
    TrPayment {
        kind: PaymentKind,
        amount: u64,
        name: Option<String>,
        change: bool,
    },
    /// `trend to fp [re]`.
    TrEnd {
        total: u64,
        payments: u64,
        change: u64,
    },
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
        match self {
            Command::TrInit { .. } => "trinit",
            Command::TrLine(_) => "trline",
            Command::TrNipSet { .. } => "trnipset",
            Command::TrDiscntBill { .. } => "trdiscntbill",
            Command::TrPayment { .. } => "trpayment",
            Command::TrEnd { .. } => "trend",
            Command::PrnCancel => "prncancel",
            Command::DailyRep { .. } => "dailyrep",
            Command::Cash { .. } => "cash",
            Command::FormStart { .. } => "formstart",
            Command::FormLine { .. } => "formline",
            Command::FormEnd { .. } => "formend",
            Command::VatGet => "vatget",
            Command::RtcGet => "rtcget",
            Command::SComm => "scomm",
            Command::SCnt => "scnt",
            Command::SDev { immediate: true } => "!sdev",
            Command::SDev { immediate: false } => "sdev",
            Command::SPrn { immediate: true } => "!sprn",
            Command::SPrn { immediate: false } => "sprn",
            Command::SId => "sid",
        }
    }

    /// True for commands that change fiscal memory or print (never resent blindly).
    pub fn is_fiscal(&self) -> bool {
        match self {
            Command::TrInit { .. }
            | Command::TrLine(_)
            | Command::TrNipSet { .. }
            | Command::TrDiscntBill { .. }
            | Command::TrPayment { .. }
            | Command::TrEnd { .. }
            | Command::PrnCancel
            | Command::DailyRep { .. }
            | Command::Cash { .. }
            | Command::FormStart { .. }
            | Command::FormLine { .. }
            | Command::FormEnd { .. } => true,
            Command::VatGet
            | Command::RtcGet
            | Command::SComm
            | Command::SCnt
            | Command::SDev { .. }
            | Command::SPrn { .. }
            | Command::SId => false,
        }
    }

    /// The frame for this command (no token). Amounts in grosze, quantity with `.`.
    ///
    /// Parameter order: `trline na vt pr il wa [jm]` (`il` always sent),
    /// `trdiscntbill rw rd [na]` (`rd1` discount, `rd0` surcharge),
    /// `trpayment ty wa [na] re`, `trend to fp [re]` (`re` only when change > 0),
    /// `cash kw wp`, `formstart fn [fh]`, `formline fn fl s1`, `formend fn`.
    pub fn to_frame(&self) -> Frame {
        let f = Frame::new(self.mnemonic());
        match self {
            Command::TrInit { block_mode } => f.with("bm", bool01(*block_mode)),
            Command::TrLine(line) => {
                let f = f
                    .with("na", line.name.clone())
                    .with("vt", line.vat_slot.to_string())
                    .with("pr", line.unit_price.to_string())
                    .with("il", format_quantity(line.quantity))
                    .with("wa", line.amount.to_string());
                match &line.unit {
                    Some(unit) => f.with("jm", unit.clone()),
                    None => f,
                }
            }
            Command::TrNipSet { nip } => f.with("ni", nip.clone()),
            Command::TrDiscntBill {
                amount,
                surcharge,
                name,
            } => {
                let f = f
                    .with("rw", amount.to_string())
                    .with("rd", bool01(!*surcharge));
                match name {
                    Some(name) => f.with("na", name.clone()),
                    None => f,
                }
            }
            Command::TrPayment {
                kind,
                amount,
                name,
                change,
            } => {
                let f = f
                    .with("ty", kind.code().to_string())
                    .with("wa", amount.to_string());
                let f = match name {
                    Some(name) => f.with("na", name.clone()),
                    None => f,
                };
                f.with("re", bool01(*change))
            }
            Command::TrEnd {
                total,
                payments,
                change,
            } => {
                let f = f
                    .with("to", total.to_string())
                    .with("fp", payments.to_string());
                if *change > 0 {
                    f.with("re", change.to_string())
                } else {
                    f
                }
            }
            Command::DailyRep { date } => f.with("da", date.format("%Y-%m-%d").to_string()),
            Command::Cash { amount, deposit } => f
                .with("kw", amount.to_string())
                .with("wp", bool01(*deposit)),
            Command::FormStart { form, header } => {
                let f = f.with("fn", form.to_string());
                match header {
                    Some(h) => f.with("fh", h.to_string()),
                    None => f,
                }
            }
            Command::FormLine { form, line, text } => f
                .with("fn", form.to_string())
                .with("fl", line.to_string())
                .with("s1", text.clone()),
            Command::FormEnd { form } => f.with("fn", form.to_string()),
            Command::PrnCancel
            | Command::VatGet
            | Command::RtcGet
            | Command::SComm
            | Command::SCnt
            | Command::SDev { .. }
            | Command::SPrn { .. }
            | Command::SId => f,
        }
    }

    /// `rpt @NNNN`: ask the printer to resend its stored answer to the command that
    /// carried `token`. Unknown tokens are answered with frame error 13.
    pub fn rpt_frame(token: u16) -> Frame {
        let mut f = Frame::new("rpt");
        f.token = Some(token);
        f
    }
}

fn bool01(b: bool) -> &'static str {
    if b { "1" } else { "0" }
}

/// The wire form of a quantity: exact, `.` as separator, no trailing zeros, no
/// exponent (`1.500` → `1.5`, `2` → `2`).
pub fn format_quantity(q: Quantity) -> String {
    q.normalize().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn quantity_format() {
        let d = |s| Decimal::from_str(s).unwrap();
        assert_eq!(format_quantity(d("1.500")), "1.5");
        assert_eq!(format_quantity(d("2")), "2");
        assert_eq!(format_quantity(d("2.000")), "2");
        assert_eq!(format_quantity(d("0.00000001")), "0.00000001");
        assert_eq!(format_quantity(d("100")), "100");
        assert_eq!(format_quantity(d("1e3")), "1000");
        assert_eq!(format_quantity(Decimal::new(12_340, 3)), "12.34");
    }
}
