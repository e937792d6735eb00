//! Typed ZVT messages: commands from the register (ECR) and messages from the terminal (PT).
//!
//! Decoding is lenient where the meaning stays clear (unknown TLV tags, optional fields the
//! types do not hold) and strict where a wrong guess would matter (amounts, passwords).
//! Card data never survives decoding: BMP 22 is masked with [`crate::pan::from_bcd`],
//! track data (23, 24, 2D, TLV 1F08–1F0A), CVV (3A) and the expiry date (0E) are dropped,
//! and every free-text field (card name 8B, additional text 3C, VU number 2A, approval code
//! 3B, display and print lines, abort and TLV texts, the software version) goes through
//! [`crate::pan::mask_in_text`] as it is decoded, so a terminal that puts a card number in
//! clear into any text hands over only its masked form.

use crate::EUR;
use crate::apdu::Apdu;
use crate::bmp::{
    Field, Tlv, amount_to_bcd, bcd_to_u64, encode_fields, encode_tlv, find_tlv, nibbles_to_string,
    parse_fields, parse_fields_partial, parse_tlv, string_to_nibbles, u64_to_bcd_saturating,
};
use crate::pan;

mod redact;
mod text;
pub use redact::{MASK_BCD, MASK_TEXT, masked_apdu, redacted_hex};
pub use text::{is_cp437, text_from_cp437, text_to_cp437};

/// Why an APDU could not be read as a typed message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("unknown command {0:04X}")]
    Unknown(u16),
    #[error("bad fields: {0}")]
    Fields(#[from] crate::bmp::BmpError),
    #[error("malformed {what}: {why}")]
    Malformed {
        what: &'static str,
        why: &'static str,
    },
}

fn bad(what: &'static str, why: &'static str) -> MessageError {
    MessageError::Malformed { what, why }
}

/// A message the register sends (commands, and its acknowledgements of PT messages).
///
/// Numbers that do not fit their BCD field (a password above 999999, an amount above
/// [`bmp::MAX_AMOUNT`], a currency above 9999, a receipt number above 9999) are written as
/// all nines by [`EcrCommand::to_apdu`]; validate them before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EcrCommand {
    /// `06 00`: register with the terminal (password, config byte, currency).
    Registration {
        password: u32,
        config: u8,
        currency: Option<u16>,
    },
    /// `06 01`: authorize (sell) `amount` minor units.
    Authorization { amount: u64, currency: u16 },
    /// `06 30`: reverse the transaction with this receipt number.
    Reversal { password: u32, receipt_number: u32 },
    /// `06 31`: refund.
    Refund {
        password: u32,
        amount: u64,
        currency: u16,
    },
    /// `06 50`: end of day.
    EndOfDay { password: u32 },
    /// `05 01`: status enquiry.
    StatusEnquiry { password: Option<u32> },
    /// `06 20`: repeat the last receipt; service bit 0 = send the Status-Information again.
    RepeatReceipt { password: u32, service: u8 },
    /// `06 B0`: abort.
    Abort,
    /// `06 02`: log off.
    LogOff,
    /// `80 00 00`: positive acknowledgement of a PT message.
    Ack,
    /// `84 xx 00`: negative acknowledgement (e.g. `9C` "ask again", `CC` printer not ready).
    Nack(u8),
}

/// The outcome and data of a transaction (`04 0F` Status-Information), already stripped
/// of sensitive card data: only the masked PAN is kept; track data, CVV and expiry are dropped.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct TransactionResult {
    /// BMP 27: 0 = approved.
    pub result_code: u8,
    /// BMP 04, minor units.
    pub amount: Option<u64>,
    /// BMP 49, ISO 4217 numeric.
    pub currency: Option<u16>,
    /// BMP 0B (or TLV 1F2B).
    pub trace_number: Option<u32>,
    /// BMP 37 (reversals).
    pub original_trace: Option<u32>,
    /// BMP 87.
    pub receipt_number: Option<u32>,
    /// BMP 88.
    pub turnover_number: Option<u32>,
    /// BMP 29, as digits.
    pub terminal_id: Option<String>,
    /// BMP 22, masked (at most first 6 and last 4 digits).
    pub masked_pan: Option<String>,
    /// BMP 8B.
    pub card_name: Option<String>,
    /// BMP 8A.
    pub card_type: Option<u8>,
    /// BMP 3B (authorisation attribute / approval code).
    pub auth_code: Option<String>,
    /// BMP 0C `hhmmss`.
    pub time: Option<String>,
    /// BMP 0D `mmdd`.
    pub date: Option<String>,
    /// BMP 19.
    pub payment_type: Option<u8>,
    /// BMP 2A.
    pub vu_number: Option<String>,
    /// BMP 3C.
    pub additional_text: Option<String>,
}

