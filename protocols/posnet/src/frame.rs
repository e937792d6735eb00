//! POSNET frames: `STX mnemonic TAB {name value TAB}* [@NNNN TAB] # CRC4 ETX`.

/// Start of a frame.
pub const STX: u8 = 0x02;
/// End of a frame.
pub const ETX: u8 = 0x03;
/// Field separator.
pub const TAB: u8 = 0x09;

/// A frame's parameter: a two-character name and its value (decoded text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: String,
}

/// One POSNET frame, a command or a reply.
///
/// Replies that carry an error hold it in [`Frame::error_code`] rather than in `params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The command mnemonic, e.g. `trinit`, or `ERR` for frame-level errors; may start with `!`.
    pub mnemonic: String,
    /// Parameters in wire order (the printer accepts any order).
    pub params: Vec<Param>,
    /// The optional `@NNNN` token (0..=9999).
    pub token: Option<u16>,
    /// The error code of an error reply (`?NNNN` field, or the older `erNN`).
    pub error_code: Option<u32>,
}

impl Frame {
    /// A frame with no parameters.
    pub fn new(mnemonic: impl Into<String>) -> Self {
        Frame {
            mnemonic: mnemonic.into(),
            params: Vec::new(),
            token: None,
            error_code: None,
        }
    }

    /// Builder: append a parameter.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.push(Param {
            name: name.to_string(),
            value: value.into(),
        });
        self
    }

    /// Builder: set the `@NNNN` token (0..=9999; larger values are not valid tokens).
    pub fn with_token(mut self, token: u16) -> Self {
        self.token = Some(token);
        self
    }

    /// The first value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|p| p.name == name)
            .map(|p| p.value.as_str())
    }

    /// An error reply to `mnemonic` with code `code` (`mnemonic TAB ?code TAB`).
    pub fn error_reply(mnemonic: impl Into<String>, code: u32) -> Self {
        Frame {
            mnemonic: mnemonic.into(),
            params: Vec::new(),
            token: None,
            error_code: Some(code),
        }
    }

    /// True for frame-level error replies (`ERR`).
    pub fn is_frame_error(&self) -> bool {
        self.mnemonic == "ERR"
    }

    /// The payload (between STX and `#`), Windows-1250 encoded, values checked with
    /// [`crate::text::encode`] (LF allowed only where `allow_newline` says so).
    ///
    /// Layout: `mnemonic TAB {name value TAB}* [@NNNN TAB] [?code TAB]`. For `ERR`
    /// frames the printer's own order is used instead: `ERR TAB [@NNNN TAB] ?code TAB
    /// {name value TAB}*`. Checks: the mnemonic is non-empty printable ASCII (a
    /// leading `!` is fine); every parameter name is exactly two ASCII letters or
    /// digits; a token is at most 9999 (else [`crate::TextError::BadName`]); values
    /// carry no control characters (LF only in the multi-line fields `s1` and `tx`)
    /// and only Windows-1250 characters. An empty value is allowed:
    /// it still makes a non-empty field (`na TAB`), and whether the command accepts
    /// it is the printer's call (it answers with a command error, not a frame error).
    pub fn payload(&self) -> Result<Vec<u8>, crate::TextError> {
        use crate::TextError;
        if self.mnemonic.is_empty() || !self.mnemonic.chars().all(|c| c.is_ascii_graphic()) {
            return Err(TextError::BadName {
                name: self.mnemonic.clone(),
            });
        }
        if let Some(t) = self.token.filter(|&t| t > 9999) {
            return Err(TextError::BadName {
                name: format!("@{t}"),
            });
        }
        let mut params = Vec::with_capacity(self.params.len());
        for p in &self.params {
            let mut chars = p.name.chars();
            let ok = matches!((chars.next(), chars.next(), chars.next()),
                (Some(a), Some(b), None) if a.is_ascii_alphanumeric() && b.is_ascii_alphanumeric());
            if !ok {
                return Err(TextError::BadName {
                    name: p.name.clone(),
                });
            }
            let allow_newline = Self::allows_newline(&p.name);
            params.push((
                p.name.as_bytes().to_vec(),
                crate::text::encode(&p.value, allow_newline)?,
            ));
        }
        let mut out = Vec::new();
        self.write_payload(&mut out, self.mnemonic.as_bytes(), &params);
        Ok(out)
    }

    /// The full wire bytes: STX payload '#' CRC (4 uppercase hex) ETX.
    pub fn encode(&self) -> Result<Vec<u8>, crate::TextError> {
        Ok(wrap(&self.payload()?))
    }

    /// The payload without any checks, every string encoded with
    /// [`crate::text::encode_lossless`]. For frames that came from [`decode_frame`]
    /// this reproduces the received payload up to field order and formatting
    /// (trailing TAB, upper-case CRC, `?code` for a legacy `erNN`).
    pub fn payload_raw(&self) -> Vec<u8> {
        let mnemonic = crate::text::encode_lossless(&self.mnemonic);
        let params: Vec<(Vec<u8>, Vec<u8>)> = self
            .params
            .iter()
            .map(|p| {
                (
                    crate::text::encode_lossless(&p.name),
                    crate::text::encode_lossless(&p.value),
                )
            })
            .collect();
        let mut out = Vec::new();
        self.write_payload(&mut out, &mnemonic, &params);
        out
    }

    /// The full wire bytes without any text checks (see [`Frame::payload_raw`]).
    /// `decode_frame(&f.encode_raw())` gives back `f` for every frame `decode_frame`
    /// produced. Use this to re-send received frames or to answer as an emulated printer
    /// when the values are known to be clean.
    pub fn encode_raw(&self) -> Vec<u8> {
        wrap(&self.payload_raw())
    }

    /// Parameter names whose values may contain LF (multi-line text fields).
    pub fn allows_newline(name: &str) -> bool {
        matches!(name, "s1" | "tx")
    }

    fn write_payload(&self, out: &mut Vec<u8>, mnemonic: &[u8], params: &[(Vec<u8>, Vec<u8>)]) {
        out.extend_from_slice(mnemonic);
        out.push(TAB);
        let write_params = |out: &mut Vec<u8>| {
            for (name, value) in params {
                out.extend_from_slice(name);
                out.extend_from_slice(value);
                out.push(TAB);
            }
        };
        let write_token_and_code = |out: &mut Vec<u8>| {
            if let Some(t) = self.token {
                out.extend_from_slice(format!("@{t:04}").as_bytes());
                out.push(TAB);
            }
            if let Some(c) = self.error_code {
                out.extend_from_slice(format!("?{c}").as_bytes());
                out.push(TAB);
            }
        };
        if self.is_frame_error() {
            write_token_and_code(out);
            write_params(out);
        } else {
            write_params(out);
            write_token_and_code(out);
        }
    }
}

