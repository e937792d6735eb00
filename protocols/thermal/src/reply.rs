//! What the device answers: the ENQ and DLE status bytes, and the `#E` (last error),
//! `#R` (identity) and `#X` (cash register status) replies, with builders for the emulator.

use crate::field::{self, Reader};
use crate::frame::Frame;
use crate::text::{self, Encoding};

/// The ENQ answer `0110 FSK CMD PAR TRF` (0x60–0x6F).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Enq {
    /// FSK: the device is in fiscal mode.
    pub fiscal: bool,
    /// CMD: the last command was carried out (litex names this bit the other way round).
    pub command_ok: bool,
    /// PAR: a transaction (receipt) is open.
    pub in_transaction: bool,
    /// TRF: the last transaction was completed (non-volatile; cleared by `$h`).
    pub transaction_ok: bool,
}

impl Enq {
    /// The status byte.
    pub fn to_byte(self) -> u8 {
        0x60 | u8::from(self.fiscal) << 3
            | u8::from(self.command_ok) << 2
            | u8::from(self.in_transaction) << 1
            | u8::from(self.transaction_ok)
    }

    /// Read an ENQ answer; `None` outside 0x60–0x6F.
    pub fn from_byte(b: u8) -> Option<Enq> {
        (b & 0xF0 == 0x60).then_some(Enq {
            fiscal: b & 8 != 0,
            command_ok: b & 4 != 0,
            in_transaction: b & 2 != 0,
            transaction_ok: b & 1 != 0,
        })
    }
}

/// The DLE answer `0111 0 ONL PE ERR` (0x70–0x77).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Dle {
    pub online: bool,
    /// PE: paper end (or the battery).
    pub paper_end: bool,
    /// ERR: a mechanism error.
    pub error: bool,
}

impl Dle {
    pub fn to_byte(self) -> u8 {
        0x70 | u8::from(self.online) << 2 | u8::from(self.paper_end) << 1 | u8::from(self.error)
    }

    /// Read a DLE answer; `None` outside 0x70–0x77.
    pub fn from_byte(b: u8) -> Option<Dle> {
        (b & 0xF8 == 0x70).then_some(Dle {
            online: b & 4 != 0,
            paper_end: b & 2 != 0,
            error: b & 1 != 0,
        })
    }
}

/// Why a reply frame is not the reply expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("expected a {expected} reply, got {got}")]
    Unexpected { expected: &'static str, got: String },
    #[error("bad {what} in the {reply} reply: {text:?}")]
    Bad {
        reply: &'static str,
        what: &'static str,
        text: String,
    },
}

fn expect(f: &Frame, command: &str, name: &'static str) -> Result<(), ReplyError> {
    if f.command_str() == command {
        Ok(())
    } else {
        Err(ReplyError::Unexpected {
            expected: name,
            got: f.command_str(),
        })
    }
}

/// `ESC P 1#E<code> ESC \`: the last error code (no checksum).
pub fn error_reply(code: u32) -> Frame {
    Frame::new(&[1], "#E", code.to_string().into_bytes())
}

/// The code of a `#E` reply.
pub fn parse_error(f: &Frame) -> Result<u32, ReplyError> {
    expect(f, "#E", "#E")?;
    let t = String::from_utf8_lossy(f.body_optional_checksum()).into_owned();
    t.trim().parse().map_err(|_| ReplyError::Bad {
        reply: "#E",
        what: "error code",
        text: t,
    })
}

/// `ESC P 1#R<type>/<version> ESC \`: the device's type and version (no checksum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub model: String,
    pub version: String,
}

impl Identity {
    pub fn to_frame(&self) -> Frame {
        Frame::new(
            &[1],
            "#R",
            format!("{}/{}", self.model, self.version).into_bytes(),
        )
    }

    pub fn from_frame(f: &Frame) -> Result<Identity, ReplyError> {
        expect(f, "#R", "#R")?;
        let t = String::from_utf8_lossy(&f.data).into_owned();
        let (model, version) = t.split_once('/').unwrap_or((t.as_str(), ""));
        Ok(Identity {
            model: model.to_string(),
            version: version.to_string(),
        })
    }
}

