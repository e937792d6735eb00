//! The TOML configuration file: `[api]`, `[journal]`, `[noviapi]` and the checks across
//! entries here; `[[printer]]` in `printer`, `[[terminal]]` and `[sales]` in `terminal`,
//! `[fleet]` in `fleet::config`; errors as a technician reads them in `errors`.

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod errors;
mod printer;
mod terminal;

use errors::{explain, line_col, render, span_of};
pub use printer::*;
pub use terminal::*;

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
