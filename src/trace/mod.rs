//! Wire traces: every byte a device link writes or reads, with its time, in a
//! line-oriented text file that people can read and `fiscald replay` can play.
//!
//! # Format (version 1)
//!
//! ```text
//! # fiscald trace v1 device=fp1 protocol=posnet fiscald=0.1.0 start=2025-05-01T10:00:00.000000Z
//! 2025-05-01T10:00:00.001234Z fp1 > 027369640940303132330923...03  # sid @0123
//! 2025-05-01T10:00:00.004321Z fp1 < 027369640970726e...03  # sid nm="POSNET Thermal" @0123
//! ```
//!
//! - Lines starting with `#` are comments. The first one names the device, the protocol
//!   (`posnet` or `zvt`), the fiscald version and the start time.
//! - Every other line is `<time> <device> <dir> <hex>  # <summary>`:
//!   - `time`: RFC 3339 in UTC with microseconds;
//!   - `dir`: `>` host to device (what fiscald wrote), `<` device to host (what it read);
//!   - `hex`: the bytes, lower-case, no spaces;
//!   - `summary`: a decoded reading for people; replay ignores it.
//! - **POSNET**: one line per write (one frame) or per read (a chunk as the port returned
//!   it, so a frame may span lines). The hex is exactly the wire bytes. The summary shows
//!   the frames completed by the chunk: mnemonic, `name=value` fields with the text
//!   decoded from Windows-1250 (Polish letters as they are), `?code` for errors and
//!   `@NNNN` for the token.
//! - **ZVT**: the header also names the link (`link=serial` or `link=tcp`).
//!   - `link=serial`: one line per link item as it crossed the line, cut by
//!     [`zvt::link::LinkSplitter`] (the same reading of the framing as the daemon's link
//!     layer): a whole frame (`DLE STX` APDU `DLE ETX` CRC, however the port chunked it),
//!     an `06` ACK, a `15` NAK, a frame that never ended (cut short by a new `DLE STX`, or
//!     broken by a malformed DLE sequence), or stray bytes. Repetitions, NAKs and bad CRCs
//!     are kept as they happened.
//!   - `link=tcp`: one line per APDU, the wire bytes.
//!   - Card data is masked **in place**, by [`zvt_link::masked_apdu`]: a card number in
//!     BMP 22 keeps at most its first 6 and last 4 digits, the others become the mask
//!     nibble `E`; track data (23, 24, 2D), CVV (3A), expiry (0E), TLV 1F08..1F0A and data
//!     that does not read as fields become `ee` bytes; the terminal password becomes
//!     `000000`; hidden digits of a card number in any text (print lines, display and abort
//!     texts, card name, additional text; see [`zvt::pan::mask_in_text`]) become `*`
//!     (`2a`); a frame that never ended is hidden but for its `DLE STX` and DLE bytes.
//!     Every length stays true, a serial frame is stuffed again and its CRC recomputed (a
//!     frame received with a bad CRC is written with a bad one), so the masked trace still
//!     decodes, and the same input is always masked the same way. A ZVT trace is safe to
//!     share, and `fiscald replay` plays it (see [`crate::replay::zvt`]): the terminal's
//!     masked messages are sent as recorded, the register's are masked the same way before
//!     they are compared.
//!   - Traces of older versions wrote `**` for hidden bytes and had no `link=`; they are
//!     read, not replayed.
//! - Comment lines `# <time> port <port> opened` mark each (re)open of the device's port
//!   (each attempt, also one that fails); ZVT replay on TCP takes each as a new connection.
//! - Trace files are created with mode 0600, whatever the umask.
//! - Files are `DIR/<device>-<start time>.trace`; a file that passes [`ROTATE_AT`] bytes is
//!   closed and the next line starts a new file with its own header.
//!
//! Recording never blocks a device task: lines go through a channel to a writer thread
//! that formats them, writes through a buffer and flushes whenever the channel is empty.
//! A recorder is attached to a device by the port path its task opens ([`register`],
//! [`for_port`]), so the link code needs only one call per read and per write.

use chrono::{DateTime, SecondsFormat, Utc};
use std::collections::HashMap;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};

pub mod zvt_link;

/// A trace file is rotated once it passes this size.
pub const ROTATE_AT: u64 = 16 * 1024 * 1024;

/// The wire protocol of a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Posnet,
    Zvt,
    /// Thermal (ESC P); recorded, not replayed.
    Thermal,
    NovitusXml,
}

