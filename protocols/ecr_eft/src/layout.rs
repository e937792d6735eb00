//! Message layouts as data: for each message type, its fields in wire order with their
//! type and width. A correction to the (second-hand) facts is one row here.
//!
//! Widths are the frobd structure sizes (`frob.h`: amounts 12 digits, ids 20 characters,
//! payment method 40, messages 80, card token 32 bytes = 64 hex digits). They are enforced
//! when encoding only: a terminal whose fields are longer than these second-hand widths
//! still decodes. Types are enforced both ways.

use crate::frame::{Frame, Kind, US};
use crate::text;

/// What a field may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// ASCII digits (amounts in grosze, codes).
    Digits,
    /// ASCII letters (transaction type, currency).
    Alpha,
    /// Hexadecimal digits (card token).
    Hex,
    /// Free text (Windows-1250, see [`crate::text`]), no control characters.
    Text,
    /// Free text lines separated by US (sub-fields).
    Lines,
}

/// One field of a layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub ty: Ty,
    /// Longest value we send (characters; for [`Ty::Lines`], per line).
    pub max: usize,
    /// Must be present and non-empty when decoding.
    pub required: bool,
}

const fn f(name: &'static str, ty: Ty, max: usize, required: bool) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        max,
        required,
    }
}

/// A message type's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub kind: Kind,
    /// Sent by the terminal: free text, lines and the card token are masked as decoded
    /// (no full card number leaves the codec).
    pub from_terminal: bool,
    pub fields: &'static [FieldSpec],
}

use Ty::*;

/// Every layout the codec knows. Second-hand: field order from frobd (`frob.h`,
/// `fsm/body.rl`, `ut.t`), corroborated for S1 by NoviAPI's `/eft` request.
pub const LAYOUTS: &[Layout] = &[
    Layout {
        kind: *b"T1",
        from_terminal: false,
        fields: &[],
    },
    Layout {
        kind: *b"T2",
        from_terminal: true,
        fields: &[
            f("version", Text, 3, false),
            f("vendor", Text, 20, false),
            f("device_type", Text, 20, false),
            f("device_id", Text, 20, false),
        ],
    },
    Layout {
        kind: *b"S1",
        from_terminal: false,
        fields: &[
            f("type", Alpha, 1, true),
            f("ecr_id", Text, 20, false),
            f("payment_id", Text, 20, false),
            f("gross", Digits, 12, true),
            f("net", Digits, 12, false),
            f("vat", Digits, 12, false),
            f("currency", Alpha, 3, true),
            f("cashback", Digits, 12, false),
            f("max_cashback", Digits, 12, false),
        ],
    },
    Layout {
        kind: *b"S2",
        from_terminal: true,
        fields: &[
            f("error", Digits, 3, true),
            f("card_token", Hex, 64, false),
            f("mid", Text, 20, false),
            f("tid", Text, 20, false),
            f("transaction_id", Text, 20, false),
            f("amount", Digits, 12, false),
            f("cashback", Digits, 12, false),
            f("payment_method", Text, 40, false),
            f("message", Text, 80, false),
        ],
    },
    Layout {
        kind: *b"I1",
        from_terminal: true,
        fields: &[f("status", Digits, 4, true), f("message", Text, 80, false)],
    },
    Layout {
        kind: *b"P1",
        from_terminal: false,
        fields: &[],
    },
    // Printing on the register's printer. Field layouts unknown (our choice): D0 carries a
    // result code, D6 the slip lines as US-separated sub-fields.
    Layout {
        kind: *b"D0",
        from_terminal: false,
        fields: &[f("result", Digits, 3, true)],
    },
    Layout {
        kind: *b"D2",
        from_terminal: true,
        fields: &[],
    },
    Layout {
        kind: *b"D6",
        from_terminal: true,
        fields: &[f("lines", Lines, 80, false)],
    },
    Layout {
        kind: *b"D3",
        from_terminal: true,
        fields: &[],
    },
    // Unavailability; its fields are unknown (our choice: one free-text reason).
    Layout {
        kind: *b"L1",
        from_terminal: true,
        fields: &[f("message", Text, 80, false)],
    },
];

/// The layout of `kind`.
pub fn layout(kind: &Kind) -> Option<&'static Layout> {
    LAYOUTS.iter().find(|l| &l.kind == kind)
}

/// The largest number a digits field of `kind` may carry when encoding (`None` if the
/// field is not a digits field of that layout).
pub fn max_number(kind: &Kind, name: &str) -> Option<u64> {
    let spec = layout(kind)?.fields.iter().find(|f| f.name == name)?;
    (spec.ty == Digits).then(|| 10u64.saturating_pow(spec.max as u32).saturating_sub(1))
}

/// Why a message could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("unknown message type {0}")]
    Unknown(String),
    #[error("{kind} field {field} is missing")]
    Missing { kind: String, field: &'static str },
    #[error("{kind} field {field} is not valid: {why}")]
    Invalid {
        kind: String,
        field: &'static str,
        why: &'static str,
    },
}

/// A message's fields by name, decoded to text (masked for terminal messages) and checked
/// against its layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub layout: &'static Layout,
    values: Vec<String>,
}

fn valid(ty: Ty, s: &str) -> bool {
    match ty {
        Digits => s.bytes().all(|b| b.is_ascii_digit()),
        Alpha => s.bytes().all(|b| b.is_ascii_alphabetic()),
        Hex => s.bytes().all(|b| b.is_ascii_hexdigit()),
        Text => !s.chars().any(char::is_control),
        Lines => !s.chars().any(|c| c.is_control() && c != char::from(US)),
    }
}

