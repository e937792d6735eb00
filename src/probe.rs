//! `fiscald probe`: find the printers and card terminals attached to this machine.
//!
//! Lists the serial ports (or only those given), reads their USB identity from sysfs,
//! tries each at the usual speeds with read-only identification and status commands,
//! and prints what answered as a ready-to-paste configuration block.
//!
//! Only these are ever sent:
//! - POSNET: `sid`, then `vatget` and `scomm` ([`POSNET_COMMANDS`]; none is fiscal);
//! - ZVT: status enquiry `05 01` and the `80 00 00` acknowledgements of the terminal's
//!   answers.
//!
//! Nothing fiscal and nothing that changes a device's state: no registration, no
//! receipt, no payment.

mod novitus_xml;
mod thermal;

use crate::device::LinkStats;
use crate::drivers::posnet::link::{Link, LinkError, Verdict};
use crate::drivers::zvt::transport::{Transport, TransportError};
use posnet::Command;
use posnet::reply::{SLOT_LETTERS, Scomm, Sid, VatRate, VatTable};
use posnet::session::CommandFailure;
use serde::Serialize;
use std::collections::BTreeMap;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zvt::message::{EcrCommand, PtMessage};

/// POSNET speeds, most likely first.
pub const POSNET_BAUDS: [u32; 5] = [115_200, 9_600, 57_600, 38_400, 19_200];
/// ZVT speeds, most likely first.
pub const ZVT_BAUDS: [u32; 2] = [9_600, 115_200];
/// The only POSNET commands the probe sends (all read-only).
pub const POSNET_COMMANDS: [Command; 3] = [Command::SId, Command::VatGet, Command::SComm];
/// USB vendor id of Posnet Polska.
pub const POSNET_VENDOR: u16 = 0x1424;

/// Wait for one POSNET reply.
const POSNET_TIMEOUT: Duration = Duration::from_millis(400);
/// Wait for the ZVT link-level ACK and for the terminal's `80 00 00`.
const ZVT_TIMEOUT: Duration = Duration::from_secs(1);
/// Wait for the status enquiry's completion once the terminal has acknowledged it.
const ZVT_COMPLETION_TIMEOUT: Duration = Duration::from_secs(3);
/// Upper bound for the whole probe of one port.
const PORT_DEADLINE: Duration = Duration::from_secs(15);

/// `fiscald probe` arguments.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ProbeArgs {
    /// Probe only these serial ports (comma-separated). Default: every serial port found
    /// (/dev/serial/by-id/*, /dev/ttyUSB*, /dev/ttyACM*, /dev/ttyS*).
    #[arg(long, value_delimiter = ',')]
    pub ports: Vec<String>,
    /// Also probe ZVT terminals on loopback TCP, e.g. 127.0.0.1:20007 (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub tcp: Vec<std::net::SocketAddr>,
    /// Print the result as JSON.
    #[arg(long)]
    pub json: bool,
}

/// A USB device's identity, read from sysfs.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UsbInfo {
    /// Four hex digits, e.g. `1424`.
    pub vendor_id: String,
    pub product_id: String,
    /// A name for well-known vendors (`Posnet`, `FTDI`, ...).
    pub vendor: Option<&'static str>,
    pub manufacturer: Option<String>,
    pub product: Option<String>,
    pub serial: Option<String>,
}

impl UsbInfo {
    pub fn is_posnet(&self) -> bool {
        u16::from_str_radix(&self.vendor_id, 16).ok() == Some(POSNET_VENDOR)
    }

    fn describe(&self) -> String {
        let mut s = format!("USB {}:{}", self.vendor_id, self.product_id);
        let names: Vec<&str> = [
            self.manufacturer.as_deref().or(self.vendor),
            self.product.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect();
        if !names.is_empty() {
            s.push(' ');
            s.push_str(&names.join(" "));
        }
        if let Some(serial) = &self.serial {
            s.push_str(&format!(" (serial {serial})"));
        }
        clean(&s)
    }
}

fn vendor_name(id: u16) -> Option<&'static str> {
    Some(match id {
        POSNET_VENDOR => "Posnet",
        0x0403 => "FTDI",
        0x067b => "Prolific",
        0x10c4 => "Silicon Labs",
        0x1a86 => "WCH",
        0x0b00 => "Ingenico",
        0x11ca => "Verifone",
        _ => return None,
    })
}

