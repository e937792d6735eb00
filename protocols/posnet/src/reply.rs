//! Typed views of printer replies.

use crate::frame::Frame;

/// Why a reply did not have the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply is for {got:?}, expected {expected:?}")]
    WrongMnemonic { expected: String, got: String },
    #[error("reply lacks field {0:?}")]
    Missing(&'static str),
    #[error("reply field {field:?} has bad value {value:?}")]
    BadValue { field: &'static str, value: String },
    /// The printer answered with an error code (`?NNNN`) instead of the fields;
    /// look it up with [`crate::error::command_error`] (or `frame_error` for `ERR`).
    #[error("printer answered {mnemonic:?} with error code {code}")]
    Refused { mnemonic: String, code: u32 },
}

/// `scomm`: fiscal and transaction status.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scomm {
    /// `fs`: the device is fiscal.
    pub fiscal: bool,
    /// `tz`: totalizers are zero (no sale since the last daily report).
    pub totalizers_zero: bool,
    /// `ts`: open transaction type, 0 = none.
    pub transaction: u32,
    /// `nu`: unique number.
    pub unique_number: Option<String>,
    /// `td`: read-only state.
    pub read_only: bool,
}

/// `scnt`: document counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct Scnt {
    /// `rd`: number of daily reports.
    pub daily_reports: u64,
    /// `hn`: next printout (header) number.
    pub next_printout: u64,
    /// `bn`: last receipt number (completed receipts).
    pub last_receipt: u64,
    /// `bc`: cancelled receipts.
    pub cancelled: u64,
    /// `bt`: receipt number including cancelled ones.
    pub receipts_total: u64,
    /// `fn`: VAT invoices printed (0 when the printer does not report it).
    pub invoices: u64,
}

/// `sdev`: device state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sdev {
    /// `ds`: 0 ready, 1 in menu, 2 waiting for a key, 3 waiting for the user (error shown).
    pub state: u32,
    /// `pe`: paper near end.
    pub paper_near_end: bool,
    /// `qe`: command queue empty.
    pub queue_empty: bool,
}

/// `sprn`: print mechanism state (`pr`): 0 ok, 1/3/10 cover, 5 paper out, ...
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sprn {
    pub code: u32,
}

impl Sprn {
    pub fn paper_out(&self) -> bool {
        self.code == 5
    }
    pub fn cover_open(&self) -> bool {
        matches!(self.code, 1 | 3 | 10)
    }
}

/// `sid`: device identity.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sid {
    pub name: String,
    pub version: String,
}

/// One PTU slot's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VatRate {
    /// A rate in hundredths of a percent (2300 = 23 %).
    Percent(u32),
    /// Exempt (`100,00` on the wire).
    Exempt,
    /// Inactive (`101,00`).
    Inactive,
}

/// `vatget`: the seven slots A..G.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VatTable(pub [VatRate; 7]);

/// `rtcget`: the device clock as sent (`yyyy-mm-dd;hh:mm`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rtc {
    pub datetime: chrono::NaiveDateTime,
}

/// Check that `f` answers `expected` (or its immediate form `!expected`) and
/// carries no error code.
fn check(f: &Frame, expected: &str) -> Result<(), ReplyError> {
    let m = f.mnemonic.strip_prefix('!').unwrap_or(&f.mnemonic);
    if let Some(code) = f.error_code {
        return Err(ReplyError::Refused {
            mnemonic: f.mnemonic.clone(),
            code,
        });
    }
    if m != expected {
        return Err(ReplyError::WrongMnemonic {
            expected: expected.to_string(),
            got: f.mnemonic.clone(),
        });
    }
    Ok(())
}

fn req<'a>(f: &'a Frame, name: &'static str) -> Result<&'a str, ReplyError> {
    f.get(name).ok_or(ReplyError::Missing(name))
}

fn bad(field: &'static str, value: &str) -> ReplyError {
    ReplyError::BadValue {
        field,
        value: value.to_string(),
    }
}

