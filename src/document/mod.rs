//! Fiscal documents as the API accepts them: validated, normalised and journaled.
//!
//! Every check here runs before a job is queued, so bad input changes nothing.
//! Money is integer grosze; quantities are exact decimals parsed from their text,
//! never through a float.

mod extras;
mod invoice;

pub use extras::{
    Adjustment, AdjustmentKind, Deposit, PERCENT_ROUNDING, PercentRounding, percent_amount,
    vat_totals,
};
pub use invoice::{
    CopiedDocument, DocumentCopy, Invoice, InvoiceBuyer, MAX_INVOICE_LINES, PeriodicReport,
    invoice, periodic_report,
};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Most lines the printer takes on one receipt.
pub const MAX_LINES: usize = 500;
/// Most payments on one receipt.
pub const MAX_PAYMENTS: usize = 16;
/// Largest amount (grosze) the printer accepts in an amount field.
pub const MAX_AMOUNT: u64 = 9_999_999_999;
/// Largest quantity accepted on a line.
pub const MAX_QUANTITY: u64 = 1_000_000;
/// Most lines of a non-fiscal printout, and their longest line.
pub const MAX_PRINTOUT_LINES: usize = 200;
pub const MAX_PRINTOUT_LINE_LEN: usize = 56;
/// Longest PKWiU classification and product code on an invoice line.
pub const MAX_PKWIU_LEN: usize = 49;
pub const MAX_CODE_LEN: usize = 51;

/// A validation failure: the field path and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub field: String,
    pub message: String,
}

impl Invalid {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

type Result<T> = std::result::Result<T, Invalid>;

/// Payment methods of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Cash,
    Card,
    Cheque,
    Voucher,
    Credit,
    Transfer,
    Mobile,
    Other,
}

impl Method {
    const ALL: [(&'static str, Method); 8] = [
        ("cash", Method::Cash),
        ("card", Method::Card),
        ("cheque", Method::Cheque),
        ("voucher", Method::Voucher),
        ("credit", Method::Credit),
        ("transfer", Method::Transfer),
        ("mobile", Method::Mobile),
        ("other", Method::Other),
    ];
}

/// A validated receipt line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub name: String,
    #[serde(with = "rust_decimal::serde::str")]
    pub quantity: Decimal,
    pub unit_price: u64,
    /// quantity × unit_price, rounded half up to the grosz.
    pub amount: u64,
    /// VAT letter A..G (the printer's PTU slot).
    pub vat: char,
    pub unit: Option<String>,
    /// A discount or surcharge on this line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discount: Option<Adjustment>,
    /// An invoice line's PKWiU classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pkwiu: Option<String>,
    /// An invoice line's product code (e.g. its EAN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl Line {
    /// The line's value after its discount or surcharge.
    pub fn value(&self) -> u64 {
        match &self.discount {
            Some(d) => u64::try_from(d.apply(self.amount)).unwrap_or(0),
            None => self.amount,
        }
    }
}

/// A validated payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    pub method: Method,
    pub amount: u64,
}

/// A validated receipt, as journaled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub lines: Vec<Line>,
    pub payments: Vec<Payment>,
    pub buyer_nip: Option<String>,
    /// The fiscal total after every discount and surcharge (what `trend to` carries).
    pub total: u64,
    /// Discounts and surcharges on the subtotal, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<Adjustment>,
    /// Returnable packaging, outside the fiscal total and VAT.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deposits: Vec<Deposit>,
    /// Free lines after the fiscal part.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub footer: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barcode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qr: Option<String>,
}

impl Receipt {
    /// Sum of payments.
    pub fn paid(&self) -> u64 {
        self.payments.iter().map(|p| p.amount).sum()
    }
    /// Deposits issued (grosze).
    pub fn deposits_issued(&self) -> u64 {
        extras::deposit_sums(&self.deposits).0
    }
    /// Deposits paid back (grosze).
    pub fn deposits_returned(&self) -> u64 {
        extras::deposit_sums(&self.deposits).1
    }
    /// What the customer pays: `total + deposits issued − deposits returned`.
    pub fn amount_due(&self) -> u64 {
        (self.total + self.deposits_issued()).saturating_sub(self.deposits_returned())
    }
    /// Gross sales per VAT letter, as the printer splits the total.
    pub fn vat_totals(&self) -> std::collections::BTreeMap<String, u64> {
        extras::vat_totals(&self.lines, &self.discounts)
    }
    /// Change given back in cash.
    pub fn change(&self) -> u64 {
        self.paid().saturating_sub(self.amount_due())
    }
}

