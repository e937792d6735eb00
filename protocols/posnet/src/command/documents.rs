//! The parts of documents beyond the plain receipt: discounts and surcharges, returnable
//! packaging (deposits), the receipt's closing values, VAT invoice headers and reports.

use crate::frame::Frame;
use chrono::NaiveDate;

/// A discount or surcharge as sent in `trline` or `trdiscntbill`.
///
/// `rd` is 1 for a discount and 0 for a surcharge. A percentage goes out as `rp` (two implied
/// decimals) together with the host's own result as `rw`, so that the printer checks the
/// host's arithmetic (error 2801 when they differ); an amount goes out as `rw` alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Adjustment {
    /// True for a surcharge (`rd0`), false for a discount (`rd1`).
    pub surcharge: bool,
    /// The percentage in hundredths of a percent (`rp`; 1000 = 10.00 %), if it is one.
    pub percent: Option<u32>,
    /// The amount in grosze (`rw`): the discount itself, or what the percentage gives.
    pub amount: u64,
    /// The printed name (`rn` on a line, `na` on the bill), at most 25 characters.
    pub name: Option<String>,
}

impl Adjustment {
    /// Append `rd`, the name under `name_key`, `rp` and `rw`.
    pub(crate) fn append(&self, f: Frame, name_key: &str) -> Frame {
        let f = f.with("rd", if self.surcharge { "0" } else { "1" });
        let f = match &self.name {
            Some(n) => f.with(name_key, n.clone()),
            None => f,
        };
        let f = match self.percent {
            Some(p) => f.with("rp", p.to_string()),
            None => f,
        };
        f.with("rw", self.amount.to_string())
    }
}

/// A returnable-packaging line (`trpack`): a deposit issued or, with `returned`, paid back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pack {
    /// The packaging's numeric id (`na`), at most 11 digits.
    pub code: String,
    /// The deposit per piece in grosze (`pr`).
    pub unit_price: u64,
    /// Pieces (`il`), a whole number.
    pub quantity: u64,
    /// `pr × il` (`wa`); the printer checks it (2803).
    pub amount: u64,
    /// True for a deposit paid back (`ne1`).
    pub returned: bool,
    /// The printed description (`de`), at most 50 characters.
    pub description: Option<String>,
}

impl Pack {
    pub(crate) fn to_frame(&self, f: Frame) -> Frame {
        let f = f
            .with("na", self.code.clone())
            .with("pr", self.unit_price.to_string())
            .with("il", self.quantity.to_string())
            .with("wa", self.amount.to_string());
        let f = if self.returned { f.with("ne", "1") } else { f };
        match &self.description {
            Some(d) => f.with("de", d.clone()),
            None => f,
        }
    }
}

/// The values `trend` sends so that the printer verifies the host's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Closing {
    /// The fiscal total after every discount and surcharge (`to`; 2805).
    pub total: u64,
    /// The sum of the payments sent (`fp`; 2808). `None` on an invoice, which takes no
    /// payments.
    pub payments: Option<u64>,
    /// The change given back (`re`; 2809), sent only when non-zero.
    pub change: u64,
    /// Deposits issued (`op`; 2806), sent only when non-zero.
    pub deposits_issued: u64,
    /// Deposits returned (`om`; 2807), sent only when non-zero.
    pub deposits_returned: u64,
    /// Keep the footer open for `trftrln` lines (`fe0`), closed by `trftrend`.
    pub footer: bool,
}

impl Closing {
    pub(crate) fn to_frame(self, f: Frame) -> Frame {
        let mut f = f.with("to", self.total.to_string());
        if let Some(fp) = self.payments {
            f = f.with("fp", fp.to_string());
        }
        for (key, value) in [
            ("re", self.change),
            ("op", self.deposits_issued),
            ("om", self.deposits_returned),
        ] {
            if value > 0 {
                f = f.with(key, value.to_string());
            }
        }
        if self.footer { f.with("fe", "0") } else { f }
    }
}

/// The buyer of a VAT invoice (`trfvbuyer`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceBuyer {
    /// Name (`na`), lines separated by LF, at most 256 characters.
    pub name: String,
    /// NIP (`ni`), at most 20 characters.
    pub nip: String,
    /// Address (`ad`), lines separated by LF, at most 256 characters.
    pub address: Option<String>,
}

/// Where a part of an invoice header is printed (`sc`): 0 header, 1 data, 2 footer.
pub const INVOICE_HEADER: u8 = 0;
/// The invoice's footer section (`sc2`).
pub const INVOICE_FOOTER: u8 = 2;

/// Which documents `ecprndoc` reprints from protected memory (`ty`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyOf {
    /// Receipts (`ty0`), by receipt number.
    Receipts,
    /// VAT invoices (`ty1`), by invoice number.
    Invoices,
}

impl CopyOf {
    /// The `ty` code on the wire.
    pub fn code(self) -> u8 {
        match self {
            CopyOf::Receipts => 0,
            CopyOf::Invoices => 1,
        }
    }
}

/// The parameter of `periodicrepbydates` that asks for the summary form.
///
/// Not confirmed: the 2023 specification names the command and its `fd`/`td` dates; the
/// name of the summary switch is our reading and is kept here so a correction is one line.
pub const PERIODIC_SUMMARY_PARAM: &str = "su";

pub(crate) fn date(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}
