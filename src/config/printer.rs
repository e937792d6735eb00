//! `[[printer]]`: fiscal printers.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

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
pub(super) fn default_command_timeout() -> f64 {
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