/// A message the terminal sends.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // the public shape is fixed; messages are short-lived
pub enum PtMessage {
    /// `80 00 00` (also `84 00`).
    Ack,
    /// `84 xx`: the terminal refused the command with error `xx`.
    Nack(u8),
    /// `04 FF`: intermediate status (e.g. 0A insert card, 17 please wait).
    IntermediateStatus {
        status: u8,
        timeout_minutes: Option<u8>,
        text: Option<String>,
    },
    /// `04 0F`: the transaction's outcome.
    StatusInformation(TransactionResult),
    /// `06 D1`: one receipt line.
    PrintLine { attribute: u8, text: String },
    /// `06 D3`: a block of receipt lines (TLV 25 with 07 lines).
    PrintTextBlock {
        receipt_type: Option<u8>,
        lines: Vec<String>,
    },
    /// `06 0F`: completion; after a status enquiry it carries the terminal status code.
    Completion {
        terminal_status: Option<u8>,
        terminal_id: Option<String>,
        sw_version: Option<String>,
    },
    /// `06 1E`: abort with a result code.
    Abort {
        result_code: u8,
        text: Option<String>,
    },
}

// ---------------------------------------------------------------------------------------
// Helpers

fn password(data: &[u8], what: &'static str) -> Result<u32, MessageError> {
    let pw = data.get(..3).ok_or(bad(what, "no password"))?;
    bcd_to_u64(pw)
        .map(|v| v as u32)
        .ok_or(bad(what, "password is not BCD"))
}

fn pw_bytes(password: u32) -> Vec<u8> {
    u64_to_bcd_saturating(u64::from(password), 3)
}

fn bcd_field(bmp: u8, value: u64, len: usize) -> Field {
    Field::new(bmp, u64_to_bcd_saturating(value, len))
}

fn field(fields: &[Field], bmp: u8) -> Option<&[u8]> {
    fields
        .iter()
        .find(|f| f.bmp == bmp)
        .map(|f| f.value.as_slice())
}

fn bcd_u32(v: &[u8]) -> Option<u32> {
    bcd_to_u64(v).and_then(|n| u32::try_from(n).ok())
}

fn bcd_u16(v: &[u8]) -> Option<u16> {
    bcd_to_u64(v).and_then(|n| u16::try_from(n).ok())
}

fn amount_and_currency(fields: &[Field], what: &'static str) -> Result<(u64, u16), MessageError> {
    let amount = field(fields, 0x04).ok_or(bad(what, "no amount (BMP 04)"))?;
    let amount = bcd_to_u64(amount).ok_or(bad(what, "amount is not BCD"))?;
    let currency = match field(fields, 0x49) {
        Some(cc) => bcd_u16(cc).ok_or(bad(what, "currency is not BCD"))?,
        None => EUR,
    };
    Ok((amount, currency))
}

fn amount_fields(amount: u64, currency: u16) -> Vec<Field> {
    vec![
        Field::new(0x04, amount_to_bcd(amount).to_vec()),
        bcd_field(0x49, u64::from(currency), 2),
    ]
}

/// The TLV objects of the first BMP 06 in `fields` (none if absent or unreadable).
fn tlv_of(fields: &[Field]) -> Vec<Tlv> {
    field(fields, 0x06)
        .and_then(|v| parse_tlv(v).ok())
        .unwrap_or_default()
}

/// Text lines (tag 07) inside the first constructed object `container` (24 or 25).
fn lines_in(items: &[Tlv], container: u32) -> Option<Vec<String>> {
    let block = find_tlv(items, container)?;
    let children = block.children().unwrap_or_default();
    Some(mask_lines(
        children
            .iter()
            .filter(|t| t.tag == 0x07)
            .map(|t| text_from_cp437(&t.value))
            .collect(),
    ))
}

/// Terminal text as it leaves the codec: decoded and with card numbers masked.
fn masked_text(bytes: &[u8]) -> String {
    pan::mask_in_text(&text_from_cp437(bytes))
}