impl Protocol {
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Posnet => "posnet",
            Protocol::Zvt => "zvt",
            Protocol::Thermal => "thermal",
            Protocol::NovitusXml => "novitus-xml",
        }
    }
}

/// The link a ZVT trace was recorded on (the header's `link=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// A serial line: the trace holds the link layer (frames, ACK, NAK).
    Serial,
    /// TCP: the trace holds bare APDUs.
    Tcp,
}

impl Link {
    /// The header's name for it.
    pub fn name(self) -> &'static str {
        match self {
            Link::Serial => "serial",
            Link::Tcp => "tcp",
        }
    }

    /// The link a device port (`tcp://...` or a path) opens.
    pub fn of_port(port: &str) -> Link {
        if port.starts_with("tcp://") {
            Link::Tcp
        } else {
            Link::Serial
        }
    }
}

/// Which way bytes went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// Host to device (`>`).
    Out,
    /// Device to host (`<`).
    In,
}

impl Dir {
    pub fn symbol(self) -> char {
        match self {
            Dir::Out => '>',
            Dir::In => '<',
        }
    }
}

enum Msg {
    Bytes(DateTime<Utc>, Dir, Vec<u8>),
    Apdu(DateTime<Utc>, Dir, zvt::Apdu),
    Link(DateTime<Utc>, Dir, Vec<u8>),
    Note(DateTime<Utc>, String),
}

/// The recording side of one device's trace. Cheap to clone; sending never blocks.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::Sender<Msg>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Recorder")
    }
}

impl Recorder {
    /// Start recording `device` into `dir` (created if needed). The first file is opened
    /// here, so a directory that cannot be written is reported at start.
    pub fn start(
        dir: &Path,
        device: &str,
        protocol: Protocol,
        rotate_at: u64,
    ) -> std::io::Result<Recorder> {
        Self::start_on(dir, device, protocol, None, rotate_at)
    }

    /// [`Recorder::start`] naming the link in the header (ZVT: serial or TCP).
    pub fn start_on(
        dir: &Path,
        device: &str,
        protocol: Protocol,
        link: Option<Link>,
        rotate_at: u64,
    ) -> std::io::Result<Recorder> {
        std::fs::create_dir_all(dir)?;
        let mut writer = Writer {
            dir: dir.to_path_buf(),
            device: device.to_string(),
            protocol,
            link,
            splitters: Default::default(),
            stray: Default::default(),
            rotate_at,
            file: None,
            written: 0,
            decoders: [posnet::FrameDecoder::new(), posnet::FrameDecoder::new()],
        };
        writer.open(Utc::now())?;
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name(format!("trace-{device}"))
            .spawn(move || writer.run(rx))?;
        Ok(Recorder { tx })
    }

    /// Record raw bytes (POSNET).
    pub fn bytes(&self, dir: Dir, bytes: &[u8]) {
        let _ = self.tx.send(Msg::Bytes(Utc::now(), dir, bytes.to_vec()));
    }

    /// Record one APDU (ZVT); it is masked before anything is written.
    pub fn apdu(&self, dir: Dir, apdu: &zvt::Apdu) {
        let _ = self.tx.send(Msg::Apdu(Utc::now(), dir, apdu.clone()));
    }

    /// Record raw bytes of a ZVT serial line; they are cut into link items and masked
    /// before anything is written.
    pub fn link_bytes(&self, dir: Dir, bytes: &[u8]) {
        let _ = self.tx.send(Msg::Link(Utc::now(), dir, bytes.to_vec()));
    }

    /// Write a comment line (e.g. "port opened").
    pub fn note(&self, text: &str) {
        let _ = self.tx.send(Msg::Note(Utc::now(), text.to_string()));
    }
}

fn registry() -> &'static Mutex<HashMap<String, Recorder>> {
    static REG: OnceLock<Mutex<HashMap<String, Recorder>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

/// Attach `recorder` to the device opened at `port` (a path or `tcp://...`).
pub fn register(port: &str, recorder: Recorder) {
    registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(port.to_string(), recorder);
}

/// The recorder of the device opened at `port`, if it is recorded.
pub fn for_port(port: &str) -> Option<Recorder> {
    let rec = registry()
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(port)
        .cloned();
    if let Some(r) = &rec {
        r.note(&format!("port {port} opened"));
    }
    rec
}