/// A POSNET BOOL: `1 t T Y y` are true, `0 n N` false.
pub fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "1" | "t" | "T" | "Y" | "y" => Some(true),
        "0" | "n" | "N" => Some(false),
        _ => None,
    }
}

/// The BOOL form the printer uses in replies (`T`/`N`).
pub fn format_bool(b: bool) -> &'static str {
    if b { "T" } else { "N" }
}

fn bool_field(f: &Frame, name: &'static str) -> Result<Option<bool>, ReplyError> {
    f.get(name)
        .map(|v| parse_bool(v).ok_or_else(|| bad(name, v)))
        .transpose()
}

fn num_field<T: std::str::FromStr>(f: &Frame, name: &'static str) -> Result<Option<T>, ReplyError> {
    f.get(name)
        .map(|v| {
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(name, v));
            }
            v.parse::<T>().map_err(|_| bad(name, v))
        })
        .transpose()
}

impl Scomm {
    /// Parse an `scomm` reply. `fs` and `ts` are required; `tz`/`td` default to false,
    /// `nu` is optional.
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        check(f, "scomm")?;
        Ok(Scomm {
            fiscal: bool_field(f, "fs")?.ok_or(ReplyError::Missing("fs"))?,
            totalizers_zero: bool_field(f, "tz")?.unwrap_or(false),
            transaction: num_field(f, "ts")?.ok_or(ReplyError::Missing("ts"))?,
            unique_number: f.get("nu").map(str::to_string),
            read_only: bool_field(f, "td")?.unwrap_or(false),
        })
    }

    /// The `scomm` reply a model printer sends: `fs tz ts hr nu td` (header always
    /// reported as programmed, `nu` only when known).
    pub fn to_frame(&self) -> Frame {
        let f = Frame::new("scomm")
            .with("fs", format_bool(self.fiscal))
            .with("tz", format_bool(self.totalizers_zero))
            .with("ts", self.transaction.to_string())
            .with("hr", format_bool(true));
        let f = match &self.unique_number {
            Some(nu) => f.with("nu", nu.clone()),
            None => f,
        };
        f.with("td", format_bool(self.read_only))
    }
}

impl Scnt {
    /// Parse an `scnt` reply: `rd hn bn` required, `bc bt fn` default to 0; `nu`, `fc`
    /// and other fields are accepted and ignored.
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        check(f, "scnt")?;
        Ok(Scnt {
            daily_reports: num_field(f, "rd")?.ok_or(ReplyError::Missing("rd"))?,
            next_printout: num_field(f, "hn")?.ok_or(ReplyError::Missing("hn"))?,
            last_receipt: num_field(f, "bn")?.ok_or(ReplyError::Missing("bn"))?,
            cancelled: num_field(f, "bc")?.unwrap_or(0),
            receipts_total: num_field(f, "bt")?.unwrap_or(0),
            invoices: num_field(f, "fn")?.unwrap_or(0),
        })
    }
    /// The `scnt` reply a model printer sends for these counters (`rd hn bn fn bc bt`).
    pub fn to_frame(&self) -> Frame {
        Frame::new("scnt")
            .with("rd", self.daily_reports.to_string())
            .with("hn", self.next_printout.to_string())
            .with("bn", self.last_receipt.to_string())
            .with("fn", self.invoices.to_string())
            .with("bc", self.cancelled.to_string())
            .with("bt", self.receipts_total.to_string())
    }
}

impl Sdev {
    /// Parse an `sdev`/`!sdev` reply: `ds` required; `pe` defaults to false and `qe`
    /// to true when absent.
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        check(f, "sdev")?;
        Ok(Sdev {
            state: num_field(f, "ds")?.ok_or(ReplyError::Missing("ds"))?,
            paper_near_end: bool_field(f, "pe")?.unwrap_or(false),
            queue_empty: bool_field(f, "qe")?.unwrap_or(true),
        })
    }

    /// The `sdev` reply (`ds qe pe`).
    pub fn to_frame(&self) -> Frame {
        Frame::new("sdev")
            .with("ds", self.state.to_string())
            .with("qe", format_bool(self.queue_empty))
            .with("pe", format_bool(self.paper_near_end))
    }

    /// The same reply under the immediate mnemonic `!sdev`.
    pub fn to_immediate_frame(&self) -> Frame {
        Frame {
            mnemonic: "!sdev".to_string(),
            ..self.to_frame()
        }
    }
}