/// One serial port to try.
#[derive(Debug, Clone, Serialize)]
pub struct Port {
    /// The path as given or found.
    pub path: String,
    /// What it resolves to (`/dev/ttyUSB0`).
    pub device: String,
    /// The path for the configuration: the `/dev/serial/by-id` name when there is one.
    pub config_path: String,
    pub usb: Option<UsbInfo>,
    /// Found by enumeration as a built-in `ttyS` port: skipped silently if it cannot be opened.
    #[serde(skip)]
    pub quiet: bool,
}

/// A printer that answered.
#[derive(Debug, Clone, Serialize)]
pub struct FoundPrinter {
    pub id: String,
    pub protocol: &'static str,
    pub port: String,
    pub device: String,
    pub baud: u32,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub unique_number: Option<String>,
    pub fiscal: Option<bool>,
    /// Letter → `23%`, `exempt` or `inactive`.
    pub vat: Option<BTreeMap<char, String>>,
    /// The printer refused `sid` with this error code (it still speaks POSNET).
    pub error_code: Option<u32>,
    pub usb: Option<UsbInfo>,
    /// A Thermal printer's dialect, as far as the probe could tell (a guess).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dialect: Option<&'static str>,
}

/// A card terminal that answered.
#[derive(Debug, Clone, Serialize)]
pub struct FoundTerminal {
    pub id: String,
    pub protocol: &'static str,
    /// A device path or `tcp://IP:PORT`.
    pub port: String,
    pub device: String,
    /// `None` on TCP.
    pub baud: Option<u32>,
    pub terminal_id: Option<String>,
    pub sw_version: Option<String>,
    /// The status byte of the completion (00 = ready).
    pub status: Option<u8>,
    pub status_text: Option<String>,
    /// The terminal refused the status enquiry with `84 xx` (it still speaks ZVT).
    pub refused: Option<u8>,
    pub usb: Option<UsbInfo>,
}

/// Why a port did not answer.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    Busy,
    PermissionDenied,
    Missing,
    NotSerial,
    OpenFailed,
    NoAnswer,
}

impl Reason {
    fn label(self) -> &'static str {
        match self {
            Reason::Busy => "busy",
            Reason::PermissionDenied => "permission denied",
            Reason::Missing => "missing",
            Reason::NotSerial => "not a serial port",
            Reason::OpenFailed => "cannot open",
            Reason::NoAnswer => "no answer",
        }
    }
}

/// A port where nothing answered.
#[derive(Debug, Clone, Serialize)]
pub struct Silent {
    pub port: String,
    pub usb: Option<UsbInfo>,
    pub reason: Reason,
    pub detail: String,
}

/// Everything the probe found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub printers: Vec<FoundPrinter>,
    pub terminals: Vec<FoundTerminal>,
    pub silent: Vec<Silent>,
    /// The configuration block for what answered.
    pub config: String,
    pub elapsed_ms: u64,
}

enum Outcome {
    Printer(FoundPrinter),
    Terminal(FoundTerminal),
    Silent(Silent),
    /// An enumerated ttyS port that cannot be opened: not worth a line.
    Skip,
}

// ---------------------------------------------------------------------------------------
// Ports

/// The serial ports of this machine: `/dev/serial/by-id/*` first (stable names), then
/// `/dev/ttyUSB*`, `/dev/ttyACM*` and `/dev/ttyS*` not already listed. `ttyS` ports without
/// a UART and the system console are left out.
pub fn list_ports() -> Vec<Port> {
    let by_id = by_id_links();
    let mut ports: Vec<Port> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (device, link) in &by_id {
        if seen.insert(device.clone()) {
            ports.push(port_for(link, device.clone(), &by_id, false));
        }
    }
    let consoles = consoles();
    let mut devs: Vec<(u8, u32, String)> = Vec::new();
    if let Ok(dir) = std::fs::read_dir("/dev") {
        for entry in dir.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            for (rank, prefix) in ["ttyUSB", "ttyACM", "ttyS"].iter().enumerate() {
                if let Some(n) = name
                    .strip_prefix(prefix)
                    .and_then(|d| d.parse::<u32>().ok())
                {
                    devs.push((rank as u8, n, name.clone()));
                }
            }
        }
    }
    devs.sort();
    for (_, _, name) in devs {
        let path = format!("/dev/{name}");
        let device = canonical(&path);
        if seen.contains(&device) {
            continue;
        }
        let builtin = name.starts_with("ttyS");
        if builtin && (consoles.contains(&name) || !has_uart(&name)) {
            continue;
        }
        seen.insert(device.clone());
        ports.push(port_for(&path, device, &by_id, builtin));
    }
    ports
}

