//! The TOML configuration file: `[api]`, `[journal]` and `[[printer]]` entries.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub api: ApiConfig,
    pub journal: JournalConfig,
    #[serde(default, rename = "printer")]
    pub printers: Vec<PrinterConfig>,
    #[serde(default, rename = "terminal")]
    pub terminals: Vec<TerminalConfig>,
    #[serde(default)]
    pub sales: SalesConfig,
    /// `[noviapi]`: the NoviAPI-compatible facade (off when absent).
    #[serde(default)]
    pub noviapi: Option<NoviApiConfig>,
    /// `[fleet]`: event delivery to NATS JetStream (off when absent).
    #[serde(default)]
    pub fleet: Option<crate::fleet::FleetConfig>,
    /// `fiscald serve --record DIR`: record every device's wire trace into DIR.
    #[serde(skip)]
    pub record_dir: Option<PathBuf>,
}

/// Wire protocols a terminal entry may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TerminalProtocol {
    Zvt,
    /// The Polish ECR-EFT (FROB) protocol (second-hand facts; see `protocols/ecr_eft`).
    #[serde(rename = "ecr-eft")]
    EcrEft,
}

impl TerminalProtocol {
    /// The name in the configuration and the API (`zvt`).
    pub fn as_str(self) -> &'static str {
        match self {
            TerminalProtocol::Zvt => "zvt",
            TerminalProtocol::EcrEft => "ecr-eft",
        }
    }
}

/// Where the card slip goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SlipTarget {
    /// Printed on the fiscal printer as a non-fiscal printout after the receipt.
    Printer,
    /// The terminal prints it itself.
    Terminal,
    /// Not printed (kept in the job's result).
    None,
}

/// `[[terminal]]`: one card payment terminal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TerminalConfig {
    pub id: String,
    pub protocol: TerminalProtocol,
    /// A device path, `"sim"` for the built-in emulator, or `tcp://host:port`.
    pub port: String,
    /// The terminal's ZVT password (6 digits).
    #[serde(default = "default_password")]
    pub password: String,
    /// ISO 4217 code: `PLN` (default) or `EUR`.
    #[serde(default = "default_currency")]
    pub currency: String,
    #[serde(default = "default_slip")]
    pub slip: SlipTarget,
    #[serde(default = "default_terminal_baud")]
    pub baud: u32,
    /// Seconds to wait for the terminal to accept a command (T3).
    #[serde(default = "default_command_timeout")]
    pub command_timeout: f64,
    /// Seconds of silence allowed during a transaction (T4; restarted by every message).
    #[serde(default = "default_transaction_timeout")]
    pub transaction_timeout: f64,
    /// With `port = "sim"`: where the built-in emulator keeps its state (JSON).
    pub sim_state: Option<PathBuf>,
    /// Record a wire trace (card data masked) into `traces/` next to the journal.
    #[serde(default)]
    pub record: bool,
    /// ECR-EFT: milliseconds to wait for ACK/NAK of a frame (default: the crate's 3000).
    pub ack_timeout_ms: Option<u64>,
    /// ECR-EFT: repetitions of a repeatable frame (never S1) after NAK or silence
    /// (default: the crate's 3).
    pub max_retransmits: Option<u8>,
    /// ECR-EFT: milliseconds of silence before the link sends a T1 ping (default: none).
    pub keepalive_ms: Option<u64>,
    /// ECR-EFT: the register's id sent in S1 (default: the terminal entry's `id`).
    pub ecr_id: Option<String>,
}

/// `[sales]`: card payment and fiscal receipt together.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesConfig {
    /// Seconds an approved sale waits for its receipt to be printed before it becomes
    /// `needs_attention` (the payment is never reversed on its own).
    #[serde(default = "default_print_deadline")]
    pub print_deadline: f64,
    /// Reverse an approved payment that recovery cannot attach to its sale when the sale's
    /// receipt was not printed. Off by default: such payments go to `needs_attention`.
    #[serde(default)]
    pub reverse_unattached: bool,
}

impl Default for SalesConfig {
    fn default() -> Self {
        SalesConfig {
            print_deadline: default_print_deadline(),
            reverse_unattached: false,
        }
    }
}

fn default_password() -> String {
    "000000".into()
}
fn default_currency() -> String {
    "PLN".into()
}
fn default_slip() -> SlipTarget {
    SlipTarget::Printer
}
fn default_terminal_baud() -> u32 {
    9600
}
fn default_transaction_timeout() -> f64 {
    180.0
}
fn default_print_deadline() -> f64 {
    600.0
}

