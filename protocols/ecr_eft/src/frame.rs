//! ECR-EFT framing: `STX token FS type FS field FS … field FS ETX LRC`.
//!
//! - The token is 1 to [`TOKEN_MAX_DIGITS`] hexadecimal digits; a reply echoes the token
//!   of the request it answers.
//! - The type is [`KIND_LEN`] characters (`T1`, `S2`, …).
//! - Every field is terminated by FS; a field's sub-fields are separated by US.
//! - The LRC is the XOR of every byte after STX up to and including ETX (init 0).
//!
//! [`Decoder`] reads a byte stream incrementally: it gives the same items however the
//! stream is split, resynchronises on the next STX after garbage, and skips bytes between
//! frames (a stray NUL after a frame, keep-alive control characters), reporting ACK and NAK
//! as such. A frame whose header is not a token and a type is dropped silently (it may be
//! noise that happened to contain STX); a frame that reaches ETX is checked by its LRC.

use std::fmt;

pub const STX: u8 = 0x02;
pub const ETX: u8 = 0x03;
pub const ACK: u8 = 0x06;
pub const NAK: u8 = 0x15;
pub const FS: u8 = 0x1C;
pub const US: u8 = 0x1F;
/// Some terminals (the "official simulator", per frobd) send a NUL after a frame.
pub const NUL: u8 = 0x00;

/// Longest token, in hex digits (second-hand: frobd's header grammar).
pub const TOKEN_MAX_DIGITS: usize = 6;
/// Length of the message type (`T1`, `S1`, …).
pub const KIND_LEN: usize = 2;
/// Longest frame body (bytes between the type's FS and ETX) we accept. Our own limit: the
/// specification's is unknown; the longest known message (S2, frobd's field sizes) is
/// under 400 bytes.
pub const MAX_BODY: usize = 8192;

/// A frame token. Equality is by value: `0023AB` and `23AB` are the same token, but a
/// reply is written with the digits its request had.
#[derive(Debug, Clone, Copy)]
pub struct Token {
    value: u32,
    digits: u8,
}

impl Token {
    /// A token of `digits` hex digits (clamped to 1..=6; a value that does not fit is
    /// reduced modulo 16^digits).
    pub fn new(value: u32, digits: usize) -> Token {
        let digits = digits.clamp(1, TOKEN_MAX_DIGITS);
        let modulus = 1u32 << (4 * digits);
        Token {
            value: value % modulus,
            digits: digits as u8,
        }
    }
    /// Parse 1 to 6 ASCII hex digits.
    pub fn parse(text: &[u8]) -> Option<Token> {
        if text.is_empty() || text.len() > TOKEN_MAX_DIGITS {
            return None;
        }
        let mut value = 0u32;
        for &b in text {
            value = value << 4 | char::from(b).to_digit(16)?;
        }
        Some(Token {
            value,
            digits: text.len() as u8,
        })
    }
    pub fn value(self) -> u32 {
        self.value
    }
    /// The wire form (upper-case hex, zero-padded to the token's digits).
    pub fn to_wire(self) -> Vec<u8> {
        format!("{:0w$X}", self.value, w = usize::from(self.digits)).into_bytes()
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Token) -> bool {
        self.value == other.value
    }
}
impl Eq for Token {}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:0w$X}", self.value, w = usize::from(self.digits))
    }
}

/// A message type, e.g. `*b"S1"`.
pub type Kind = [u8; KIND_LEN];

/// Display a kind (lossy for non-ASCII).
pub fn kind_str(kind: &Kind) -> String {
    kind.iter().map(|&b| char::from(b)).collect()
}

/// One frame: token, type and raw fields (sub-fields still joined by US).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub token: Token,
    pub kind: Kind,
    pub fields: Vec<Vec<u8>>,
}

/// Why a frame cannot be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("message type must be two printable ASCII characters")]
    Kind,
    #[error("field {0} contains a framing byte (STX, ETX or FS)")]
    Field(usize),
    #[error("frame body longer than {MAX_BODY} bytes")]
    TooLong,
}

fn kind_ok(kind: &Kind) -> bool {
    kind.iter().all(|b| b.is_ascii_alphanumeric())
}

impl Frame {
    pub fn new(token: Token, kind: Kind, fields: Vec<Vec<u8>>) -> Frame {
        Frame {
            token,
            kind,
            fields,
        }
    }
    /// Wire bytes, LRC included.
    pub fn encode(&self) -> Result<Vec<u8>, FrameError> {
        if !kind_ok(&self.kind) {
            return Err(FrameError::Kind);
        }
        let mut body_len = 0;
        for (i, f) in self.fields.iter().enumerate() {
            if f.iter().any(|&b| matches!(b, STX | ETX | FS)) {
                return Err(FrameError::Field(i));
            }
            body_len += f.len() + 1;
        }
        if body_len > MAX_BODY {
            return Err(FrameError::TooLong);
        }
        let mut out = Vec::with_capacity(body_len + 16);
        out.push(STX);
        out.extend_from_slice(&self.token.to_wire());
        out.push(FS);
        out.extend_from_slice(&self.kind);
        out.push(FS);
        for f in &self.fields {
            out.extend_from_slice(f);
            out.push(FS);
        }
        out.push(ETX);
        out.push(lrc(&out[1..]));
        Ok(out)
    }
}

/// XOR of `bytes` (pass everything after STX up to and including ETX).
pub fn lrc(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0, |a, b| a ^ b)
}

