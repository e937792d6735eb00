//! `fiscald replay TRACE (--link PATH | --listen ADDR)`: play the device side of a wire
//! trace (see [`crate::trace`]) so that a daemon can be run against it.
//!
//! Replay waits for each request the host recorded (`>`), compares it with the recording
//! and answers with what the device recorded (`<`); the daemon is pointed at the replay
//! instead of the device.
//!
//! - **POSNET** ([`posnet`]): the printer on a PTY published at `--link`. The trace is read
//!   as exchanges (a request and the device's bytes up to the next one). The daemon starts
//!   its `@NNNN` tokens at a time-seeded value, so requests are compared as decoded frames
//!   without the token (and so without the CRC), and each recorded reply frame that
//!   carries a token gets the token the daemon gave the request that carried it in the
//!   recording (a pipelining daemon has several requests out before their replies), with
//!   its CRC recomputed. Everything else must match exactly.
//! - **ZVT** ([`zvt`]): the terminal, on a PTY at `--link` for a `link=serial` trace, on a
//!   TCP listener at `--listen IP:PORT` for a `link=tcp` trace. Every item the register
//!   sends (on serial: frames and link ACK/NAK; on TCP: APDUs) is masked as the recorder
//!   masks it and then compared with the recorded bytes, so the terminal password (written
//!   `000000`) is not compared and nothing else varies between runs. The terminal's
//!   recorded items are sent as recorded, masked card data included. See [`zvt`].
//! - **Timing** is ignored (the device's bytes are sent at once) unless `--realtime`,
//!   which waits as long as the recorded device did.
//! - **The end**: once every request was answered and the line has been quiet for
//!   `--linger-ms`, replay exits 0. The first request that differs from the recording (or
//!   one that comes after its end) is reported with both byte strings, hex and decoded, and
//!   replay exits 1; so does a client that stops before the end (`--timeout`, or SIGTERM).
//!   A trace that cannot be read exits 2 (so do the wrong endpoint for the trace and a
//!   trace of an older version whose ZVT card data was written as `**`).

pub mod posnet;
pub mod zvt;

use crate::trace::{self, Link, Protocol};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// `fiscald replay` options.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The trace file (POSNET, or ZVT on a serial line or TCP).
    pub trace: PathBuf,
    /// Publish the replayed device as a symlink at this path (POSNET and `link=serial`
    /// ZVT traces): point the daemon's `port` at it.
    #[arg(long)]
    pub link: Option<PathBuf>,
    /// Listen on this address, e.g. `127.0.0.1:20007` (`link=tcp` ZVT traces): point the
    /// daemon's `port` at `tcp://` and this address.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Answer after the recorded delays instead of at once.
    #[arg(long)]
    pub realtime: bool,
    /// After the last reply, exit 0 once the line has been quiet this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub linger_ms: u64,
    /// Fail when the client sends nothing for this many seconds before the end.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

impl ReplayArgs {
    /// The `--link` path a PTY replay needs.
    pub fn serial_link(&self) -> anyhow::Result<&Path> {
        self.link
            .as_deref()
            .ok_or_else(|| anyhow::anyhow!("this trace is replayed on a PTY: give --link PATH"))
    }
}

/// How a replay ended badly.
#[derive(Debug)]
pub struct Divergence(pub String);

/// Bytes for the report: hex, then a decoded reading on its own line.
pub(crate) fn show(raw: &[u8], item: &str) -> String {
    format!("{}\n      {item}", hex::encode(raw))
}

/// The recorded time from `from` to `to` (zero without a start or backwards).
pub(crate) fn delay(
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: chrono::DateTime<chrono::Utc>,
) -> Duration {
    from.and_then(|f| (to - f).to_std().ok())
        .unwrap_or_default()
}

/// A trace read for replay.
enum Loaded {
    Posnet(posnet::Script),
    Zvt(zvt::Script),
}

impl Loaded {
    fn requests(&self) -> usize {
        match self {
            Loaded::Posnet(s) => s.exchanges.len(),
            Loaded::Zvt(s) => s.requests(),
        }
    }
}

/// Read a trace for replay, and check that `args` name the endpoint it needs.
fn load(text: &str, args: &ReplayArgs) -> Result<Loaded, String> {
    let t = trace::parse(text)?;
    let loaded = match t.protocol {
        Some(Protocol::Posnet) => Loaded::Posnet(posnet::script(text)?),
        Some(Protocol::Zvt) => Loaded::Zvt(zvt::script(&t)?),
        Some(Protocol::Thermal) => {
            return Err("Thermal traces are recorded but cannot be replayed yet".into());
        }
        Some(Protocol::NovitusXml) => {
            return Err("replaying a Novitus XML trace is not supported yet".into());
        }
        None => return Err("no `# fiscald trace v1 ... protocol=...` header".into()),
    };
    let tcp = matches!(&loaded, Loaded::Zvt(s) if s.link == Link::Tcp);
    match (tcp, &args.link, &args.listen) {
        (false, Some(_), None) | (true, None, Some(_)) => Ok(loaded),
        (false, _, _) => {
            Err("this trace is replayed on a PTY: give --link PATH (and no --listen)".into())
        }
        (true, _, _) => Err(
            "this ZVT trace was recorded on TCP (link=tcp): give --listen IP:PORT (and no --link)"
                .into(),
        ),
    }
}

/// `fiscald replay`.
pub fn main(args: ReplayArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.trace) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fiscald replay: cannot read {}: {e}", args.trace.display());
            return ExitCode::from(2);
        }
    };
    let loaded = match load(&text, &args) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fiscald replay: {}: {e}", args.trace.display());
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    let result = match &loaded {
        Loaded::Posnet(s) => posnet::run(s, &args, &stop),
        Loaded::Zvt(s) => zvt::run(s, &args, &stop),
    };
    match result {
        Err(e) => {
            eprintln!("fiscald replay: {e:#}");
            ExitCode::from(2)
        }
        Ok(Ok(())) => {
            println!(
                "fiscald replay: {}: all {} requests matched",
                args.trace.display(),
                loaded.requests()
            );
            ExitCode::SUCCESS
        }
        Ok(Err(Divergence(msg))) => {
            eprintln!(
                "fiscald replay: {}: divergence: {msg}",
                args.trace.display()
            );
            ExitCode::FAILURE
        }
    }
}