/// STX payload '#' CRC ETX.
fn wrap(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 7);
    out.push(STX);
    out.extend_from_slice(payload);
    out.push(b'#');
    out.extend_from_slice(format!("{:04X}", crate::crc::checksum(payload)).as_bytes());
    out.push(ETX);
    out
}

/// Why received bytes did not make a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("CRC mismatch: frame says {received:04X}, payload gives {computed:04X}")]
    BadCrc { received: u16, computed: u16 },
    #[error("frame has no '#' checksum marker")]
    MissingChecksum,
    #[error("checksum is not 4 hex digits")]
    BadChecksumSyntax,
    #[error("frame is longer than {max} bytes")]
    TooLong { max: usize },
    #[error("frame syntax: {0}")]
    Syntax(&'static str),
}

/// What the decoder produced from the bytes it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A well-formed frame.
    Frame(Frame),
    /// A frame-shaped byte run (STX..ETX) that failed to decode; `raw` is its bytes.
    Invalid { error: DecodeError, raw: Vec<u8> },
    /// Bytes outside any frame, skipped while resynchronising on the next STX.
    Garbage(Vec<u8>),
}

/// Incremental frame decoder: push bytes as they arrive, pull results.
/// The results do not depend on how the input was split.
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

/// Longest frame the decoder accepts before declaring it invalid and resynchronising.
pub const MAX_FRAME_LEN: usize = 8192;