/// Split a body (between the type's FS and ETX) into fields: each is terminated by FS; an
/// unterminated last field is kept (lenient).
fn split_fields(body: &[u8]) -> Vec<Vec<u8>> {
    if body.is_empty() {
        return Vec::new();
    }
    let body = body.strip_suffix(&[FS]).unwrap_or(body);
    body.split(|&b| b == FS).map(<[u8]>::to_vec).collect()
}

/// What the decoder read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete frame; `lrc_ok` false means it must be NAKed.
    Frame {
        frame: Frame,
        lrc_ok: bool,
    },
    /// A frame whose body exceeded [`MAX_BODY`] (it must be NAKed).
    Oversized,
    Ack,
    Nak,
    /// A byte outside any frame that is not ACK/NAK (NUL, keep-alive characters, noise).
    Stray(u8),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum State {
    #[default]
    Hunt,
    Token,
    Kind,
    Body,
    /// ETX seen; the next byte is the LRC.
    Lrc,
    /// Oversized: skip to ETX, then the LRC byte.
    Skip,
    SkipLrc,
}

/// Incremental frame reader.
#[derive(Debug, Clone, Default)]
pub struct Decoder {
    state: State,
    token: Vec<u8>,
    kind: Vec<u8>,
    body: Vec<u8>,
    /// XOR so far of the bytes after STX.
    sum: u8,
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder::default()
    }
    /// True while inside a frame (after STX, before its LRC).
    pub fn in_frame(&self) -> bool {
        self.state != State::Hunt
    }
    /// Drop any partial frame.
    pub fn reset(&mut self) {
        self.state = State::Hunt;
        self.token.clear();
        self.kind.clear();
        self.body.clear();
        self.sum = 0;
    }
    /// Feed bytes; items are appended to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<Item>) {
        for &b in bytes {
            self.byte(b, out);
        }
    }
    /// Feed one byte.
    pub fn byte(&mut self, b: u8, out: &mut Vec<Item>) {
        match self.state {
            State::Hunt => match b {
                STX => self.start(),
                ACK => out.push(Item::Ack),
                NAK => out.push(Item::Nak),
                _ => out.push(Item::Stray(b)),
            },
            State::Token => match b {
                FS if !self.token.is_empty() => self.advance(b, State::Kind),
                _ if b.is_ascii_hexdigit() && self.token.len() < TOKEN_MAX_DIGITS => {
                    self.token.push(b);
                    self.sum ^= b;
                }
                _ => self.resync(b, out),
            },
            State::Kind => match b {
                FS if self.kind.len() == KIND_LEN => self.advance(b, State::Body),
                _ if b.is_ascii_alphanumeric() && self.kind.len() < KIND_LEN => {
                    self.kind.push(b);
                    self.sum ^= b;
                }
                _ => self.resync(b, out),
            },
            State::Body => match b {
                ETX => self.advance(b, State::Lrc),
                // A new frame starts: the peer gave up on this one.
                STX => self.start(),
                _ if self.body.len() >= MAX_BODY => self.state = State::Skip,
                _ => {
                    self.body.push(b);
                    self.sum ^= b;
                }
            },
            State::Lrc => {
                let lrc_ok = b == self.sum;
                let token = Token::parse(&self.token).unwrap_or(Token::new(0, 1));
                let mut kind = [0; KIND_LEN];
                kind.copy_from_slice(&self.kind);
                let frame = Frame::new(token, kind, split_fields(&self.body));
                self.reset();
                out.push(Item::Frame { frame, lrc_ok });
            }
            State::Skip => match b {
                ETX => self.state = State::SkipLrc,
                STX => self.start(),
                _ => {}
            },
            State::SkipLrc => {
                self.reset();
                out.push(Item::Oversized);
            }
        }
    }

    fn start(&mut self) {
        self.reset();
        self.state = State::Token;
    }

    fn advance(&mut self, b: u8, next: State) {
        self.sum ^= b;
        self.state = next;
    }

    /// The header was not a token and a type: forget the frame and read `b` afresh (it
    /// may be ACK, NAK or the STX of the real frame).
    fn resync(&mut self, b: u8, out: &mut Vec<Item>) {
        self.reset();
        self.byte(b, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_parse_and_wire() {
        let t = Token::parse(b"23AB").unwrap();
        assert_eq!(t.value(), 0x23AB);
        assert_eq!(t.to_wire(), b"23AB");
        assert_eq!(Token::parse(b"0023ab").unwrap(), t);
        assert_eq!(Token::parse(b"0023ab").unwrap().to_wire(), b"0023AB");
        assert!(Token::parse(b"").is_none());
        assert!(Token::parse(b"1234567").is_none());
        assert!(Token::parse(b"12G").is_none());
        assert_eq!(Token::new(0x1_000_000 + 5, 6).value(), 5);
    }

    #[test]
    fn header_garbage_resyncs_on_ack() {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.push(&[STX, b'1', ACK], &mut out);
        assert_eq!(out, vec![Item::Ack]);
        assert!(!d.in_frame());
    }

    #[test]
    fn oversized_is_reported() {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        let mut bytes = b"\x021\x1cS2\x1c".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', MAX_BODY + 10));
        bytes.extend_from_slice(&[ETX, 0x00]);
        d.push(&bytes, &mut out);
        assert_eq!(out, vec![Item::Oversized]);
        assert!(!d.in_frame());
    }
}
