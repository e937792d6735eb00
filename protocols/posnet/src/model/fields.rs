//! Parameter parsing shared by the command handlers, and the failure type they return.

use crate::frame::Frame;
use chrono::NaiveDate;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};
use std::str::FromStr;

/// Why a command did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fail {
    /// A frame-level error (`ERR ?n`), naming the offending field where there is one.
    Frame(u32, Option<&'static str>),
    /// A command error (`mnemonic ?code`).
    Cmd(u32),
    /// The paper ran out while printing: the command is held, nothing changed.
    Held,
}

pub(crate) type Res<T> = Result<T, Fail>;

/// Largest amount field (grosze).
pub(crate) const MAX_AMOUNT: u64 = 9_999_999_999;
/// Largest unit price (`trline pr`).
pub(crate) const MAX_PRICE: u64 = 499_999_999_999;

fn conversion(name: &'static str) -> Fail {
    Fail::Frame(3, Some(name))
}

/// A mandatory parameter.
pub(crate) fn required<T>(value: Option<T>, name: &'static str) -> Res<T> {
    value.ok_or(Fail::Frame(2, Some(name)))
}

/// Raw text of an optional parameter, at most `max_chars` characters.
pub(crate) fn text<'a>(f: &'a Frame, name: &'static str, max_chars: usize) -> Res<Option<&'a str>> {
    match f.get(name) {
        Some(v) if v.chars().count() > max_chars => Err(conversion(name)),
        other => Ok(other),
    }
}

/// An amount in grosze: decimal digits only, at most `max`.
pub(crate) fn amount(f: &Frame, name: &'static str, max: u64) -> Res<Option<u64>> {
    let Some(v) = f.get(name) else {
        return Ok(None);
    };
    if v.is_empty() || v.len() > 15 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(conversion(name));
    }
    match v.parse::<u64>() {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(conversion(name)),
    }
}

/// A small unsigned integer (indexes, types, form numbers).
pub(crate) fn number(f: &Frame, name: &'static str, max: u32) -> Res<Option<u32>> {
    let Some(v) = f.get(name) else {
        return Ok(None);
    };
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(conversion(name));
    }
    match v.parse::<u32>() {
        Ok(n) if n <= max => Ok(Some(n)),
        _ => Err(conversion(name)),
    }
}

/// A BOOL: `1 t T Y y` are true, `0 n N` false.
pub(crate) fn boolean(f: &Frame, name: &'static str) -> Res<Option<bool>> {
    match f.get(name) {
        None => Ok(None),
        Some("1" | "t" | "T" | "Y" | "y") => Ok(Some(true)),
        Some("0" | "n" | "N") => Ok(Some(false)),
        Some(_) => Err(conversion(name)),
    }
}

/// Parse a Num: optional `-`, digits, optionally one `.` or `,` and more digits
/// (at most 12 integer and 8 fractional digits).
pub(crate) fn parse_num(v: &str) -> Option<Decimal> {
    let (negative, body) = match v.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, v),
    };
    let (int, frac) = match body.find(['.', ',']) {
        Some(i) => (&body[..i], &body[i + 1..]),
        None => (body, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(int)
        || !digits(frac)
        || int.len() + frac.len() == 0
        || int.len() > 12
        || frac.len() > 8
    {
        return None;
    }
    let canonical = format!(
        "{}{}.{}",
        if negative { "-" } else { "" },
        if int.is_empty() { "0" } else { int },
        if frac.is_empty() { "0" } else { frac }
    );
    Decimal::from_str(&canonical).ok()
}

/// A Num parameter (quantity).
pub(crate) fn num(f: &Frame, name: &'static str) -> Res<Option<Decimal>> {
    match f.get(name) {
        None => Ok(None),
        Some(v) => parse_num(v).map(Some).ok_or(conversion(name)),
    }
}

/// A percentage (`rp`): with a separator it is the percentage itself (`15.5`); without one
/// it has two implied decimals (`rp1500` = 15.00 %).
pub(crate) fn percent(f: &Frame, name: &'static str) -> Res<Option<Decimal>> {
    let Some(v) = f.get(name) else {
        return Ok(None);
    };
    let parsed = parse_num(v).ok_or(conversion(name))?;
    if v.contains(['.', ',']) {
        Ok(Some(parsed))
    } else {
        Ok(Some(parsed / Decimal::ONE_HUNDRED))
    }
}

/// A date `yyyy-mm-dd` (`.` and `/` also accepted as separators).
pub(crate) fn date(f: &Frame, name: &'static str) -> Res<Option<NaiveDate>> {
    let Some(v) = f.get(name) else {
        return Ok(None);
    };
    let canonical: String = v
        .chars()
        .map(|c| if c == '.' || c == '/' { '-' } else { c })
        .collect();
    if canonical.len() != 10 {
        return Err(conversion(name));
    }
    NaiveDate::parse_from_str(&canonical, "%Y-%m-%d")
        .map(Some)
        .map_err(|_| conversion(name))
}

/// Round a non-negative decimal amount of grosze half-up to a whole grosz.
pub(crate) fn round_grosze(value: Decimal) -> Option<u64> {
    value
        .round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero)
        .to_u64()
}

/// `base × percent / 100`, rounded half-up to the grosz.
pub(crate) fn percent_of(base: u64, percent: Decimal) -> Option<u64> {
    let product = Decimal::from(base).checked_mul(percent)?;
    round_grosze(product / Decimal::ONE_HUNDRED)
}

/// The rate-lock key of an item name: letters (lower-cased, Polish included), digits and
/// `, . / \ %`; everything else is dropped.
pub(crate) fn product_key(name: &str) -> String {
    let mut key = String::new();
    for c in name.chars() {
        if c.is_alphabetic() {
            key.extend(c.to_lowercase());
        } else if c.is_ascii_digit() || matches!(c, ',' | '.' | '/' | '\\' | '%') {
            key.push(c);
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nums() {
        assert_eq!(parse_num("1,5"), Some(Decimal::new(15, 1)));
        assert_eq!(parse_num("2.250"), Some(Decimal::new(2250, 3)));
        assert_eq!(parse_num(".5"), Some(Decimal::new(5, 1)));
        assert_eq!(parse_num("-1"), Some(Decimal::from(-1)));
        assert_eq!(parse_num(""), None);
        assert_eq!(parse_num("."), None);
        assert_eq!(parse_num("1.2.3"), None);
        assert_eq!(parse_num("1e3"), None);
        assert_eq!(parse_num("0.000000001"), None);
    }

    #[test]
    fn keys() {
        assert_eq!(product_key("Coca-Cola"), product_key("COCA COLA"));
        assert_eq!(product_key("coca:cola"), "cocacola");
        assert_eq!(product_key("ŻÓŁĆ 0,5%"), "żółć0,5%");
        assert_eq!(product_key(" - !"), "");
    }

    #[test]
    fn rounding() {
        assert_eq!(round_grosze(Decimal::new(3335, 1)), Some(334));
        assert_eq!(percent_of(1000, Decimal::new(1550, 2)), Some(155));
    }
}