/// A validated cash operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct CashOperation {
    /// True for cash in.
    pub deposit: bool,
    pub amount: u64,
}

/// A validated non-fiscal printout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Printout {
    pub lines: Vec<String>,
}

/// What the validator needs to know about the target printer.
pub struct PrinterLimits<'a> {
    pub max_name_length: usize,
    /// Active VAT letters when the printer's table is known (None: not read yet).
    pub active_vat: Option<&'a [char]>,
    /// What the printer's protocol can print.
    pub support: DocumentSupport,
}

/// Which documents, and which of their parts, a printer protocol can print. Each driver
/// declares its own; validation refuses the rest with a 422 that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentSupport {
    /// The protocol's name for messages (`POSNET`).
    pub protocol: &'static str,
    /// VAT invoices.
    pub invoices: bool,
    /// Discounts and surcharges on an invoice's subtotal (`discounts` on an invoice).
    pub invoice_subtotal_adjustments: bool,
    /// Periodic reports by dates.
    pub periodic_reports: bool,
    /// Copies of printed receipts and invoices from the printer's protected memory.
    pub copies: bool,
}

/// A JSON object whose keys are checked against an allowed list.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, path: &str, allowed: &[&str]) -> Result<Self> {
        let map = v
            .as_object()
            .ok_or_else(|| Invalid::new(path, "must be a JSON object"))?;
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                return Err(Invalid::new(
                    join(path, key),
                    format!(
                        "unknown field {key:?}; expected one of: {}",
                        allowed.join(", ")
                    ),
                ));
            }
        }
        Ok(Obj {
            map,
            path: path.to_string(),
        })
    }
    fn field(&self, key: &str) -> String {
        join(&self.path, key)
    }
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }
    fn required(&self, key: &str) -> Result<&'a Value> {
        self.get(key)
            .ok_or_else(|| Invalid::new(self.field(key), "is required"))
    }
    fn string(&self, key: &str) -> Result<Option<&'a str>> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(_) => Err(Invalid::new(self.field(key), "must be a string")),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A JSON integer number of grosze, checked from its literal text.
fn grosze(v: &Value, field: &str, min: u64) -> Result<u64> {
    let Value::Number(n) = v else {
        return Err(Invalid::new(field, "must be an integer number of grosze"));
    };
    let text = n.to_string();
    if text.starts_with('-') {
        return Err(Invalid::new(
            field,
            format!("must not be negative (got {text})"),
        ));
    }
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(Invalid::new(
            field,
            format!("must be a whole number of grosze, e.g. 1250 for 12.50 zł (got {text})"),
        ));
    }
    let value: u64 = text
        .parse()
        .ok()
        .filter(|v| *v <= MAX_AMOUNT)
        .ok_or_else(|| {
            Invalid::new(
                field,
                format!("is beyond the printer's limit of {MAX_AMOUNT} grosze"),
            )
        })?;
    if value < min {
        return Err(Invalid::new(field, format!("must be at least {min}")));
    }
    Ok(value)
}

/// An exact quantity from a decimal string or a JSON number literal.
fn quantity(v: &Value, field: &str) -> Result<Decimal> {
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(Invalid::new(
                field,
                "must be a decimal string such as \"1.5\" or a number",
            ));
        }
    };
    let bad = |why: &str| Invalid::new(field, format!("{why} (got {text:?})"));
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    if int.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad(
            "must be a plain positive decimal like 2 or 0.5, without sign or exponent",
        ));
    }
    if frac.len() > 3 {
        return Err(bad("must have at most 3 decimal places"));
    }
    if int.len() > 12 {
        return Err(bad("is too large"));
    }
    let q: Decimal = text.parse().map_err(|_| bad("is not a decimal number"))?;
    if q.is_zero() {
        return Err(bad("must be greater than zero"));
    }
    if q > Decimal::from(MAX_QUANTITY) {
        return Err(bad(&format!("must be at most {MAX_QUANTITY}")));
    }
    Ok(q.normalize())
}