/// Mask card numbers in lines read together, so a number split over two lines is found;
/// every line keeps its length.
fn mask_lines(lines: Vec<String>) -> Vec<String> {
    let masked: Vec<char> = pan::mask_in_text(&lines.join("\n")).chars().collect();
    let mut at = 0;
    lines
        .iter()
        .map(|l| {
            let n = l.chars().count();
            let line: String = masked[at..at + n].iter().collect();
            at += n + 1;
            line
        })
        .collect()
}

fn lines_tlv(container: u32, lines: &[String]) -> Tlv {
    let children: Vec<Tlv> = lines
        .iter()
        .map(|l| Tlv::new(0x07, text_to_cp437(l)))
        .collect();
    Tlv::constructed(container, &children)
}

fn strip_nuls(v: &[u8]) -> String {
    let kept: Vec<u8> = v.iter().copied().filter(|&b| b != 0).collect();
    masked_text(&kept)
}

/// Text padded (or cut) to `len` bytes with `pad`.
fn padded(text: &str, len: usize, pad: u8) -> Vec<u8> {
    let mut v = text_to_cp437(text);
    v.resize(len, pad);
    v
}

/// A value as an LLLVAR body prefix (`Fx Fy Fz` + bytes), cut at 999 bytes.
fn lllvar(value: &[u8]) -> Vec<u8> {
    let n = value.len().min(999);
    let mut out = vec![
        0xF0 | (n / 100) as u8,
        0xF0 | (n / 10 % 10) as u8,
        0xF0 | (n % 10) as u8,
    ];
    out.extend_from_slice(&value[..n]);
    out
}

fn is_var_digit(b: u8) -> bool {
    b & 0xF0 == 0xF0 && b & 0x0F <= 9
}

// ---------------------------------------------------------------------------------------
// ECR commands

impl EcrCommand {
    pub fn to_apdu(&self) -> Apdu {
        match *self {
            EcrCommand::Registration {
                password,
                config,
                currency,
            } => {
                let mut data = pw_bytes(password);
                data.push(config);
                if let Some(cc) = currency {
                    data.extend(u64_to_bcd_saturating(u64::from(cc), 2));
                }
                Apdu::new(0x06, 0x00, data)
            }
            EcrCommand::Authorization { amount, currency } => {
                Apdu::new(0x06, 0x01, encode_fields(&amount_fields(amount, currency)))
            }
            EcrCommand::Reversal {
                password,
                receipt_number,
            } => {
                let mut data = pw_bytes(password);
                data.extend(encode_fields(&[bcd_field(
                    0x87,
                    u64::from(receipt_number),
                    2,
                )]));
                Apdu::new(0x06, 0x30, data)
            }
            EcrCommand::Refund {
                password,
                amount,
                currency,
            } => {
                let mut data = pw_bytes(password);
                data.extend(encode_fields(&amount_fields(amount, currency)));
                Apdu::new(0x06, 0x31, data)
            }
            EcrCommand::EndOfDay { password } => Apdu::new(0x06, 0x50, pw_bytes(password)),
            EcrCommand::StatusEnquiry { password } => {
                Apdu::new(0x05, 0x01, password.map(pw_bytes).unwrap_or_default())
            }
            EcrCommand::RepeatReceipt { password, service } => {
                let mut data = pw_bytes(password);
                data.extend_from_slice(&[0x03, service]);
                Apdu::new(0x06, 0x20, data)
            }
            EcrCommand::Abort => Apdu::new(0x06, 0xB0, vec![]),
            EcrCommand::LogOff => Apdu::new(0x06, 0x02, vec![]),
            EcrCommand::Ack => Apdu::new(0x80, 0x00, vec![]),
            EcrCommand::Nack(code) => Apdu::new(0x84, code, vec![]),
        }
    }

