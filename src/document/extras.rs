//! The parts of a receipt beyond its lines and payments: discounts and surcharges (on a
//! line or on the subtotal), returnable packaging (deposits), footer lines and codes.
//!
//! Money is integer grosze. A percentage is an exact decimal with at most two places and
//! resolves to grosze the way the printer resolves it ([`PERCENT_ROUNDING`]).

use super::{Invalid, Obj, Result, array, grosze, printer_text};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Most receipt-level discounts and surcharges on one receipt.
pub const MAX_DISCOUNTS: usize = 16;
/// Most deposit lines on one receipt.
pub const MAX_DEPOSITS: usize = 64;
/// Most footer lines, and their longest line (57 mm paper).
pub const MAX_FOOTER_LINES: usize = 60;
pub const MAX_FOOTER_LINE_LEN: usize = 40;
/// Longest 1-D barcode and QR code text.
pub const MAX_BARCODE_LEN: usize = 30;
pub const MAX_QR_LEN: usize = 2000;
/// Longest printed discount name.
pub const MAX_DISCOUNT_NAME_LEN: usize = 25;
/// Longest deposit description printed.
pub const MAX_DEPOSIT_NAME_LEN: usize = 40;

/// How a percentage becomes grosze.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PercentRounding {
    /// The value after the discount is rounded half up; the discount is the difference
    /// (POSNET `discounttypeset dt0`).
    ValueAfter,
    /// The discount itself is rounded half up (`dt1`).
    Discount,
}

/// The rounding every driver sets on its printer at connect (the POSNET driver sends
/// `discounttypeset dt0`), so that the daemon's totals are the printer's.
pub const PERCENT_ROUNDING: PercentRounding = PercentRounding::ValueAfter;

/// Discount or surcharge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdjustmentKind {
    Discount,
    Surcharge,
}

/// A validated discount or surcharge, resolved to grosze.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Adjustment {
    pub kind: AdjustmentKind,
    /// The percentage the POS asked for, if it was one.
    #[serde(
        default,
        with = "rust_decimal::serde::str_option",
        skip_serializing_if = "Option::is_none"
    )]
    pub percent: Option<Decimal>,
    /// The resolved amount in grosze (always positive).
    pub amount: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Adjustment {
    /// The value `base` becomes.
    pub fn apply(&self, base: u64) -> i128 {
        match self.kind {
            AdjustmentKind::Discount => i128::from(base) - i128::from(self.amount),
            AdjustmentKind::Surcharge => i128::from(base) + i128::from(self.amount),
        }
    }
    /// Percentage in hundredths (`rp` on the wire), if it is one.
    pub fn percent_hundredths(&self) -> Option<u32> {
        self.percent
            .and_then(|p| (p * Decimal::ONE_HUNDRED).trunc().try_into().ok())
    }
}

/// What a percentage of `base` comes to, rounded as `rounding` says.
pub fn percent_amount(
    base: u64,
    percent: Decimal,
    kind: AdjustmentKind,
    rounding: PercentRounding,
) -> Option<u64> {
    let round = |d: Decimal| {
        u64::try_from(d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)).ok()
    };
    let base_d = Decimal::from(base);
    match (kind, rounding) {
        (AdjustmentKind::Discount, PercentRounding::ValueAfter) => {
            let after = round(base_d * (Decimal::ONE_HUNDRED - percent) / Decimal::ONE_HUNDRED)?;
            base.checked_sub(after)
        }
        _ => round(base_d * percent / Decimal::ONE_HUNDRED),
    }
}

/// Gross sales per VAT letter of `lines` after the subtotal `discounts`, the printer's way:
/// each subtotal adjustment is spread over the letters in order A..G, each letter taking
/// `floor(value × after / before)` and the remainders carried, a letter getting one grosz
/// whenever the carry reaches `before` (the POSNET specification's annex rule). The letters
/// always sum to the document's total.
pub fn vat_totals(lines: &[super::Line], discounts: &[Adjustment]) -> BTreeMap<String, u64> {
    let mut per: BTreeMap<char, i128> = BTreeMap::new();
    for l in lines {
        *per.entry(l.vat).or_default() += i128::from(l.value());
    }
    for d in discounts {
        let before: i128 = per.values().sum();
        let after = d.apply(u64::try_from(before).unwrap_or(0));
        if before <= 0 || after < 0 {
            continue;
        }
        let mut carried = 0;
        for v in per.values_mut() {
            let share = *v * after;
            *v = share / before;
            carried += share % before;
            if carried >= before {
                *v += 1;
                carried -= before;
            }
        }
    }
    per.into_iter()
        .map(|(letter, v)| (letter.to_string(), u64::try_from(v).unwrap_or(0)))
        .collect()
}