/// Printer text: non-empty (when `required`), within `max` characters, printable in Windows-1250.
fn printer_text(s: &str, field: &str, max: usize, required: bool) -> Result<String> {
    let t = s.trim();
    if required && t.is_empty() {
        return Err(Invalid::new(field, "must not be empty"));
    }
    let len = t.chars().count();
    if len > max {
        return Err(Invalid::new(
            field,
            format!("is {len} characters long; the printer takes at most {max}"),
        ));
    }
    posnet::text::encode(t, false).map_err(|e| Invalid::new(field, e.to_string()))?;
    Ok(t.to_string())
}

/// Line amount: quantity × unit price, rounded half up to the grosz.
pub fn line_amount(quantity: Decimal, unit_price: u64) -> Option<u64> {
    let exact = quantity.checked_mul(Decimal::from(unit_price))?;
    let rounded =
        exact.round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
    u64::try_from(rounded).ok()
}

/// Checks a Polish NIP: 10 digits (dashes and spaces ignored) with a valid check digit.
pub fn normalise_nip(s: &str) -> Option<String> {
    let digits: String = s.chars().filter(|c| *c != '-' && *c != ' ').collect();
    if digits.len() != 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let d: Vec<u32> = digits.bytes().map(|b| u32::from(b - b'0')).collect();
    let weights = [6, 5, 7, 2, 3, 4, 5, 6, 7];
    let sum: u32 = weights.iter().zip(&d).map(|(w, x)| w * x).sum();
    (sum % 11 == d[9]).then_some(digits)
}

fn array<'a>(v: &'a Value, field: &str) -> Result<&'a Vec<Value>> {
    v.as_array()
        .ok_or_else(|| Invalid::new(field, "must be an array"))
}

/// Which optional fields a line may carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineFields {
    Receipt,
    /// An invoice line may add `pkwiu` and `code`.
    Invoice,
}

/// Validate the `lines` of a receipt or invoice: at least one, at most `max`.
fn lines(
    obj: &Obj<'_>,
    limits: &PrinterLimits<'_>,
    max: usize,
    kind: LineFields,
) -> Result<Vec<Line>> {
    let document = match kind {
        LineFields::Receipt => "a receipt",
        LineFields::Invoice => "an invoice",
    };
    let lines_v = array(obj.required("lines")?, "lines")?;
    if lines_v.is_empty() {
        return Err(Invalid::new("lines", "must hold at least one line"));
    }
    if lines_v.len() > max {
        return Err(Invalid::new(
            "lines",
            format!(
                "has {} lines; {document} takes at most {max}",
                lines_v.len()
            ),
        ));
    }
    let mut lines = Vec::with_capacity(lines_v.len());
    for (i, lv) in lines_v.iter().enumerate() {
        let path = format!("lines[{i}]");
        let allowed: &[&str] = match kind {
            LineFields::Receipt => &["name", "quantity", "unit_price", "vat", "unit", "discount"],
            LineFields::Invoice => &[
                "name",
                "quantity",
                "unit_price",
                "vat",
                "unit",
                "discount",
                "pkwiu",
                "code",
            ],
        };
        let l = Obj::new(lv, &path, allowed)?;
        let name = l
            .string("name")?
            .ok_or_else(|| Invalid::new(l.field("name"), "is required"))?;
        let name = printer_text(name, &l.field("name"), limits.max_name_length, true)?;
        if !name.chars().any(char::is_alphanumeric) {
            return Err(Invalid::new(
                l.field("name"),
                "must contain a letter or a digit (the printer compares names by them)",
            ));
        }
        let quantity = quantity(l.required("quantity")?, &l.field("quantity"))?;
        let unit_price = grosze(l.required("unit_price")?, &l.field("unit_price"), 1)?;
        let vat_s = l
            .string("vat")?
            .ok_or_else(|| Invalid::new(l.field("vat"), "is required"))?;
        let vat = match vat_s.trim().to_ascii_uppercase().as_str() {
            v @ ("A" | "B" | "C" | "D" | "E" | "F" | "G") => v.chars().next().unwrap_or('A'),
            _ => {
                return Err(Invalid::new(
                    l.field("vat"),
                    format!("must be a VAT letter A..G (got {vat_s:?})"),
                ));
            }
        };
        if let Some(active) = limits.active_vat
            && !active.contains(&vat)
        {
            let list: String = active.iter().collect();
            return Err(Invalid::new(
                l.field("vat"),
                format!("VAT {vat} is not active on the printer; active letters: {list}"),
            ));
        }
        let unit = match l.string("unit")? {
            Some(u) if !u.trim().is_empty() => Some(printer_text(u, &l.field("unit"), 4, false)?),
            _ => None,
        };
        let amount = line_amount(quantity, unit_price)
            .filter(|a| *a <= MAX_AMOUNT)
            .ok_or_else(|| {
                Invalid::new(
                    &path,
                    format!(
                        "quantity × unit_price is beyond the printer's limit of {MAX_AMOUNT} grosze"
                    ),
                )
            })?;
        if amount == 0 {
            return Err(Invalid::new(
                &path,
                "line amount rounds to 0 grosze; the printer refuses it",
            ));
        }
        let discount = match l.get("discount") {
            Some(d) => Some(extras::adjustment(d, &l.field("discount"), amount)?),
            None => None,
        };
        let pkwiu = optional_text(&l, "pkwiu", MAX_PKWIU_LEN)?;
        let code = optional_text(&l, "code", MAX_CODE_LEN)?;
        lines.push(Line {
            name,
            quantity,
            unit_price,
            amount,
            vat,
            unit,
            discount,
            pkwiu,
            code,
        });
    }
    Ok(lines)
}

