//! Typed commands the host sends to a POSNET printer.

mod documents;

pub use documents::{
    Adjustment, Closing, CopyOf, INVOICE_FOOTER, INVOICE_HEADER, InvoiceBuyer,
    PERIODIC_SUMMARY_PARAM, Pack,
};

use crate::frame::Frame;
use chrono::NaiveDate;
use rust_decimal::Decimal;

/// An exact, positive quantity (never a float). The wire form uses `.` as separator.
pub type Quantity = Decimal;

/// A receipt line (`trline`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
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
    /// PKWiU classification (`np`, invoices only), at most 49 characters.
    pub pkwiu: Option<String>,
    /// Product code (`nc`, invoices only), at most 51 characters.
    pub code: Option<String>,
    /// A discount or surcharge on this line (`rd rn rp rw`); `amount` stays the value
    /// before it.
    pub adjustment: Option<Adjustment>,
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
    /// `trdiscntbill`: a discount (or surcharge) on the whole bill.
    TrDiscntBill(Adjustment),
    /// `trpack`: a returnable-packaging line (a deposit issued or returned).
    TrPack(Pack),
    /// `trpayment ty wa [na] re0|1`.
    TrPayment {
        kind: PaymentKind,
        amount: u64,
        name: Option<String>,
        change: bool,
    },
    /// `trend to [fp] [re] [op] [om] [fe0]`: close the receipt (or invoice).
    TrEnd(Closing),
    /// `trftrln id25 na..`: a free footer line (after `trend fe0`).
    TrFtrLn { text: String },
    /// `trftrend`: close the footer.
    TrFtrEnd,
    /// `ftrcfg bc..`: a 1-D barcode in the next receipt's footer.
    FtrCfg { barcode: String },
    /// `qrcode px el tx`: a QR code for the next receipt's footer.
    QrCode { text: String },
    /// `discounttypeset dt`: how percentages round (`dt0`: the value after the discount
    /// is rounded; `dt1`: the discount itself is rounded).
    DiscountTypeSet { discount_first: bool },
    /// `trfvinit cc`: open a VAT invoice that prints `copies` copies.
    TrFvInit { copies: u8 },
    /// `trfvbuyer na ni [ad] sc0`: the invoice's buyer.
    TrFvBuyer(InvoiceBuyer),
    /// `trfvnumber nb sc0`: the invoice's number, as the shop numbers it.
    TrFvNumber { number: String },
    /// `trfvfreedata tx sc`: a free line in a section of the invoice.
    TrFvFreeData { text: String, section: u8 },
    /// `periodicrepbydates fd td [su1]`: a periodic report over a range of dates.
    PeriodicRep {
        from: NaiveDate,
        to: NaiveDate,
        summary: bool,
    },
    /// `ecprndoc ty fn tn`: a non-fiscal copy of documents from protected memory.
    EcPrnDoc { of: CopyOf, from: u64, to: u64 },
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
            Command::TrDiscntBill(_) => "trdiscntbill",
            Command::TrPack(_) => "trpack",
            Command::TrPayment { .. } => "trpayment",
            Command::TrEnd(_) => "trend",
            Command::TrFtrLn { .. } => "trftrln",
            Command::TrFtrEnd => "trftrend",
            Command::FtrCfg { .. } => "ftrcfg",
            Command::QrCode { .. } => "qrcode",
            Command::DiscountTypeSet { .. } => "discounttypeset",
            Command::TrFvInit { .. } => "trfvinit",
            Command::TrFvBuyer(_) => "trfvbuyer",
            Command::TrFvNumber { .. } => "trfvnumber",
            Command::TrFvFreeData { .. } => "trfvfreedata",
            Command::PeriodicRep { .. } => "periodicrepbydates",
            Command::EcPrnDoc { .. } => "ecprndoc",
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
            | Command::TrDiscntBill(_)
            | Command::TrPack(_)
            | Command::TrPayment { .. }
            | Command::TrEnd(_)
            | Command::TrFtrLn { .. }
            | Command::TrFtrEnd
            | Command::FtrCfg { .. }
            | Command::QrCode { .. }
            | Command::DiscountTypeSet { .. }
            | Command::TrFvInit { .. }
            | Command::TrFvBuyer(_)
            | Command::TrFvNumber { .. }
            | Command::TrFvFreeData { .. }
            | Command::PeriodicRep { .. }
            | Command::EcPrnDoc { .. }
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
    /// Parameter order: `trline na vt pr il wa [jm] [np] [nc] [rd rn rp rw]` (`il` always
    /// sent), `trdiscntbill rd [na] [rp] rw` (`rd1` discount, `rd0` surcharge),
    /// `trpack na pr il wa [ne1] [de]`, `trpayment ty wa [na] re`,
    /// `trend to [fp] [re] [op] [om] [fe0]` (the amounts only when non-zero),
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
                let f = [("jm", &line.unit), ("np", &line.pkwiu), ("nc", &line.code)]
                    .into_iter()
                    .fold(f, |f, (key, value)| match value {
                        Some(v) => f.with(key, v.clone()),
                        None => f,
                    });
                match &line.adjustment {
                    Some(a) => a.append(f, "rn"),
                    None => f,
                }
            }
            Command::TrNipSet { nip } => f.with("ni", nip.clone()),
            Command::TrDiscntBill(a) => a.append(f, "na"),
            Command::TrPack(p) => p.to_frame(f),
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
            Command::TrEnd(c) => c.to_frame(f),
            Command::TrFtrLn { text } => f.with("id", "25").with("na", text.clone()),
            Command::FtrCfg { barcode } => f.with("bc", barcode.clone()),
            Command::QrCode { text } => f.with("px", "4").with("el", "1").with("tx", text.clone()),
            Command::DiscountTypeSet { discount_first } => f.with("dt", bool01(*discount_first)),
            Command::TrFvInit { copies } => f.with("cc", copies.to_string()),
            Command::TrFvBuyer(b) => {
                let f = f.with("na", b.name.clone()).with("ni", b.nip.clone());
                let f = match &b.address {
                    Some(a) => f.with("ad", a.clone()),
                    None => f,
                };
                f.with("sc", INVOICE_HEADER.to_string())
            }
            Command::TrFvNumber { number } => f
                .with("nb", number.clone())
                .with("sc", INVOICE_HEADER.to_string()),
            Command::TrFvFreeData { text, section } => {
                f.with("tx", text.clone()).with("sc", section.to_string())
            }
            Command::PeriodicRep { from, to, summary } => {
                let f = f
                    .with("fd", documents::date(*from))
                    .with("td", documents::date(*to));
                if *summary {
                    f.with(PERIODIC_SUMMARY_PARAM, "1")
                } else {
                    f
                }
            }
            Command::EcPrnDoc { of, from, to } => f
                .with("ty", of.code().to_string())
                .with("fn", from.to_string())
                .with("tn", to.to_string()),
            Command::DailyRep { date } => f.with("da", documents::date(*date)),
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
            | Command::TrFtrEnd
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