/// Where a device's trace goes: `--record DIR` wins; else `record = true` puts it in
/// `traces/` next to the journal; else the device is not recorded.
pub fn dir_for(config: &crate::config::Config, record: bool) -> Option<PathBuf> {
    if let Some(d) = &config.record_dir {
        return Some(d.clone());
    }
    record.then(|| {
        config
            .journal
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."))
            .join("traces")
    })
}

/// One device port that may be recorded: its id, its `record` setting, the path (or
/// `tcp://` address) its task opens, and its protocol.
pub struct RecordedPort<'a> {
    pub id: &'a str,
    pub record: bool,
    pub port: &'a str,
    pub protocol: Protocol,
}

/// Start a recorder for every device that is recorded (see [`dir_for`]) and attach it to
/// the port its task opens. Called by `serve` once the ports are known.
pub fn start_recording<'a>(
    config: &crate::config::Config,
    devices: impl IntoIterator<Item = RecordedPort<'a>>,
) -> anyhow::Result<()> {
    use anyhow::Context;
    for RecordedPort {
        id,
        record,
        port,
        protocol,
    } in devices
    {
        if let Some(dir) = dir_for(config, record) {
            let link = (protocol == Protocol::Zvt).then(|| Link::of_port(port));
            let rec = Recorder::start_on(&dir, id, protocol, link, ROTATE_AT)
                .with_context(|| format!("cannot record {id} into {}", dir.display()))?;
            tracing::info!(device = %id, dir = %dir.display(), "recording a wire trace");
            register(port, rec);
        }
    }
    Ok(())
}

/// The time format of trace lines.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

struct Writer {
    dir: PathBuf,
    device: String,
    protocol: Protocol,
    link: Option<Link>,
    /// ZVT serial link splitters: [out, in].
    splitters: [zvt_link::LinkSplitter; 2],
    /// Stray ZVT bytes held until their run ends ([out, in]), with the time of the first:
    /// a card number cut across two reads must be masked as one text.
    stray: [Option<(DateTime<Utc>, Vec<u8>)>; 2],
    rotate_at: u64,
    file: Option<std::io::BufWriter<std::fs::File>>,
    written: u64,
    /// POSNET decoders for the summaries: [out, in].
    decoders: [posnet::FrameDecoder; 2],
}