/// An optional printer text field of at most `max` characters; empty is absent.
fn optional_text(o: &Obj<'_>, key: &str, max: usize) -> Result<Option<String>> {
    match o.string(key)? {
        Some(t) if !t.trim().is_empty() => Ok(Some(printer_text(t, &o.field(key), max, false)?)),
        _ => Ok(None),
    }
}

/// What the payments of a document must cover.
#[derive(Debug, Clone, Copy)]
struct Due {
    total: u64,
    issued: u64,
    returned: u64,
}

impl Due {
    fn amount(self) -> u64 {
        (self.total + self.issued).saturating_sub(self.returned)
    }
}

/// Validate `payments`: they cover the amount due, and change comes only from cash.
fn payments(obj: &Obj<'_>, due: Due) -> Result<Vec<Payment>> {
    let Due {
        total,
        issued,
        returned,
    } = due;
    let due = due.amount();
    let pays_v = array(obj.required("payments")?, "payments")?;
    if pays_v.is_empty() && due > 0 {
        return Err(Invalid::new("payments", "must hold at least one payment"));
    }
    if pays_v.len() > MAX_PAYMENTS {
        return Err(Invalid::new(
            "payments",
            format!("takes at most {MAX_PAYMENTS} payments"),
        ));
    }
    let mut payments = Vec::with_capacity(pays_v.len());
    for (i, pv) in pays_v.iter().enumerate() {
        let p = Obj::new(pv, &format!("payments[{i}]"), &["method", "amount"])?;
        let m = p
            .string("method")?
            .ok_or_else(|| Invalid::new(p.field("method"), "is required"))?;
        let method = Method::ALL
            .iter()
            .find(|(n, _)| *n == m)
            .map(|(_, v)| *v)
            .ok_or_else(|| {
                let names: Vec<&str> = Method::ALL.iter().map(|(n, _)| *n).collect();
                Invalid::new(
                    p.field("method"),
                    format!(
                        "unknown payment method {m:?}; expected one of: {}",
                        names.join(", ")
                    ),
                )
            })?;
        let amount = grosze(p.required("amount")?, &p.field("amount"), 1)?;
        payments.push(Payment { method, amount });
    }
    let paid: u64 = payments.iter().map(|p| p.amount).sum();
    if paid < due {
        return Err(Invalid::new(
            "payments",
            if due == total {
                format!("pay {paid} but the total is {total}")
            } else {
                format!(
                    "pay {paid} but the amount due is {due} (total {total} + deposits issued {issued} − returned {returned})"
                )
            },
        ));
    }
    let cash: u64 = payments
        .iter()
        .filter(|p| p.method == Method::Cash)
        .map(|p| p.amount)
        .sum();
    if paid - due > cash {
        return Err(Invalid::new(
            "payments",
            format!(
                "pay {} more than the amount due; change can only be given from cash",
                paid - due
            ),
        ));
    }
    if paid > MAX_AMOUNT {
        return Err(Invalid::new(
            "payments",
            format!("sum {paid} is beyond the printer's limit"),
        ));
    }

    Ok(payments)
}

