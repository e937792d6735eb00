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

impl Scomm {
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        todo!("helper")
    }
}
impl Scnt {
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        todo!("helper")
    }
    /// The `scnt` reply a model printer sends for these counters.
    pub fn to_frame(&self) -> Frame {
        todo!("helper")
    }
}
impl Sdev {
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        todo!("helper")
    }
}
impl Sprn {
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        todo!("helper")
    }
}
impl Sid {
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        todo!("helper")
    }
}
impl VatTable {
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        todo!("helper: va..vg, comma decimal, 100,00 exempt, 101,00 inactive")
    }
    /// Wire form of one rate (`23,00`, `100,00`, `101,00`).
    pub fn format_rate(rate: VatRate) -> String {
        todo!("helper")
    }
}
impl Rtc {
    pub fn from_frame(f: &Frame) -> Result<Self, ReplyError> {
        todo!("helper")
    }
}

/// Letters of the seven PTU slots.
pub const SLOT_LETTERS: [char; 7] = ['A', 'B', 'C', 'D', 'E', 'F', 'G'];