/// The ports named on the command line, in that order.
pub fn given_ports(paths: &[String]) -> Vec<Port> {
    let by_id = by_id_links();
    paths
        .iter()
        .map(|p| port_for(p, canonical(p), &by_id, false))
        .collect()
}

fn port_for(path: &str, device: String, by_id: &BTreeMap<String, String>, quiet: bool) -> Port {
    let config_path = by_id
        .get(&device)
        .cloned()
        .unwrap_or_else(|| path.to_string());
    let usb = Path::new(&device)
        .file_name()
        .and_then(|n| usb_info(&n.to_string_lossy()));
    Port {
        path: path.to_string(),
        device,
        config_path,
        usb,
        quiet,
    }
}

fn canonical(path: &str) -> String {
    std::fs::canonicalize(path)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| path.to_string())
}

/// `/dev/serial/by-id` links, by the device they point at.
fn by_id_links() -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    if let Ok(dir) = std::fs::read_dir("/dev/serial/by-id") {
        let mut links: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
        links.sort();
        for link in links {
            if let Ok(target) = std::fs::canonicalize(&link) {
                map.entry(target.display().to_string())
                    .or_insert_with(|| link.display().to_string());
            }
        }
    }
    map
}

/// The ttys the kernel uses as console (`ttyS0` on many servers): never probed.
fn consoles() -> Vec<String> {
    std::fs::read_to_string("/sys/class/tty/console/active")
        .map(|s| s.split_whitespace().map(str::to_string).collect())
        .unwrap_or_default()
}

/// A `ttyS` port has a UART unless sysfs says its type is 0 (`PORT_UNKNOWN`).
fn has_uart(name: &str) -> bool {
    std::fs::read_to_string(format!("/sys/class/tty/{name}/type"))
        .map(|t| t.trim() != "0")
        .unwrap_or(true)
}

/// USB identity of a tty, from sysfs: walk up from `/sys/class/tty/<name>/device` to the
/// first directory with `idVendor`.
pub fn usb_info(tty: &str) -> Option<UsbInfo> {
    usb_info_in(Path::new("/sys/class/tty"), tty)
}

fn usb_info_in(class: &Path, tty: &str) -> Option<UsbInfo> {
    let mut dir = std::fs::canonicalize(class.join(tty).join("device")).ok()?;
    let read = |dir: &Path, file: &str| {
        std::fs::read_to_string(dir.join(file))
            .ok()
            .map(|s| clean(s.trim()))
            .filter(|s| !s.is_empty())
    };
    for _ in 0..8 {
        if let Some(vendor_id) = read(&dir, "idVendor") {
            let vendor = u16::from_str_radix(&vendor_id, 16)
                .ok()
                .and_then(vendor_name);
            return Some(UsbInfo {
                product_id: read(&dir, "idProduct").unwrap_or_default(),
                vendor_id,
                vendor,
                manufacturer: read(&dir, "manufacturer"),
                product: read(&dir, "product"),
                serial: read(&dir, "serial"),
            });
        }
        if !dir.pop() || dir == Path::new("/sys") {
            return None;
        }
    }
    None
}

/// Device-supplied text for a comment or a table: control characters removed, so a
/// device can never add lines to the configuration.
fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Probing

