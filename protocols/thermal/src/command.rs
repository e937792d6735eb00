//! Typed host commands and their frames, and the same commands read back from frames (the
//! emulator's side).

use crate::field::{self, CR, FieldError, Reader, SLASH};
use crate::frame::{Frame, FrameError};
use crate::text::{self, Encoding, TextError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Which family's command variants a device speaks (the payment type codes differ).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// Posnet Thermal (DPL-I-DEV-03).
    #[default]
    Posnet,
    /// Novitus "classic", as `litex-novitus` speaks it.
    Novitus,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Posnet => "posnet",
            Dialect::Novitus => "novitus",
        }
    }

    pub fn from_name(s: &str) -> Option<Dialect> {
        match s {
            "posnet" => Some(Dialect::Posnet),
            "novitus" => Some(Dialect::Novitus),
            _ => None,
        }
    }
}

/// A payment form of `$b`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PaymentType {
    Cash,
    Card,
    Cheque,
    Bon,
    Other,
    Credit,
    Account,
    Voucher,
    /// Foreign currency.
    Foreign,
    Transfer,
    Mobile,
}

/// Posnet Thermal's payment type codes.
const POSNET_TYPES: [(PaymentType, u32); 9] = [
    (PaymentType::Cash, 0),
    (PaymentType::Card, 1),
    (PaymentType::Cheque, 2),
    (PaymentType::Bon, 3),
    (PaymentType::Other, 4),
    (PaymentType::Credit, 5),
    (PaymentType::Account, 6),
    (PaymentType::Voucher, 7),
    (PaymentType::Foreign, 8),
];

/// Novitus's payment type codes (second-hand: `litex-novitus` 1.0.0's table).
const NOVITUS_TYPES: [(PaymentType, u32); 11] = [
    (PaymentType::Cash, 0),
    (PaymentType::Card, 1),
    (PaymentType::Cheque, 2),
    (PaymentType::Bon, 3),
    (PaymentType::Other, 4),
    (PaymentType::Credit, 5),
    (PaymentType::Account, 6),
    (PaymentType::Foreign, 7),
    (PaymentType::Transfer, 8),
    (PaymentType::Mobile, 9),
    (PaymentType::Voucher, 10),
];

fn types(d: Dialect) -> &'static [(PaymentType, u32)] {
    match d {
        Dialect::Posnet => &POSNET_TYPES,
        Dialect::Novitus => &NOVITUS_TYPES,
    }
}

impl PaymentType {
    /// The type's code in `dialect`; `None` if the dialect has no such form.
    pub fn code(self, dialect: Dialect) -> Option<u32> {
        types(dialect)
            .iter()
            .find(|(t, _)| *t == self)
            .map(|(_, c)| *c)
    }

    /// The form with `code` in `dialect`.
    pub fn from_code(code: u32, dialect: Dialect) -> Option<PaymentType> {
        types(dialect)
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(t, _)| *t)
    }
}

/// The error mode of `#e`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorMode {
    /// Show errors on the display and stop reading input until a key is pressed.
    Display = 0,
    /// Keep errors silent; the host asks for them (`#n`, ENQ).
    Silent = 1,
}

/// One receipt line of `$l`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// The line's number in the receipt, 1…500, contiguous.
    pub number: u16,
    pub name: String,
    pub quantity: Decimal,
    pub unit: Option<String>,
    /// The VAT letter `A`…`G`.
    pub vat: char,
    /// Unit price in grosze.
    pub price: u64,
    /// round(price × quantity) in grosze; the device checks it (error 20).
    pub gross: u64,
}