    /// Read a register's APDU (used by the terminal emulator).
    ///
    /// Optional parts the type does not hold are accepted and dropped (a registration's
    /// service byte and TLV, a status enquiry's service byte, extra data after `84 xx`).
    /// A missing currency means EUR. `84 00` is a positive acknowledgement and reads as
    /// [`EcrCommand::Ack`].
    pub fn from_apdu(apdu: &Apdu) -> Result<EcrCommand, MessageError> {
        let d = apdu.data.as_slice();
        Ok(match (apdu.class, apdu.instr) {
            (0x06, 0x00) => {
                let w = "registration";
                let password = password(d, w)?;
                let config = *d.get(3).ok_or(bad(w, "no config byte"))?;
                let currency = match d.get(4..6) {
                    Some(cc) => Some(bcd_u16(cc).ok_or(bad(w, "currency is not BCD"))?),
                    None if d.len() == 5 => return Err(bad(w, "truncated currency")),
                    None => None,
                };
                EcrCommand::Registration {
                    password,
                    config,
                    currency,
                }
            }
            (0x06, 0x01) => {
                let fields = parse_fields(d)?;
                let (amount, currency) = amount_and_currency(&fields, "authorization")?;
                EcrCommand::Authorization { amount, currency }
            }
            (0x06, 0x30) => {
                let w = "reversal";
                let password = password(d, w)?;
                let fields = parse_fields(&d[3..])?;
                let receipt = field(&fields, 0x87).ok_or(bad(w, "no receipt number (BMP 87)"))?;
                let receipt_number = bcd_u32(receipt).ok_or(bad(w, "receipt number is not BCD"))?;
                EcrCommand::Reversal {
                    password,
                    receipt_number,
                }
            }
            (0x06, 0x31) => {
                let w = "refund";
                let password = password(d, w)?;
                let fields = parse_fields(&d[3..])?;
                let (amount, currency) = amount_and_currency(&fields, w)?;
                EcrCommand::Refund {
                    password,
                    amount,
                    currency,
                }
            }
            (0x06, 0x50) => EcrCommand::EndOfDay {
                password: password(d, "end of day")?,
            },
            (0x05, 0x01) if d.is_empty() => EcrCommand::StatusEnquiry { password: None },
            (0x05, 0x01) => EcrCommand::StatusEnquiry {
                password: Some(password(d, "status enquiry")?),
            },
            (0x06, 0x20) => {
                let w = "repeat receipt";
                let password = password(d, w)?;
                let fields = parse_fields(&d[3..])?;
                let service = field(&fields, 0x03)
                    .and_then(|v| v.first().copied())
                    .unwrap_or(0);
                EcrCommand::RepeatReceipt { password, service }
            }
            (0x06, 0xB0) => EcrCommand::Abort,
            (0x06, 0x02) => EcrCommand::LogOff,
            (0x80, 0x00) | (0x84, 0x00) => EcrCommand::Ack,
            (0x84, code) => EcrCommand::Nack(code),
            _ => return Err(MessageError::Unknown(apdu.control())),
        })
    }
}

// ---------------------------------------------------------------------------------------
// Status-Information

/// TLV tag of the long trace number (used when BMP 0B would need more than 6 digits).
const TAG_LONG_TRACE: u32 = 0x1F2B;
/// TLV tag of the vendor's extended error text.
const TAG_ERROR_TEXT: u32 = 0x1F17;
/// TLV tag that carries the terminal ID in a Feig cVEND status-enquiry completion
/// (seen in the real captures; not in the reference table).
const TAG_TERMINAL_ID: u32 = 0x1F44;

impl TransactionResult {
    /// Read the BMP list of a `04 0F`. Sensitive fields are dropped, BMP 22 is masked.
    ///
    /// An unknown BMP ends the list (its length cannot be known); the fields before it are
    /// kept, because losing an approved payment's receipt number is worse than losing the
    /// trailing fields. A missing BMP 27 reads as 0 (the spec's terminals always send it).
    pub fn from_fields(data: &[u8]) -> TransactionResult {
        let (fields, _) = parse_fields_partial(data);
        let mut r = TransactionResult::default();
        for f in &fields {
            let v = f.value.as_slice();
            match f.bmp {
                0x27 => r.result_code = v.first().copied().unwrap_or(0),
                0x04 => r.amount = bcd_to_u64(v),
                0x49 => r.currency = bcd_u16(v),
                0x0B => r.trace_number = bcd_u32(v),
                0x37 => r.original_trace = bcd_u32(v),
                0x87 => r.receipt_number = bcd_u32(v),
                0x88 => r.turnover_number = bcd_u32(v),
                0x29 => r.terminal_id = Some(nibbles_to_string(v)),
                0x22 => r.masked_pan = Some(pan::from_bcd(v)),
                0x8B => {
                    let end = v.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                    r.card_name = Some(masked_text(&v[..end]));
                }
                0x8A => r.card_type = v.first().copied(),
                0x3B => r.auth_code = Some(strip_nuls(v)),
                0x0C => r.time = Some(nibbles_to_string(v)),
                0x0D => r.date = Some(nibbles_to_string(v)),
                0x19 => r.payment_type = v.first().copied(),
                0x2A => {
                    let end = v
                        .iter()
                        .rposition(|&b| b != 0 && b != b' ')
                        .map_or(0, |i| i + 1);
                    r.vu_number = Some(masked_text(&v[..end]));
                }
                0x3C => r.additional_text = Some(masked_text(v)),
                0x06 => {
                    let items = parse_tlv(v).unwrap_or_default();
                    if let Some(t) =
                        find_tlv(&items, TAG_LONG_TRACE).and_then(|t| bcd_u32(&t.value))
                        && r.trace_number.unwrap_or(0) == 0
                    {
                        r.trace_number = Some(t);
                    }
                }
                // 23/24/2D track data, 3A CVV, 0E expiry: dropped. Others: not kept.
                _ => {}
            }
        }
        r
    }