fn open_failure(reason: &str) -> (Reason, String) {
    let lower = reason.to_lowercase();
    let kind = if lower.contains("in use") || lower.contains("busy") || lower.contains("exclusive")
    {
        Reason::Busy
    } else if lower.contains("permission denied") {
        Reason::PermissionDenied
    } else if lower.contains("no such file") {
        Reason::Missing
    } else if lower.contains("inappropriate ioctl") || lower.contains("not a typewriter") {
        Reason::NotSerial
    } else {
        Reason::OpenFailed
    };
    let detail = match kind {
        Reason::Busy => {
            "locked by another process (a running fiscald, or a terminal program)".into()
        }
        Reason::PermissionDenied => {
            "permission denied (run as root or add the user to the dialout group)".into()
        }
        Reason::NotSerial => "the device is not a tty".into(),
        Reason::Missing => "no such device".into(),
        _ => reason.to_string(),
    };
    (kind, detail)
}

enum Attempt {
    /// The port cannot be opened: no point trying other speeds.
    Open(Reason, String),
    NoAnswer,
}

/// Probe one port: POSNET, Thermal and Novitus XML at each of their speeds, then ZVT (not on a
/// Posnet USB device).
async fn probe_port(port: Port) -> Outcome {
    let silent = |reason: Reason, detail: String| {
        if port.quiet && reason != Reason::NoAnswer {
            Outcome::Skip
        } else {
            Outcome::Silent(Silent {
                port: port.path.clone(),
                usb: port.usb.clone(),
                reason,
                detail,
            })
        }
    };
    match std::fs::metadata(&port.path) {
        Err(e) => {
            let (reason, detail) = open_failure(&e.to_string());
            return silent(reason, detail);
        }
        Ok(m) if !m.file_type().is_char_device() => {
            return silent(Reason::NotSerial, "not a device file".into());
        }
        Ok(_) => {}
    }
    for baud in POSNET_BAUDS {
        match probe_posnet(&port, baud).await {
            Ok(p) => return Outcome::Printer(p),
            Err(Attempt::Open(reason, detail)) => return silent(reason, detail),
            Err(Attempt::NoAnswer) => {}
        }
    }
    for baud in thermal::BAUDS {
        match thermal::probe(&port, baud).await {
            Ok(p) => return Outcome::Printer(p),
            Err(Attempt::Open(reason, detail)) => return silent(reason, detail),
            Err(Attempt::NoAnswer) => {}
        }
    }
    for baud in novitus_xml::BAUDS {
        match novitus_xml::probe(&port, baud).await {
            Ok(p) => return Outcome::Printer(p),
            Err(Attempt::Open(reason, detail)) => return silent(reason, detail),
            Err(Attempt::NoAnswer) => {}
        }
    }
    let posnet_usb = port.usb.as_ref().is_some_and(UsbInfo::is_posnet);
    if !posnet_usb {
        for baud in ZVT_BAUDS {
            match probe_zvt(&port.path, Some(baud)).await {
                Ok(mut t) => {
                    t.port = port.config_path.clone();
                    t.device = port.device.clone();
                    t.usb = port.usb.clone();
                    return Outcome::Terminal(t);
                }
                Err(Attempt::Open(reason, detail)) => return silent(reason, detail),
                Err(Attempt::NoAnswer) => {}
            }
        }
    }
    let speeds = |b: &[u32]| b.iter().map(u32::to_string).collect::<Vec<_>>().join("/");
    let mut detail = format!(
        "no answer to POSNET sid at {} baud nor to Thermal DLE at {} baud nor to Novitus XML <dle/> at {} baud",
        speeds(&POSNET_BAUDS),
        speeds(&thermal::BAUDS),
        speeds(&novitus_xml::BAUDS)
    );
    if !posnet_usb {
        detail.push_str(&format!(
            " nor to ZVT status enquiry at {} baud",
            speeds(&ZVT_BAUDS)
        ));
    }
    silent(Reason::NoAnswer, detail)
}

