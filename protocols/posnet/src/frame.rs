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
        Frame { mnemonic: mnemonic.into(), params: Vec::new(), token: None, error_code: None }
    }

    /// Builder: append a parameter.
    pub fn with(mut self, name: &str, value: impl Into<String>) -> Self {
        self.params.push(Param { name: name.to_string(), value: value.into() });
        self
    }

    /// The first value of parameter `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.params.iter().find(|p| p.name == name).map(|p| p.value.as_str())
    }

    /// An error reply to `mnemonic` with code `code` (`mnemonic TAB ?code TAB`).
    pub fn error_reply(mnemonic: impl Into<String>, code: u32) -> Self {
        Frame { mnemonic: mnemonic.into(), params: Vec::new(), token: None, error_code: Some(code) }
    }

    /// True for frame-level error replies (`ERR`).
    pub fn is_frame_error(&self) -> bool {
        self.mnemonic == "ERR"
    }

    /// The payload (between STX and `#`), Windows-1250 encoded, values checked with
    /// [`crate::text::encode`] (LF allowed only where `allow_newline` says so).
    pub fn payload(&self) -> Result<Vec<u8>, crate::TextError> {
        todo!("helper: mnemonic TAB, params (name+value TAB), then @NNNN TAB, then ?code TAB for errors; checks names are 2 ASCII chars")
    }

    /// The full wire bytes: STX payload '#' CRC (4 uppercase hex) ETX.
    pub fn encode(&self) -> Result<Vec<u8>, crate::TextError> {
        todo!("helper")
    }
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
    pub fn next_item(&mut self) -> Option<Decoded> {
        todo!("helper")
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
pub fn decode_frame(bytes: &[u8]) -> Result<Frame, DecodeError> {
    todo!("helper")
}