impl Sprn {
    /// Parse an `sprn`/`!sprn` reply (`pr` required).
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        check(f, "sprn")?;
        Ok(Sprn {
            code: num_field(f, "pr")?.ok_or(ReplyError::Missing("pr"))?,
        })
    }

    /// The `sprn` reply (`pr`).
    pub fn to_frame(&self) -> Frame {
        Frame::new("sprn").with("pr", self.code.to_string())
    }

    /// The same reply under the immediate mnemonic `!sprn`.
    pub fn to_immediate_frame(&self) -> Frame {
        Frame {
            mnemonic: "!sprn".to_string(),
            ..self.to_frame()
        }
    }
}

impl Sid {
    /// Parse an `sid` reply: `nm` required, `vr` empty when absent.
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        check(f, "sid")?;
        Ok(Sid {
            name: req(f, "nm")?.to_string(),
            version: f.get("vr").unwrap_or_default().to_string(),
        })
    }

    /// The `sid` reply (`nm vr`).
    pub fn to_frame(&self) -> Frame {
        Frame::new("sid")
            .with("nm", self.name.clone())
            .with("vr", self.version.clone())
    }
}

/// Names of the seven VAT fields of `vatget`, slot A..G.
pub const VAT_FIELDS: [&str; 7] = ["va", "vb", "vc", "vd", "ve", "vf", "vg"];

impl VatTable {
    /// Parse a `vatget` reply: all of `va..vg`, each a decimal with `,` (or `.`) and
    /// at most two fraction digits; `100,00` is exempt, `101,00` inactive.
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        check(f, "vatget")?;
        let mut rates = [VatRate::Inactive; 7];
        for (rate, field) in rates.iter_mut().zip(VAT_FIELDS) {
            let v = req(f, field)?;
            *rate = Self::parse_rate(v).ok_or_else(|| bad(field, v))?;
        }
        Ok(VatTable(rates))
    }

    /// Parse one wire rate (`23,00`, `8`, `5.5`, `100,00`, `101,00`).
    pub fn parse_rate(v: &str) -> Option<VatRate> {
        let (int, frac) = v.split_once([',', '.']).unwrap_or((v, "0"));
        let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || !digits(frac) || frac.len() > 2 || int.len() > 3 {
            return None;
        }
        let int: u32 = int.parse().ok()?;
        let mut hundredths: u32 = if frac.is_empty() {
            0
        } else {
            frac.parse().ok()?
        };
        if frac.len() == 1 {
            hundredths *= 10;
        }
        match int * 100 + hundredths {
            10000 => Some(VatRate::Exempt),
            10100 => Some(VatRate::Inactive),
            p if p < 10000 => Some(VatRate::Percent(p)),
            _ => None,
        }
    }

    /// Wire form of one rate (`23,00`, `100,00`, `101,00`).
    pub fn format_rate(rate: VatRate) -> String {
        match rate {
            VatRate::Percent(p) => format!("{},{:02}", p / 100, p % 100),
            VatRate::Exempt => "100,00".to_string(),
            VatRate::Inactive => "101,00".to_string(),
        }
    }

    /// The `vatget` reply (`va..vg`).
    pub fn to_frame(&self) -> Frame {
        self.0
            .iter()
            .zip(VAT_FIELDS)
            .fold(Frame::new("vatget"), |f, (rate, field)| {
                f.with(field, Self::format_rate(*rate))
            })
    }
}