    /// The BMP list of a `04 0F` carrying this result (for emulators). A trace number above
    /// 999999 goes as `0B 000000` plus TLV 1F2B.
    pub fn to_fields(&self) -> Vec<Field> {
        let mut f = vec![Field::new(0x27, vec![self.result_code])];
        if let Some(a) = self.amount {
            f.push(Field::new(0x04, amount_to_bcd(a).to_vec()));
        }
        if let Some(cc) = self.currency {
            f.push(bcd_field(0x49, u64::from(cc), 2));
        }
        if let Some(t) = &self.time {
            f.push(Field::new(0x0C, string_to_nibbles(t, 3)));
        }
        if let Some(d) = &self.date {
            f.push(Field::new(0x0D, string_to_nibbles(d, 2)));
        }
        if let Some(p) = &self.masked_pan {
            f.push(Field::new(0x22, pan::to_bcd(&pan::mask(p))));
        }
        if let Some(n) = self.receipt_number {
            f.push(bcd_field(0x87, u64::from(n), 2));
        }
        if let Some(a) = &self.auth_code {
            f.push(Field::new(0x3B, padded(a, 8, 0)));
        }
        let long_trace = self.trace_number.filter(|&t| t > 999_999);
        if let Some(t) = self.trace_number {
            f.push(bcd_field(
                0x0B,
                if long_trace.is_some() {
                    0
                } else {
                    u64::from(t)
                },
                3,
            ));
        }
        if let Some(t) = self.original_trace {
            f.push(bcd_field(0x37, u64::from(t), 3));
        }
        if let Some(n) = self.turnover_number {
            f.push(bcd_field(0x88, u64::from(n), 3));
        }
        if let Some(p) = self.payment_type {
            f.push(Field::new(0x19, vec![p]));
        }
        if let Some(t) = &self.terminal_id {
            f.push(Field::new(0x29, string_to_nibbles(t, 4)));
        }
        if let Some(c) = self.card_type {
            f.push(Field::new(0x8A, vec![c]));
        }
        if let Some(n) = &self.card_name {
            let mut v = text_to_cp437(n);
            v.truncate(98);
            v.push(0);
            f.push(Field::new(0x8B, v));
        }
        if let Some(vu) = &self.vu_number {
            f.push(Field::new(0x2A, padded(vu, 15, b' ')));
        }
        if let Some(t) = &self.additional_text {
            f.push(Field::new(0x3C, text_to_cp437(t)));
        }
        if let Some(t) = long_trace {
            let tlv = encode_tlv(&[Tlv::new(
                TAG_LONG_TRACE,
                u64_to_bcd_saturating(u64::from(t), 5),
            )]);
            f.push(Field::new(0x06, tlv));
        }
        f
    }
}

// ---------------------------------------------------------------------------------------
// PT messages