impl Writer {
    fn open(&mut self, at: DateTime<Utc>) -> std::io::Result<()> {
        if let Some(mut f) = self.file.take() {
            let _ = f.flush();
        }
        let stamp = at.format("%Y%m%dT%H%M%S%.6fZ");
        let mut path = self.dir.join(format!("{}-{stamp}.trace", self.device));
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = self.dir.join(format!("{}-{stamp}-{n}.trace", self.device));
        }
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .mode(0o600)
            .open(&path)?;
        // The umask can only take bits away; make sure no group or other bit was left.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        self.file = Some(std::io::BufWriter::new(file));
        self.written = 0;
        let header = format!(
            "# fiscald trace v1 device={} protocol={}{} fiscald={} start={}\n# <time> <device> <dir: > host to device, < device to host> <hex>  # <summary>\n",
            self.device,
            self.protocol.name(),
            self.link
                .map(|l| format!(" link={}", l.name()))
                .unwrap_or_default(),
            env!("CARGO_PKG_VERSION"),
            format_time(at)
        );
        self.write(&header);
        Ok(())
    }

    fn write(&mut self, line: &str) {
        if let Some(f) = &mut self.file
            && f.write_all(line.as_bytes()).is_ok()
        {
            self.written += line.len() as u64;
        }
    }

    fn run(mut self, rx: mpsc::Receiver<Msg>) {
        while let Ok(msg) = rx.recv() {
            self.handle(msg);
            while let Ok(msg) = rx.try_recv() {
                self.handle(msg);
            }
            if let Some(f) = &mut self.file {
                let _ = f.flush();
            }
        }
        for d in [Dir::Out, Dir::In] {
            let text = self.flush_stray(d, 0);
            self.write(&text);
        }
        if let Some(f) = &mut self.file {
            let _ = f.flush();
        }
    }

    /// One trace line for a ZVT link item, masked.
    fn link_line(&self, at: DateTime<Utc>, dir: Dir, item: &zvt_link::LinkItem) -> String {
        let masked = zvt_link::masked_item(item);
        format!(
            "{} {} {} {}  # {}\n",
            format_time(at),
            self.device,
            dir.symbol(),
            hex::encode(masked.to_wire()),
            zvt_link::describe_item(item)
        )
    }

    /// Write the stray bytes held for `dir` (masked as one run), keeping the last `keep`
    /// of them held: the start of a number that may go on in the next read.
    fn flush_stray(&mut self, dir: Dir, keep: usize) -> String {
        let d = usize::from(dir == Dir::In);
        let Some((at, bytes)) = self.stray[d].take() else {
            return String::new();
        };
        let cut = bytes.len().saturating_sub(keep);
        // Masked as a whole, written up to the cut; what is kept stays clear for the next
        // pass, which sees it together with what follows.
        let masked = zvt_link::masked_item_bytes(&zvt_link::LinkItem::Other(bytes.clone()));
        if cut < bytes.len() {
            self.stray[d] = Some((at, bytes[cut..].to_vec()));
        }
        if cut == 0 {
            return String::new();
        }
        let item = zvt_link::LinkItem::Other(masked[..cut].to_vec());
        format!(
            "{} {} {} {}  # {}\n",
            format_time(at),
            self.device,
            dir.symbol(),
            hex::encode(&masked[..cut]),
            zvt_link::describe_item(&item)
        )
    }

    fn handle(&mut self, msg: Msg) {
        let (at, line) = match msg {
            Msg::Note(at, text) => {
                let mut line = self.flush_stray(Dir::Out, 0);
                line.push_str(&self.flush_stray(Dir::In, 0));
                line.push_str(&format!("# {} {text}\n", format_time(at)));
                (at, line)
            }
            Msg::Bytes(at, dir, bytes) => {
                let summary = self.posnet_summary(dir, &bytes);
                let line = format!(
                    "{} {} {} {}  # {summary}\n",
                    format_time(at),
                    self.device,
                    dir.symbol(),
                    hex::encode(&bytes)
                );
                (at, line)
            }
            Msg::Apdu(at, dir, apdu) => {
                let line = format!(
                    "{} {} {} {}  # {}\n",
                    format_time(at),
                    self.device,
                    dir.symbol(),
                    hex::encode(zvt_link::masked_apdu(&apdu).encode()),
                    zvt_name(&apdu)
                );
                (at, line)
            }
            Msg::Link(at, dir, bytes) => {
                let d = usize::from(dir == Dir::In);
                let items = self.splitters[d].push(&bytes);
                let mut text = String::new();
                for item in items {
                    match item {
                        zvt_link::LinkItem::Other(b) => {
                            let held = self.stray[d].get_or_insert_with(|| (at, Vec::new()));
                            held.1.extend(b);
                            if held.1.len() >= STRAY_HOLD {
                                text.push_str(&self.flush_stray(dir, STRAY_KEEP));
                            }
                        }
                        item => {
                            text.push_str(&self.flush_stray(dir, 0));
                            text.push_str(&self.link_line(at, dir, &item));
                        }
                    }
                }
                if text.is_empty() {
                    return;
                }
                (at, text)
            }
        };
        if self.written + line.len() as u64 > self.rotate_at
            && self.written > 0
            && let Err(e) = self.open(at)
        {
            tracing::warn!(device = %self.device, error = %e, "cannot rotate the wire trace");
        }
        self.write(&line);
    }

    fn posnet_summary(&mut self, dir: Dir, bytes: &[u8]) -> String {
        let decoder = &mut self.decoders[usize::from(dir == Dir::In)];
        decoder.push(bytes);
        let mut parts = Vec::new();
        while let Some(item) = decoder.next_item() {
            parts.push(describe_decoded(&item));
        }
        if decoder.pending() > 0 {
            parts.push(format!("({} bytes of a frame pending)", decoder.pending()));
        }
        parts.join("; ")
    }
}

/// Stray ZVT bytes held before some are written (a run this long is no card number).
const STRAY_HOLD: usize = 4096;
/// Stray bytes kept held when a long run is written: more than a card number with
/// separators, so one that crosses the cut is masked whole.
const STRAY_KEEP: usize = 64;

/// A POSNET frame for people: `mnemonic name="value" ... ?code @NNNN`.
pub fn describe_frame(f: &posnet::Frame) -> String {
    let mut s = f.mnemonic.clone();
    for p in &f.params {
        s.push_str(&format!(" {}={:?}", p.name, p.value));
    }
    if let Some(code) = f.error_code {
        s.push_str(&format!(" ?{code}"));
    }
    if let Some(t) = f.token {
        s.push_str(&format!(" @{t:04}"));
    }
    s
}

