//! ESC P frames: the XOR checksum, [`Frame`], and the incremental [`Decoder`].
//!
//! `ESC P` (1B 50), the numeric parameters `Ps;…;Pn`, a 2-character command (`$x` or `#x`),
//! its fields, the checksum `cc` and `ESC \` (1B 5C). `cc` is 0xFF XORed with every byte
//! after `ESC P` up to the checksum, as two hex digits (uppercase sent, either case taken).
//! Some frames carry no checksum (the `#n`, `#v` and `#s` queries may omit it; `#E` and `#R`
//! replies have none), so a [`Frame`] keeps its bytes as they came and the typed layers
//! decide ([`Frame::body_checked`], [`Frame::body_optional_checksum`]).

/// ESC.
pub const ESC: u8 = 0x1B;
/// The byte after ESC that opens a frame.
pub const OPEN: u8 = b'P';
/// The byte after ESC that closes a frame.
pub const CLOSE: u8 = b'\\';
/// Frames longer than this (between `ESC P` and `ESC \`) are refused as damaged. The
/// longest real command (a receipt close with extra lines) is far shorter.
pub const MAX_FRAME: usize = 4096;

/// The checksum of `bytes`: 0xFF XOR every byte.
pub fn checksum(bytes: &[u8]) -> u8 {
    bytes.iter().fold(0xFF, |c, b| c ^ b)
}

/// `byte` as two uppercase hex digits.
pub fn hex2(byte: u8) -> [u8; 2] {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    [
        DIGITS[usize::from(byte >> 4)],
        DIGITS[usize::from(byte & 0x0F)],
    ]
}

/// Two hex digits (either case) as a byte.
pub fn parse_hex2(d: &[u8]) -> Option<u8> {
    let s = std::str::from_utf8(d).ok()?;
    if s.len() != 2 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(s, 16).ok()
}

/// Why a frame's bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// No `$x`/`#x` command after the parameters, or the parameters hold other bytes.
    #[error(
        "no command in the frame (parameters must be digits and ';', then '$' or '#' and a letter)"
    )]
    NoCommand,
    /// A new `ESC P` came before `ESC \`: the frame was cut off.
    #[error("frame cut off by the next ESC P")]
    Truncated,
    /// Longer than [`MAX_FRAME`].
    #[error("frame longer than {MAX_FRAME} bytes")]
    TooLong,
    /// The checksum is missing or wrong.
    #[error("bad checksum: expected {expected:02X}, got {got}")]
    BadChecksum { expected: u8, got: String },
}

/// One frame: parameters, command and the bytes after the command (fields and, when the
/// frame has one, the checksum), as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The parameter bytes before the command (`1;0;0`), possibly empty.
    pub params: Vec<u8>,
    /// The two command bytes (`$h`, `#s`, `#X`).
    pub command: [u8; 2],
    /// Everything after the command up to `ESC \`.
    pub data: Vec<u8>,
}

impl Frame {
    /// A frame with `params` (numbers joined by `;`), `command` and `fields`, without a
    /// checksum yet (see [`Frame::with_checksum`]).
    pub fn new(params: &[u32], command: &str, fields: Vec<u8>) -> Frame {
        let params = params
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(";")
            .into_bytes();
        Frame::raw(params, command, fields)
    }

    /// A frame from raw parameter bytes.
    pub fn raw(params: Vec<u8>, command: &str, data: Vec<u8>) -> Frame {
        let c = command.as_bytes();
        Frame {
            params,
            command: [
                c.first().copied().unwrap_or(b'#'),
                c.get(1).copied().unwrap_or(b'?'),
            ],
            data,
        }
    }

    /// This frame with its checksum appended to `data`.
    pub fn with_checksum(mut self) -> Frame {
        let cc = checksum(&self.checked_bytes(self.data.len()));
        self.data.extend_from_slice(&hex2(cc));
        self
    }

    /// The command as text (`$h`).
    pub fn command_str(&self) -> String {
        String::from_utf8_lossy(&self.command).into_owned()
    }

    /// The parameters as numbers; `None` if one is not a whole number. Empty: `[]`.
    pub fn param_numbers(&self) -> Option<Vec<u32>> {
        if self.params.is_empty() {
            return Some(Vec::new());
        }
        self.params
            .split(|b| *b == b';')
            .map(|p| std::str::from_utf8(p).ok()?.parse().ok())
            .collect()
    }