impl TerminalConfig {
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.command_timeout)
    }
    pub fn transaction_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.transaction_timeout)
    }
    /// The password as a number (validated: 6 digits).
    pub fn password_number(&self) -> u32 {
        self.password.parse().unwrap_or(0)
    }
    /// The ISO 4217 numeric code of `currency` (validated).
    pub fn currency_code(&self) -> u16 {
        currency_code(&self.currency).unwrap_or(985)
    }
}

/// ISO 4217 numeric code for the currencies fiscald handles.
pub fn currency_code(name: &str) -> Option<u16> {
    match name.to_ascii_uppercase().as_str() {
        "PLN" => Some(985),
        "EUR" => Some(978),
        _ => None,
    }
}

/// `[api]`: where the local API listens.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// Unix socket path (created with mode 0660).
    pub socket: PathBuf,
    /// Optional loopback TCP address, e.g. `127.0.0.1:8787`; needs `token_file`.
    pub listen: Option<SocketAddr>,
    /// File of accepted bearer tokens (`<sha256-hex> <name> [role]` per line). Needed
    /// with `listen`; on the socket a token is optional and gives the token's role.
    pub token_file: Option<PathBuf>,
    /// The role of a request on the Unix socket without a token (default `cashier`).
    #[serde(default = "default_socket_role")]
    pub socket_role: crate::auth::Role,
    /// Most connections open at once on the loopback TCP listener (default 128).
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Most connections open at once on the Unix socket (default 64): a budget of its own,
    /// so a flood on TCP cannot starve the socket.
    #[serde(default = "default_max_socket_connections")]
    pub max_socket_connections: usize,
    /// Host names the API answers to besides `localhost`, `127.0.0.1` and `[::1]` (a
    /// request with any other `Host` gets 421: no DNS rebinding).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Web origins of browser-based POS software (`http://pos.example:3000`): the TCP
    /// listener answers their CORS preflights, and only they may change anything from a
    /// browser page.
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

fn default_max_connections() -> usize {
    128
}

fn default_max_socket_connections() -> usize {
    64
}

fn default_socket_role() -> crate::auth::Role {
    crate::auth::Role::Cashier
}

/// `[noviapi]`: a NoviAPI-compatible REST facade (see `src/noviapi`) on loopback TCP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoviApiConfig {
    /// Loopback address, e.g. `127.0.0.1:8888`.
    pub listen: SocketAddr,
    /// The printer its documents go to (optional with one printer).
    pub printer: Option<String>,
    /// The card terminal of its `eft` requests.
    pub terminal: Option<String>,
    /// The fiscald role its callers act with (default `cashier`).
    #[serde(default = "default_socket_role")]
    pub role: crate::auth::Role,
}

/// `[journal]`: the SQLite job journal.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JournalConfig {
    pub path: PathBuf,
}

/// Wire protocols a printer entry may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrinterProtocol {
    Posnet,
    /// The Thermal (ESC P) family: older Posnet and Novitus "classic" printers.
    Thermal,
    /// Novitus XML (`protocol = "novitus-xml"`).
    #[serde(rename = "novitus-xml")]
    NovitusXml,
}

impl PrinterProtocol {
    /// The name in the configuration and the API (`posnet`).
    pub fn as_str(self) -> &'static str {
        match self {
            PrinterProtocol::Posnet => "posnet",
            PrinterProtocol::Thermal => "thermal",
            PrinterProtocol::NovitusXml => "novitus-xml",
        }
    }
}

/// `[[printer]]`: one fiscal printer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrinterConfig {
    /// Stable identifier used in the API (`"printer": "fp1"`).
    pub id: String,
    pub protocol: PrinterProtocol,
    /// A device path (`/dev/ttyUSB0`, `/dev/serial/by-id/...`) or `"sim"` for the built-in emulator.
    pub port: String,
    #[serde(default = "default_baud")]
    pub baud: u32,
    /// Seconds to wait for a reply to an ordinary command.
    #[serde(default = "default_command_timeout")]
    pub command_timeout: f64,
    /// Seconds to wait for the daily report, which prints for a long time.
    #[serde(default = "default_report_timeout")]
    pub report_timeout: f64,
    /// Seconds a receipt may wait for paper (or a closed cover) before it fails.
    #[serde(default = "default_paper_wait")]
    pub paper_wait: f64,
    /// Seconds between status polls of an idle printer (paper, cover, link check).
    #[serde(default = "default_status_poll")]
    pub status_poll: f64,
    /// Longest item name accepted (the printer's own limit is 80, older models 40).
    #[serde(default = "default_max_name_length")]
    pub max_name_length: usize,
    /// With `port = "sim"`: where the built-in emulator keeps its fiscal memory (JSON).
    pub sim_state: Option<PathBuf>,
    /// Record a wire trace of every byte into `traces/` next to the journal.
    #[serde(default)]
    pub record: bool,
    /// Send a document's commands without waiting for each reply (up to the window below);
    /// `false`: one command at a time.
    #[serde(default = "default_true")]
    pub pipeline: bool,
    /// The pipelining window: at most this many commands in flight (1 to 16)...
    #[serde(default = "default_pipeline_commands")]
    pub pipeline_commands: usize,
    /// ...and at most this many bytes of them (64 to 1024).
    #[serde(default = "default_pipeline_bytes")]
    pub pipeline_bytes: usize,
    /// `protocol = "thermal"` only: `"posnet"` or `"novitus"` (the payment type codes
    /// differ); default `"posnet"`.
    pub dialect: Option<thermal::Dialect>,
    /// `protocol = "thermal"` only: the printer's code page, `"mazovia"` or `"cp1250"`;
    /// default `"mazovia"`.
    pub encoding: Option<thermal::Encoding>,
}