/// `sid` at one speed; on an answer, `vatget` and `scomm` for the details.
async fn probe_posnet(port: &Port, baud: u32) -> Result<FoundPrinter, Attempt> {
    let stats = Arc::new(Mutex::new(LinkStats::default()));
    // Probing asks read-only questions once: a quick status query, no long recovery.
    let session = posnet::session::SessionConfig {
        status_timeout: POSNET_TIMEOUT,
        ..Default::default()
    };
    let mut link = match Link::open(&port.path, baud, stats, session) {
        Ok(l) => l,
        Err(LinkError::Open { reason, .. }) => {
            let (r, d) = open_failure(&reason);
            return Err(Attempt::Open(r, d));
        }
        Err(e) => return Err(Attempt::Open(Reason::OpenFailed, e.to_string())),
    };
    let [sid_cmd, vat_cmd, scomm_cmd] = &POSNET_COMMANDS;
    let sid = match ask(&mut link, sid_cmd).await {
        Ok(f) => Ok(f),
        Err(LinkError::Failed(CommandFailure::Refused { code, .. })) => Err(code),
        Err(_) => return Err(Attempt::NoAnswer),
    };
    let mut found = FoundPrinter {
        id: String::new(),
        protocol: "posnet",
        port: port.config_path.clone(),
        device: port.device.clone(),
        baud,
        model: None,
        firmware: None,
        unique_number: None,
        fiscal: None,
        vat: None,
        error_code: sid.as_ref().err().copied(),
        usb: port.usb.clone(),
        dialect: None,
    };
    if let Ok(s) = sid
        .as_ref()
        .map_err(|_| ())
        .and_then(|f| Sid::from_frame(f).map_err(|_| ()))
    {
        found.model = Some(clean(&s.name)).filter(|s| !s.is_empty());
        found.firmware = Some(clean(&s.version)).filter(|s| !s.is_empty());
    }
    if let Ok(f) = ask(&mut link, vat_cmd).await
        && let Ok(table) = VatTable::from_frame(&f)
    {
        found.vat = Some(vat_map(&table));
    }
    if let Ok(f) = ask(&mut link, scomm_cmd).await
        && let Ok(s) = Scomm::from_frame(&f)
    {
        found.unique_number = s.unique_number.map(|n| clean(&n));
        found.fiscal = Some(s.fiscal);
    }
    Ok(found)
}

/// One read-only question; a printer that holds it (no paper) is not waited for.
async fn ask(link: &mut Link, command: &posnet::Command) -> Result<posnet::Frame, LinkError> {
    link.run(command, POSNET_TIMEOUT, |_| Verdict::Abandon)
        .await
}

fn vat_map(table: &VatTable) -> BTreeMap<char, String> {
    table
        .0
        .iter()
        .zip(SLOT_LETTERS)
        .map(|(rate, letter)| {
            let text = match rate {
                VatRate::Percent(bp) => format!(
                    "{}%",
                    rust_decimal::Decimal::new(i64::from(*bp), 2).normalize()
                ),
                VatRate::Exempt => "exempt".into(),
                VatRate::Inactive => "inactive".into(),
            };
            (letter, text)
        })
        .collect()
}

/// ZVT status enquiry on a serial port (`baud`) or `tcp://IP:PORT` (`None`).
async fn probe_zvt(target: &str, baud: Option<u32>) -> Result<FoundTerminal, Attempt> {
    let mut t = match Transport::open(target, baud.unwrap_or(9600), ZVT_TIMEOUT).await {
        Ok(t) => t,
        Err(TransportError::Connect { reason, .. }) => {
            let (r, d) = open_failure(&reason);
            let r = if r == Reason::OpenFailed && baud.is_none() {
                Reason::NoAnswer
            } else {
                r
            };
            return Err(Attempt::Open(r, d));
        }
        Err(e) => return Err(Attempt::Open(Reason::OpenFailed, e.to_string())),
    };
    let enquiry = EcrCommand::StatusEnquiry { password: None }.to_apdu();
    // Serial: `send` returns once the terminal ACKed the frame (the link layer would
    // otherwise wait T2 = 5 s and repeat).
    match tokio::time::timeout(ZVT_TIMEOUT, t.send(&enquiry)).await {
        Ok(Ok(())) => {}
        _ => return Err(Attempt::NoAnswer),
    }
    let first = t.recv(ZVT_TIMEOUT).await.map_err(|_| Attempt::NoAnswer)?;
    let mut found = FoundTerminal {
        id: String::new(),
        protocol: "zvt",
        port: target.to_string(),
        device: target.to_string(),
        baud,
        terminal_id: None,
        sw_version: None,
        status: None,
        status_text: None,
        refused: None,
        usb: None,
    };
    match PtMessage::from_apdu(&first) {
        Ok(PtMessage::Ack) => {}
        Ok(PtMessage::Nack(code)) => {
            found.refused = Some(code);
            return Ok(found);
        }
        _ => return Err(Attempt::NoAnswer),
    }
    let deadline = tokio::time::Instant::now() + ZVT_COMPLETION_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Ok(apdu) = t.recv(left).await else {
            // It acknowledged the enquiry, so it speaks ZVT; the details are missing.
            return Ok(found);
        };
        let msg = PtMessage::from_apdu(&apdu);
        let _ = tokio::time::timeout(ZVT_TIMEOUT, t.send(&EcrCommand::Ack.to_apdu())).await;
        match msg {
            Ok(PtMessage::Completion {
                terminal_status,
                terminal_id,
                sw_version,
            }) => {
                found.status = terminal_status;
                found.status_text = terminal_status.map(|c| {
                    if c == 0 {
                        "ready".to_string()
                    } else {
                        zvt::error::describe(c).message.to_string()
                    }
                });
                found.terminal_id = terminal_id.map(|s| clean(&s));
                found.sw_version = sw_version.map(|s| clean(&s));
                return Ok(found);
            }
            Ok(PtMessage::Abort { result_code, .. }) => {
                found.status = Some(result_code);
                found.status_text = Some(zvt::error::describe(result_code).message.to_string());
                return Ok(found);
            }
            _ => {}
        }
    }
}

