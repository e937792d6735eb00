//! `fiscald sim posnet`: a POSNET printer on a pseudo-terminal, driven by the
//! `posnet::model::Printer` model, with its fiscal memory in a JSON state file and
//! faults that can be set on the command line or at run time over a control socket.
//!
//! Control commands (one per line on the control socket; also `--fault` at start):
//! `paper out`, `paper out after N` (printed lines), `paper back`, `cover open`,
//! `cover close`, `power cycle [MS]` (device gone for MS milliseconds, default 1000),
//! `delay MS` (before every reply; 0 clears), `drop N` (drop the next N replies),
//! `garbage N` (N garbage bytes before the next reply), `clock +SECONDS` (move the
//! printer's clock), `status` (a JSON summary). Each answer is one line: `ok ...` or `error ...`.

use super::control::ControlSocket;
pub use super::control::send_control;
use super::line::{sleep_until, write_all};
use super::pty::Pty;
use super::pump::Pump;
use posnet::model::{FiscalMemory, Printer};
use posnet::{Decoded, Frame, FrameDecoder};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to publish the device (a symlink to the PTY).
    pub link: PathBuf,
    /// Fiscal memory file (JSON); memory only when absent.
    pub state: Option<PathBuf>,
    /// Emulate a line of this speed (10 bit times per byte) in both directions.
    pub baud: Option<u32>,
    /// Control socket; defaults to `<link>.ctl`.
    pub control: Option<PathBuf>,
    /// Faults to apply at start (control-command syntax).
    pub faults: Vec<String>,
}

impl Options {
    pub fn control_path(&self) -> PathBuf {
        self.control
            .clone()
            .unwrap_or_else(|| super::control::default_path(&self.link))
    }
}

/// Line faults the emulator injects (the printer model handles paper and cover).
#[derive(Debug, Default)]
struct LineFaults {
    delay: Duration,
    drop_replies: u32,
    garbage_next: usize,
    clock_offset: chrono::Duration,
}

/// What a control command asks of the main loop.
enum Control {
    Done(String),
    PowerCycle(Duration),
}

struct Emulator {
    opts: Options,
    printer: Printer,
    faults: LineFaults,
    replies: u64,
    rng: u64,
}

/// Run the emulator until `stop` is set. Errors only on set-up failures.
pub fn run(opts: Options, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let printer = match &opts.state {
        Some(p) => super::state::load::<FiscalMemory>(p, "fiscal memory")?
            .map_or_else(Printer::new, Printer::from_memory),
        None => Printer::new(),
    };
    let control = ControlSocket::bind(&opts.control_path())?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut emu = Emulator {
        opts: opts.clone(),
        printer,
        faults: LineFaults::default(),
        replies: 0,
        rng: seed,
    };
    emu.persist()?;
    for f in &opts.faults {
        match emu.control(f) {
            Ok(Control::Done(_)) => {}
            Ok(Control::PowerCycle(_)) => {
                anyhow::bail!("--fault: power cycle cannot be set at start")
            }
            Err(e) => anyhow::bail!("--fault {f:?}: {e}"),
        }
    }
    let result = emu.main_loop(&control, &stop);
    let _ = super::pty::claim_link(&opts.link);
    drop(control);
    result
}

impl Emulator {
    fn now(&self) -> chrono::NaiveDateTime {
        chrono::Local::now().naive_local() + self.faults.clock_offset
    }

    fn persist(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.opts.state {
            super::state::save(path, self.printer.memory())?;
        }
        Ok(())
    }

    fn wire_time(&self, bytes: usize) -> Duration {
        super::line::wire_time(self.opts.baud, bytes)
    }

    fn main_loop(&mut self, control: &ControlSocket, stop: &AtomicBool) -> anyhow::Result<()> {
        while !stop.load(Ordering::Relaxed) {
            let pty = Pty::create(&self.opts.link)?;
            tracing::info!(device = %pty.device.display(), link = %self.opts.link.display(), "emulated POSNET printer is on");
            let off = self.serve(&pty, control, stop)?;
            pty.unlink();
            drop(pty);
            let Some(off) = off else { break };
            tracing::info!(?off, "power cycle: the printer is off");
            if self.printer.power_cycle() {
                self.persist()?;
            }
            let until = Instant::now() + off;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                self.poll_control(control, false);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        Ok(())
    }

    /// Serve one power-on period. Returns `Some(off_time)` for a power cycle, `None` on stop.
    fn serve(
        &mut self,
        pty: &Pty,
        control: &ControlSocket,
        stop: &AtomicBool,
    ) -> anyhow::Result<Option<Duration>> {
        let mut decoder = FrameDecoder::new();
        let mut pump = Pump::new();
        let mut first_byte_at: Option<Instant> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            pump.input(pty, Duration::from_millis(10), |bytes| {
                if decoder.pending() == 0 {
                    first_byte_at = Some(Instant::now());
                }
                decoder.push(bytes);
            });
            while let Some(item) = decoder.next_item() {
                let started = first_byte_at.unwrap_or_else(Instant::now);
                first_byte_at = (decoder.pending() > 0).then(Instant::now);
                match item {
                    Decoded::Frame(frame) => {
                        let len = frame.encode_raw().len();
                        sleep_until(started + self.wire_time(len));
                        let outcome = self.printer.handle(&frame, self.now());
                        if outcome.fiscal_event {
                            self.persist()?;
                        }
                        if let Some(reply) = outcome.reply {
                            self.reply(pty, &reply);
                        }
                    }
                    Decoded::Invalid { raw, error } => {
                        tracing::debug!(%error, "invalid frame received");
                        sleep_until(started + self.wire_time(raw.len()));
                        let code = match error {
                            posnet::DecodeError::BadCrc { .. } => 5,
                            posnet::DecodeError::TooLong { .. } => 11,
                            _ => 15,
                        };
                        self.reply(pty, &Frame::error_reply("ERR", code));
                    }
                    Decoded::Garbage(_) => {}
                }
            }
            if let Some(Control::PowerCycle(off)) = self.poll_control(control, true) {
                return Ok(Some(off));
            }
            while let Some(outcome) = self.printer.resume(self.now()) {
                if outcome.fiscal_event {
                    self.persist()?;
                }
                if let Some(reply) = outcome.reply {
                    self.reply(pty, &reply);
                }
            }
        }
    }