/// A deposit line: returnable packaging issued or, with `returned`, paid back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deposit {
    /// The packaging's numeric id on the printer.
    pub code: String,
    pub name: Option<String>,
    pub unit_price: u64,
    pub quantity: u64,
    /// `unit_price × quantity`.
    pub amount: u64,
    pub returned: bool,
}

/// Deposits issued and deposits returned (grosze).
pub fn deposit_sums(deposits: &[Deposit]) -> (u64, u64) {
    deposits.iter().fold((0, 0), |(issued, returned), d| {
        if d.returned {
            (issued, returned + d.amount)
        } else {
            (issued + d.amount, returned)
        }
    })
}

/// Validate a discount/surcharge object at `path` and resolve it against `base`.
pub(super) fn adjustment(v: &Value, path: &str, base: u64) -> Result<Adjustment> {
    let o = Obj::new(v, path, &["kind", "percent", "amount", "name"])?;
    let kind = match o.string("kind")? {
        Some("discount") => AdjustmentKind::Discount,
        Some("surcharge") => AdjustmentKind::Surcharge,
        Some(other) => {
            return Err(Invalid::new(
                o.field("kind"),
                format!("must be \"discount\" or \"surcharge\" (got {other:?})"),
            ));
        }
        None => return Err(Invalid::new(o.field("kind"), "is required")),
    };
    let name = match o.string("name")? {
        Some(n) if !n.trim().is_empty() => Some(printer_text(
            n,
            &o.field("name"),
            MAX_DISCOUNT_NAME_LEN,
            false,
        )?),
        _ => None,
    };
    let (percent, amount) = match (o.get("percent"), o.get("amount")) {
        (Some(p), None) => {
            let p = percent(p, &o.field("percent"))?;
            let amount = percent_amount(base, p, kind, PERCENT_ROUNDING).ok_or_else(|| {
                Invalid::new(
                    o.field("percent"),
                    "gives an amount beyond the printer's limit",
                )
            })?;
            if amount == 0 {
                return Err(Invalid::new(
                    o.field("percent"),
                    format!("of {base} grosze rounds to 0; the printer refuses it"),
                ));
            }
            (Some(p), amount)
        }
        (None, Some(a)) => (None, grosze(a, &o.field("amount"), 1)?),
        _ => {
            return Err(Invalid::new(
                path,
                "needs exactly one of \"percent\" and \"amount\"",
            ));
        }
    };
    if kind == AdjustmentKind::Discount && amount >= base {
        return Err(Invalid::new(
            path,
            format!(
                "a discount of {amount} grosze is not smaller than the {base} grosze it applies to"
            ),
        ));
    }
    Ok(Adjustment {
        kind,
        percent,
        amount,
        name,
    })
}

/// A percentage: a decimal string or number, at most two places, 0 < p < 100.
fn percent(v: &Value, field: &str) -> Result<Decimal> {
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(Invalid::new(
                field,
                "must be a decimal such as \"10\" or \"12.5\"",
            ));
        }
    };
    let well_formed = {
        let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
        !int.is_empty()
            && int.len() <= 3
            && frac.len() <= 2
            && int.bytes().all(|b| b.is_ascii_digit())
            && frac.bytes().all(|b| b.is_ascii_digit())
    };
    let p: Option<Decimal> = well_formed.then(|| text.parse().ok()).flatten();
    match p {
        Some(p) if p > Decimal::ZERO && p < Decimal::ONE_HUNDRED => Ok(p.normalize()),
        _ => Err(Invalid::new(
            field,
            format!(
                "must be more than 0 and less than 100, with at most 2 decimal places (got {text:?})"
            ),
        )),
    }
}