/// Probe everything; ports run concurrently, each bounded by [`PORT_DEADLINE`].
pub async fn probe(ports: Vec<Port>, tcp: Vec<std::net::SocketAddr>) -> Report {
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for (i, port) in ports.into_iter().enumerate() {
        tasks.spawn(async move {
            let path = port.path.clone();
            let usb = port.usb.clone();
            let outcome = tokio::time::timeout(PORT_DEADLINE, probe_port(port))
                .await
                .unwrap_or_else(|_| {
                    Outcome::Silent(Silent {
                        port: path,
                        usb,
                        reason: Reason::NoAnswer,
                        detail: format!("gave up after {PORT_DEADLINE:?}"),
                    })
                });
            (i, outcome)
        });
    }
    let first_tcp = tasks.len();
    for (i, addr) in tcp.into_iter().enumerate() {
        tasks.spawn(async move {
            let target = format!("tcp://{addr}");
            let outcome = match tokio::time::timeout(PORT_DEADLINE, probe_zvt(&target, None)).await
            {
                Ok(Ok(t)) => Outcome::Terminal(t),
                Ok(Err(Attempt::Open(reason, detail))) => Outcome::Silent(Silent {
                    port: target,
                    usb: None,
                    reason,
                    detail,
                }),
                Ok(Err(Attempt::NoAnswer)) | Err(_) => Outcome::Silent(Silent {
                    port: target,
                    usb: None,
                    reason: Reason::NoAnswer,
                    detail: "no answer to ZVT status enquiry".into(),
                }),
            };
            (first_tcp + i, outcome)
        });
    }
    let mut outcomes = Vec::new();
    while let Some(r) = tasks.join_next().await {
        if let Ok(o) = r {
            outcomes.push(o);
        }
    }
    outcomes.sort_by_key(|(i, _)| *i);
    let mut report = Report {
        printers: Vec::new(),
        terminals: Vec::new(),
        silent: Vec::new(),
        config: String::new(),
        elapsed_ms: 0,
    };
    for (_, o) in outcomes {
        match o {
            Outcome::Printer(mut p) => {
                p.id = format!("fp{}", report.printers.len() + 1);
                report.printers.push(p);
            }
            Outcome::Terminal(mut t) => {
                t.id = format!("t{}", report.terminals.len() + 1);
                report.terminals.push(t);
            }
            Outcome::Silent(s) => report.silent.push(s),
            Outcome::Skip => {}
        }
    }
    report.config = config_block(&report);
    report.elapsed_ms = started.elapsed().as_millis() as u64;
    report
}