impl FrameDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete item, or `None` if more bytes are needed.
    ///
    /// Bytes before an STX come out as one [`Decoded::Garbage`] once the STX arrives
    /// (or in pieces of [`MAX_FRAME_LEN`] bytes if no STX comes). An STX inside a
    /// pending frame turns the partial frame into garbage and starts over. A frame
    /// that reaches [`MAX_FRAME_LEN`] bytes without an ETX comes out as
    /// [`DecodeError::TooLong`] with its first [`MAX_FRAME_LEN`] bytes, and the
    /// decoder resynchronises on the next STX. Every decision depends only on bytes
    /// already seen, so the items do not depend on how the input was split.
    pub fn next_item(&mut self) -> Option<Decoded> {
        if self.buf.is_empty() {
            return None;
        }
        let limit = self.buf.len().min(MAX_FRAME_LEN);
        if self.buf[0] != STX {
            let n = match self.buf[..limit].iter().position(|&b| b == STX) {
                Some(i) => i,
                None if limit == MAX_FRAME_LEN => MAX_FRAME_LEN,
                None => return None,
            };
            return Some(Decoded::Garbage(self.buf.drain(..n).collect()));
        }
        match self.buf[1..limit]
            .iter()
            .position(|&b| b == STX || b == ETX)
        {
            Some(i) => {
                let at = i + 1;
                if self.buf[at] == STX {
                    Some(Decoded::Garbage(self.buf.drain(..at).collect()))
                } else {
                    let raw: Vec<u8> = self.buf.drain(..=at).collect();
                    Some(match decode_frame(&raw) {
                        Ok(f) => Decoded::Frame(f),
                        Err(error) => Decoded::Invalid { error, raw },
                    })
                }
            }
            None if limit == MAX_FRAME_LEN => Some(Decoded::Invalid {
                error: DecodeError::TooLong { max: MAX_FRAME_LEN },
                raw: self.buf.drain(..MAX_FRAME_LEN).collect(),
            }),
            None => None,
        }
    }

    /// Push `bytes` and collect every item that is complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Decoded> {
        self.push(bytes);
        std::iter::from_fn(|| self.next_item()).collect()
    }

    /// Bytes buffered but not yet decoded.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Drop everything buffered (after a reconnect).
    pub fn clear(&mut self) {
        self.buf.clear();
    }
}

/// Decode one complete frame from exactly `bytes` (STX..ETX).
///
/// The checksum marker is the last `#`; the CRC may be upper or lower case hex and is
/// checked before the fields are parsed. The TAB after the last field is optional.
/// Fields: the first is the mnemonic; `?NNNN` is the error code; `@NNNN` (exactly
/// four digits) is the token; in an `ERR` frame `erNN` is also the error code (older
/// devices); everything else is a parameter (name = first two bytes, value = the rest).
/// Empty fields, fields shorter than two bytes, a repeated token or error code, and
/// STX/ETX inside the frame are syntax errors.
pub fn decode_frame(bytes: &[u8]) -> Result<Frame, DecodeError> {
    if bytes.len() > MAX_FRAME_LEN {
        return Err(DecodeError::TooLong { max: MAX_FRAME_LEN });
    }
    let inner = match bytes {
        [STX, inner @ .., ETX] => inner,
        _ => {
            return Err(DecodeError::Syntax(
                "frame must start with STX and end with ETX",
            ));
        }
    };
    if inner.iter().any(|&b| b == STX || b == ETX) {
        return Err(DecodeError::Syntax("STX or ETX inside the frame"));
    }
    let hash = inner
        .iter()
        .rposition(|&b| b == b'#')
        .ok_or(DecodeError::MissingChecksum)?;
    let (payload, crc_field) = (&inner[..hash], &inner[hash + 1..]);
    let received = parse_hex4(crc_field).ok_or(DecodeError::BadChecksumSyntax)?;
    let computed = crate::crc::checksum(payload);
    if received != computed {
        return Err(DecodeError::BadCrc { received, computed });
    }

    let payload = payload.strip_suffix(&[TAB]).unwrap_or(payload);
    let mut fields = payload.split(|&b| b == TAB);
    let mnemonic = match fields.next() {
        Some(m) if !m.is_empty() => crate::text::decode(m),
        _ => return Err(DecodeError::Syntax("empty mnemonic")),
    };
    let is_err = mnemonic == "ERR";
    let mut frame = Frame::new(mnemonic);
    for field in fields {
        match field {
            [] => return Err(DecodeError::Syntax("empty field")),
            [b'?', digits @ ..] => {
                let code = parse_decimal(digits).ok_or(DecodeError::Syntax("bad error code"))?;
                set_error_code(&mut frame, code)?;
            }
            [b'@', digits @ ..] => {
                if frame.token.is_some() {
                    return Err(DecodeError::Syntax("more than one token"));
                }
                frame.token = Some(parse_token(digits).ok_or(DecodeError::Syntax("bad token"))?);
            }
            [b'e', b'r', digits @ ..]
                if is_err && !digits.is_empty() && digits.iter().all(u8::is_ascii_digit) =>
            {
                let code = parse_decimal(digits).ok_or(DecodeError::Syntax("bad error code"))?;
                set_error_code(&mut frame, code)?;
            }
            [_] => return Err(DecodeError::Syntax("field without a two-character name")),
            [a, b, value @ ..] => frame.params.push(Param {
                name: crate::text::decode(&[*a, *b]),
                value: crate::text::decode(value),
            }),
        }
    }
    Ok(frame)
}

