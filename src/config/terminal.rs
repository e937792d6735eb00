//! `[[terminal]]` and `[sales]`: card terminals and how card sales run.

use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

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
    #[serde(default = "super::printer::default_command_timeout")]
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