/// One slot of the VAT table in `#X`: a rate, exempt (100) or inactive (101).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Rate {
    /// Basis points of a percent (2300 = 23 %).
    Percent(u32),
    Exempt,
    Inactive,
}

impl Rate {
    fn wire(self) -> String {
        match self {
            Rate::Percent(bp) => field::rate(bp),
            Rate::Exempt => "100.00".into(),
            Rate::Inactive => "101.00".into(),
        }
    }

    fn parse(t: &str) -> Option<Rate> {
        let bp = field::parse_amount(t)?;
        Some(match bp {
            10_000 => Rate::Exempt,
            10_100 => Rate::Inactive,
            bp if bp < 10_000 => Rate::Percent(u32::try_from(bp).ok()?),
            _ => return None,
        })
    }
}

/// The VAT letters, slot by slot.
pub const LETTERS: [char; 7] = ['A', 'B', 'C', 'D', 'E', 'F', 'G'];

/// The `#X` reply to `#s`: `Pe;Pm;Pt;Px;1;Pz;yy;mm;dd/PTU A…G/PAR_NUM/TOT A…G/CASH/UNIQUE`.
/// The `2#X` form (to `23#s`; what litex parses) ends with a checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// Pe: the last error (the read clears it).
    pub last_error: u32,
    /// Pm: fiscal mode.
    pub fiscal: bool,
    /// Pt: a transaction is open.
    pub in_transaction: bool,
    /// Px: TRF, the last transaction was completed.
    pub trf: bool,
    /// Pz: how many RAM resets.
    pub resets: u32,
    /// The date fields (`yy;mm;dd`).
    pub date: (u32, u32, u32),
    pub vat: [Rate; 7],
    /// PAR_NUM: fiscal receipts since the last daily report.
    pub receipts: u64,
    /// Gross totals per VAT letter since the last daily report, in grosze.
    pub totals: [u64; 7],
    /// Cash in the drawer, in grosze.
    pub cash: u64,
    /// The unique (serial) number.
    pub unique: String,
}

impl Status {
    /// The reply frame; `form` 2 gives `2#X` with its checksum, 1 gives `1#X`.
    pub fn to_frame(&self, form: u32, e: Encoding) -> Frame {
        let b = |x: bool| u32::from(x);
        let mut s = format!(
            "{};{};{};{};1;{};{:02};{:02};{:02}/",
            self.last_error,
            b(self.fiscal),
            b(self.in_transaction),
            b(self.trf),
            self.resets,
            self.date.0,
            self.date.1,
            self.date.2
        );
        for r in self.vat {
            s.push_str(&r.wire());
            s.push('/');
        }
        s.push_str(&format!("{}/", self.receipts));
        for t in self.totals {
            s.push_str(&field::amount(t));
            s.push('/');
        }
        s.push_str(&field::amount(self.cash));
        s.push('/');
        let mut data = s.into_bytes();
        data.extend(text::encode(&self.unique, e).unwrap_or_default());
        let f = Frame::new(&[form], "#X", data);
        f.with_checksum()
    }

    /// Read a `1#X` or `2#X` reply (a trailing checksum is removed when it is correct).
    pub fn from_frame(f: &Frame, e: Encoding) -> Result<Status, ReplyError> {
        expect(f, "#X", "#X")?;
        let bad = |what: &'static str, text: &str| ReplyError::Bad {
            reply: "#X",
            what,
            text: text.to_string(),
        };
        let mut r = Reader::new(f.body_optional_checksum());
        let head = r.number_text("flags").map_err(|_| bad("flags", ""))?;
        let n: Vec<u32> = head
            .split(';')
            .map(|x| x.trim().parse())
            .collect::<Result<_, _>>()
            .map_err(|_| bad("flags", head))?;
        if n.len() != 9 {
            return Err(bad("flags", head));
        }
        let mut vat = [Rate::Inactive; 7];
        for slot in &mut vat {
            let t = r.number_text("vat").map_err(|_| bad("vat", ""))?;
            *slot = Rate::parse(t).ok_or_else(|| bad("vat rate", t))?;
        }
        let receipts = r.whole("receipts").map_err(|_| bad("receipt count", ""))?;
        let mut totals = [0; 7];
        for t in &mut totals {
            *t = r.amount("total").map_err(|_| bad("total", ""))?;
        }
        let cash = r.amount("cash").map_err(|_| bad("cash", ""))?;
        Ok(Status {
            last_error: n[0],
            fiscal: n[1] != 0,
            in_transaction: n[2] != 0,
            trf: n[3] != 0,
            resets: n[5],
            date: (n[6], n[7], n[8]),
            vat,
            receipts,
            totals,
            cash,
            unique: text::decode(r.rest(), e),
        })
    }
}

