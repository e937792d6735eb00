//! `[fleet]`: where a till sends its events (NATS JetStream) and how big its outbox may grow.

use serde::Deserialize;
use std::path::PathBuf;

/// `nats`: one URL or a list of them (a cluster's seeds).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum NatsUrls {
    One(String),
    Many(Vec<String>),
}

impl NatsUrls {
    /// The URLs as a list.
    pub fn list(&self) -> Vec<String> {
        match self {
            NatsUrls::One(u) => vec![u.clone()],
            NatsUrls::Many(v) => v.clone(),
        }
    }
}

/// `[fleet.tls]`: TLS to the broker (rustls; no OpenSSL).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetTls {
    /// Refuse a broker that does not offer TLS.
    #[serde(default)]
    pub required: bool,
    /// PEM file of the CA certificates the broker's certificate must chain to.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (with `key_file`) for mutual TLS.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// `[fleet]`: deliver the journal's events to NATS JetStream (off when absent).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FleetConfig {
    /// `nats = "nats://127.0.0.1:4222"` or a list of URLs.
    pub nats: NatsUrls,
    /// The first subject token (default `fiscald`).
    #[serde(default = "default_prefix")]
    pub subject_prefix: String,
    /// This till's name: part of every subject and message id, e.g. `shop17-till2`.
    pub till: String,
    /// A NATS credentials file (`.creds`: a user JWT and its NKey seed).
    pub credentials: Option<PathBuf>,
    /// TLS settings (`[fleet.tls]`).
    #[serde(default)]
    pub tls: Option<FleetTls>,
    /// The JetStream stream the events go to (default `FISCALD`).
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Create the stream when it is missing (default true); false: only check it exists.
    #[serde(default = "yes")]
    pub create_stream: bool,
    /// The stream's duplicate window in seconds when fiscald creates it (default 86400).
    #[serde(default = "default_duplicate_window")]
    pub duplicate_window: u64,
    /// Most outbox rows kept (default 100 000).
    #[serde(default = "default_max_rows")]
    pub max_rows: u64,
    /// Most outbox bytes kept (default 64 MiB).
    #[serde(default = "default_max_bytes")]
    pub max_bytes: u64,
}

fn default_prefix() -> String {
    "fiscald".into()
}
fn default_stream() -> String {
    "FISCALD".into()
}
fn yes() -> bool {
    true
}
fn default_duplicate_window() -> u64 {
    86_400
}
fn default_max_rows() -> u64 {
    100_000
}
fn default_max_bytes() -> u64 {
    64 * 1024 * 1024
}

/// Whether `s` may be one token of a NATS subject: not empty, no `.`, `*`, `>`, whitespace
/// or control characters (we also keep to printable ASCII so ids stay readable).
pub fn is_subject_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'.' | b'*' | b'>'))
}

impl FleetConfig {
    /// The subject of one kind of event: `<prefix>.<till>.<kind>`.
    pub fn subject(&self, kind: &str) -> String {
        format!("{}.{}.{kind}", self.subject_prefix, self.till)
    }

    /// Check the values; an error is `(key, message)`.
    pub fn validate(&self) -> Result<(), (String, String)> {
        let bad = |k: &str, m: String| Err((format!("fleet.{k}"), m));
        let urls = self.nats.list();
        if urls.is_empty() {
            return bad(
                "nats",
                "no URL: e.g. nats = \"nats://127.0.0.1:4222\"".into(),
            );
        }
        for u in &urls {
            let scheme_ok = ["nats://", "tls://"].iter().any(|s| u.starts_with(s));
            if !scheme_ok || u.len() <= 7 || u.contains(char::is_whitespace) {
                return bad(
                    "nats",
                    format!(
                        "{u:?} is not a NATS URL: expected nats://HOST:PORT or tls://HOST:PORT"
                    ),
                );
            }
        }
        if !is_subject_token(&self.till) {
            return bad(
                "till",
                format!(
                    "till {:?} cannot be a subject token: use letters, digits, '-' or '_' (no '.', '*', '>', spaces), at most 64, e.g. till = \"shop17-till2\"",
                    self.till
                ),
            );
        }
        if self.subject_prefix.split('.').any(|t| !is_subject_token(t)) {
            return bad(
                "subject_prefix",
                format!(
                    "subject_prefix {:?} is not a subject: dot-separated tokens without '*', '>' or spaces, e.g. \"fiscald\"",
                    self.subject_prefix
                ),
            );
        }
        let stream_ok = !self.stream.is_empty()
            && self.stream.len() <= 64
            && self
                .stream
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !stream_ok {
            return bad(
                "stream",
                format!(
                    "stream {:?} is not a JetStream stream name: letters, digits, '-' and '_', e.g. \"FISCALD\"",
                    self.stream
                ),
            );
        }
        if !(1..=30 * 86_400).contains(&self.duplicate_window) {
            return bad(
                "duplicate_window",
                format!(
                    "duplicate_window {} is out of range: expected 1..2592000 seconds",
                    self.duplicate_window
                ),
            );
        }
        if self.max_rows < 100 {
            return bad(
                "max_rows",
                format!("max_rows {} is too small: at least 100", self.max_rows),
            );
        }
        if self.max_bytes < 64 * 1024 {
            return bad(
                "max_bytes",
                format!("max_bytes {} is too small: at least 65536", self.max_bytes),
            );
        }
        let files = [("credentials", self.credentials.as_ref())]
            .into_iter()
            .chain(self.tls.iter().flat_map(|t| {
                [
                    ("tls.ca_file", t.ca_file.as_ref()),
                    ("tls.cert_file", t.cert_file.as_ref()),
                    ("tls.key_file", t.key_file.as_ref()),
                ]
            }));
        for (key, path) in files {
            if let Some(p) = path
                && !p.is_file()
            {
                return bad(
                    key,
                    format!("{} does not exist or is not a file", p.display()),
                );
            }
        }
        if let Some(t) = &self.tls
            && t.cert_file.is_some() != t.key_file.is_some()
        {
            return bad(
                "tls.cert_file",
                "cert_file and key_file go together (mutual TLS)".into(),
            );
        }
        Ok(())
    }
}