// ---------------------------------------------------------------------------------------
// Output

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// `[[printer]]` and `[[terminal]]` tables for what answered, with what was learnt as
/// comments.
pub fn config_block(report: &Report) -> String {
    let mut out = String::new();
    for p in &report.printers {
        let family = match p.protocol {
            "thermal" => "Thermal (ESC P) printer",
            "novitus-xml" => "Novitus XML printer",
            _ => "POSNET printer",
        };
        let mut about = vec![p.model.clone().unwrap_or_else(|| family.into())];
        if let Some(fw) = &p.firmware {
            about.push(format!("firmware {fw}"));
        }
        if let Some(nu) = &p.unique_number {
            about.push(format!("unique number {nu}"));
        }
        match p.fiscal {
            Some(true) => about.push("fiscal mode".into()),
            Some(false) => about.push("not fiscalised (training mode)".into()),
            None => {}
        }
        if let Some(code) = p.error_code {
            about.push(format!("refused sid with error {code}"));
        }
        out.push_str(&format!("# {}\n", about.join(", ")));
        if let Some(vat) = &p.vat {
            let rates: Vec<String> = vat.iter().map(|(l, r)| format!("{l} {r}")).collect();
            out.push_str(&format!("# VAT: {}\n", rates.join(", ")));
        }
        if let Some(usb) = &p.usb {
            out.push_str(&format!("# {}\n", usb.describe()));
        }
        out.push_str(&format!(
            "[[printer]]\nid = {}\nprotocol = \"{}\"\nport = {}\nbaud = {}\n",
            toml_str(&p.id),
            p.protocol,
            toml_str(&p.port),
            p.baud
        ));
        if p.protocol == "thermal" {
            out.push_str(&format!(
                "dialect = \"{}\"   # a guess from the status reply's form: check it\n\
                 encoding = \"mazovia\"   # or \"cp1250\": the printer's code page setting\n",
                p.dialect.unwrap_or("posnet")
            ));
        }
        out.push('\n');
    }
    for t in &report.terminals {
        let mut about = vec![format!(
            "ZVT terminal, terminal id {}",
            t.terminal_id.as_deref().unwrap_or("not reported")
        )];
        if let Some(sw) = &t.sw_version {
            about.push(format!("software {sw}"));
        }
        if let Some(s) = t.status {
            about.push(format!(
                "status {s:02X} ({})",
                t.status_text.as_deref().unwrap_or("?")
            ));
        }
        if let Some(code) = t.refused {
            about.push(format!(
                "refused the status enquiry ({code:02X}); set its password"
            ));
        }
        out.push_str(&format!("# {}\n", about.join(", ")));
        if let Some(usb) = &t.usb {
            out.push_str(&format!("# {}\n", usb.describe()));
        }
        out.push_str(&format!(
            "[[terminal]]\nid = {}\nprotocol = \"zvt\"\nport = {}\n",
            toml_str(&t.id),
            toml_str(&t.port)
        ));
        if let Some(baud) = t.baud {
            out.push_str(&format!("baud = {baud}\n"));
        }
        out.push_str("# password = \"000000\"   # the terminal's password, if not 000000\n\n");
    }
    out
}

/// The human-readable report.
pub fn render_text(report: &Report) -> String {
    let mut out = String::new();
    let found = report.printers.len() + report.terminals.len();
    if found == 0 && report.silent.is_empty() {
        out.push_str("# No serial ports found (and no --tcp given).\n");
    } else if found == 0 {
        out.push_str("# No printer or terminal answered.\n");
    } else {
        out.push_str(&format!(
            "# Found {} printer(s) and {} terminal(s). Paste into fiscald.toml:\n\n",
            report.printers.len(),
            report.terminals.len()
        ));
        out.push_str(&report.config);
    }
    if !report.silent.is_empty() {
        let rows: Vec<[String; 4]> = report
            .silent
            .iter()
            .map(|s| {
                [
                    s.port.clone(),
                    s.usb
                        .as_ref()
                        .map(|u| format!("{}:{}", u.vendor_id, u.product_id))
                        .unwrap_or_else(|| "-".into()),
                    s.reason.label().to_string(),
                    s.detail.clone(),
                ]
            })
            .collect();
        let header = ["port", "usb", "result", "detail"];
        let width = |i: usize| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        };
        let (w0, w1, w2) = (width(0), width(1), width(2));
        out.push_str(if found == 0 { "\n" } else { "" });
        out.push_str("# Ports that did not answer:\n");
        for r in std::iter::once(header.map(str::to_string)).chain(rows) {
            out.push_str(&format!(
                "#   {:w0$}  {:w1$}  {:w2$}  {}\n",
                r[0], r[1], r[2], r[3]
            ));
        }
    }
    out.push_str(&format!(
        "# Probed in {:.1} s.\n",
        report.elapsed_ms as f64 / 1000.0
    ));
    out
}