/// The `50#X` reply to `50#s`: `Number/T/…`, the number of the last printed document.
pub fn last_document_reply(number: u64) -> Frame {
    Frame::new(&[50], "#X", format!("{number}/0/").into_bytes()).with_checksum()
}

/// The document number of a `50#X` reply.
pub fn parse_last_document(f: &Frame) -> Result<u64, ReplyError> {
    expect(f, "#X", "50#X")?;
    if f.params != b"50" {
        return Err(ReplyError::Unexpected {
            expected: "50#X",
            got: format!("{}#X", String::from_utf8_lossy(&f.params)),
        });
    }
    let mut r = Reader::new(f.body_optional_checksum());
    r.whole("number").map_err(|_| ReplyError::Bad {
        reply: "50#X",
        what: "document number",
        text: String::from_utf8_lossy(&f.data).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_published_2x_vector_parses_and_its_checksum_holds() {
        let body = b"2#X0;1;0;1;1;0;20;07;23/23.00/08.00/05.00/00.00/100.00/101.00/101.00/169/810.19/0.00/0.00/0.00/0.00/0.00/0.00/0.00/ABC1234567890F1";
        let f = Frame::parse(body).unwrap();
        assert!(f.has_valid_checksum());
        let s = Status::from_frame(&f, Encoding::Cp1250).unwrap();
        assert!(s.fiscal && s.trf && !s.in_transaction);
        assert_eq!(s.receipts, 169);
        assert_eq!(s.totals[0], 81_019);
        assert_eq!(s.vat[0], Rate::Percent(2300));
        assert_eq!(s.vat[3], Rate::Percent(0));
        assert_eq!(s.vat[4], Rate::Exempt);
        assert_eq!(s.vat[6], Rate::Inactive);
        assert_eq!(s.unique, "ABC1234567890");
        assert_eq!(s.date, (20, 7, 23));
        // And it is rebuilt byte for byte.
        assert_eq!(s.to_frame(2, Encoding::Cp1250), f);
    }

    #[test]
    fn the_published_identity_pair() {
        let f = Frame::parse(b"1#RPOINT/1.01").unwrap();
        let id = Identity::from_frame(&f).unwrap();
        assert_eq!(id.model, "POINT");
        assert_eq!(id.version, "1.01");
        assert_eq!(id.to_frame().encode(), b"\x1bP1#RPOINT/1.01\x1b\\");
        assert_eq!(Frame::parse(b"#v").unwrap().encode(), b"\x1bP#v\x1b\\");
    }

    #[test]
    fn status_bytes() {
        // 'm' = fiscal, last command OK, idle, last transaction OK (litex's test).
        let e = Enq::from_byte(b'm').unwrap();
        assert!(e.fiscal && e.command_ok && !e.in_transaction && e.transaction_ok);
        assert_eq!(e.to_byte(), b'm');
        assert_eq!(Enq::from_byte(0x70), None);
        let d = Dle::from_byte(0x76).unwrap();
        assert!(d.online && d.paper_end && !d.error);
        for b in 0..=255u8 {
            if let Some(e) = Enq::from_byte(b) {
                assert_eq!(e.to_byte(), b);
            }
            if let Some(d) = Dle::from_byte(b) {
                assert_eq!(d.to_byte(), b);
            }
        }
    }

    #[test]
    fn error_replies_carry_no_checksum() {
        let f = error_reply(27);
        assert_eq!(f.encode(), b"\x1bP1#E27\x1b\\");
        assert_eq!(parse_error(&f).unwrap(), 27);
    }
}