fn default_true() -> bool {
    true
}
fn default_pipeline_commands() -> usize {
    posnet::session::Window::PIPELINED.commands
}
fn default_pipeline_bytes() -> usize {
    posnet::session::Window::PIPELINED.bytes
}

fn default_baud() -> u32 {
    115_200
}
fn default_command_timeout() -> f64 {
    5.0
}
fn default_report_timeout() -> f64 {
    120.0
}
fn default_paper_wait() -> f64 {
    600.0
}
fn default_status_poll() -> f64 {
    2.0
}
fn default_max_name_length() -> usize {
    40
}

impl PrinterConfig {
    /// The Thermal dialect (`dialect`, default Posnet).
    pub fn thermal_dialect(&self) -> thermal::Dialect {
        self.dialect.unwrap_or_default()
    }
    /// The Thermal code page (`encoding`, default Mazovia).
    pub fn thermal_encoding(&self) -> thermal::Encoding {
        self.encoding.unwrap_or_default()
    }
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.command_timeout)
    }
    pub fn report_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.report_timeout)
    }
    /// The session's window: one command without pipelining.
    pub fn window(&self) -> posnet::session::Window {
        if self.pipeline {
            posnet::session::Window {
                commands: self.pipeline_commands,
                bytes: self.pipeline_bytes,
            }
        } else {
            posnet::session::Window::SINGLE
        }
    }

    pub fn status_poll(&self) -> Duration {
        Duration::from_secs_f64(self.status_poll)
    }
    pub fn paper_wait(&self) -> Duration {
        Duration::from_secs_f64(self.paper_wait)
    }
}

/// A configuration error, already formatted: `FILE:LINE:COLUMN: KEY: what is wrong and what
/// is expected`, then the offending line with a caret under the value or key at fault.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// A validation failure: the key path at fault (e.g. `printer[1].id`) and the message.
struct Invalid {
    key: Option<String>,
    message: String,
}

impl Invalid {
    fn at(key: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            key: Some(key.into()),
            message: message.into(),
        }
    }
}