fn set_error_code(frame: &mut Frame, code: u32) -> Result<(), DecodeError> {
    if frame.error_code.is_some() {
        return Err(DecodeError::Syntax("more than one error code"));
    }
    frame.error_code = Some(code);
    Ok(())
}

/// Exactly four hex digits, either case.
fn parse_hex4(b: &[u8]) -> Option<u16> {
    if b.len() != 4 {
        return None;
    }
    b.iter().try_fold(0u16, |acc, &c| {
        let d = char::from(c).to_digit(16)?;
        Some(acc * 16 + u16::try_from(d).ok()?)
    })
}

/// One or more decimal digits that fit a u32.
fn parse_decimal(b: &[u8]) -> Option<u32> {
    if b.is_empty() {
        return None;
    }
    b.iter().try_fold(0u32, |acc, &c| {
        if !c.is_ascii_digit() {
            return None;
        }
        acc.checked_mul(10)?.checked_add(u32::from(c - b'0'))
    })
}

/// Exactly four decimal digits.
fn parse_token(b: &[u8]) -> Option<u16> {
    if b.len() != 4 {
        return None;
    }
    u16::try_from(parse_decimal(b)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_encodes() {
        let f = Frame::new("trinit").with("bm", "0");
        assert_eq!(f.encode().unwrap(), b"\x02trinit\tbm0\t#4825\x03".to_vec());
        assert_eq!(f.encode_raw(), f.encode().unwrap());
    }

    #[test]
    fn error_reply_layouts() {
        let f = Frame::error_reply("trline", 2000);
        assert_eq!(
            f.encode().unwrap(),
            b"\x02trline\t?2000\t#2F0E\x03".to_vec()
        );
        let mut e = Frame::error_reply("ERR", 5).with("cm", "trline");
        e.token = Some(7);
        assert_eq!(e.payload().unwrap(), b"ERR\t@0007\t?5\tcmtrline\t".to_vec());
        assert_eq!(decode_frame(&e.encode().unwrap()).unwrap(), e);
    }

    #[test]
    fn bad_names_and_values_refused() {
        use crate::TextError;
        assert!(matches!(
            Frame::new("x").with("abc", "1").payload(),
            Err(TextError::BadName { .. })
        ));
        assert!(matches!(
            Frame::new("x").with("?a", "1").payload(),
            Err(TextError::BadName { .. })
        ));
        assert!(matches!(
            Frame::new("").payload(),
            Err(TextError::BadName { .. })
        ));
        assert_eq!(
            Frame::new("x").with("na", "a\tb").payload(),
            Err(TextError::Control {
                ch: '\t',
                position: 1
            })
        );
        assert_eq!(
            Frame::new("x").with("na", "a\nb").payload(),
            Err(TextError::Control {
                ch: '\n',
                position: 1
            })
        );
        assert!(Frame::new("formline").with("s1", "a\nb").payload().is_ok());
    }

    #[test]
    fn decoder_basic() {
        let mut d = FrameDecoder::new();
        let items = d.feed(b"xx\x02trinit\t#911D\x03\x02abc\x02ERR\t?5\t#7f84\x03");
        assert_eq!(
            items,
            vec![
                Decoded::Garbage(b"xx".to_vec()),
                Decoded::Frame(Frame::new("trinit")),
                Decoded::Garbage(b"\x02abc".to_vec()),
                Decoded::Frame(Frame::error_reply("ERR", 5)),
            ]
        );
        assert_eq!(d.pending(), 0);
    }

    #[test]
    fn decoder_too_long() {
        let mut d = FrameDecoder::new();
        let mut input = vec![STX];
        input.extend(std::iter::repeat_n(b'a', MAX_FRAME_LEN + 10));
        input.extend_from_slice(b"\x02trinit\t#911D\x03");
        let items = d.feed(&input);
        assert_eq!(items.len(), 3);
        assert!(
            matches!(&items[0], Decoded::Invalid { error: DecodeError::TooLong { .. }, raw } if raw.len() == MAX_FRAME_LEN)
        );
        assert_eq!(items[1], Decoded::Garbage(vec![b'a'; 11]));
        assert_eq!(items[2], Decoded::Frame(Frame::new("trinit")));
    }
}