    /// The bytes the checksum covers when the fields are `data[..end]`.
    fn checked_bytes(&self, end: usize) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.params.len() + 2 + end);
        v.extend_from_slice(&self.params);
        v.extend_from_slice(&self.command);
        v.extend_from_slice(&self.data[..end]);
        v
    }

    /// Whether the last two bytes of `data` are a correct checksum.
    pub fn has_valid_checksum(&self) -> bool {
        let n = self.data.len();
        n >= 2
            && parse_hex2(&self.data[n - 2..])
                .is_some_and(|cc| cc == checksum(&self.checked_bytes(n - 2)))
    }

    /// The fields, after checking and removing the checksum the frame must carry.
    pub fn body_checked(&self) -> Result<&[u8], FrameError> {
        if self.has_valid_checksum() {
            return Ok(&self.data[..self.data.len() - 2]);
        }
        let n = self.data.len();
        let (expected, got) = if n >= 2 {
            (
                checksum(&self.checked_bytes(n - 2)),
                String::from_utf8_lossy(&self.data[n - 2..]).into_owned(),
            )
        } else {
            (checksum(&self.checked_bytes(n)), String::new())
        };
        Err(FrameError::BadChecksum { expected, got })
    }

    /// The fields of a frame whose checksum is optional: without the checksum when the last
    /// two bytes are a correct one, else all of `data`.
    pub fn body_optional_checksum(&self) -> &[u8] {
        if self.has_valid_checksum() {
            &self.data[..self.data.len() - 2]
        } else {
            &self.data
        }
    }

    /// The frame's bytes on the wire, `ESC P` to `ESC \`.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.params.len() + self.data.len() + 6);
        v.extend_from_slice(&[ESC, OPEN]);
        v.extend_from_slice(&self.params);
        v.extend_from_slice(&self.command);
        v.extend_from_slice(&self.data);
        v.extend_from_slice(&[ESC, CLOSE]);
        v
    }

    /// Parse the bytes between `ESC P` and `ESC \`.
    pub fn parse(content: &[u8]) -> Result<Frame, FrameError> {
        let at = content
            .iter()
            .position(|b| *b == b'$' || *b == b'#')
            .ok_or(FrameError::NoCommand)?;
        let params = &content[..at];
        if !params
            .iter()
            .all(|b| b.is_ascii_digit() || *b == b';' || *b == b'.')
        {
            return Err(FrameError::NoCommand);
        }
        let Some(letter) = content.get(at + 1).copied() else {
            return Err(FrameError::NoCommand);
        };
        if !letter.is_ascii_alphabetic() {
            return Err(FrameError::NoCommand);
        }
        Ok(Frame {
            params: params.to_vec(),
            command: [content[at], letter],
            data: content[at + 2..].to_vec(),
        })
    }
}

/// What the decoder found in the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// A complete frame (its checksum is checked by the typed layer that knows the command).
    Frame(Frame),
    /// A single byte outside any frame: a status byte (ENQ/DLE answers), a single-byte query
    /// (ENQ, DLE, BEL, CAN) or garbage; the reader decides which.
    Byte(u8),
    /// Bytes that looked like a frame but are not one.
    Invalid { raw: Vec<u8>, error: FrameError },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between frames.
    Idle,
    /// Between frames, after an ESC.
    IdleEsc,
    /// Inside a frame.
    In,
    /// Inside a frame, after an ESC.
    InEsc,
    /// Skipping an overlong frame until `ESC \` or `ESC P`.
    Skip,
    SkipEsc,
}

/// The incremental frame decoder. Feed it bytes as they arrive ([`Decoder::push`]) and take
/// items out ([`Decoder::next_item`]); the items do not depend on how the bytes were split.
/// After garbage or a damaged frame it resynchronises on the next `ESC P`.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    buf: Vec<u8>,
    out: std::collections::VecDeque<Item>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            state: State::Idle,
            buf: Vec::new(),
            out: std::collections::VecDeque::new(),
        }
    }

    /// Forget any partial frame (after reconnecting the line may hold half a frame).
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.buf.clear();
    }

    /// Whether a frame has begun and not ended.
    pub fn in_frame(&self) -> bool {
        !matches!(self.state, State::Idle | State::IdleEsc)
    }

    /// Take in `bytes`.
    pub fn push(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    /// The next decoded item, if one is complete.
    pub fn next_item(&mut self) -> Option<Item> {
        self.out.pop_front()
    }

    fn open(&mut self) {
        self.buf.clear();
        self.state = State::In;
    }

    fn byte(&mut self, b: u8) {
        match self.state {
            State::Idle => {
                if b == ESC {
                    self.state = State::IdleEsc;
                } else {
                    self.out.push_back(Item::Byte(b));
                }
            }
            State::IdleEsc => match b {
                OPEN => self.open(),
                ESC => self.out.push_back(Item::Byte(ESC)),
                _ => {
                    self.out.push_back(Item::Byte(ESC));
                    self.state = State::Idle;
                    self.byte(b);
                }
            },
            State::In => {
                if b == ESC {
                    self.state = State::InEsc;
                } else {
                    self.content(b);
                }
            }
            State::InEsc => match b {
                CLOSE => {
                    let raw = std::mem::take(&mut self.buf);
                    self.state = State::Idle;
                    self.out.push_back(match Frame::parse(&raw) {
                        Ok(f) => Item::Frame(f),
                        Err(error) => Item::Invalid { raw, error },
                    });
                }
                OPEN => {
                    let raw = std::mem::take(&mut self.buf);
                    self.out.push_back(Item::Invalid {
                        raw,
                        error: FrameError::Truncated,
                    });
                    self.open();
                }
                _ => {
                    self.state = State::In;
                    self.content(ESC);
                    self.byte(b);
                }
            },
            State::Skip => {
                if b == ESC {
                    self.state = State::SkipEsc;
                }
            }
            State::SkipEsc => match b {
                CLOSE => self.state = State::Idle,
                OPEN => self.open(),
                ESC => {}
                _ => self.state = State::Skip,
            },
        }
    }

    fn content(&mut self, b: u8) {
        self.buf.push(b);
        if self.buf.len() > MAX_FRAME {
            let raw = std::mem::take(&mut self.buf);
            self.out.push_back(Item::Invalid {
                raw,
                error: FrameError::TooLong,
            });
            self.state = State::Skip;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_of_the_published_lbserm_example() {
        assert_eq!(checksum(b"1#e"), 0x88);
        let f = Frame::new(&[1], "#e", Vec::new()).with_checksum();
        assert_eq!(f.encode(), b"\x1bP1#e88\x1b\\");
    }

    #[test]
    fn esc_followed_by_another_byte_inside_a_frame_is_content() {
        let mut d = Decoder::new();
        d.push(b"\x1bP#v\x1bx\x1b\\");
        let Some(Item::Frame(f)) = d.next_item() else {
            panic!("no frame")
        };
        assert_eq!(f.data, b"\x1bx");
    }
}