/// Validate `deposits`.
pub(super) fn deposits(v: &Value) -> Result<Vec<Deposit>> {
    let items = array(v, "deposits")?;
    if items.len() > MAX_DEPOSITS {
        return Err(Invalid::new(
            "deposits",
            format!("takes at most {MAX_DEPOSITS} deposit lines"),
        ));
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("deposits[{i}]");
        let o = Obj::new(
            item,
            &path,
            &["code", "name", "unit_price", "quantity", "returned"],
        )?;
        let code = match o.required("code")? {
            Value::String(s) => s.trim().to_string(),
            Value::Number(n) => n.to_string(),
            _ => {
                return Err(Invalid::new(
                    o.field("code"),
                    "must be a numeric id such as \"1\"",
                ));
            }
        };
        if code.is_empty() || code.len() > 11 || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Invalid::new(
                o.field("code"),
                format!("must be the packaging's numeric id, 1 to 11 digits (got {code:?})"),
            ));
        }
        let name = match o.string("name")? {
            Some(n) if !n.trim().is_empty() => Some(printer_text(
                n,
                &o.field("name"),
                MAX_DEPOSIT_NAME_LEN,
                false,
            )?),
            _ => None,
        };
        let unit_price = grosze(o.required("unit_price")?, &o.field("unit_price"), 1)?;
        let quantity = match o.required("quantity")? {
            Value::Number(n) if n.as_u64().is_some_and(|q| (1..=9999).contains(&q)) => {
                n.as_u64().unwrap_or(1)
            }
            other => {
                return Err(Invalid::new(
                    o.field("quantity"),
                    format!("must be a whole number of pieces, 1 to 9999 (got {other})"),
                ));
            }
        };
        let returned = match o.get("returned") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(_) => return Err(Invalid::new(o.field("returned"), "must be true or false")),
        };
        let amount = unit_price
            .checked_mul(quantity)
            .filter(|a| *a <= super::MAX_AMOUNT)
            .ok_or_else(|| {
                Invalid::new(&path, "unit_price × quantity is beyond the printer's limit")
            })?;
        out.push(Deposit {
            code,
            name,
            unit_price,
            quantity,
            amount,
            returned,
        });
    }
    Ok(out)
}

/// Validate `footer`.
pub(super) fn footer(v: &Value) -> Result<Vec<String>> {
    let items = array(v, "footer")?;
    if items.len() > MAX_FOOTER_LINES {
        return Err(Invalid::new(
            "footer",
            format!("takes at most {MAX_FOOTER_LINES} lines"),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let field = format!("footer[{i}]");
            let s = l
                .as_str()
                .ok_or_else(|| Invalid::new(&field, "must be a string"))?;
            printer_text(s, &field, MAX_FOOTER_LINE_LEN, false)
        })
        .collect()
}

/// Validate `barcode`: digits, letters and `-.$/+% ` only, at most [`MAX_BARCODE_LEN`].
pub(super) fn barcode(s: &str) -> Result<String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_BARCODE_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.$/+% ".contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(Invalid::new(
            "barcode",
            format!("must be 1 to {MAX_BARCODE_LEN} letters or digits"),
        ))
    }
}

/// Validate `qr`: printable ASCII, at most [`MAX_QR_LEN`].
pub(super) fn qr(s: &str) -> Result<String> {
    let ok = !s.is_empty() && s.len() <= MAX_QR_LEN && s.bytes().all(|b| (0x20..0x7f).contains(&b));
    if ok {
        Ok(s.to_string())
    } else {
        Err(Invalid::new(
            "qr",
            format!(
                "must be 1 to {MAX_QR_LEN} printable ASCII characters (encode other text in the URL)"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_like_the_printer() {
        let d = |s: &str| s.parse::<Decimal>().unwrap();
        // POT-I-DEV-37: 1350 at 15 % is 1148 (dt0) or 1147 (dt1).
        let k = AdjustmentKind::Discount;
        assert_eq!(
            percent_amount(1350, d("15"), k, PercentRounding::ValueAfter),
            Some(202)
        );
        assert_eq!(
            percent_amount(1350, d("15"), k, PercentRounding::Discount),
            Some(203)
        );
        let s = AdjustmentKind::Surcharge;
        assert_eq!(
            percent_amount(1350, d("15"), s, PercentRounding::ValueAfter),
            Some(203)
        );
    }
}