/// `fiscald probe`: exit 0 when something answered, 1 when nothing did, 2 on bad arguments.
pub fn main(args: ProbeArgs) -> ExitCode {
    if let Some(bad) = args.tcp.iter().find(|a| !a.ip().is_loopback()) {
        eprintln!("fiscald probe: --tcp {bad}: only loopback addresses are probed");
        return ExitCode::from(2);
    }
    if args.ports.iter().any(|p| p.trim().is_empty()) {
        eprintln!("fiscald probe: --ports: an empty path");
        return ExitCode::from(2);
    }
    let ports = if args.ports.is_empty() {
        if args.tcp.is_empty() {
            list_ports()
        } else {
            Vec::new()
        }
    } else {
        given_ports(&args.ports)
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fiscald probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = rt.block_on(probe(ports, args.tcp));
    if args.json {
        match serde_json::to_string_pretty(&report) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("fiscald probe: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", render_text(&report));
    }
    if report.printers.is_empty() && report.terminals.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_read_only_posnet_commands() {
        for c in &POSNET_COMMANDS {
            assert!(!c.is_fiscal(), "{} is fiscal", c.mnemonic());
        }
    }

    #[test]
    fn usb_identity_is_read_walking_up_sysfs() {
        let dir = tempfile::tempdir().unwrap();
        let usb = dir.path().join("devices/usb1/1-1");
        let iface = usb.join("1-1:1.0/ttyUSB0");
        std::fs::create_dir_all(&iface).unwrap();
        std::fs::write(usb.join("idVendor"), "1424\n").unwrap();
        std::fs::write(usb.join("idProduct"), "0007\n").unwrap();
        std::fs::write(usb.join("manufacturer"), "POSNET\n").unwrap();
        std::fs::write(usb.join("product"), "Thermal HD\x1b[2J\n").unwrap();
        let class = dir.path().join("class");
        std::fs::create_dir_all(class.join("ttyUSB0")).unwrap();
        std::os::unix::fs::symlink(&iface, class.join("ttyUSB0/device")).unwrap();
        let info = usb_info_in(&class, "ttyUSB0").expect("usb info");
        assert!(info.is_posnet());
        assert_eq!(info.vendor, Some("Posnet"));
        assert_eq!(info.product_id, "0007");
        assert_eq!(info.product.as_deref(), Some("Thermal HD [2J"));
        assert_eq!(info.serial, None);
        assert!(!info.describe().contains('\n'));
        assert!(usb_info_in(&class, "ttyUSB9").is_none());
    }

    #[test]
    fn config_block_quotes_paths_and_keeps_device_text_in_comments() {
        let report = Report {
            printers: vec![FoundPrinter {
                id: "fp1".into(),
                protocol: "posnet",
                dialect: None,
                port: "/dev/serial/by-id/usb-\"odd\"".into(),
                device: "/dev/ttyUSB0".into(),
                baud: 9600,
                model: Some(clean("Thermal\n[[printer]]")),
                firmware: Some("1.01".into()),
                unique_number: Some("ABC 12345678".into()),
                fiscal: Some(true),
                vat: None,
                error_code: None,
                usb: None,
            }],
            terminals: vec![],
            silent: vec![],
            config: String::new(),
            elapsed_ms: 0,
        };
        let block = config_block(&report);
        let parsed: toml::Table = toml::from_str(&block).expect("valid TOML");
        let printer = &parsed["printer"].as_array().unwrap()[0];
        assert_eq!(
            printer["port"].as_str(),
            Some("/dev/serial/by-id/usb-\"odd\"")
        );
        assert_eq!(printer["baud"].as_integer(), Some(9600));
        assert_eq!(block.matches("[[printer]]").count(), 2, "{block}"); // one in a comment
        assert!(block.contains("# Thermal [[printer]], firmware 1.01"));
    }
}
