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
use super::line::write_all;
use super::printer_control::{self, Control, LineFaults};
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
    let result = printer_control::run_powered(&mut emu, &control, &stop);
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

    /// Serve one power-on period. Returns `Some(off_time)` for a power cycle, `None` on stop.
    ///
    /// The line is full duplex, each direction paced on its own at `--baud`: a frame is
    /// received once its last byte has crossed the emulated line; the printer runs the
    /// commands it received in order (an immediate `!` query at once), each after the one
    /// before (plus the `delay` fault), while the next ones are still arriving; each reply
    /// waits for the transmit line to be free and reaches the client when its last byte
    /// would have. Received commands not yet run are the input buffer: one that does not
    /// fit in [`INPUT_BUFFER`] bytes is refused with frame error 11 (receive buffer
    /// overrun), as a printer refuses a host that sends too far ahead.
    fn serve(
        &mut self,
        pty: &Pty,
        control: &ControlSocket,
        stop: &AtomicBool,
    ) -> anyhow::Result<Option<Duration>> {
        let mut decoder = FrameDecoder::new();
        let mut pump = Pump::new();
        let mut line = Duplex::default();
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
                    line.receive(item, arrived, self.opts.baud);
                }
            });
            let now = Instant::now();
            while let Some((item, bytes)) = line.next_command(now, self.faults.delay) {
                match item {
                    Decoded::Frame(frame) => {
                        let immediate = frame.mnemonic.starts_with('!');
                        let outcome = self.printer.handle(&frame, self.now());
                        if outcome.fiscal_event {
                            self.persist()?;
                        }
                        if let Some(reply) = outcome.reply {
                            self.reply(&mut line, &reply, now, immediate);
                        }
                    }
                    Decoded::Invalid { error, .. } => {
                        tracing::debug!(%error, "invalid frame received");
                        let code = match error {
                            posnet::DecodeError::BadCrc { .. } => 5,
                            posnet::DecodeError::TooLong { .. } => 11,
                            _ => 15,
                        };
                        self.reply(&mut line, &Frame::error_reply("ERR", code), now, true);
                    }
                    Decoded::Garbage(_) => {}
                }
                line.ran(bytes);
            }
            for overrun in line.take_overruns() {
                tracing::info!(mnemonic = %overrun.mnemonic, "input buffer full: frame error 11");
                let mut err = Frame::error_reply("ERR", 11);
                err.token = overrun.token;
                self.reply(&mut line, &err, now, true);
            }
            if let Some(Control::PowerCycle(off)) = self.poll_control(control, true) {
                return Ok(Some(off));
            }
            while let Some(outcome) = self.printer.resume(self.now()) {
                if outcome.fiscal_event {
                    self.persist()?;
                }
                if let Some(reply) = outcome.reply {
                    self.reply(&mut line, &reply, Instant::now(), true);
                }
            }
            line.transmit(pty, Instant::now());
        }
    }

    /// Queue `reply` (made at `at`) on the transmit line, with the line faults; `now`: it
    /// does not wait for the command in progress (an immediate query, a frame error, a
    /// held command that ran).
    fn reply(&mut self, line: &mut Duplex, reply: &Frame, at: Instant, now: bool) {
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
        line.send(bytes, at, now, self.opts.baud);
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
            "replies": self.replies,
            "delay_ms": self.faults.delay.as_millis() as u64,
            "drop_replies": self.faults.drop_replies,
        });
        Ok(Control::Done(s.to_string()))
    }
}

/// How many bytes of received commands the printer buffers before running them.
///
/// Not a measured figure: the specification names the overrun (frame error 11) and a full
/// input queue (14) but no size. fiscald's pipelining window (512 bytes) stays well below.
pub const INPUT_BUFFER: usize = 2048;

/// The emulated serial line, each direction on its own clock.
#[derive(Default)]
struct Duplex {
    /// When the receive direction is free again.
    rx_free: Option<Instant>,
    /// Received items (frames, invalid frames), each with the time its last byte arrived
    /// and its size, not yet run.
    received: std::collections::VecDeque<(Instant, Decoded, usize)>,
    /// Bytes of `received` (the input buffer).
    buffered: usize,
    /// Frames refused for lack of buffer space, to answer with frame error 11.
    overruns: Vec<Frame>,
    /// When the printer is free to run the next command.
    busy_until: Option<Instant>,
    /// When the transmit direction is free again.
    tx_free: Option<Instant>,
    /// Replies with the time their last byte reaches the client.
    outgoing: std::collections::VecDeque<(Instant, Vec<u8>)>,
}

impl Duplex {
    /// An item decoded from bytes that reached the PTY at `arrived`.
    fn receive(&mut self, item: Decoded, arrived: Instant, baud: Option<u32>) {
        let len = match &item {
            Decoded::Frame(f) => f.encode_raw().len(),
            Decoded::Invalid { raw, .. } => raw.len(),
            Decoded::Garbage(g) => g.len(),
        };
        let start = self.rx_free.map_or(arrived, |t| t.max(arrived));
        let done = start + super::line::wire_time(baud, len);
        self.rx_free = Some(done);
        if let Decoded::Frame(f) = &item
            && !f.mnemonic.starts_with('!')
            && self.buffered + len > INPUT_BUFFER
        {
            self.overruns.push(f.clone());
            return;
        }
        if matches!(item, Decoded::Garbage(_)) {
            return;
        }
        self.buffered += len;
        self.received.push_back((done, item, len));
    }