impl Config {
    /// Read, parse and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        Self::parse(&text, path)
    }

    /// Parse and validate configuration text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let file = origin.display().to_string();
        let document = toml::Deserializer::parse(text)
            .map_err(|e| ConfigError(render(&file, text, e.span(), None, e.message())))?;
        let config: Config = serde_path_to_error::deserialize(document).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            let (key, message) = explain(&path, inner.message());
            // A table missing at the top level has no line to show (toml points at the
            // start of the file); the message names the table instead.
            let top_level = key.as_deref().is_some_and(|k| !k.contains(['.', '[']));
            let span = inner
                .span()
                .filter(|_| !(top_level && message.starts_with("missing key")));
            ConfigError(render(&file, text, span, key.as_deref(), &message))
        })?;
        config.validate(text).map_err(|invalid| {
            let span = invalid.key.as_deref().and_then(|k| span_of(text, k));
            ConfigError(render(
                &file,
                text,
                span,
                invalid.key.as_deref(),
                &invalid.message,
            ))
        })?;
        Ok(config)
    }

    fn validate(&self, text: &str) -> Result<(), Invalid> {
        if let Some(addr) = self.api.listen {
            if !addr.ip().is_loopback() {
                return Err(Invalid::at(
                    "api.listen",
                    format!(
                        "\"{addr}\" is not a loopback address; fiscald only listens on 127.0.0.0/8 or ::1, e.g. listen = \"127.0.0.1:8787\""
                    ),
                ));
            }
            if self.api.token_file.is_none() {
                return Err(Invalid::at(
                    "api.listen",
                    "listen needs token_file in [api]: every TCP request must carry a token",
                ));
            }
        }
        if let Some(n) = &self.noviapi {
            self.validate_noviapi(n)?;
        }
        if let Some(f) = &self.fleet {
            f.validate()
                .map_err(|(key, message)| Invalid::at(key, message))?;
        }
        if self.printers.is_empty() {
            return Err(Invalid {
                key: None,
                message: "no [[printer]] entry: configure at least one printer".into(),
            });
        }
        // Printers and terminals share one namespace of ids: `/v1/health` lists every
        // device by id, so a printer and a terminal with the same id would be ambiguous.
        let mut seen: std::collections::HashMap<&str, String> = Default::default();
        for (i, t) in self.terminals.iter().enumerate() {
            let at = format!("terminal[{i}]");
            check_id(&at, &t.id)?;
            claim_id(&mut seen, text, &at, &t.id)?;
            if t.password.len() != 6 || !t.password.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Invalid::at(
                    format!("{at}.password"),
                    "password must be 6 digits, e.g. password = \"000000\"",
                ));
            }
            if currency_code(&t.currency).is_none() {
                return Err(Invalid::at(
                    format!("{at}.currency"),
                    format!(
                        "currency {:?} is not supported; use \"PLN\" or \"EUR\"",
                        t.currency
                    ),
                ));
            }
            if let Some(addr) = t.port.strip_prefix("tcp://") {
                if addr.parse::<SocketAddr>().is_err() {
                    return Err(Invalid::at(
                        format!("{at}.port"),
                        format!(
                            "port {:?} is not tcp://IP:PORT, e.g. \"tcp://192.168.1.20:20007\"",
                            t.port
                        ),
                    ));
                }
            } else if t.port.is_empty() {
                return Err(Invalid::at(
                    format!("{at}.port"),
                    "port is empty; give a device path, \"sim\" or tcp://IP:PORT",
                ));
            }
            check_baud(&at, t.baud)?;
            for (name, v) in [
                ("command_timeout", t.command_timeout),
                ("transaction_timeout", t.transaction_timeout),
            ] {
                check_seconds(&at, name, v, 86_400.0)?;
            }
            check_ecr_eft(&at, t)?;
            if t.sim_state.is_some() && t.port != "sim" {
                return Err(Invalid::at(
                    format!("{at}.sim_state"),
                    "sim_state only applies to port = \"sim\"",
                ));
            }
        }
        check_seconds(
            "sales",
            "print_deadline",
            self.sales.print_deadline,
            7.0 * 86_400.0,
        )?;
        for (i, p) in self.printers.iter().enumerate() {
            let at = format!("printer[{i}]");
            check_id(&at, &p.id)?;
            claim_id(&mut seen, text, &at, &p.id)?;
            if p.port.is_empty() {
                return Err(Invalid::at(
                    format!("{at}.port"),
                    "port is empty; give a device path or \"sim\"",
                ));
            }
            check_baud(&at, p.baud)?;
            for (name, v) in [
                ("command_timeout", p.command_timeout),
                ("report_timeout", p.report_timeout),
                ("paper_wait", p.paper_wait),
                ("status_poll", p.status_poll),
            ] {
                check_seconds(&at, name, v, 86_400.0)?;
            }
            if !(1..=80).contains(&p.max_name_length) {
                return Err(Invalid::at(
                    format!("{at}.max_name_length"),
                    format!(
                        "max_name_length {} is out of range: expected 1..80",
                        p.max_name_length
                    ),
                ));
            }
            if p.sim_state.is_some() && p.port != "sim" {
                return Err(Invalid::at(
                    format!("{at}.sim_state"),
                    "sim_state only applies to port = \"sim\"",
                ));
            }
            for (key, set) in [
                ("dialect", p.dialect.is_some()),
                ("encoding", p.encoding.is_some()),
            ] {
                if set && p.protocol != PrinterProtocol::Thermal {
                    return Err(Invalid::at(
                        format!("{at}.{key}"),
                        format!("{key} only applies to protocol = \"thermal\""),
                    ));
                }
            }
            // The printer keeps about 32 answers or 1 KiB for `rpt`: every command in flight
            // must still be there to be asked for again.
            if !(1..=16).contains(&p.pipeline_commands) {
                return Err(Invalid::at(
                    format!("{at}.pipeline_commands"),
                    format!(
                        "pipeline_commands {} is out of range: expected 1..16",
                        p.pipeline_commands
                    ),
                ));
            }
            if !(64..=1024).contains(&p.pipeline_bytes) {
                return Err(Invalid::at(
                    format!("{at}.pipeline_bytes"),
                    format!(
                        "pipeline_bytes {} is out of range: expected 64..1024",
                        p.pipeline_bytes
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    fn validate_noviapi(&self, n: &NoviApiConfig) -> Result<(), Invalid> {
        if !n.listen.ip().is_loopback() {
            return Err(Invalid::at(
                "noviapi.listen",
                format!(
                    "\"{}\" is not a loopback address; the NoviAPI facade only listens on 127.0.0.0/8 or ::1, e.g. listen = \"127.0.0.1:8888\"",
                    n.listen
                ),
            ));
        }
        if self.api.listen == Some(n.listen) {
            return Err(Invalid::at(
                "noviapi.listen",
                format!(
                    "{} is already [api] listen; give the facade its own port",
                    n.listen
                ),
            ));
        }
        let printers: Vec<&str> = self.printers.iter().map(|p| p.id.as_str()).collect();
        match &n.printer {
            Some(id) if !printers.contains(&id.as_str()) => {
                return Err(Invalid::at(
                    "noviapi.printer",
                    format!(
                        "no [[printer]] has id {id:?}; configured: {}",
                        printers.join(", ")
                    ),
                ));
            }
            None if printers.len() > 1 => {
                return Err(Invalid::at(
                    "noviapi.listen",
                    "several printers are configured: name the facade's in [noviapi] printer = \"...\"",
                ));
            }
            _ => {}
        }
        if let Some(id) = &n.terminal
            && !self.terminals.iter().any(|t| &t.id == id)
        {
            let terminals: Vec<&str> = self.terminals.iter().map(|t| t.id.as_str()).collect();
            return Err(Invalid::at(
                "noviapi.terminal",
                format!(
                    "no [[terminal]] has id {id:?}; configured: {}",
                    terminals.join(", ")
                ),
            ));
        }
        Ok(())
    }
}

/// Record that `at` (e.g. `printer[1]`) uses `id`; an error naming the first user (and its
/// line) if another device already has it.
fn claim_id<'a>(
    seen: &mut std::collections::HashMap<&'a str, String>,
    text: &str,
    at: &str,
    id: &'a str,
) -> Result<(), Invalid> {
    if let Some(first) = seen.get(id) {
        let line = span_of(text, &format!("{first}.id"))
            .map(|s| format!(" (line {})", line_col(text, s.start).0))
            .unwrap_or_default();
        return Err(Invalid::at(
            format!("{at}.id"),
            format!(
                "id {id:?} is already used by {first}{line}; every printer and terminal needs an id of its own (the API names devices by id)"
            ),
        ));
    }
    seen.insert(id, at.to_string());
    Ok(())
}

/// A device id: non-empty letters, digits, `-` or `_` (it appears in URLs and file names).
fn check_id(at: &str, id: &str) -> Result<(), Invalid> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Invalid::at(
            format!("{at}.id"),
            format!("id {id:?} must be non-empty letters, digits, '-' or '_', e.g. id = \"fp1\""),
        ));
    }
    Ok(())
}