impl Rtc {
    /// Parse an `rtcget` reply: `da` as `yyyy-mm-dd;hh:mm` (`,` or space instead of
    /// `;`, `.` or `/` in the date, optional `:ss` are accepted too).
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        check(f, "rtcget")?;
        let v = req(f, "da")?;
        let datetime = Self::parse(v).ok_or_else(|| bad("da", v))?;
        Ok(Rtc { datetime })
    }

    /// Parse a POSNET date-and-time value.
    pub fn parse(v: &str) -> Option<chrono::NaiveDateTime> {
        let (date, time) = v.split_once([';', ',', ' '])?;
        let date: String = date
            .chars()
            .map(|c| if c == '.' || c == '/' { '-' } else { c })
            .collect();
        let date = chrono::NaiveDate::parse_from_str(&date, "%Y-%m-%d").ok()?;
        let time = chrono::NaiveTime::parse_from_str(time, "%H:%M")
            .or_else(|_| chrono::NaiveTime::parse_from_str(time, "%H:%M:%S"))
            .ok()?;
        Some(date.and_time(time))
    }

    /// The `rtcget` reply (`da yyyy-mm-dd;hh:mm`). The `tm` ISO 8601 field real
    /// devices add is left out: it needs a UTC offset this type does not carry.
    pub fn to_frame(&self) -> Frame {
        Frame::new("rtcget").with("da", self.datetime.format("%Y-%m-%d;%H:%M").to_string())
    }
}