/// The fiscal total of `lines` after the subtotal `discounts` (applied in order), checked
/// against the printer's limit and against the `total` the POS sent, if it sent one.
fn totalled(obj: &Obj<'_>, lines: &[Line], document: &str) -> Result<(u64, Vec<Adjustment>)> {
    let mut total: u64 = lines.iter().map(Line::value).sum();
    let mut discounts = Vec::new();
    if let Some(v) = obj.get("discounts") {
        let items = array(v, "discounts")?;
        if items.len() > extras::MAX_DISCOUNTS {
            return Err(Invalid::new(
                "discounts",
                format!("takes at most {} discounts", extras::MAX_DISCOUNTS),
            ));
        }
        for (i, d) in items.iter().enumerate() {
            let adjustment = extras::adjustment(d, &format!("discounts[{i}]"), total)?;
            total = u64::try_from(adjustment.apply(total))
                .ok()
                .filter(|t| *t <= MAX_AMOUNT)
                .ok_or_else(|| {
                    Invalid::new(format!("discounts[{i}]"), "takes the total out of range")
                })?;
            discounts.push(adjustment);
        }
    }
    if total > MAX_AMOUNT {
        return Err(Invalid::new(
            "lines",
            format!(
                "{document} total {total} is beyond the printer's limit of {MAX_AMOUNT} grosze"
            ),
        ));
    }
    if let Some(t) = obj.get("total") {
        let given = grosze(t, "total", 0)?;
        if given != total {
            return Err(Invalid::new(
                "total",
                format!(
                    "is {given} but the lines after their discounts and surcharges come to {total}"
                ),
            ));
        }
    }
    Ok((total, discounts))
}

/// Validate a receipt body. `allowed_extra` lists keys handled by the caller (e.g. `printer`).
pub fn receipt(
    body: &Value,
    limits: &PrinterLimits<'_>,
    allowed_extra: &[&str],
) -> Result<Receipt> {
    let mut allowed = vec![
        "lines",
        "payments",
        "buyer_nip",
        "total",
        "discounts",
        "deposits",
        "footer",
        "barcode",
        "qr",
    ];
    allowed.extend_from_slice(allowed_extra);
    let obj = Obj::new(body, "", &allowed)?;

    let lines = lines(&obj, limits, MAX_LINES, LineFields::Receipt)?;
    let (total, discounts) = totalled(&obj, &lines, "receipt")?;
    let deposits = match obj.get("deposits") {
        Some(v) => extras::deposits(v)?,
        None => Vec::new(),
    };
    let (issued, returned) = extras::deposit_sums(&deposits);
    (total + issued).checked_sub(returned).ok_or_else(|| {
        Invalid::new(
            "deposits",
            format!(
                "return {returned} grosze of deposits, more than the total {total} plus the deposits issued {issued}; \
                 this printer cannot pay out a negative amount due: pay the rest back as a separate cash operation"
            ),
        )
    })?;
    let footer = match obj.get("footer") {
        Some(v) => extras::footer(v)?,
        None => Vec::new(),
    };
    let barcode = obj.string("barcode")?.map(extras::barcode).transpose()?;
    let qr = obj.string("qr")?.map(extras::qr).transpose()?;

    let payments = payments(
        &obj,
        Due {
            total,
            issued,
            returned,
        },
    )?;

    let buyer_nip = match obj.string("buyer_nip")? {
        None => None,
        Some(s) => Some(normalise_nip(s).ok_or_else(|| {
            Invalid::new(
                "buyer_nip",
                "must be a Polish NIP: 10 digits with a valid check digit",
            )
        })?),
    };
    Ok(Receipt {
        lines,
        payments,
        buyer_nip,
        total,
        discounts,
        deposits,
        footer,
        barcode,
        qr,
    })
}