fn check_baud(at: &str, baud: u32) -> Result<(), Invalid> {
    if !(1200..=921_600).contains(&baud) {
        return Err(Invalid::at(
            format!("{at}.baud"),
            format!("baud {baud} is out of range 1200..921600, e.g. baud = 9600"),
        ));
    }
    Ok(())
}

/// The ECR-EFT keys: only for `protocol = "ecr-eft"`, in range.
fn check_ecr_eft(at: &str, t: &TerminalConfig) -> Result<(), Invalid> {
    let set = [
        ("ack_timeout_ms", t.ack_timeout_ms.is_some()),
        ("max_retransmits", t.max_retransmits.is_some()),
        ("keepalive_ms", t.keepalive_ms.is_some()),
        ("ecr_id", t.ecr_id.is_some()),
    ];
    if t.protocol != TerminalProtocol::EcrEft {
        if let Some((name, _)) = set.iter().find(|(_, on)| *on) {
            return Err(Invalid::at(
                format!("{at}.{name}"),
                format!("{name} only applies to protocol = \"ecr-eft\""),
            ));
        }
        return Ok(());
    }
    for (name, v) in [
        ("ack_timeout_ms", t.ack_timeout_ms),
        ("keepalive_ms", t.keepalive_ms),
    ] {
        if v.is_some_and(|ms| !(50..=600_000).contains(&ms)) {
            return Err(Invalid::at(
                format!("{at}.{name}"),
                format!("{name} must be between 50 and 600000 milliseconds"),
            ));
        }
    }
    if t.max_retransmits.is_some_and(|n| n > 10) {
        return Err(Invalid::at(
            format!("{at}.max_retransmits"),
            "max_retransmits must be between 0 and 10",
        ));
    }
    if let Some(id) = &t.ecr_id
        && (id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_alphanumeric()))
    {
        return Err(Invalid::at(
            format!("{at}.ecr_id"),
            "ecr_id must be 1 to 20 letters or digits, e.g. ecr_id = \"KASA1\"",
        ));
    }
    if t.record {
        return Err(Invalid::at(
            format!("{at}.record"),
            "wire traces are not implemented for protocol = \"ecr-eft\" yet; remove record = true",
        ));
    }
    Ok(())
}