/// A host command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `#e`: how errors are reported.
    SetErrorMode(ErrorMode),
    /// `#n`: the last error code (answered with `#E`; does not clear it).
    ErrorQuery,
    /// `Ps#s`: the cash register status (answered with `#X`); mode 23 gives the `2#X` form.
    Status { mode: u32 },
    /// `#v`: type and version (answered with `#R`).
    Identity,
    /// `$h`: begin a receipt (online), with a buyer's NIP (Novitus only).
    Begin { buyer_nip: Option<String> },
    /// `$l`: a sale line.
    Line(Line),
    /// `$b`: add a payment form.
    Payment { kind: PaymentType, amount: u64 },
    /// `$e` with `1;…`: end the receipt; the device checks `total`.
    Close {
        cashier: String,
        paid: u64,
        total: u64,
    },
    /// `0$e`: cancel the open receipt (allowed with none open).
    Cancel,
    /// `#i`: cash in.
    CashIn(u64),
    /// `#d`: cash out.
    CashOut(u64),
    /// `1;yy;mm;dd#r`: the daily (Z) report for a date (today's: no keypad confirmation).
    DailyReport { date: chrono::NaiveDate },
}

/// Why a command cannot become a frame, or a frame is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Text(#[from] TextError),
    #[error("{0}")]
    Frame(#[from] FrameError),
    #[error("{0}")]
    Field(#[from] FieldError),
    #[error("payment form {kind:?} does not exist in the {} dialect", dialect.as_str())]
    NoPaymentType { kind: PaymentType, dialect: Dialect },
    #[error("the {} dialect cannot print a buyer's NIP on a receipt", dialect.as_str())]
    NoBuyerNip { dialect: Dialect },
    #[error("bad parameters {0:?}")]
    BadParams(String),
    #[error("not a command this codec knows: {0}")]
    Unknown(String),
}

fn push_text(out: &mut Vec<u8>, s: &str, e: Encoding) -> Result<(), CommandError> {
    out.extend(text::encode(s, e)?);
    out.push(CR);
    Ok(())
}

fn push_number(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
    out.push(SLASH);
}

impl Command {
    /// The command's frame in `dialect` and `encoding`, checksum included.
    pub fn to_frame(&self, dialect: Dialect, e: Encoding) -> Result<Frame, CommandError> {
        let mut f = Vec::new();
        let frame = match self {
            Command::SetErrorMode(m) => Frame::new(&[*m as u32], "#e", f),
            Command::ErrorQuery => Frame::new(&[], "#n", f),
            Command::Status { mode } => Frame::new(&[*mode], "#s", f),
            Command::Identity => Frame::new(&[], "#v", f),
            Command::Begin { buyer_nip } => match (dialect, buyer_nip) {
                (Dialect::Posnet, None) => Frame::new(&[0], "$h", f),
                (Dialect::Posnet, Some(_)) => return Err(CommandError::NoBuyerNip { dialect }),
                (Dialect::Novitus, None) => Frame::new(&[0, 0], "$h", f),
                (Dialect::Novitus, Some(nip)) => {
                    push_text(&mut f, nip, e)?;
                    Frame::new(&[0, 0, 0, 1, 1], "$h", f)
                }
            },
            Command::Line(l) => {
                push_text(&mut f, &l.name, e)?;
                let q = match &l.unit {
                    Some(u) => format!("{} {u}", field::quantity(l.quantity)),
                    None => field::quantity(l.quantity),
                };
                push_text(&mut f, &q, e)?;
                f.push(l.vat as u8);
                f.push(SLASH);
                push_number(&mut f, &field::amount(l.price));
                push_number(&mut f, &field::amount(l.gross));
                Frame::new(&[u32::from(l.number)], "$l", f)
            }
            Command::Payment { kind, amount } => {
                let code = kind.code(dialect).ok_or(CommandError::NoPaymentType {
                    kind: *kind,
                    dialect,
                })?;
                push_number(&mut f, &field::amount(*amount));
                f.push(CR);
                Frame::new(&[1, code], "$b", f)
            }
            Command::Close {
                cashier,
                paid,
                total,
            } => {
                push_text(&mut f, cashier, e)?;
                push_number(&mut f, &field::amount(*paid));
                push_number(&mut f, &field::amount(*total));
                push_number(&mut f, &field::amount(0));
                Frame::new(&[1, 0, 0, 1, 1, 1], "$e", f)
            }
            Command::Cancel => Frame::new(&[0], "$e", f),
            Command::CashIn(a) => {
                push_number(&mut f, &field::amount(*a));
                Frame::new(&[0], "#i", f)
            }
            Command::CashOut(a) => {
                push_number(&mut f, &field::amount(*a));
                Frame::new(&[0], "#d", f)
            }
            Command::DailyReport { date } => {
                use chrono::Datelike;
                let yy = date.year().rem_euclid(100) as u32;
                Frame::new(&[1, yy, date.month(), date.day()], "#r", f)
            }
        };
        Ok(frame.with_checksum())
    }

    /// Read a host frame back as a command (the emulator's side). The checksum is required
    /// except for `#n`, `#s` and `#v`, where it is optional.
    pub fn from_frame(
        frame: &Frame,
        dialect: Dialect,
        e: Encoding,
    ) -> Result<Command, CommandError> {
        let cmd = frame.command_str();
        let optional = matches!(cmd.as_str(), "#n" | "#s" | "#v" | "#c" | "$d");
        let body = if optional {
            frame.body_optional_checksum()
        } else {
            frame.body_checked()?
        };
        let params = frame.param_numbers().ok_or_else(|| {
            CommandError::BadParams(String::from_utf8_lossy(&frame.params).into())
        })?;
        let p = |i: usize| params.get(i).copied();
        let mut r = Reader::new(body);
        let dec = |b: &[u8]| text::decode(b, e);
        Ok(match cmd.as_str() {
            "#e" => match p(0) {
                Some(0) => Command::SetErrorMode(ErrorMode::Display),
                Some(1) => Command::SetErrorMode(ErrorMode::Silent),
                _ => return Err(CommandError::BadParams(format!("{params:?}"))),
            },
            "#n" => Command::ErrorQuery,
            "#s" => Command::Status {
                mode: p(0).unwrap_or(0),
            },
            "#v" => Command::Identity,
            "$h" => {
                // Posnet: `Pl$h`. Novitus (litex): `Pl;n[;0;type;1]$h` + n extra lines
                // (the first may be a system number) + the buyer's id.
                for _ in 0..p(1).unwrap_or(0) {
                    r.text("additional line")?;
                }
                let buyer_nip = if params.len() >= 5 && p(3) == Some(1) {
                    Some(dec(r.text("buyer id")?))
                } else {
                    None
                };
                Command::Begin { buyer_nip }
            }
            "$l" => {
                let number = p(0).and_then(|n| u16::try_from(n).ok()).unwrap_or(0);
                let name = dec(r.text("name")?);
                let mut q = dec(r.text("quantity")?);
                // An optional PLU text before the quantity (litex): the quantity is the
                // last text field before the VAT letter.
                if r.rest().contains(&CR) && field::parse_quantity(&q).is_none() {
                    q = dec(r.text("quantity")?);
                }
                let (qty, unit) = match q.split_once(' ') {
                    Some((n, u)) => (n.to_string(), Some(u.trim().to_string())),
                    None => (q.clone(), None),
                };
                let quantity = field::parse_quantity(&qty).ok_or(FieldError::BadNumber {
                    field: "quantity",
                    text: q.clone(),
                })?;
                let vat = r.number_text("vat")?;
                let vat = vat.chars().next().ok_or(FieldError::Missing("vat"))?;
                let price = r.amount("price")?;
                let gross = r.amount("gross")?;
                Command::Line(Line {
                    number,
                    name,
                    quantity,
                    unit,
                    vat,
                    price,
                    gross,
                })
            }
            "$b" => {
                let code = p(1).unwrap_or(u32::MAX);
                let kind = PaymentType::from_code(code, dialect)
                    .ok_or_else(|| CommandError::BadParams(format!("payment type {code}")))?;
                Command::Payment {
                    kind,
                    amount: r.amount("amount")?,
                }
            }
            "$e" if p(0) == Some(0) => Command::Cancel,
            "$e" => {
                let cashier = dec(r.text("cashier")?);
                // Extra lines (Pn, the third parameter) before the amounts.
                for _ in 0..p(2).unwrap_or(0) {
                    r.text("extra line")?;
                }
                let paid = r.amount("paid")?;
                let total = r.amount("total")?;
                Command::Close {
                    cashier,
                    paid,
                    total,
                }
            }
            "#i" => Command::CashIn(r.amount("amount")?),
            "#d" => Command::CashOut(r.amount("amount")?),
            "#r" => {
                let (y, m, d) = (p(1), p(2), p(3));
                let date = match (y, m, d) {
                    (Some(y), Some(m), Some(d)) => {
                        chrono::NaiveDate::from_ymd_opt(2000 + y as i32, m, d)
                    }
                    _ => None,
                }
                .ok_or_else(|| CommandError::BadParams(format!("{params:?}")))?;
                Command::DailyReport { date }
            }
            other => return Err(CommandError::Unknown(other.to_string())),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(c: &Command, d: Dialect) -> Vec<u8> {
        c.to_frame(d, Encoding::Cp1250).unwrap().encode()
    }

    #[test]
    fn frames_match_the_reference_bytes() {
        let p = Dialect::Posnet;
        assert_eq!(
            bytes(&Command::SetErrorMode(ErrorMode::Silent), p),
            b"\x1bP1#e88\x1b\\"
        );
        assert_eq!(
            bytes(&Command::CashIn(10_000), p),
            b"\x1bP0#i100.00/B5\x1b\\"
        );
        assert_eq!(bytes(&Command::CashOut(5000), p), b"\x1bP0#d50.00/8C\x1b\\");
        assert_eq!(bytes(&Command::Cancel, p), b"\x1bP0$e8E\x1b\\");
        assert_eq!(
            bytes(&Command::Begin { buyer_nip: None }, p),
            b"\x1bP0$h83\x1b\\"
        );
        assert_eq!(
            bytes(&Command::Status { mode: 22 }, p),
            b"\x1bP22#sAF\x1b\\"
        );
        let line = Command::Line(Line {
            number: 1,
            name: "Chleb".into(),
            quantity: Decimal::new(100, 2),
            unit: None,
            vat: 'A',
            price: 200,
            gross: 200,
        });
        // The reference writes the quantity as `1.00`; this codec writes `1`.
        assert_eq!(bytes(&line, p), b"\x1bP1$lChleb\r1\rA/2.00/2.00/99\x1b\\");
        let pay = Command::Payment {
            kind: PaymentType::Card,
            amount: 200,
        };
        assert_eq!(bytes(&pay, p), b"\x1bP1;1$b2.00/\rBC\x1b\\");
        let close = Command::Close {
            cashier: "Jan".into(),
            paid: 200,
            total: 200,
        };
        assert_eq!(
            bytes(&close, p),
            b"\x1bP1;0;0;1;1;1$eJan\r2.00/2.00/0.00/FC\x1b\\"
        );
        let z = Command::DailyReport {
            date: chrono::NaiveDate::from_ymd_opt(2026, 9, 8).unwrap(),
        };
        assert_eq!(bytes(&z, p), b"\x1bP1;26;9;8#rA1\x1b\\");
    }

    #[test]
    fn payment_codes_differ_by_dialect() {
        assert_eq!(PaymentType::Voucher.code(Dialect::Posnet), Some(7));
        assert_eq!(PaymentType::Voucher.code(Dialect::Novitus), Some(10));
        assert_eq!(PaymentType::Transfer.code(Dialect::Posnet), None);
        assert_eq!(PaymentType::Mobile.code(Dialect::Novitus), Some(9));
    }

    #[test]
    fn the_published_cash_in_vector_decodes() {
        let f = Frame::parse(b"0#i100/9B").unwrap();
        assert_eq!(
            Command::from_frame(&f, Dialect::Novitus, Encoding::Cp1250).unwrap(),
            Command::CashIn(10_000)
        );
    }
}
