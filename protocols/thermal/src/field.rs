//! Fields inside a frame: text ends with CR, numbers with `/`. Amounts are integer grosze
//! here and decimal text (`12.34`) on the wire; never floats.

use rust_decimal::Decimal;
use std::str::FromStr;

/// CR, the end of a text field.
pub const CR: u8 = 0x0D;
/// The end of a numeric field.
pub const SLASH: u8 = b'/';

/// Why a field is not what it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("missing field: {0}")]
    Missing(&'static str),
    #[error("field {field} is not a valid number: {text:?}")]
    BadNumber { field: &'static str, text: String },
}

/// An amount in grosze as the wire writes it (`1234` → `12.34`).
pub fn amount(grosze: u64) -> String {
    format!("{}.{:02}", grosze / 100, grosze % 100)
}

/// An amount from the wire (`12.34`, `12,34`, `100`, `2.5`) in grosze; `None` if it has
/// more than two non-zero decimals, a sign, or is not a number.
pub fn parse_amount(text: &str) -> Option<u64> {
    let t = text.trim().replace(',', ".");
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let d = Decimal::from_str(&t).ok()?;
    let g = d.checked_mul(Decimal::from(100))?;
    if g.fract() != Decimal::ZERO {
        return None;
    }
    u64::try_from(g.trunc()).ok()
}

/// A quantity as the wire writes it (at most 3 decimals are kept as given; `1` → `1`).
pub fn quantity(q: Decimal) -> String {
    q.normalize().to_string()
}

/// A quantity from the wire (`1`, `1.5`, `2,250`).
pub fn parse_quantity(text: &str) -> Option<Decimal> {
    let t = text.trim().replace(',', ".");
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    Decimal::from_str(&t).ok()
}

/// A rate in basis points as the wire writes it (`2300` → `23.00`, `800` → `08.00`, as
/// the published `#X` reply pads it).
pub fn rate(bp: u32) -> String {
    format!("{:02}.{:02}", bp / 100, bp % 100)
}

/// Reads fields one after the other.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader { rest: bytes }
    }

    /// What is left.
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }

    /// The bytes up to `end` (not included); `None` if there is no `end`.
    pub fn until(&mut self, end: u8) -> Option<&'a [u8]> {
        let i = self.rest.iter().position(|b| *b == end)?;
        let (field, rest) = self.rest.split_at(i);
        self.rest = &rest[1..];
        Some(field)
    }

    /// A text field (up to CR).
    pub fn text(&mut self, field: &'static str) -> Result<&'a [u8], FieldError> {
        self.until(CR).ok_or(FieldError::Missing(field))
    }

    /// A numeric field (up to `/`) as text.
    pub fn number_text(&mut self, field: &'static str) -> Result<&'a str, FieldError> {
        let b = self.until(SLASH).ok_or(FieldError::Missing(field))?;
        std::str::from_utf8(b).map_err(|_| FieldError::BadNumber {
            field,
            text: String::from_utf8_lossy(b).into_owned(),
        })
    }

    /// An amount field in grosze.
    pub fn amount(&mut self, field: &'static str) -> Result<u64, FieldError> {
        let t = self.number_text(field)?;
        parse_amount(t).ok_or_else(|| FieldError::BadNumber {
            field,
            text: t.to_string(),
        })
    }

    /// A whole-number field.
    pub fn whole(&mut self, field: &'static str) -> Result<u64, FieldError> {
        let t = self.number_text(field)?;
        t.trim().parse().map_err(|_| FieldError::BadNumber {
            field,
            text: t.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact() {
        assert_eq!(amount(0), "0.00");
        assert_eq!(amount(5), "0.05");
        assert_eq!(amount(123_456), "1234.56");
        assert_eq!(parse_amount("100"), Some(10_000));
        assert_eq!(parse_amount("2,5"), Some(250));
        assert_eq!(parse_amount("0.001"), None);
        assert_eq!(parse_amount("2.500"), Some(250));
        assert_eq!(parse_amount("-1"), None);
        assert_eq!(parse_amount(""), None);
    }
}
