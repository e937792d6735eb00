//! `fiscald sim novitus-xml`: a Novitus XML printer on a pseudo-terminal, driven by the
//! `novitus_xml::model::Printer` model, with its fiscal memory in a JSON state file (the
//! shape of `sim posnet`'s) and the same faults and control commands as `sim posnet`:
//! `paper out`, `paper out after N`, `paper back`, `cover open`, `cover close`,
//! `power cycle [MS]`, `delay MS`, `drop N`, `garbage N`, `clock +SECONDS`, `status`.
//!
//! The line: each packet is received once its last byte has crossed the emulated line at
//! `--baud`; packets run in order, each after the one before plus the `delay` fault; a
//! reply waits for the transmit line and reaches the client when its last byte would have.

use super::control::ControlSocket;
use super::line::{wire_time, write_all};
use super::printer_control::{self, Control, LineFaults};
use super::pty::Pty;
use super::pump::Pump;
use novitus_xml::model::{Memory, Printer};
use novitus_xml::{Decoded, Packet, PacketDecoder};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Emulator settings (those of `sim posnet`).
pub type Options = super::posnet::Options;

struct Emulator {
    state: Option<PathBuf>,
    baud: Option<u32>,
    link: PathBuf,
    printer: Printer,
    faults: LineFaults,
    replies: u64,
    rng: u64,
}

