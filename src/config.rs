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
    /// `fiscald serve --record DIR`: record every device's wire trace into DIR.
    #[serde(skip)]
    pub record_dir: Option<PathBuf>,
}

/// Wire protocols a terminal entry may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TerminalProtocol {
    Zvt,
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
    pub fn command_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.command_timeout)
    }
    pub fn report_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.report_timeout)
    }
    pub fn status_poll(&self) -> Duration {
        Duration::from_secs_f64(self.status_poll)
    }
    pub fn paper_wait(&self) -> Duration {
        Duration::from_secs_f64(self.paper_wait)
    }
}

/// A configuration error, already formatted with file, line and column where known.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    /// Read, parse and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read: {e}", path.display())))?;
        Self::parse(&text, path)
    }

    /// Parse and validate configuration text; `origin` names the file in errors.
    pub fn parse(text: &str, origin: &Path) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|span| line_col(text, span.start))
                .unwrap_or((0, 0));
            let msg = e.message();
            ConfigError(format!("{}:{line}:{col}: {msg}", origin.display()))
        })?;
        config
            .validate()
            .map_err(|m| ConfigError(format!("{}: {m}", origin.display())))?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), String> {
        if let Some(addr) = self.api.listen {
            if !addr.ip().is_loopback() {
                return Err(format!(
                    "[api] listen = \"{addr}\" is not a loopback address; fiscald only listens on 127.0.0.0/8 or ::1"
                ));
            }
            if self.api.token_file.is_none() {
                return Err(
                    "[api] listen needs token_file: every TCP request must carry a token".into(),
                );
            }
        }
        if self.printers.is_empty() {
            return Err("no [[printer]] entry: configure at least one printer".into());
        }
        let mut seen = std::collections::HashSet::new();
        for (i, t) in self.terminals.iter().enumerate() {
            let at = format!("[[terminal]] #{} (id = {:?})", i + 1, t.id);
            if t.id.is_empty()
                || !t
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "{at}: id must be non-empty letters, digits, '-' or '_'"
                ));
            }
            if !seen.insert(t.id.as_str()) {
                return Err(format!(
                    "{at}: id is used twice (ids are shared by printers and terminals)"
                ));
            }
            if t.password.len() != 6 || !t.password.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("{at}: password must be 6 digits"));
            }
            if currency_code(&t.currency).is_none() {
                return Err(format!(
                    "{at}: currency {:?} is not supported; use \"PLN\" or \"EUR\"",
                    t.currency
                ));
            }
            if let Some(addr) = t.port.strip_prefix("tcp://") {
                if addr.parse::<SocketAddr>().is_err() {
                    return Err(format!("{at}: port {:?} is not tcp://IP:PORT", t.port));
                }
            } else if t.port.is_empty() {
                return Err(format!(
                    "{at}: port is empty; give a device path, \"sim\" or tcp://IP:PORT"
                ));
            }
            if !(1200..=921_600).contains(&t.baud) {
                return Err(format!(
                    "{at}: baud {} is out of range 1200..921600",
                    t.baud
                ));
            }
            for (name, v) in [
                ("command_timeout", t.command_timeout),
                ("transaction_timeout", t.transaction_timeout),
            ] {
                if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                    return Err(format!("{at}: {name} must be between 0 and 86400 seconds"));
                }
            }
            if t.sim_state.is_some() && t.port != "sim" {
                return Err(format!("{at}: sim_state only applies to port = \"sim\""));
            }
        }
        let v = self.sales.print_deadline;
        if !(v.is_finite() && v > 0.0 && v <= 7.0 * 86_400.0) {
            return Err("[sales] print_deadline must be between 0 and 604800 seconds".into());
        }
        for (i, p) in self.printers.iter().enumerate() {
            let at = format!("[[printer]] #{} (id = {:?})", i + 1, p.id);
            if p.id.is_empty()
                || !p
                    .id
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err(format!(
                    "{at}: id must be non-empty letters, digits, '-' or '_'"
                ));
            }
            if !seen.insert(p.id.as_str()) {
                return Err(format!("{at}: id is used twice"));
            }
            if p.port.is_empty() {
                return Err(format!(
                    "{at}: port is empty; give a device path or \"sim\""
                ));
            }
            if !(1200..=921_600).contains(&p.baud) {
                return Err(format!(
                    "{at}: baud {} is out of range 1200..921600",
                    p.baud
                ));
            }
            for (name, v) in [
                ("command_timeout", p.command_timeout),
                ("report_timeout", p.report_timeout),
                ("paper_wait", p.paper_wait),
                ("status_poll", p.status_poll),
            ] {
                if !(v.is_finite() && v > 0.0 && v <= 86_400.0) {
                    return Err(format!("{at}: {name} must be between 0 and 86400 seconds"));
                }
            }
            if !(1..=80).contains(&p.max_name_length) {
                return Err(format!("{at}: max_name_length must be 1..80"));
            }
            if p.sim_state.is_some() && p.port != "sim" {
                return Err(format!("{at}: sim_state only applies to port = \"sim\""));
            }
        }
        Ok(())
    }
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
}