impl PtMessage {
    /// The APDU of this message (used by the terminal emulator).
    ///
    /// `Completion` has two shapes: with a `terminal_status` it is the status-enquiry form
    /// `[sw-version LLLVAR] <status> [06 {1F44 terminal-id}]`; without one it is the BMP
    /// form `[29 terminal-id]` and a `sw_version` is not sent.
    pub fn to_apdu(&self) -> Apdu {
        match self {
            PtMessage::Ack => Apdu::new(0x80, 0x00, vec![]),
            PtMessage::Nack(code) => Apdu::new(0x84, *code, vec![]),
            PtMessage::IntermediateStatus {
                status,
                timeout_minutes,
                text,
            } => {
                let mut data = vec![*status];
                if let Some(t) = timeout_minutes {
                    data.extend(u64_to_bcd_saturating(u64::from(*t), 1));
                }
                if let Some(text) = text {
                    let lines: Vec<String> = text.split('\n').map(str::to_owned).collect();
                    let tlv = encode_tlv(&[lines_tlv(0x24, &lines)]);
                    data.extend(encode_fields(&[Field::new(0x06, tlv)]));
                }
                Apdu::new(0x04, 0xFF, data)
            }
            PtMessage::StatusInformation(r) => Apdu::new(0x04, 0x0F, encode_fields(&r.to_fields())),
            PtMessage::PrintLine { attribute, text } => {
                let mut data = vec![*attribute];
                data.extend(text_to_cp437(text));
                Apdu::new(0x06, 0xD1, data)
            }
            PtMessage::PrintTextBlock {
                receipt_type,
                lines,
            } => {
                let mut items = Vec::new();
                if let Some(t) = receipt_type {
                    items.push(Tlv::new(0x1F07, vec![*t]));
                }
                items.push(lines_tlv(0x25, lines));
                Apdu::new(
                    0x06,
                    0xD3,
                    encode_fields(&[Field::new(0x06, encode_tlv(&items))]),
                )
            }
            PtMessage::Completion {
                terminal_status: Some(status),
                terminal_id,
                sw_version,
            } => {
                let mut data = sw_version
                    .as_deref()
                    .map(|v| lllvar(&text_to_cp437(v)))
                    .unwrap_or_default();
                data.push(*status);
                if let Some(tid) = terminal_id {
                    let tlv = encode_tlv(&[Tlv::new(TAG_TERMINAL_ID, string_to_nibbles(tid, 4))]);
                    data.extend(encode_fields(&[Field::new(0x06, tlv)]));
                }
                Apdu::new(0x06, 0x0F, data)
            }
            PtMessage::Completion {
                terminal_status: None,
                terminal_id,
                ..
            } => {
                let fields: Vec<Field> = terminal_id
                    .iter()
                    .map(|t| Field::new(0x29, string_to_nibbles(t, 4)))
                    .collect();
                Apdu::new(0x06, 0x0F, encode_fields(&fields))
            }
            PtMessage::Abort { result_code, text } => {
                let mut data = vec![*result_code];
                if let Some(t) = text {
                    let tlv = encode_tlv(&[Tlv::new(TAG_ERROR_TEXT, text_to_cp437(t))]);
                    data.extend(encode_fields(&[Field::new(0x06, tlv)]));
                }
                Apdu::new(0x06, 0x1E, data)
            }
        }
    }

    /// Read a terminal's APDU. Sensitive card data is dropped here.
    pub fn from_apdu(apdu: &Apdu) -> Result<PtMessage, MessageError> {
        let d = apdu.data.as_slice();
        Ok(match (apdu.class, apdu.instr) {
            (0x80, 0x00) | (0x84, 0x00) => PtMessage::Ack,
            (0x84, code) => PtMessage::Nack(code),
            (0x04, 0xFF) => intermediate_status(d)?,
            (0x04, 0x0F) => PtMessage::StatusInformation(TransactionResult::from_fields(d)),
            (0x06, 0xD1) => {
                let (&attribute, text) =
                    d.split_first().ok_or(bad("print line", "no attribute"))?;
                PtMessage::PrintLine {
                    attribute,
                    text: masked_text(text),
                }
            }
            (0x06, 0xD3) => {
                let fields = parse_fields(d)?;
                let items =
                    parse_tlv(field(&fields, 0x06).ok_or(bad("print text block", "no TLV"))?)?;
                let receipt_type = find_tlv(&items, 0x1F07).and_then(|t| t.value.first().copied());
                let lines = lines_in(&items, 0x25).unwrap_or_default();
                PtMessage::PrintTextBlock {
                    receipt_type,
                    lines,
                }
            }
            (0x06, 0x0F) => completion(d),
            (0x06, 0x1E) => {
                let (&result_code, rest) = d.split_first().ok_or(bad("abort", "no result code"))?;
                let (fields, _) = parse_fields_partial(rest);
                let items = tlv_of(&fields);
                let text = find_tlv(&items, TAG_ERROR_TEXT)
                    .map(|t| masked_text(&t.value))
                    .or_else(|| lines_in(&items, 0x24).map(|l| l.join("\n")));
                PtMessage::Abort { result_code, text }
            }
            _ => return Err(MessageError::Unknown(apdu.control())),
        })
    }

