//! Typed ECR-EFT messages, read and written through the layouts of [`crate::layout`].
//!
//! Card data: the terminal's messages are masked as they are decoded (see
//! [`crate::layout::Layout::from_terminal`]), so only the card token and masked numbers
//! leave the codec.

use crate::frame::{Frame, Kind};
use crate::layout::{MessageError, Record};

/// ISO 4217 alphabetic code of the Polish złoty.
pub const PLN: &str = "PLN";

/// S1 transaction types (second-hand: frobd knows `S` = payment and `C`, which it routes
/// to its transaction store; frob.h's only other type is VOID, so `C` = void is our
/// reading, unconfirmed).
pub const TRANSACTION_TYPES: &[(TransactionType, &str)] =
    &[(TransactionType::Sale, "S"), (TransactionType::Void, "C")];

/// S2 error code of an approved transaction (our assumption: 0; not in the sources).
pub const ERROR_APPROVED: u32 = 0;
/// S2 error code "payment endpoint busy" (second-hand: frobd's busy answer).
pub const ERROR_BUSY: u32 = 993;
/// D0 result codes (our choice: the layout of D0 is unknown; frobd only names the
/// outcomes "ok" and "no").
pub const D0_OK: u32 = 0;
pub const D0_REFUSED: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionType {
    Sale,
    Void,
}

impl TransactionType {
    pub fn code(self) -> &'static str {
        TRANSACTION_TYPES
            .iter()
            .find(|(t, _)| *t == self)
            .map_or("S", |(_, c)| c)
    }
    pub fn from_code(code: &str) -> Option<TransactionType> {
        TRANSACTION_TYPES
            .iter()
            .find(|(_, c)| *c == code)
            .map(|(t, _)| *t)
    }
}

/// T2: who the peer is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceInfo {
    pub version: String,
    pub vendor: String,
    pub device_type: String,
    pub device_id: String,
}

/// S1: start a transaction. Amounts in grosze (minor units).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    pub kind: TransactionType,
    pub ecr_id: String,
    pub payment_id: String,
    pub gross: u64,
    pub net: Option<u64>,
    pub vat: Option<u64>,
    /// ISO 4217 alphabetic, e.g. [`PLN`].
    pub currency: String,
    pub cashback: Option<u64>,
    pub max_cashback: Option<u64>,
}

/// S2: the transaction's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TransactionResult {
    /// [`ERROR_APPROVED`] when approved.
    pub error: u32,
    /// Hex; masked if it looks like a card number.
    pub card_token: String,
    pub mid: String,
    pub tid: String,
    pub transaction_id: String,
    pub amount: Option<u64>,
    pub cashback: Option<u64>,
    pub payment_method: String,
    /// Masked free text.
    pub message: String,
}

impl TransactionResult {
    pub fn approved(&self) -> bool {
        self.error == ERROR_APPROVED
    }
}

/// I1 status codes (second-hand: frobd's `frob.h`).
pub const STATUSES: &[(u32, &str)] = &[
    (20, "waiting for the card"),
    (30, "checking the card number"),
    (40, "waiting for the MID"),
    (50, "waiting for authorisation"),
    (60, "waiting for amount entry"),
    (65, "waiting for cashback entry"),
    (70, "waiting for the original amount"),
    (80, "waiting for the original authorisation code"),
    (90, "waiting for the PIN"),
    (100, "connecting to the acquirer"),
    (101, "connecting to the acquirer, 2nd try"),
    (102, "connecting to the acquirer, 3rd try"),
    (110, "voice authorisation"),
    (120, "signature check"),
    (130, "cardholder identity check"),
    (140, "printing the approved receipt"),
    (150, "printing the declined receipt"),
    (155, "printing a receipt copy"),
    (180, "aborting the transaction"),
    (190, "printing the void receipt"),
    (1000, "other"),
];

/// What an I1 status code means, if known.
pub fn status_text(code: u32) -> Option<&'static str> {
    STATUSES.iter().find(|(c, _)| *c == code).map(|(_, t)| *t)
}

/// I1: progress shown on the display.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    pub status: u32,
    /// Masked free text.
    pub message: String,
}

/// Every message the codec types. Kinds without a layout decode as
/// [`MessageError::Unknown`] (the frame is still ACKed by the link).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// Communication test, query.
    T1,
    /// Communication test, answer.
    T2(DeviceInfo),
    /// Transaction, initiate.
    S1(Transaction),
    /// Transaction, complete.
    S2(TransactionResult),
    /// Transaction, info.
    I1(Progress),
    /// Transaction, abort.
    P1,
    /// Print, response: `true` = the register prints (frobd's "ok").
    D0 { ok: bool },
    /// Print, claim (start of the slip).
    D2,
    /// Print, content: lines (masked).
    D6 { lines: Vec<String> },
    /// Print, stop (end of the slip).
    D3,
    /// Unavailability, with a (masked) reason.
    L1 { message: String },
}

fn opt(n: Option<u64>) -> String {
    n.map(|v| v.to_string()).unwrap_or_default()
}