/// Run the emulator until `stop` is set. Errors only on set-up failures.
pub fn run(opts: Options, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    let printer = match &opts.state {
        Some(p) => super::state::load::<Memory>(p, "fiscal memory")?
            .map_or_else(Printer::new, Printer::from_memory),
        None => Printer::new(),
    };
    let control = ControlSocket::bind(&opts.control_path())?;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut emu = Emulator {
        state: opts.state.clone(),
        baud: opts.baud,
        link: opts.link.clone(),
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
    let result = printer_control::run_powered(&mut emu, &control, &stop);
    let _ = super::pty::claim_link(&opts.link);
    drop(control);
    result
}

/// The emulated line: received packets waiting to run, replies waiting to be written.
#[derive(Default)]
struct Line {
    rx_free: Option<Instant>,
    received: VecDeque<(Instant, Decoded)>,
    busy_until: Option<Instant>,
    tx_free: Option<Instant>,
    outgoing: VecDeque<(Instant, Vec<u8>)>,
}

impl Line {
    fn receive(&mut self, item: Decoded, len: usize, arrived: Instant, baud: Option<u32>) {
        let start = self.rx_free.map_or(arrived, |t| t.max(arrived));
        let done = start + wire_time(baud, len);
        self.rx_free = Some(done);
        if !matches!(item, Decoded::Garbage(_)) {
            self.received.push_back((done, item));
        }
    }

    fn next(&mut self, now: Instant, delay: Duration) -> Option<Decoded> {
        let (done, _) = self.received.front()?;
        let free = self.busy_until.map_or(*done, |b| b.max(*done));
        if free > now {
            return None;
        }
        self.busy_until = Some(now + delay);
        self.received.pop_front().map(|(_, item)| item)
    }

    fn send(&mut self, bytes: Vec<u8>, at: Instant, baud: Option<u32>) {
        let ready = self.busy_until.map_or(at, |b| b.max(at));
        let start = self.tx_free.map_or(ready, |t| t.max(ready));
        let done = start + wire_time(baud, bytes.len());
        self.tx_free = Some(done);
        self.outgoing.push_back((done, bytes));
    }

    fn transmit(&mut self, pty: &Pty, now: Instant) {
        while self.outgoing.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, bytes)) = self.outgoing.pop_front() {
                write_all(&pty.master, &bytes);
            }
        }
    }

    fn next_event(&self) -> Option<Instant> {
        let reply = self.outgoing.front().map(|(t, _)| *t);
        let command = self
            .received
            .front()
            .map(|(done, _)| self.busy_until.map_or(*done, |b| b.max(*done)));
        match (reply, command) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

fn raw_len(item: &Decoded) -> usize {
    match item {
        Decoded::Packet(p) => p.encode(p.crc.is_some()).len(),
        Decoded::Invalid { raw, .. } => raw.len(),
        Decoded::Garbage(g) => g.len(),
    }
}

impl Emulator {
    fn now(&self) -> chrono::NaiveDateTime {
        chrono::Local::now().naive_local() + self.faults.clock_offset
    }

    fn persist(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.state {
            super::state::save(path, self.printer.memory())?;
        }
        Ok(())
    }

    fn serve(
        &mut self,
        pty: &Pty,
        control: &ControlSocket,
        stop: &AtomicBool,
    ) -> anyhow::Result<Option<Duration>> {
        let mut decoder = PacketDecoder::new();
        let mut pump = Pump::new();
        let mut line = Line::default();
        let baud = self.baud;
        loop {
            if stop.load(Ordering::Relaxed) {
                return Ok(None);
            }
            let now = Instant::now();
            let wait = line.next_event().map_or(Duration::from_millis(10), |t| {
                t.saturating_duration_since(now)
                    .min(Duration::from_millis(10))
            });
            pump.input(pty, wait, |bytes| {
                let arrived = Instant::now();
                decoder.push(bytes);
                while let Some(item) = decoder.next_item() {
                    let len = raw_len(&item);
                    line.receive(item, len, arrived, baud);
                }
            });
            let now = Instant::now();
            while let Some(item) = line.next(now, self.faults.delay) {
                match item {
                    Decoded::Packet(p) => {
                        let out = self.printer.handle(&p.body, self.now());
                        if let Some(code) = out.error {
                            tracing::debug!(code, "the command failed");
                        }
                        if out.fiscal_event {
                            self.persist()?;
                        }
                        if let Some(body) = out.reply {
                            self.reply(&mut line, body, now);
                        }
                    }
                    // A damaged packet is not run; the host learns it from `<enq/>`.
                    Decoded::Invalid { error, .. } => {
                        tracing::debug!(%error, "invalid packet received");
                    }
                    Decoded::Garbage(_) => {}
                }
            }
            if let Some(Control::PowerCycle(off)) = self.poll_control(control, true) {
                return Ok(Some(off));
            }
            line.transmit(pty, Instant::now());
        }
    }

    fn reply(&mut self, line: &mut Line, body: Vec<u8>, at: Instant) {
        if self.faults.drop_replies > 0 {
            self.faults.drop_replies -= 1;
            tracing::info!("fault: dropping this reply");
            return;
        }
        let mut bytes = Vec::new();
        for _ in 0..std::mem::take(&mut self.faults.garbage_next) {
            bytes.push(self.garbage_byte());
        }
        bytes.extend_from_slice(&Packet::new(body).encode(true));
        line.send(bytes, at, self.baud);
        self.replies += 1;
    }

    /// A random byte that is not `<` (so garbage never opens a packet of its own).
    fn garbage_byte(&mut self) -> u8 {
        loop {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let b = (self.rng >> 24) as u8;
            if b != b'<' {
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
            "paper_out": self.printer.is_paper_out(),
            "replies": self.replies,
            "delay_ms": self.faults.delay.as_millis() as u64,
            "drop_replies": self.faults.drop_replies,
        });
        Ok(Control::Done(s.to_string()))
    }
}

/// Start the emulator on a thread of this process (for `port = "sim"`); returns when the
/// device link exists.
pub fn spawn(opts: Options, stop: Arc<AtomicBool>) -> anyhow::Result<std::thread::JoinHandle<()>> {
    let link = opts.link.clone();
    super::pty::claim_link(&link)?;
    let handle = std::thread::Builder::new()
        .name("sim-novitus-xml".into())
        .spawn(move || {
            if let Err(e) = run(opts, stop) {
                tracing::error!(error = %e, "the built-in Novitus XML emulator stopped");
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
        &self.link
    }
    fn announce(&self, pty: &Pty) {
        tracing::info!(device = %pty.device.display(), link = %self.link.display(), "emulated Novitus XML printer is on");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_run_in_order_after_their_wire_time() {
        let mut line = Line::default();
        let t0 = Instant::now();
        let p = Packet::new(b"<enq/>".to_vec());
        let len = p.encode(false).len();
        line.receive(Decoded::Packet(p.clone()), len, t0, Some(9600));
        line.receive(Decoded::Packet(p), len, t0, Some(9600));
        let one = wire_time(Some(9600), len);
        assert!(line.next(t0, Duration::ZERO).is_none());
        assert!(line.next(t0 + one, Duration::ZERO).is_some());
        assert!(line.next(t0 + one, Duration::ZERO).is_none());
        assert!(line.next(t0 + one * 2, Duration::ZERO).is_some());
    }
}