    /// True for messages the register must acknowledge (everything but Ack/Nack).
    pub fn needs_ack(&self) -> bool {
        !matches!(self, PtMessage::Ack | PtMessage::Nack(_))
    }
}

/// `04 FF <status> [<timeout BCD>] [06 TLV]`. A byte after the status is the timeout when it
/// is the last byte, or when a readable `06` container follows it; otherwise the fields
/// start right after the status.
fn intermediate_status(d: &[u8]) -> Result<PtMessage, MessageError> {
    let (&status, rest) = d
        .split_first()
        .ok_or(bad("intermediate status", "no status"))?;
    let (timeout, fields) = match rest {
        [] => (None, Vec::new()),
        [t] => (Some(*t), Vec::new()),
        // After a timeout only the TLV container is expected.
        [t, tail @ ..] if tail.first() == Some(&0x06) && parse_fields(tail).is_ok() => {
            (Some(*t), parse_fields(tail).unwrap_or_default())
        }
        _ => (None, parse_fields_partial(rest).0),
    };
    let text = lines_in(&tlv_of(&fields), 0x24).map(|l| l.join("\n"));
    let timeout_minutes = timeout.and_then(|t| bcd_to_u64(&[t])).map(|m| m as u8);
    Ok(PtMessage::IntermediateStatus {
        status,
        timeout_minutes,
        text,
    })
}

/// `06 0F` in its two shapes. See [`PtMessage::to_apdu`]; a completion whose fields cannot
/// be read is still a completion, with nothing in it.
fn completion(d: &[u8]) -> PtMessage {
    let empty = PtMessage::Completion {
        terminal_status: None,
        terminal_id: None,
        sw_version: None,
    };
    if d.is_empty() {
        return empty;
    }
    // Status-enquiry shape: [LLLVAR sw-version] <status> [fields].
    let (sw_version, rest) = match d {
        [a, b, c, ..] if is_var_digit(*a) && is_var_digit(*b) && is_var_digit(*c) => {
            let n =
                usize::from(a & 0x0F) * 100 + usize::from(b & 0x0F) * 10 + usize::from(c & 0x0F);
            match d.get(3..3 + n) {
                Some(v) => (
                    Some(masked_text(v).trim_end_matches('\0').to_owned()),
                    &d[3 + n..],
                ),
                None => return empty,
            }
        }
        _ => (None, d),
    };
    let bmp_form = sw_version.is_none()
        && d.len() >= 2
        && matches!(d[0], 0x27 | 0x0C | 0xAA | 0x19 | 0x29 | 0x49 | 0x06)
        && parse_fields(d).is_ok_and(|fields| {
            // A status byte 0x06 followed by a TLV container also parses as BMP fields; a
            // BMP form's own container holds valid TLV, the misread one does not.
            fields
                .iter()
                .filter(|f| f.bmp == 0x06)
                .all(|f| parse_tlv(&f.value).is_ok())
        });
    if bmp_form {
        let fields = parse_fields(d).unwrap_or_default();
        let terminal_id = field(&fields, 0x29).map(nibbles_to_string);
        return PtMessage::Completion {
            terminal_status: None,
            terminal_id,
            sw_version: None,
        };
    }
    let Some((&status, tail)) = rest.split_first() else {
        return PtMessage::Completion {
            terminal_status: None,
            terminal_id: None,
            sw_version,
        };
    };
    let Ok(fields) = parse_fields(tail) else {
        return if sw_version.is_some() {
            PtMessage::Completion {
                terminal_status: Some(status),
                terminal_id: None,
                sw_version,
            }
        } else {
            empty
        };
    };
    let terminal_id =
        find_tlv(&tlv_of(&fields), TAG_TERMINAL_ID).map(|t| nibbles_to_string(&t.value));
    PtMessage::Completion {
        terminal_status: Some(status),
        terminal_id,
        sw_version,
    }
}
