//! `fiscald sim thermal`: a Thermal (ESC P) printer on a pseudo-terminal, driven by the
//! `thermal::model::Printer` model, with its fiscal memory in a JSON state file (the shape of
//! `sim posnet`'s: `receipts`, `daily_reports`, `cash_operations`, `printouts`,
//! `open_receipt`) and the same control commands as `sim posnet`:
//! `paper out`, `paper out after N` (printed lines), `paper back`, `cover open`,
//! `cover close`, `power cycle [MS]`, `delay MS` (before every reply), `drop N` (drop the next
//! N replies: frames or status bytes), `garbage N` (N garbage bytes before the next reply),
//! `clock +SECONDS`, `status`.
//!
//! Line timing as `sim posnet`'s: each direction is paced on its own at `--baud` (10 bit
//! times per byte); an item runs once its last byte has crossed the line.

use super::control::ControlSocket;
use super::line::{wire_time, write_all};
use super::printer_control::{self, Control, LineFaults};
use super::pty::Pty;
use super::pump::Pump;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use thermal::model::{Memory, Printer};
use thermal::{Decoder, Dialect, Encoding, Item};

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where to publish the device (a symlink to the PTY).
    pub link: PathBuf,
    pub dialect: Dialect,
    pub encoding: Encoding,
    /// Fiscal memory file (JSON); memory only when absent.
    pub state: Option<PathBuf>,
    /// Emulate a line of this speed in both directions.
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

struct Emulator {
    opts: Options,
    printer: Printer,
    faults: LineFaults,
    replies: u64,
    rng: u64,
}