    /// The next command to run at `now`: an immediate (`!`) query as soon as it is
    /// received, anything else in order once the printer is free. `delay` is the time each
    /// command takes.
    fn next_command(&mut self, now: Instant, delay: Duration) -> Option<(Decoded, usize)> {
        let immediate = self.received.iter().position(|(done, item, _)| {
            *done <= now && matches!(item, Decoded::Frame(f) if f.mnemonic.starts_with('!'))
        });
        let i = match immediate {
            Some(i) => i,
            None => {
                let (done, _, _) = self.received.front()?;
                let free = self.busy_until.map_or(*done, |b| b.max(*done));
                if free > now {
                    return None;
                }
                self.busy_until = Some(now + delay);
                0
            }
        };
        let (_, item, len) = self.received.remove(i)?;
        Some((item, len))
    }

    /// A command of `bytes` left the input buffer.
    fn ran(&mut self, bytes: usize) {
        self.buffered = self.buffered.saturating_sub(bytes);
    }

    fn take_overruns(&mut self) -> Vec<Frame> {
        std::mem::take(&mut self.overruns)
    }

    /// Queue reply bytes made at `at`: after the `delay` the command took, unless `now`.
    fn send(&mut self, bytes: Vec<u8>, at: Instant, now: bool, baud: Option<u32>) {
        let ready = match self.busy_until {
            Some(b) if !now => b.max(at),
            _ => at,
        };
        let start = self.tx_free.map_or(ready, |t| t.max(ready));
        let done = start + super::line::wire_time(baud, bytes.len());
        self.tx_free = Some(done);
        self.outgoing.push_back((done, bytes));
    }

    /// Write every reply whose last byte has reached the client by `now`.
    fn transmit(&mut self, pty: &Pty, now: Instant) {
        while self.outgoing.front().is_some_and(|(t, _)| *t <= now) {
            if let Some((_, bytes)) = self.outgoing.pop_front() {
                write_all(&pty.master, &bytes);
            }
        }
    }

    /// When something is due next: a reply to write, a received command to run.
    fn next_event(&self) -> Option<Instant> {
        let reply = self.outgoing.front().map(|(t, _)| *t);
        let command = self
            .received
            .front()
            .map(|(done, _, _)| self.busy_until.map_or(*done, |b| b.max(*done)));
        match (reply, command) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
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

impl printer_control::PoweredPrinter for Emulator {
    fn link(&self) -> &std::path::Path {
        &self.opts.link
    }
    fn announce(&self, pty: &Pty) {
        tracing::info!(device = %pty.device.display(), link = %self.opts.link.display(), "emulated POSNET printer is on");
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
    use super::{Duplex, INPUT_BUFFER};
    use posnet::{Decoded, Frame};
    use std::time::{Duration, Instant};

    fn frame(n: usize) -> Decoded {
        Decoded::Frame(
            Frame::new("trline")
                .with("na", "x".repeat(40))
                .with_token(n as u16),
        )
    }

    #[test]
    fn each_direction_is_paced_on_its_own_and_commands_run_in_order() {
        let mut line = Duplex::default();
        let t0 = Instant::now();
        // Three frames written at once at 9600 baud: each is received after the one before.
        for n in 0..3 {
            line.receive(frame(n), t0, Some(9600));
        }
        let len = Frame::new("trline")
            .with("na", "x".repeat(40))
            .with_token(0)
            .encode_raw()
            .len();
        let one = super::super::line::wire_time(Some(9600), len);
        assert!(
            line.next_command(t0, Duration::ZERO).is_none(),
            "nothing is received yet"
        );
        let (first, _) = line.next_command(t0 + one, Duration::ZERO).unwrap();
        assert!(matches!(first, Decoded::Frame(f) if f.token == Some(0)));
        assert!(line.next_command(t0 + one, Duration::ZERO).is_none());
        // Its reply goes out while the second frame is still arriving (full duplex).
        line.send(vec![0; len], t0 + one, false, Some(9600));
        assert_eq!(line.next_event(), Some(t0 + one + one));
        let (second, _) = line.next_command(t0 + one * 2, Duration::ZERO).unwrap();
        assert!(matches!(second, Decoded::Frame(f) if f.token == Some(1)));
    }

    #[test]
    fn a_host_that_sends_too_far_ahead_overruns_the_input_buffer() {
        let mut line = Duplex::default();
        let t0 = Instant::now();
        let mut n = 0;
        while line.buffered < INPUT_BUFFER - 100 {
            line.receive(frame(n), t0, Some(9600));
            n += 1;
        }
        assert!(line.take_overruns().is_empty());
        for _ in 0..3 {
            line.receive(frame(n), t0, Some(9600));
            n += 1;
        }
        let over = line.take_overruns();
        assert!(!over.is_empty(), "the buffer overflowed");
        assert!(line.buffered <= INPUT_BUFFER);
    }
}