/// One decoder item for people.
pub fn describe_decoded(item: &posnet::Decoded) -> String {
    match item {
        posnet::Decoded::Frame(f) => describe_frame(f),
        posnet::Decoded::Invalid { error, raw } => {
            format!("invalid frame ({error}, {} bytes)", raw.len())
        }
        posnet::Decoded::Garbage(g) => format!("{} garbage bytes", g.len()),
    }
}

/// An APDU's hex with every sensitive field replaced by `**`, and the middle digits of a
/// card number in text (print lines, display texts) too (see the module docs).
pub fn masked_apdu_hex(apdu: &zvt::Apdu) -> String {
    // One token per wire byte, `None` where `redacted_hex` hid a field.
    let tokens: Vec<Option<u8>> = zvt::message::redacted_hex(apdu)
        .split(' ')
        .filter(|t| !t.is_empty() && !t.starts_with('(') && *t != "bytes)")
        .map(|t| u8::from_str_radix(t, 16).ok())
        .collect();
    // A second net for text the field reading did not reach: printable ASCII is read as
    // text (digits joined across separators, see `mask_in_text`); a hidden or binary byte
    // ends a number, so binary fields are not read as digits.
    let text: String = tokens
        .iter()
        .map(|t| match t {
            Some(b) if b.is_ascii_graphic() || *b == b' ' => char::from(*b),
            _ => 'x',
        })
        .collect();
    let masked = zvt::pan::mask_in_text(&text);
    tokens
        .iter()
        .zip(text.chars().zip(masked.chars()))
        .map(|(t, (a, b))| match t {
            Some(byte) if a == b => format!("{byte:02x}"),
            _ => "**".to_string(),
        })
        .collect()
}

/// The name of a ZVT command or message.
pub fn zvt_name(apdu: &zvt::Apdu) -> String {
    let name = match (apdu.class, apdu.instr) {
        (0x06, 0x00) => "Registration",
        (0x06, 0x01) => "Authorization",
        (0x06, 0x02) => "Log-off",
        (0x06, 0x0F) => "Completion",
        (0x06, 0x1E) => "Abort",
        (0x06, 0x20) => "Repeat receipt",
        (0x06, 0x30) => "Reversal",
        (0x06, 0x31) => "Refund",
        (0x06, 0x50) => "End of day",
        (0x06, 0xB0) => "Abort (ECR)",
        (0x06, 0xD1) => "Print line",
        (0x06, 0xD3) => "Print text block",
        (0x05, 0x01) => "Status enquiry",
        (0x04, 0x0F) => "Status information",
        (0x04, 0xFF) => "Intermediate status",
        (0x80, 0x00) => "ACK",
        (0x84, _) => "NAK",
        _ => "",
    };
    let code = format!("{:02X} {:02X}", apdu.class, apdu.instr);
    if name.is_empty() {
        format!("{code} ({} data bytes)", apdu.data.len())
    } else {
        format!("{code} {name} ({} data bytes)", apdu.data.len())
    }
}

/// One parsed line of a trace.
#[derive(Debug, Clone)]
pub struct TraceLine {
    /// 1-based line number in the file.
    pub number: usize,
    pub time: DateTime<Utc>,
    pub device: String,
    pub dir: Dir,
    /// `None` when the hex holds masked bytes (`**`).
    pub bytes: Option<Vec<u8>>,
}

/// A parsed trace file.
#[derive(Debug, Clone)]
pub struct Trace {
    pub protocol: Option<Protocol>,
    /// The header's `link=` (ZVT traces since the link layer is kept).
    pub link: Option<Link>,
    pub device: Option<String>,
    pub lines: Vec<TraceLine>,
    /// The line numbers and times of the `# <time> port <port> opened` notes: each
    /// (re)open of the device's port (ZVT replay starts a new TCP connection at each).
    pub opens: Vec<(usize, DateTime<Utc>)>,
}