fn check_seconds(at: &str, name: &str, v: f64, max: f64) -> Result<(), Invalid> {
    if !(v.is_finite() && v > 0.0 && v <= max) {
        return Err(Invalid::at(
            format!("{at}.{name}"),
            format!("{name} must be between 0 and {max} seconds"),
        ));
    }
    Ok(())
}

/// Required keys and an example of each, for "missing key" errors (indices left out).
const REQUIRED_EXAMPLES: &[(&str, &str)] = &[
    (
        "api",
        "an [api] table with socket = \"/run/fiscald/fiscald.sock\"",
    ),
    (
        "journal",
        "a [journal] table with path = \"/var/lib/fiscald/journal.db\"",
    ),
    ("api.socket", "socket = \"/run/fiscald/fiscald.sock\""),
    ("journal.path", "path = \"/var/lib/fiscald/journal.db\""),
    ("printer.id", "id = \"fp1\""),
    ("printer.protocol", "protocol = \"posnet\""),
    ("printer.port", "port = \"/dev/ttyUSB0\" (or \"sim\")"),
    ("terminal.id", "id = \"t1\""),
    ("fleet.till", "till = \"shop17-till2\""),
    ("fleet.nats", "nats = \"nats://127.0.0.1:4222\""),
    ("terminal.protocol", "protocol = \"zvt\" (or \"ecr-eft\")"),
    (
        "terminal.port",
        "port = \"/dev/ttyUSB1\" (or \"tcp://IP:PORT\", or \"sim\")",
    ),
];

/// The key path and the message for a deserialization error at `path` (as
/// `serde_path_to_error` writes it, `.` for the top level). Adds the missing key to the
/// path, a "did you mean" to unknown keys and values, and plain words to type names.
fn explain(path: &str, message: &str) -> (Option<String>, String) {
    let join = |name: &str| {
        if path == "." || path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let key = (path != "." && !path.is_empty()).then(|| path.to_string());
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        let full = join(name);
        let general: String = full
            .split('.')
            .map(|s| s.split('[').next().unwrap_or(s))
            .collect::<Vec<_>>()
            .join(".");
        let mut msg = format!("missing key `{name}`, which is required");
        if let Some((_, example)) = REQUIRED_EXAMPLES.iter().find(|(k, _)| *k == general) {
            msg.push_str(&format!("; expected e.g. {example}"));
        }
        return (Some(full), msg);
    }
    if let Some((given, expected)) = unknown_name(message) {
        let mut msg = message.to_string();
        if let Some(best) = closest(given, &expected) {
            msg.push_str(&format!("; did you mean `{best}`?"));
        }
        return (key, msg);
    }
    let mut msg = message.to_string();
    if let Some(rest) = message.rsplit_once(", expected ").map(|(_, e)| e) {
        let plain = match rest {
            "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" => {
                Some("a whole number without quotes")
            }
            "f32" | "f64" => Some("a number without quotes, e.g. 5 or 2.5"),
            "a boolean" => Some("true or false without quotes"),
            _ => None,
        };
        if let Some(plain) = plain {
            msg.push_str(&format!(" ({plain})"));
        }
    }
    (key, msg)
}

/// From serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown variant"): the
/// name given and the names expected.
fn unknown_name(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (given, rest) = rest.split_once('`')?;
    let expected = rest
        .split_once("expected")
        .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    Some((given, expected))
}

/// The expected name closest to `given` by edit distance, if it is close enough to be a
/// typo (one edit for short names, about a third of the letters for longer ones).
fn closest<'a>(given: &str, expected: &[&'a str]) -> Option<&'a str> {
    let given = given.to_ascii_lowercase().replace('-', "_");
    let allowed = match given.chars().count() {
        0..=3 => 1,
        4..=7 => 2,
        n => n / 3,
    };
    expected
        .iter()
        .map(|e| (strsim::damerau_levenshtein(&given, e), *e))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e)
}