/// Validate a cash operation body.
pub fn cash(body: &Value, allowed_extra: &[&str]) -> Result<CashOperation> {
    let mut allowed = vec!["direction", "amount"];
    allowed.extend_from_slice(allowed_extra);
    let obj = Obj::new(body, "", &allowed)?;
    let deposit = match obj.string("direction")? {
        Some("in") => true,
        Some("out") => false,
        Some(other) => {
            return Err(Invalid::new(
                "direction",
                format!("must be \"in\" or \"out\" (got {other:?})"),
            ));
        }
        None => return Err(Invalid::new("direction", "is required")),
    };
    let amount = grosze(obj.required("amount")?, "amount", 1)?;
    Ok(CashOperation { deposit, amount })
}

/// Validate a non-fiscal printout body.
pub fn printout(body: &Value, allowed_extra: &[&str]) -> Result<Printout> {
    let mut allowed = vec!["lines"];
    allowed.extend_from_slice(allowed_extra);
    let obj = Obj::new(body, "", &allowed)?;
    let lines_v = array(obj.required("lines")?, "lines")?;
    if lines_v.is_empty() || lines_v.len() > MAX_PRINTOUT_LINES {
        return Err(Invalid::new(
            "lines",
            format!("must hold 1..{MAX_PRINTOUT_LINES} lines"),
        ));
    }
    let mut lines = Vec::with_capacity(lines_v.len());
    for (i, l) in lines_v.iter().enumerate() {
        let field = format!("lines[{i}]");
        let s = l
            .as_str()
            .ok_or_else(|| Invalid::new(&field, "must be a string"))?;
        lines.push(printer_text(s, &field, MAX_PRINTOUT_LINE_LEN, false)?);
    }
    Ok(Printout { lines })
}

/// Validate a body that may only name the printer (daily report).
pub fn empty(body: &Value, allowed_extra: &[&str]) -> Result<()> {
    if body.is_null() {
        return Ok(());
    }
    Obj::new(body, "", allowed_extra).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn limits() -> PrinterLimits<'static> {
        PrinterLimits {
            max_name_length: 40,
            active_vat: Some(&['A', 'B', 'C', 'D', 'E']),
            support: crate::drivers::posnet::SUPPORT,
        }
    }

    fn ok_body() -> Value {
        json!({"lines": [{"name": "Chleb", "quantity": "1.5", "unit_price": 333, "vat": "B"}],
               "payments": [{"method": "cash", "amount": 1000}]})
    }

    fn field_of(body: Value) -> String {
        receipt(&body, &limits(), &["printer"]).unwrap_err().field
    }

    #[test]
    fn amounts_round_half_up_and_change_comes_from_cash() {
        let r = receipt(&ok_body(), &limits(), &[]).unwrap();
        assert_eq!(r.lines[0].amount, 500); // 499.5 -> 500
        assert_eq!(r.total, 500);
        assert_eq!(r.change(), 500);
        assert_eq!(line_amount("0.333".parse().unwrap(), 150), Some(50)); // 49.95 -> 50
        assert_eq!(line_amount("2".parse().unwrap(), 125), Some(250));
    }

    #[test]
    fn each_bad_field_is_named() {
        let mut b = ok_body();
        b["lines"][0]["vat"] = json!("F");
        assert_eq!(field_of(b), "lines[0].vat");
        let mut b = ok_body();
        b["lines"][0]["quantity"] = json!("1e3");
        assert_eq!(field_of(b), "lines[0].quantity");
        let mut b = ok_body();
        b["lines"][0]["quantity"] = json!("1.2345");
        assert_eq!(field_of(b), "lines[0].quantity");
        let mut b = ok_body();
        b["lines"][0]["unit_price"] = json!(-5);
        assert_eq!(field_of(b), "lines[0].unit_price");
        let mut b = ok_body();
        b["lines"][0]["unit_price"] = json!(3.5);
        assert_eq!(field_of(b), "lines[0].unit_price");
        let mut b = ok_body();
        b["lines"][0]["name"] = json!("Tab\there");
        assert_eq!(field_of(b), "lines[0].name");
        let mut b = ok_body();
        b["lines"][0]["name"] = json!("漢字");
        assert_eq!(field_of(b), "lines[0].name");
        let mut b = ok_body();
        b["lines"][0]["prise"] = json!(1);
        assert_eq!(field_of(b), "lines[0].prise");
        let mut b = ok_body();
        b["total"] = json!(499);
        assert_eq!(field_of(b), "total");
        let mut b = ok_body();
        b["payments"][0] = json!({"method": "card", "amount": 1000});
        assert_eq!(field_of(b), "payments");
        let mut b = ok_body();
        b["buyer_nip"] = json!("1234567890");
        assert_eq!(field_of(b), "buyer_nip");
        let mut b = ok_body();
        b["lines"] = json!([]);
        assert_eq!(field_of(b), "lines");
    }

    #[test]
    fn quantity_as_json_number_is_exact() {
        let mut b = ok_body();
        b["lines"][0]["quantity"] = serde_json::from_str("0.1").unwrap();
        b["lines"][0]["unit_price"] = json!(1005);
        let r = receipt(&b, &limits(), &[]).unwrap();
        assert_eq!(r.lines[0].quantity.to_string(), "0.1");
        assert_eq!(r.lines[0].amount, 101); // 100.5 -> 101
    }

    #[test]
    fn nip_check_digit() {
        assert_eq!(normalise_nip("111-222-33-44").as_deref(), None);
        assert_eq!(normalise_nip("1234563218").as_deref(), Some("1234563218"));
        assert_eq!(
            normalise_nip("526-000-12-46").as_deref(),
            Some("5260001246")
        );
    }
}