    fn reply(&mut self, pty: &Pty, reply: &Frame) {
        if !self.faults.delay.is_zero() {
            std::thread::sleep(self.faults.delay);
        }
        if self.faults.drop_replies > 0 {
            self.faults.drop_replies -= 1;
            tracing::info!(mnemonic = %reply.mnemonic, "fault: dropping this reply");
            return;
        }
        let mut bytes = Vec::new();
        if self.faults.garbage_next > 0 {
            for _ in 0..std::mem::take(&mut self.faults.garbage_next) {
                bytes.push(self.garbage_byte());
            }
        }
        bytes.extend_from_slice(&reply.encode_raw());
        std::thread::sleep(self.wire_time(bytes.len()));
        write_all(&pty.master, &bytes);
        self.replies += 1;
    }

    /// A random byte that is not STX (so garbage never opens a frame of its own).
    fn garbage_byte(&mut self) -> u8 {
        loop {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let b = (self.rng >> 24) as u8;
            if b != posnet::frame::STX {
                return b;
            }
        }
    }

    /// Accept and answer pending control connections.
    fn poll_control(&mut self, control: &ControlSocket, powered: bool) -> Option<Control> {
        control.poll(|line| match self.control(line) {
            Ok(Control::Done(msg)) => (format!("ok {msg}"), None),
            Ok(Control::PowerCycle(_)) if !powered => {
                ("error the printer is already off".to_string(), None)
            }
            Ok(c @ Control::PowerCycle(_)) => ("ok power cycle".to_string(), Some(c)),
            Err(e) => (format!("error {e}"), None),
        })
    }

    fn control(&mut self, cmd: &str) -> Result<Control, String> {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{s:?} is not a whole number"))
        };
        let done = |m: &str| Ok(Control::Done(m.to_string()));
        match words.as_slice() {
            ["paper", "out"] => {
                self.printer.paper_out(None);
                done("paper out")
            }
            ["paper", "out", "after", n] => {
                self.printer.paper_out(Some(num(n)? as u32));
                done("paper runs out later")
            }
            ["paper", "back"] => {
                self.printer.paper_back();
                done("paper back")
            }
            ["cover", "open"] => {
                self.printer.set_cover_open(true);
                done("cover open")
            }
            ["cover", "close"] | ["cover", "closed"] => {
                self.printer.set_cover_open(false);
                done("cover closed")
            }
            ["power", "cycle"] => Ok(Control::PowerCycle(Duration::from_millis(1000))),
            ["power", "cycle", ms] => Ok(Control::PowerCycle(Duration::from_millis(num(ms)?))),
            ["delay", ms] => {
                self.faults.delay = Duration::from_millis(num(ms)?);
                done("delay set")
            }
            ["drop", n] => {
                self.faults.drop_replies = num(n)? as u32;
                done("replies will be dropped")
            }
            ["garbage", n] => {
                self.faults.garbage_next = num(n)?.min(65_536) as usize;
                done("garbage queued")
            }
            ["clock", off] => {
                let secs: i64 = off
                    .trim_start_matches('+')
                    .parse()
                    .map_err(|_| format!("{off:?} is not a number of seconds"))?;
                self.faults.clock_offset += chrono::Duration::seconds(secs);
                done("clock moved")
            }
            ["status"] => {
                let m = self.printer.memory();
                let s = serde_json::json!({
                    "receipts": m.receipts.len(),
                    "daily_reports": m.daily_reports.len(),
                    "open_receipt": m.open_receipt,
                    "replies": self.replies,
                    "delay_ms": self.faults.delay.as_millis() as u64,
                    "drop_replies": self.faults.drop_replies,
                });
                Ok(Control::Done(s.to_string()))
            }
            _ => Err(format!("unknown control command {cmd:?}")),
        }
    }
}

/// Start the emulator on a thread of this process (for `port = "sim"`); returns when the
/// device link exists.
pub fn spawn(opts: Options, stop: Arc<AtomicBool>) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let link = opts.link.clone();
    super::pty::claim_link(&link)?;
    let handle = std::thread::Builder::new()
        .name("sim-posnet".into())
        .spawn(move || {
            if let Err(e) = run(opts, stop) {
                tracing::error!(error = %e, "the built-in printer emulator stopped");
            }
        })?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::symlink_metadata(&link).is_err() {
        if Instant::now() > deadline || handle.is_finished() {
            anyhow::bail!("the built-in emulator did not create {}", link.display());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(handle)
}