/// The span of a key path such as `printer[1].id` or `api.listen` in the document: the
/// value's span, or the nearest enclosing table's when the key itself is absent.
fn span_of(text: &str, key: &str) -> Option<std::ops::Range<usize>> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut span = root.span();
    let mut table = root.get_ref();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.strip_suffix(']').and_then(|i| i.parse::<usize>().ok())),
            None => (part, None),
        };
        let Some((_, mut value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
            break;
        };
        if let Some(i) = index {
            match value.get_ref().as_array().and_then(|a| a.get(i)) {
                Some(v) => value = v,
                None => break,
            }
        }
        span = value.span();
        match value.get_ref().as_table() {
            Some(t) if parts.peek().is_some() => table = t,
            _ => break,
        }
    }
    Some(span)
}

/// `FILE:LINE:COL: KEY: MESSAGE` and the offending line with carets under `span`, as the
/// toml crate draws it; `FILE: KEY: MESSAGE` when there is no place to show.
fn render(
    file: &str,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    key: Option<&str>,
    message: &str,
) -> String {
    let key = key.map(|k| format!("{k}: ")).unwrap_or_default();
    let Some(span) = span else {
        return format!("{file}: {key}{message}");
    };
    let (line, col) = line_col(text, span.start);
    let content = text.split('\n').nth(line - 1).unwrap_or("");
    let content = content.strip_suffix('\r').unwrap_or(content);
    let gutter = " ".repeat(line.to_string().len());
    let shown = text
        .get(span.clone())
        .map_or(1, |s| s.split('\n').next().unwrap_or("").chars().count());
    let room = content.chars().count().saturating_sub(col - 1);
    let carets = "^".repeat(shown.min(room).max(1));
    let pad = " ".repeat(col - 1);
    format!(
        "{file}:{line}:{col}: {key}{message}\n{gutter} |\n{line} | {content}\n{gutter} | {pad}{carets}"
    )
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    const GOOD: &str = r#"
[api]
socket = "/tmp/f.sock"
[journal]
path = "/tmp/j.db"
[[printer]]
id = "fp1"
protocol = "posnet"
port = "sim"
"#;

    #[test]
    fn minimal_config_parses_with_defaults() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.printers[0].baud, 115_200);
        assert_eq!(c.printers[0].max_name_length, 40);
    }

    #[test]
    fn errors_name_file_line_and_column() {
        let bad = GOOD.replace("port = \"sim\"", "port = \"sim\"\nbaud = \"fast\"");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.starts_with("test.toml:10:8:"), "{e}");
        let typo = GOOD.replace("protocol =", "protocl =");
        let e = parse(&typo).unwrap_err().to_string();
        assert!(
            e.contains("test.toml:8:1") && e.contains("unknown field `protocl`"),
            "{e}"
        );
    }

    #[test]
    fn socket_role_defaults_to_cashier_and_takes_the_three_roles() {
        use crate::auth::Role;
        assert_eq!(parse(GOOD).unwrap().api.socket_role, Role::Cashier);
        let with =
            |r: &str| GOOD.replace("[journal]", &format!("socket_role = \"{r}\"\n[journal]"));
        assert_eq!(
            parse(&with("manager")).unwrap().api.socket_role,
            Role::Manager
        );
        assert_eq!(
            parse(&with("technician")).unwrap().api.socket_role,
            Role::Technician
        );
        let e = parse(&with("admin")).unwrap_err().to_string();
        assert!(
            e.starts_with("test.toml:4:15:") && e.contains("cashier"),
            "{e}"
        );
    }

    #[test]
    fn non_loopback_listen_is_refused() {
        let bad = GOOD.replace(
            "[journal]",
            "listen = \"0.0.0.0:8080\"\ntoken_file = \"t\"\n[journal]",
        );
        assert!(
            parse(&bad)
                .unwrap_err()
                .to_string()
                .contains("not a loopback")
        );
    }

    #[test]
    fn a_wrong_type_names_the_key_shows_the_line_and_says_what_is_expected() {
        let bad = GOOD.replace("port = \"sim\"", "port = \"sim\"\nbaud = \"fast\"");
        let e = parse(&bad).unwrap_err().to_string();
        assert_eq!(
            e,
            "test.toml:10:8: printer[0].baud: invalid type: string \"fast\", expected u32 \
             (a whole number without quotes)\n   |\n10 | baud = \"fast\"\n   |        ^^^^^^"
        );
        let bad = GOOD.replace("[journal]", "listen = \"localhost:80\"\n[journal]");
        let e = parse(&bad).unwrap_err().to_string();
        assert!(e.starts_with("test.toml:4:10: api.listen: "), "{e}");
    }

    #[test]
    fn an_unknown_key_or_value_gets_a_did_you_mean_when_close() {
        let e = parse(&GOOD.replace("protocol =", "protocl =")).unwrap_err();
        let e = e.to_string();
        assert!(
            e.starts_with("test.toml:8:1: printer[0].protocl: unknown field `protocl`"),
            "{e}"
        );
        assert!(e.contains("did you mean `protocol`?"), "{e}");
        assert!(
            e.ends_with("\n  |\n8 | protocl = \"posnet\"\n  | ^^^^^^^"),
            "{e}"
        );
        let e = parse(&GOOD.replace("\"posnet\"", "\"posnt\"")).unwrap_err();
        // The list of expected protocols grows with each driver: check its start and the hint.
        let text = e.to_string();
        assert!(
            text.contains("printer[0].protocol: unknown variant `posnt`, expected")
                && text.contains("`posnet`"),
            "{e}"
        );
        assert!(text.contains("; did you mean `posnet`?"), "{e}");
        let e = parse(&GOOD.replace("[[printer]]", "[[printers]]")).unwrap_err();
        assert!(e.to_string().contains("did you mean `printer`?"), "{e}");
        let far = parse(&GOOD.replace("protocol =", "colour =")).unwrap_err();
        assert!(!far.to_string().contains("did you mean"), "{far}");
    }

    #[test]
    fn thermal_dialect_and_encoding_are_checked() {
        let thermal = GOOD.replace(
            "protocol = \"posnet\"",
            "protocol = \"thermal\"\ndialect = \"novitus\"\nencoding = \"cp1250\"",
        );
        let c = parse(&thermal).unwrap();
        assert_eq!(c.printers[0].thermal_dialect(), thermal::Dialect::Novitus);
        assert_eq!(c.printers[0].thermal_encoding(), thermal::Encoding::Cp1250);
        let e = parse(&thermal.replace("\"cp1250\"", "\"utf8\"")).unwrap_err();
        assert!(e.to_string().contains("unknown variant `utf8`"), "{e}");
        let e = parse(&GOOD.replace(
            "protocol = \"posnet\"",
            "protocol = \"posnet\"\nencoding = \"mazovia\"",
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("encoding only applies to protocol = \"thermal\""),
            "{e}"
        );
    }

    #[test]
    fn a_missing_key_is_named_with_its_path_and_an_example() {
        let e = parse(&GOOD.replace("protocol = \"posnet\"\n", ""))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with(
                "test.toml:6:1: printer[0].protocol: missing key `protocol`, which is required; \
                 expected e.g. protocol = \"posnet\""
            ),
            "{e}"
        );
        let e = parse(&GOOD.replace("[journal]\npath = \"/tmp/j.db\"\n", ""))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "test.toml: journal: missing key `journal`, which is required; expected e.g. \
             a [journal] table with path = \"/var/lib/fiscald/journal.db\""
        );
    }

    #[test]
    fn duplicate_ids_point_at_the_second_and_name_the_first() {
        let two =
            format!("{GOOD}[[printer]]\nid = \"fp1\"\nprotocol = \"posnet\"\nport = \"sim\"\n");
        let e = parse(&two).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "test.toml:11:6: printer[1].id: id \"fp1\" is already used by printer[0] (line 7)"
            ),
            "{e}"
        );
        assert!(e.ends_with("11 | id = \"fp1\"\n   |      ^^^^^"), "{e}");
        let terminal = "[[terminal]]\nid = \"t1\"\nprotocol = \"zvt\"\nport = \"sim\"\n";
        let twice = format!("{GOOD}{terminal}{terminal}");
        let e = parse(&twice).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "test.toml:15:6: terminal[1].id: id \"t1\" is already used by terminal[0] (line 11)"
            ),
            "{e}"
        );
        let shared = format!("{GOOD}{}", terminal.replace("t1", "fp1"));
        let e = parse(&shared).unwrap_err().to_string();
        assert!(
            e.starts_with(
                "test.toml:7:6: printer[0].id: id \"fp1\" is already used by terminal[0] (line 11)"
            ),
            "{e}"
        );
    }

    #[test]
    fn syntax_errors_keep_line_column_and_the_snippet() {
        let e = parse(&GOOD.replace("port = \"sim\"", "port = sim"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("test.toml:9:8: "), "{e}");
        assert!(e.contains("\n9 | port = sim\n"), "{e}");
    }
}