/// Run the emulator until `stop` is set. Errors only on set-up failures.
pub fn run(opts: Options, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let memory = match &opts.state {
        Some(p) => super::state::load::<Memory>(p, "Thermal fiscal memory")?.unwrap_or_default(),
        None => Memory::default(),
    };
    let control = ControlSocket::bind(&opts.control_path())?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut emu = Emulator {
        printer: Printer::new(memory, opts.dialect, opts.encoding),
        opts: opts.clone(),
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
    let result = printer_control::run_powered(&mut emu, &control, &stop);
    let _ = super::pty::claim_link(&opts.link);
    drop(control);
    result
}

impl Emulator {
    fn today(&self) -> chrono::NaiveDate {
        (chrono::Local::now().naive_local() + self.faults.clock_offset).date()
    }

    fn persist(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.opts.state {
            super::state::save(path, self.printer.memory())?;
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
        let mut decoder = Decoder::new();
        let mut pump = Pump::new();
        // Received items with the time their last byte arrived.
        let mut received: VecDeque<(Instant, Item)> = VecDeque::new();
        let mut rx_free: Option<Instant> = None;
        let mut tx = Transmit::default();
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let baud = self.opts.baud;
            pump.input(pty, Duration::from_millis(5), |bytes| {
                let arrived = Instant::now();
                decoder.push(bytes);
                while let Some(item) = decoder.next_item() {
                    let len = match &item {
                        Item::Frame(f) => f.encode().len(),
                        Item::Byte(_) => 1,
                        Item::Invalid { raw, .. } => raw.len() + 2,
                    };
                    let start = rx_free.map_or(arrived, |t| t.max(arrived));
                    let done = start + wire_time(baud, len);
                    rx_free = Some(done);
                    received.push_back((done, item));
                }
            });
            let now = Instant::now();
            while received.front().is_some_and(|(t, _)| *t <= now) {
                let Some((_, item)) = received.pop_front() else {
                    break;
                };
                let today = self.today();
                let outcome = self.printer.input(item, today);
                if outcome.fiscal_event {
                    self.persist()?;
                }
                self.reply(&mut tx, outcome.reply);
            }
            if let Some(Control::PowerCycle(off)) = self.poll_control(control, true) {
                return Ok(Some(off));
            }
            let today = self.today();
            for outcome in self.printer.resume(today) {
                if outcome.fiscal_event {
                    self.persist()?;
                }
                self.reply(&mut tx, outcome.reply);
            }
            tx.transmit(pty, Instant::now());
        }
    }

    /// Queue reply bytes with the line faults.
    fn reply(&mut self, tx: &mut Transmit, bytes: Vec<u8>) {
        if bytes.is_empty() {
            return;
        }
        if self.faults.drop_replies > 0 {
            self.faults.drop_replies -= 1;
            tracing::info!(bytes = bytes.len(), "fault: dropping this reply");
            return;
        }
        let mut out = Vec::new();
        for _ in 0..std::mem::take(&mut self.faults.garbage_next) {
            out.push(self.garbage_byte());
        }
        out.extend(bytes);
        let ready = Instant::now() + self.faults.delay;
        tx.send(out, ready, self.opts.baud);
        self.replies += 1;
    }

    /// A random byte that is neither ESC nor a status byte (garbage that could pass for a
    /// status answer would be a different fault).
    fn garbage_byte(&mut self) -> u8 {
        loop {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let b = (self.rng >> 24) as u8;
            if b != thermal::frame::ESC && !(0x60..=0x77).contains(&b) {
                return b;
            }
        }
    }

    fn poll_control(&mut self, control: &ControlSocket, powered: bool) -> Option<Control> {
        printer_control::poll(control, powered, |line| self.control(line))
    }

    /// A control command: `status` here, the rest as every emulated printer takes them.
    fn control(&mut self, cmd: &str) -> Result<Control, String> {
        if cmd.split_whitespace().ne(["status"]) {
            return printer_control::apply(&mut self.printer, &mut self.faults, cmd);
        }
        let m = self.printer.memory();
        let s = serde_json::json!({
            "receipts": m.receipts.len(),
            "daily_reports": m.daily_reports.len(),
            "open_receipt": m.open_receipt,
            "trf": m.trf,
            "held": self.printer.held(),
            "replies": self.replies,
            "delay_ms": self.faults.delay.as_millis() as u64,
            "drop_replies": self.faults.drop_replies,
        });
        Ok(Control::Done(s.to_string()))
    }
}

/// The transmit direction, paced on its own.
#[derive(Default)]
struct Transmit {
    free: Option<Instant>,
    outgoing: VecDeque<(Instant, Vec<u8>)>,
}

impl Transmit {
    fn send(&mut self, bytes: Vec<u8>, ready: Instant, baud: Option<u32>) {
        let start = self.free.map_or(ready, |t| t.max(ready));
        let done = start + wire_time(baud, bytes.len());
        self.free = Some(done);
        self.outgoing.push_back((done, bytes));
    }

    fn transmit(&mut self, pty: &Pty, now: Instant) {
        while self.outgoing.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, bytes)) = self.outgoing.pop_front() {
                write_all(&pty.master, &bytes);
            }
        }
    }
}

/// Start the emulator on a thread of this process (for `port = "sim"`); returns when the
/// device link exists.
pub fn spawn(opts: Options, stop: Arc<AtomicBool>) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let link = opts.link.clone();
    super::pty::claim_link(&link)?;
    let handle = std::thread::Builder::new()
        .name("sim-thermal".into())
        .spawn(move || {
            if let Err(e) = run(opts, stop) {
                tracing::error!(error = %e, "the built-in Thermal printer emulator stopped");
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

impl printer_control::PoweredPrinter for Emulator {
    fn link(&self) -> &std::path::Path {
        &self.opts.link
    }
    fn announce(&self, pty: &Pty) {
        tracing::info!(device = %pty.device.display(), link = %self.opts.link.display(),
            dialect = self.opts.dialect.as_str(), encoding = self.opts.encoding.as_str(),
            "emulated Thermal printer is on");
    }
    fn serve_on(
        &mut self,
        pty: &Pty,
        control: &ControlSocket,
        stop: &AtomicBool,
    ) -> anyhow::Result<Option<Duration>> {
        self.serve(pty, control, stop)
    }
    fn power_off(&mut self) -> anyhow::Result<()> {
        if self.printer.power_cycle() {
            self.persist()?;
        }
        Ok(())
    }
    fn control_poll(&mut self, control: &ControlSocket, powered: bool) -> Option<Control> {
        self.poll_control(control, powered)
    }
}