fn num(r: &Record, name: &'static str) -> Result<u64, MessageError> {
    r.number(name)?.ok_or(MessageError::Missing {
        kind: crate::frame::kind_str(&r.layout.kind),
        field: name,
    })
}

fn code(r: &Record, name: &'static str) -> Result<u32, MessageError> {
    u32::try_from(num(r, name)?).map_err(|_| MessageError::Invalid {
        kind: crate::frame::kind_str(&r.layout.kind),
        field: name,
        why: "number too large",
    })
}

impl Message {
    pub fn kind(&self) -> Kind {
        match self {
            Message::T1 => *b"T1",
            Message::T2(_) => *b"T2",
            Message::S1(_) => *b"S1",
            Message::S2(_) => *b"S2",
            Message::I1(_) => *b"I1",
            Message::P1 => *b"P1",
            Message::D0 { .. } => *b"D0",
            Message::D2 => *b"D2",
            Message::D6 { .. } => *b"D6",
            Message::D3 => *b"D3",
            Message::L1 { .. } => *b"L1",
        }
    }

    /// The wire fields of this message (its layout's order).
    pub fn to_fields(&self) -> Result<Vec<Vec<u8>>, MessageError> {
        let mut r = Record::new(&self.kind())?;
        match self {
            Message::T1 | Message::P1 | Message::D2 | Message::D3 => {}
            Message::T2(d) => {
                r.set("version", &d.version)
                    .set("vendor", &d.vendor)
                    .set("device_type", &d.device_type)
                    .set("device_id", &d.device_id);
            }
            Message::S1(t) => {
                r.set("type", t.kind.code())
                    .set("ecr_id", &t.ecr_id)
                    .set("payment_id", &t.payment_id)
                    .set("gross", t.gross.to_string())
                    .set("net", opt(t.net))
                    .set("vat", opt(t.vat))
                    .set("currency", &t.currency)
                    .set("cashback", opt(t.cashback))
                    .set("max_cashback", opt(t.max_cashback));
            }
            Message::S2(s) => {
                r.set("error", format!("{:03}", s.error))
                    .set("card_token", &s.card_token)
                    .set("mid", &s.mid)
                    .set("tid", &s.tid)
                    .set("transaction_id", &s.transaction_id)
                    .set("amount", opt(s.amount))
                    .set("cashback", opt(s.cashback))
                    .set("payment_method", &s.payment_method)
                    .set("message", &s.message);
            }
            Message::I1(p) => {
                r.set("status", p.status.to_string())
                    .set("message", &p.message);
            }
            Message::D0 { ok } => {
                r.set("result", (if *ok { D0_OK } else { D0_REFUSED }).to_string());
            }
            Message::D6 { lines } => {
                r.set("lines", lines.join("\u{1f}"));
            }
            Message::L1 { message } => {
                r.set("message", message);
            }
        }
        r.encode()
    }

    /// A frame of this message with `token`.
    pub fn to_frame(&self, token: crate::frame::Token) -> Result<Frame, MessageError> {
        Ok(Frame::new(token, self.kind(), self.to_fields()?))
    }

    /// Read a frame as a typed message (terminal messages come out masked).
    pub fn decode(frame: &Frame) -> Result<Message, MessageError> {
        let r = Record::decode(frame)?;
        let s = |name| r.get(name).to_string();
        Ok(match &frame.kind {
            b"T1" => Message::T1,
            b"T2" => Message::T2(DeviceInfo {
                version: s("version"),
                vendor: s("vendor"),
                device_type: s("device_type"),
                device_id: s("device_id"),
            }),
            b"S1" => Message::S1(Transaction {
                kind: TransactionType::from_code(r.get("type")).ok_or(MessageError::Invalid {
                    kind: "S1".into(),
                    field: "type",
                    why: "unknown transaction type",
                })?,
                ecr_id: s("ecr_id"),
                payment_id: s("payment_id"),
                gross: num(&r, "gross")?,
                net: r.number("net")?,
                vat: r.number("vat")?,
                currency: s("currency"),
                cashback: r.number("cashback")?,
                max_cashback: r.number("max_cashback")?,
            }),
            b"S2" => Message::S2(TransactionResult {
                error: code(&r, "error")?,
                card_token: s("card_token"),
                mid: s("mid"),
                tid: s("tid"),
                transaction_id: s("transaction_id"),
                amount: r.number("amount")?,
                cashback: r.number("cashback")?,
                payment_method: s("payment_method"),
                message: s("message"),
            }),
            b"I1" => Message::I1(Progress {
                status: code(&r, "status")?,
                message: s("message"),
            }),
            b"P1" => Message::P1,
            b"D0" => Message::D0 {
                ok: code(&r, "result")? == D0_OK,
            },
            b"D2" => Message::D2,
            b"D6" => Message::D6 {
                // An empty slip (no lines) is written as one empty line.
                lines: r.get("lines").split('\u{1f}').map(str::to_string).collect(),
            },
            b"D3" => Message::D3,
            b"L1" => Message::L1 {
                message: s("message"),
            },
            other => return Err(MessageError::Unknown(crate::frame::kind_str(other))),
        })
    }
}