/// The time of a `<time> port <port> opened` note (the comment after `#`).
fn open_note(comment: &str) -> Option<DateTime<Utc>> {
    let words: Vec<&str> = comment.split_whitespace().collect();
    if words.len() < 4 || words[1] != "port" || words.last() != Some(&"opened") {
        return None;
    }
    DateTime::parse_from_rfc3339(words[0])
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// Parse a trace's text; errors name the line.
pub fn parse(text: &str) -> Result<Trace, String> {
    let mut trace = Trace {
        protocol: None,
        link: None,
        device: None,
        lines: Vec::new(),
        opens: Vec::new(),
    };
    for (i, raw) in text.lines().enumerate() {
        let number = i + 1;
        let line = raw.trim();
        if let Some(comment) = line.strip_prefix('#') {
            if let Some(head) = comment.trim().strip_prefix("fiscald trace v1") {
                for kv in head.split_whitespace() {
                    match kv.split_once('=') {
                        Some(("protocol", "posnet")) => trace.protocol = Some(Protocol::Posnet),
                        Some(("protocol", "zvt")) => trace.protocol = Some(Protocol::Zvt),
                        Some(("protocol", "thermal")) => trace.protocol = Some(Protocol::Thermal),
                        Some(("protocol", "novitus-xml")) => {
                            trace.protocol = Some(Protocol::NovitusXml)
                        }
                        Some(("device", d)) => trace.device = Some(d.to_string()),
                        Some(("link", "serial")) => trace.link = Some(Link::Serial),
                        Some(("link", "tcp")) => trace.link = Some(Link::Tcp),
                        _ => {}
                    }
                }
            } else if let Some(time) = open_note(comment) {
                trace.opens.push((number, time));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let data = line.split_once('#').map_or(line, |(d, _)| d);
        let mut words = data.split_whitespace();
        let (Some(time), Some(device), Some(dir), Some(hex)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            return Err(format!(
                "line {number}: expected `<time> <device> <dir> <hex>`"
            ));
        };
        let time = DateTime::parse_from_rfc3339(time)
            .map_err(|e| format!("line {number}: bad time {time:?}: {e}"))?
            .with_timezone(&Utc);
        let dir = match dir {
            ">" => Dir::Out,
            "<" => Dir::In,
            d => return Err(format!("line {number}: direction {d:?} is not > or <")),
        };
        let bytes = if hex.contains('*') {
            None
        } else {
            Some(hex::decode(hex).map_err(|e| format!("line {number}: bad hex: {e}"))?)
        };
        trace.lines.push(TraceLine {
            number,
            time,
            device: device.to_string(),
            dir,
            bytes,
        });
    }
    Ok(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(dir: &Path) -> String {
        let mut out = String::new();
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        entries.sort();
        for p in entries {
            out.push_str(&std::fs::read_to_string(p).unwrap());
        }
        out
    }

    fn wait_for(dir: &Path, needle: &str) -> String {
        for _ in 0..200 {
            let text = read_all(dir);
            if text.contains(needle) {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("{needle:?} not in the trace:\n{}", read_all(dir));
    }

    #[test]
    fn posnet_lines_round_trip_and_decode_polish_text() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::start(dir.path(), "fp1", Protocol::Posnet, ROTATE_AT).unwrap();
        let frame = posnet::Frame::new("trline")
            .with("na", "Żółć gęślą")
            .with("pr", "1234")
            .with_token(42);
        let bytes = frame.encode().unwrap();
        rec.bytes(Dir::Out, &bytes);
        rec.bytes(Dir::In, &bytes[..5]);
        rec.bytes(Dir::In, &bytes[5..]);
        wait_for(dir.path(), "na=\"Żółć gęślą\" pr=\"1234\" @0042\n");
        // The writer thread writes line by line: wait for all three.
        let mut text = read_all(dir.path());
        for _ in 0..500 {
            if parse(&text).is_ok_and(|t| t.lines.len() == 3) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
            text = read_all(dir.path());
        }
        assert!(text.starts_with("# fiscald trace v1 device=fp1 protocol=posnet"));
        assert!(text.contains("pending"), "{text}");
        let trace = parse(&text).unwrap();
        assert_eq!(trace.protocol, Some(Protocol::Posnet));
        assert_eq!(trace.lines.len(), 3);
        assert_eq!(trace.lines[0].bytes.as_deref(), Some(&bytes[..]));
        assert_eq!(trace.lines[2].dir, Dir::In);
    }

    #[test]
    fn zvt_card_data_is_masked() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::start(dir.path(), "t1", Protocol::Zvt, ROTATE_AT).unwrap();
        // Status information with a full PAN (BMP 22, LLVAR BCD) and an amount.
        let mut data = vec![0x04, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34];
        data.extend([
            0x22, 0xF0, 0xF8, 0x45, 0x99, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12,
        ]);
        let apdu = zvt::Apdu::new(0x04, 0x0F, data);
        rec.apdu(Dir::In, &apdu);
        let text = wait_for(dir.path(), "Status information");
        assert!(!text.contains("4599123456789012"), "{text}");
        assert!(!text.contains("45991234"), "{text}");
        // Masked in place: first 6 and last 4 digits, `E` nibbles between, lengths kept.
        assert!(text.contains("22f0f8459912eeeeee9012"), "{text}");
        let trace = parse(&text).unwrap();
        let bytes = trace.lines[0].bytes.as_ref().unwrap();
        assert_eq!(bytes.len(), apdu.encode().len());
        assert!(zvt::PtMessage::from_apdu(&zvt::Apdu::decode(bytes).unwrap()).is_ok());
    }

    #[test]
    fn traces_are_0600_and_hide_the_terminal_password() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::start(dir.path(), "t1", Protocol::Zvt, ROTATE_AT).unwrap();
        let reg = zvt::EcrCommand::Registration {
            password: 123_456,
            config: 0x8E,
            currency: Some(985),
        }
        .to_apdu();
        rec.apdu(Dir::Out, &reg);
        rec.apdu(
            Dir::Out,
            &zvt::EcrCommand::StatusEnquiry {
                password: Some(123_456),
            }
            .to_apdu(),
        );
        let text = wait_for(dir.path(), "Status enquiry");
        assert!(!text.contains("123456"), "{text}");
        assert!(
            text.contains("060006000000 8e0985".replace(' ', "").as_str()),
            "{text}"
        );
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let mode = e.unwrap().metadata().unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        // The wire log uses the same function.
        assert_eq!(masked_apdu_hex(&reg), "060006******8e0985");
    }

    #[test]
    fn card_numbers_in_print_lines_are_masked_in_every_style() {
        for style in [
            "A 5454545454545454 1228",
            "5454  5454  5454  5454",
            "5454.5454.5454.5454",
            "5454_5454_5454_5454",
        ] {
            let mut data = vec![0x00];
            data.extend_from_slice(style.as_bytes());
            let hex = masked_apdu_hex(&zvt::Apdu::new(0x06, 0xD1, data));
            assert!(!hex.contains(&hex::encode(&style[4..])), "{style}: {hex}");
            assert!(!hex.contains("35343534353435343534"), "{style}: {hex}");
        }
    }

    #[test]
    fn files_rotate_at_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::start(dir.path(), "fp1", Protocol::Posnet, 600).unwrap();
        for i in 0..20 {
            rec.bytes(Dir::Out, &[0x41; 40]);
            if i == 19 {
                rec.note("last");
            }
        }
        wait_for(dir.path(), "last");
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(files >= 3, "{files} files");
        for e in std::fs::read_dir(dir.path()).unwrap() {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
            assert!(text.starts_with("# fiscald trace v1 device=fp1"));
        }
    }

    /// A card number in stray bytes (outside any frame) that arrives in two reads is masked
    /// as one text: the bytes are held until their run ends.
    #[test]
    fn a_card_number_split_across_reads_of_stray_bytes_is_masked_whole() {
        let dir = tempfile::tempdir().unwrap();
        let rec = Recorder::start_on(
            dir.path(),
            "t1",
            Protocol::Zvt,
            Some(Link::Serial),
            ROTATE_AT,
        )
        .unwrap();
        rec.link_bytes(Dir::In, b"karta 5454 5454 ");
        rec.link_bytes(Dir::In, b"5454 5454 koniec");
        rec.link_bytes(Dir::In, &[zvt_link::ACK]);
        let text = wait_for(dir.path(), "link ACK");
        let stray: Vec<u8> = text
            .lines()
            .filter(|l| l.ends_with("stray bytes"))
            .filter_map(|l| l.split_whitespace().nth(3))
            .flat_map(|h| hex::decode(h).unwrap())
            .collect();
        let stray = String::from_utf8_lossy(&stray).into_owned();
        assert!(
            stray.starts_with("karta ") && stray.ends_with(" koniec"),
            "{text}"
        );
        let digits: String = stray.chars().filter(|c| c.is_ascii_digit()).collect();
        assert!(!digits.contains("5454545454545454"), "{text}");
        assert!(stray.contains('*'), "{text}");
        // The stray run is one line, written when the ACK ended it.
        assert_eq!(
            text.lines().filter(|l| l.ends_with("stray bytes")).count(),
            1,
            "{text}"
        );
    }
}