/// Letters of the seven PTU slots.
pub const SLOT_LETTERS: [char; 7] = ['A', 'B', 'C', 'D', 'E', 'F', 'G'];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::decode_frame;

    fn frame(payload: &str) -> Frame {
        let bytes = crate::text::encode_lossless(payload);
        let mut wire = vec![crate::frame::STX];
        wire.extend_from_slice(&bytes);
        wire.extend_from_slice(format!("#{:04X}", crate::crc::checksum(&bytes)).as_bytes());
        wire.push(crate::frame::ETX);
        decode_frame(&wire).unwrap()
    }

    #[test]
    fn scomm_recorded() {
        let s = Scomm::from_frame(&frame("scomm\tfsT\ttzN\tts0\thrT\tnuZBF 2101002392\ttdN\t"))
            .unwrap();
        assert_eq!(
            s,
            Scomm {
                fiscal: true,
                totalizers_zero: false,
                transaction: 0,
                unique_number: Some("ZBF 2101002392".into()),
                read_only: false
            }
        );
        assert_eq!(Scomm::from_frame(&s.to_frame()).unwrap(), s);
        let s = Scomm::from_frame(&frame("scomm\tfs1\ttz1\tts16\ttd0\t")).unwrap();
        assert!(s.fiscal && s.totalizers_zero && s.transaction == 16 && s.unique_number.is_none());
        assert_eq!(
            Scomm::from_frame(&frame("scomm\tfsX\tts0\t")),
            Err(ReplyError::BadValue {
                field: "fs",
                value: "X".into()
            })
        );
        assert_eq!(
            Scomm::from_frame(&frame("scomm\tts0\t")),
            Err(ReplyError::Missing("fs"))
        );
    }

    #[test]
    fn scnt_recorded_and_round_trip() {
        let c = Scnt::from_frame(&frame(
            "scnt\trd0\thn11\tbn10\tfn0\tnuZBF 2101002392\tbc0\tbt10\tfc0\t",
        ))
        .unwrap();
        assert_eq!(
            c,
            Scnt {
                daily_reports: 0,
                next_printout: 11,
                last_receipt: 10,
                cancelled: 0,
                receipts_total: 10,
                invoices: 0,
            }
        );
        assert_eq!(Scnt::from_frame(&c.to_frame()).unwrap(), c);
        assert_eq!(
            c.to_frame().payload().unwrap(),
            b"scnt\trd0\thn11\tbn10\tfn0\tbc0\tbt10\t".to_vec()
        );
        let old = Scnt::from_frame(&frame("scnt\trd3\thn4\tbn5\tfn0\t")).unwrap();
        assert_eq!((old.cancelled, old.receipts_total), (0, 0));
        assert_eq!(
            Scnt::from_frame(&frame("scnt\trd-1\thn4\tbn5\t")),
            Err(ReplyError::BadValue {
                field: "rd",
                value: "-1".into()
            })
        );
    }

    #[test]
    fn status_replies() {
        let d = Sdev::from_frame(&frame("!sdev\tds3\tcp0\tqeT\tpeN\ttl0\t")).unwrap();
        assert_eq!(
            d,
            Sdev {
                state: 3,
                paper_near_end: false,
                queue_empty: true
            }
        );
        assert_eq!(Sdev::from_frame(&d.to_frame()).unwrap(), d);
        assert_eq!(d.to_immediate_frame().mnemonic, "!sdev");
        let p = Sprn::from_frame(&frame("sprn\tpr5\t")).unwrap();
        assert!(p.paper_out() && !p.cover_open());
        assert_eq!(Sprn::from_frame(&p.to_immediate_frame()).unwrap(), p);
        let i = Sid::from_frame(&frame("sid\tnmPOSNET Thermal HS FV EJ\tvr6.01\t")).unwrap();
        assert_eq!(
            i,
            Sid {
                name: "POSNET Thermal HS FV EJ".into(),
                version: "6.01".into()
            }
        );
        assert_eq!(Sid::from_frame(&i.to_frame()).unwrap(), i);
    }

    #[test]
    fn wrong_mnemonic_and_error_reply() {
        assert!(matches!(
            Sprn::from_frame(&frame("sdev\tds0\t")),
            Err(ReplyError::WrongMnemonic { .. })
        ));
        assert_eq!(
            Scnt::from_frame(&Frame::error_reply("scnt", 2063)),
            Err(ReplyError::Refused {
                mnemonic: "scnt".into(),
                code: 2063
            })
        );
    }

    #[test]
    fn vat_table() {
        let t = VatTable::from_frame(&frame(
            "vatget\tva23,00\tvb8,00\tvc5,00\tvd0,00\tve101,00\tvf101,00\tvg100,00\t",
        ))
        .unwrap();
        assert_eq!(
            t.0,
            [
                VatRate::Percent(2300),
                VatRate::Percent(800),
                VatRate::Percent(500),
                VatRate::Percent(0),
                VatRate::Inactive,
                VatRate::Inactive,
                VatRate::Exempt
            ]
        );
        assert_eq!(VatTable::from_frame(&t.to_frame()).unwrap(), t);
        assert_eq!(VatTable::format_rate(VatRate::Percent(2300)), "23,00");
        assert_eq!(VatTable::format_rate(VatRate::Percent(550)), "5,50");
        assert_eq!(VatTable::format_rate(VatRate::Exempt), "100,00");
        assert_eq!(VatTable::format_rate(VatRate::Inactive), "101,00");
        assert_eq!(VatTable::parse_rate("5.5"), Some(VatRate::Percent(550)));
        assert_eq!(VatTable::parse_rate("8"), Some(VatRate::Percent(800)));
        for bad in ["", ",00", "23,000", "102,00", "-1,00", "2x,00", "23,"] {
            assert_eq!(VatTable::parse_rate(bad), None, "{bad:?}");
        }
        assert_eq!(
            VatTable::from_frame(&frame("vatget\tva23,00\t")),
            Err(ReplyError::Missing("vb"))
        );
    }

    #[test]
    fn rtc() {
        let want = chrono::NaiveDate::from_ymd_opt(2026, 9, 8)
            .unwrap()
            .and_hms_opt(17, 55, 0)
            .unwrap();
        for v in [
            "2026-09-08;17:55",
            "2026-09-08,17:55",
            "2026-09-08 17:55",
            "2026.09.08;17:55",
        ] {
            let f = frame(&format!("rtcget\tda{v}\ttm2026-09-08T17:55:13+02:00\t"));
            assert_eq!(Rtc::from_frame(&f).unwrap().datetime, want, "{v}");
        }
        let r = Rtc { datetime: want };
        assert_eq!(r.to_frame().get("da"), Some("2026-09-08;17:55"));
        assert_eq!(Rtc::from_frame(&r.to_frame()).unwrap(), r);
        assert!(matches!(
            Rtc::from_frame(&frame("rtcget\tda2026-13-08;17:55\t")),
            Err(ReplyError::BadValue { .. })
        ));
    }
}