/// Decoding is lenient with free text: a control character becomes a space.
fn sanitize(ty: Ty, s: String) -> String {
    let keep = |c: char| !c.is_control() || (ty == Lines && c == char::from(US));
    match ty {
        Text | Lines if !s.chars().all(keep) => {
            s.chars().map(|c| if keep(c) { c } else { ' ' }).collect()
        }
        _ => s,
    }
}

/// Mask what a terminal could leak: every card number (a Luhn-valid window of 13 to 19
/// digits) in free text, slip lines and the card token. A genuine hex token is changed
/// only if it holds such a run of decimal digits (rare, and harmless: it is masked, not
/// dropped).
fn mask(ty: Ty, s: String) -> String {
    match ty {
        Text | Lines | Hex => zvt::pan::mask_in_text(&s),
        Digits | Alpha => s,
    }
}

impl Record {
    /// Read a frame's fields by its type's layout. Fields beyond the layout are ignored;
    /// missing optional fields are empty.
    pub fn decode(frame: &Frame) -> Result<Record, MessageError> {
        let layout =
            layout(&frame.kind).ok_or_else(|| MessageError::Unknown(kind_name(&frame.kind)))?;
        let mut values = Vec::with_capacity(layout.fields.len());
        for (i, spec) in layout.fields.iter().enumerate() {
            let raw = frame.fields.get(i).map(Vec::as_slice).unwrap_or_default();
            let s = sanitize(spec.ty, text::decode(raw));
            if spec.required && s.is_empty() {
                return Err(MessageError::Missing {
                    kind: kind_name(&layout.kind),
                    field: spec.name,
                });
            }
            if !valid(spec.ty, &s) {
                return Err(invalid(layout, spec.name, "wrong characters"));
            }
            values.push(if layout.from_terminal {
                mask(spec.ty, s)
            } else {
                s
            });
        }
        Ok(Record { layout, values })
    }

    /// An empty record of `kind` to fill with [`Record::set`].
    pub fn new(kind: &Kind) -> Result<Record, MessageError> {
        let layout = layout(kind).ok_or_else(|| MessageError::Unknown(kind_name(kind)))?;
        Ok(Record {
            layout,
            values: vec![String::new(); layout.fields.len()],
        })
    }

    /// Set a field by name (a name not in the layout is a programming error, ignored in
    /// release builds).
    pub fn set(&mut self, name: &str, value: impl Into<String>) -> &mut Record {
        match self.index(name) {
            Some(i) => self.values[i] = value.into(),
            None => debug_assert!(false, "no field {name} in {:?}", self.layout.kind),
        }
        self
    }

    /// A field's value ("" when absent from the layout).
    pub fn get(&self, name: &str) -> &str {
        self.index(name).map_or("", |i| self.values[i].as_str())
    }

    /// A digits field as a number; `None` when empty.
    pub fn number(&self, name: &'static str) -> Result<Option<u64>, MessageError> {
        let s = self.get(name);
        if s.is_empty() {
            return Ok(None);
        }
        s.parse()
            .map(Some)
            .map_err(|_| invalid(self.layout, name, "number too large"))
    }

    /// Wire fields in layout order, checked against types and widths. Trailing empty
    /// optional fields are still written (every field is terminated by FS).
    pub fn encode(&self) -> Result<Vec<Vec<u8>>, MessageError> {
        let mut out = Vec::with_capacity(self.values.len());
        for (spec, v) in self.layout.fields.iter().zip(&self.values) {
            if spec.required && v.is_empty() {
                return Err(MessageError::Missing {
                    kind: kind_name(&self.layout.kind),
                    field: spec.name,
                });
            }
            if !valid(spec.ty, v) {
                return Err(invalid(self.layout, spec.name, "wrong characters"));
            }
            let too_long = match spec.ty {
                Lines => v
                    .split(char::from(US))
                    .any(|l| l.chars().count() > spec.max),
                _ => v.chars().count() > spec.max,
            };
            if too_long {
                return Err(invalid(self.layout, spec.name, "too long"));
            }
            let bytes = text::encode(v)
                .ok_or_else(|| invalid(self.layout, spec.name, "not representable"))?;
            out.push(bytes);
        }
        Ok(out)
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.layout.fields.iter().position(|f| f.name == name)
    }
}

fn invalid(layout: &Layout, field: &'static str, why: &'static str) -> MessageError {
    MessageError::Invalid {
        kind: kind_name(&layout.kind),
        field,
        why,
    }
}

fn kind_name(kind: &Kind) -> String {
    crate::frame::kind_str(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_numbers_follow_the_widths() {
        assert_eq!(max_number(b"S2", "amount"), Some(999_999_999_999));
        assert_eq!(max_number(b"S2", "error"), Some(999));
        assert_eq!(max_number(b"S2", "message"), None);
        assert_eq!(max_number(b"XX", "amount"), None);
    }

    #[test]
    fn layouts_are_unique_and_named() {
        for (i, l) in LAYOUTS.iter().enumerate() {
            assert!(LAYOUTS[i + 1..].iter().all(|o| o.kind != l.kind));
            for (j, fs) in l.fields.iter().enumerate() {
                assert!(fs.max > 0);
                assert!(l.fields[j + 1..].iter().all(|o| o.name != fs.name));
            }
        }
    }
}