/// A validated card payment request (`POST /v1/payments`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardPayment {
    /// `sale`, `refund` or `reversal`.
    #[serde(rename = "type")]
    pub kind: String,
    pub amount: u64,
    /// ISO 4217 numeric.
    pub currency: u16,
    pub reference: Option<String>,
    pub original_receipt_number: Option<u32>,
}

/// Validate a card payment body; `default_currency` is the terminal's.
pub fn card_payment(
    body: &Value,
    default_currency: u16,
    allowed_extra: &[&str],
) -> Result<CardPayment> {
    let mut allowed = vec![
        "type",
        "amount",
        "currency",
        "reference",
        "original_receipt_number",
    ];
    allowed.extend_from_slice(allowed_extra);
    let obj = Obj::new(body, "", &allowed)?;
    let kind = match obj.string("type")? {
        Some(k @ ("sale" | "refund" | "reversal")) => k.to_string(),
        Some(other) => {
            return Err(Invalid::new(
                "type",
                format!("must be \"sale\", \"refund\" or \"reversal\" (got {other:?})"),
            ));
        }
        None => return Err(Invalid::new("type", "is required")),
    };
    let amount = grosze(obj.required("amount")?, "amount", 1)?;
    let currency = match obj.string("currency")? {
        None => default_currency,
        Some(c) => crate::config::currency_code(c).ok_or_else(|| {
            Invalid::new(
                "currency",
                format!("unsupported currency {c:?}; use \"PLN\" or \"EUR\""),
            )
        })?,
    };
    let reference = match obj.string("reference")? {
        Some(r) if r.chars().count() > 64 || r.chars().any(char::is_control) => {
            return Err(Invalid::new(
                "reference",
                "must be at most 64 characters without control characters",
            ));
        }
        r => r.map(String::from),
    };
    let original_receipt_number = match obj.get("original_receipt_number") {
        None => None,
        Some(v) => Some(
            grosze(v, "original_receipt_number", 1)
                .ok()
                .filter(|n| *n <= 9999)
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    Invalid::new(
                        "original_receipt_number",
                        "must be the terminal's receipt number, 1..9999",
                    )
                })?,
        ),
    };
    if kind == "reversal" && original_receipt_number.is_none() {
        return Err(Invalid::new(
            "original_receipt_number",
            "is required for a reversal",
        ));
    }
    if kind != "reversal" && original_receipt_number.is_some() {
        return Err(Invalid::new(
            "original_receipt_number",
            "only applies to a reversal",
        ));
    }
    Ok(CardPayment {
        kind,
        amount,
        currency,
        reference,
        original_receipt_number,
    })
}

/// The card part of a sale: exactly one `card` payment.
pub fn sale_card_amount(receipt: &Receipt) -> Result<u64> {
    let cards: Vec<&Payment> = receipt
        .payments
        .iter()
        .filter(|p| p.method == Method::Card)
        .collect();
    match cards.as_slice() {
        [one] => Ok(one.amount),
        [] => Err(Invalid::new(
            "payments",
            "a sale needs one payment with method \"card\"",
        )),
        _ => Err(Invalid::new(
            "payments",
            "a sale takes exactly one card payment",
        )),
    }
}
