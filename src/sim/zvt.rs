//! `fiscald sim zvt`: a ZVT payment terminal driven by the `zvt::model::Terminal` model,
//! on a pseudo-terminal (serial transport: DLE framing, CRC, ACK/NAK) or on TCP (bare
//! APDUs, one connection at a time), with its memory in a JSON state file.
//!
//! The terminal behaves by amount (see `zvt::model`): ending in 51 declined, 52 approved
//! but silent, 53 a 20 s card reader, 54 the connection drops after the result.
//! On serial, a dropped connection means the device link goes away for about 1 s and
//! comes back on a new PTY; on TCP the socket is closed. A register that goes away without
//! a word (a crash) is not noticed on serial: the terminal keeps repeating its
//! unacknowledged message (every 5 s, `zvt::model::REPEAT_INTERVAL`) and refuses commands
//! with `84 83` until the flow ends, as a real terminal on RS-232 does.
//!
//! Control commands (one per line on the control socket, answered `ok ...`/`error ...`):
//! `status` (a JSON summary), `drop` (drop the connection now), `delay MS` (before every
//! message the terminal sends; 0 clears), `silence N` (ignore the next N register
//! commands; acknowledgements still count as received).

use super::control::ControlSocket;
use super::line::{sleep_until, wire_time, write_all};
use super::pty::Pty;
use super::pump::Pump;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zvt::link::{LinkConfig, LinkEvent, SerialLink};
use zvt::model::{Event, Terminal, TerminalMemory};
use zvt::{Apdu, ApduDecoder};

/// How long the serial device stays away after a dropped connection.
pub const DROP_OFF_TIME: Duration = Duration::from_millis(1000);

/// Where the terminal is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A PTY published as a symlink at this path (serial transport).
    Serial(PathBuf),
    /// A TCP listener (bare APDUs).
    Tcp(SocketAddr),
}

/// Emulator settings.
#[derive(Debug, Clone)]
pub struct Options {
    pub endpoint: Endpoint,
    /// Terminal memory file (JSON); memory only when absent.
    pub state: Option<PathBuf>,
    /// Emulate a serial line of this speed (10 bit times per byte); serial only.
    pub baud: Option<u32>,
    /// Control socket; defaults to `<link>.ctl`, else `<state>.ctl`.
    pub control: Option<PathBuf>,
}

impl Options {
    /// The control socket path, if there is one.
    pub fn control_path(&self) -> Option<PathBuf> {
        if let Some(c) = &self.control {
            return Some(c.clone());
        }
        match (&self.endpoint, &self.state) {
            (Endpoint::Serial(link), _) => Some(super::control::default_path(link)),
            (Endpoint::Tcp(_), Some(state)) => Some(super::control::default_path(state)),
            (Endpoint::Tcp(_), None) => None,
        }
    }
}

/// What a control command asks of the transport loop.
enum Action {
    Drop,
}

/// The transport-independent part: the model, persistence and faults.
struct Core {
    opts: Options,
    terminal: Terminal,
    delay: Duration,
    silence: u32,
    received: u64,
    sent: u64,
    connected: bool,
}

impl Core {
    fn persist(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.opts.state {
            super::state::save(path, self.terminal.memory())?;
        }
        Ok(())
    }

    /// An APDU from the register.
    fn input(&mut self, apdu: &Apdu) {
        self.received += 1;
        let is_ack = matches!(apdu.class, 0x80 | 0x84);
        if !is_ack && self.silence > 0 {
            self.silence -= 1;
            tracing::info!(
                control = format!("{:04X}", apdu.control()),
                "fault: ignoring this command"
            );
            return;
        }
        tracing::debug!(apdu = %crate::trace::masked_apdu_hex(apdu), "from the register");
        self.terminal.set_clock(local_seconds());
        self.terminal.handle_apdu(apdu, Instant::now());
    }

    fn tick(&mut self) {
        let now = Instant::now();
        if self.terminal.poll_timeout().is_some_and(|t| t <= now) {
            self.terminal.set_clock(local_seconds());
            self.terminal.handle_timeout(now);
        }
    }

    /// Persist as asked; true if the model wants the connection dropped.
    fn events(&mut self) -> anyhow::Result<bool> {
        let mut drop = false;
        while let Some(ev) = self.terminal.poll_event() {
            match ev {
                Event::Persist => self.persist()?,
                Event::DropConnection => drop = true,
            }
        }
        Ok(drop)
    }

    fn lost(&mut self) {
        self.connected = false;
        self.terminal.connection_lost(Instant::now());
    }

    fn control(&mut self, cmd: &str) -> Result<(String, Option<Action>), String> {
        let words: Vec<&str> = cmd.split_whitespace().collect();
        let num = |s: &str| {
            s.parse::<u64>()
                .map_err(|_| format!("{s:?} is not a whole number"))
        };
        match words.as_slice() {
            ["drop"] => Ok(("connection dropped".into(), Some(Action::Drop))),
            ["delay", ms] => {
                self.delay = Duration::from_millis(num(ms)?);
                Ok(("delay set".into(), None))
            }
            ["pan", "clear"] => {
                self.terminal.set_clear_pan(true);
                Ok((
                    "the terminal now sends full card numbers in every text field (a non-compliant terminal)".into(),
                    None,
                ))
            }
            ["pan", "masked"] => {
                self.terminal.set_clear_pan(false);
                Ok(("the terminal sends masked card numbers".into(), None))
            }
            ["silence", n] => {
                self.silence = u32::try_from(num(n)?).unwrap_or(u32::MAX);
                Ok(("commands will be ignored".into(), None))
            }
            ["status"] => {
                let m = self.terminal.memory();
                let s = serde_json::json!({
                    "transactions": m.transactions.len(),
                    "batches": m.batches.len(),
                    "busy": self.terminal.is_busy(),
                    "connected": self.connected,
                    "received": self.received,
                    "sent": self.sent,
                    "delay_ms": self.delay.as_millis() as u64,
                    "silence": self.silence,
                });
                Ok((s.to_string(), None))
            }
            _ => Err(format!("unknown control command {cmd:?}")),
        }
    }

    fn poll_control(&mut self, control: Option<&ControlSocket>) -> Option<Action> {
        control?.poll(|line| match self.control(line) {
            Ok((msg, action)) => (format!("ok {msg}"), action),
            Err(e) => (format!("error {e}"), None),
        })
    }
}

/// Local wall-clock time as seconds since 1970 (for receipt dates).
fn local_seconds() -> i64 {
    chrono::Local::now().naive_local().and_utc().timestamp()
}

/// Run the emulator until `stop` is set. Errors only on set-up failures.
pub fn run(opts: Options, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
    run_with(opts, stop, |_| {})
}

/// [`run`], calling `ready` once the device link exists or the listener is bound (with
/// its address).
fn run_with(
    opts: Options,
    stop: Arc<AtomicBool>,
    ready: impl FnOnce(Option<SocketAddr>),
) -> anyhow::Result<()> {
    let terminal = match &opts.state {
        Some(p) => super::state::load::<TerminalMemory>(p, "terminal memory")?
            .map_or_else(Terminal::new, Terminal::from_memory),
        None => Terminal::new(),
    };
    let control = opts
        .control_path()
        .map(|p| ControlSocket::bind(&p))
        .transpose()?;
    let mut core = Core {
        opts: opts.clone(),
        terminal,
        delay: Duration::ZERO,
        silence: 0,
        received: 0,
        sent: 0,
        connected: false,
    };
    core.persist()?;
    match &opts.endpoint {
        Endpoint::Serial(link) => {
            let result = serve_serial(&mut core, link, control.as_ref(), &stop, ready);
            let _ = super::pty::claim_link(link);
            result
        }
        Endpoint::Tcp(addr) => {
            let listener = TcpListener::bind(addr)
                .map_err(|e| anyhow::anyhow!("{addr}: cannot listen: {e}"))?;
            listener.set_nonblocking(true)?;
            tracing::info!(addr = %listener.local_addr()?, "emulated ZVT terminal is listening");
            ready(listener.local_addr().ok());
            serve_tcp(&mut core, &listener, control.as_ref(), &stop)
        }
    }
}

fn serve_serial(
    core: &mut Core,
    link_path: &std::path::Path,
    control: Option<&ControlSocket>,
    stop: &AtomicBool,
    ready: impl FnOnce(Option<SocketAddr>),
) -> anyhow::Result<()> {
    let mut ready = Some(ready);
    while !stop.load(Ordering::Relaxed) {
        let pty = Pty::create(link_path)?;
        tracing::info!(device = %pty.device.display(), link = %link_path.display(), "emulated ZVT terminal is on");
        if let Some(r) = ready.take() {
            r(None);
        }
        core.connected = true;
        let dropped = serial_session(core, &pty, control, stop)?;
        pty.unlink();
        drop(pty);
        core.lost();
        if !dropped {
            break;
        }
        tracing::info!("connection dropped: the device is away");
        let until = Instant::now() + DROP_OFF_TIME;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            if let Some(Action::Drop) = core.poll_control(control) {
                tracing::info!("already dropped");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

/// Serve one PTY until a drop (true) or stop (false).
fn serial_session(
    core: &mut Core,
    pty: &Pty,
    control: Option<&ControlSocket>,
    stop: &AtomicBool,
) -> anyhow::Result<bool> {
    let mut link = SerialLink::new(LinkConfig::default());
    let mut out: VecDeque<Apdu> = VecDeque::new();
    let mut drop_at: Option<Instant> = None;
    let mut pump = Pump::new();
    let baud = core.opts.baud;
    loop {
        if stop.load(Ordering::Relaxed) {
            return Ok(false);
        }
        pump.input(pty, Duration::from_millis(5), |bytes| {
            std::thread::sleep(wire_time(baud, bytes.len()));
            link.handle_input(bytes, Instant::now());
        });
        if link.poll_timeout().is_some_and(|t| t <= Instant::now()) {
            link.handle_timeout(Instant::now());
        }
        while let Some(ev) = link.poll_event() {
            match ev {
                LinkEvent::Received(bytes) => match Apdu::decode(&bytes) {
                    Ok(apdu) => core.input(&apdu),
                    Err(e) => tracing::debug!(error = %e, "undecodable APDU"),
                },
                LinkEvent::Delivered => {}
                LinkEvent::Failed => {
                    tracing::info!("the register did not acknowledge a frame");
                    // A real terminal keeps repeating what the register has not taken.
                    core.terminal.link_failed(Instant::now());
                }
            }
        }
        core.tick();
        while let Some(m) = core.terminal.poll_message() {
            // The link is still repeating that frame itself (T2): no second copy.
            if m.repeat && (link.is_busy() || !out.is_empty()) {
                continue;
            }
            out.push_back(m.apdu);
        }
        if core.events()? && drop_at.is_none() {
            // Let the last message reach the register first.
            drop_at = Some(Instant::now() + Duration::from_secs(3));
        }
        if !link.is_busy()
            && let Some(apdu) = out.pop_front()
        {
            if !core.delay.is_zero() {
                std::thread::sleep(core.delay);
            }
            tracing::debug!(apdu = %crate::trace::masked_apdu_hex(&apdu), "to the register");
            if link.send(&apdu.encode(), Instant::now()).is_ok() {
                core.sent += 1;
            }
        }
        while let Some(bytes) = link.poll_transmit() {
            sleep_until(Instant::now() + wire_time(baud, bytes.len()));
            write_all(&pty.master, &bytes);
        }
        if let Some(at) = drop_at
            && ((out.is_empty() && !link.is_busy()) || Instant::now() >= at)
        {
            return Ok(true);
        }
        if let Some(Action::Drop) = core.poll_control(control) {
            return Ok(true);
        }
    }
}

fn serve_tcp(
    core: &mut Core,
    listener: &TcpListener,
    control: Option<&ControlSocket>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    let mut conn: Option<(TcpStream, ApduDecoder)> = None;
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        if conn.is_none()
            && let Ok((stream, peer)) = listener.accept()
        {
            tracing::info!(%peer, "register connected");
            let _ = stream.set_nonblocking(true);
            let _ = stream.set_nodelay(true);
            conn = Some((stream, ApduDecoder::new()));
            core.connected = true;
        }
        let mut closed = false;
        if let Some((stream, decoder)) = conn.as_mut() {
            loop {
                match stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Ok(n) => {
                        busy = true;
                        decoder.push(&buf[..n]);
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => {
                        closed = true;
                        break;
                    }
                }
            }
            while let Some(apdu) = decoder.next_apdu() {
                core.input(&apdu);
            }
        }
        core.tick();
        while let Some(apdu) = core.terminal.poll_send() {
            busy = true;
            let Some((stream, _)) = conn.as_mut() else {
                continue;
            };
            if !core.delay.is_zero() {
                std::thread::sleep(core.delay);
            }
            tracing::debug!(apdu = %crate::trace::masked_apdu_hex(&apdu), "to the register");
            if write_stream(stream, &apdu.encode()).is_err() {
                closed = true;
            } else {
                core.sent += 1;
            }
        }
        let mut drop_now = core.events()?;
        if let Some(Action::Drop) = core.poll_control(control) {
            drop_now = true;
        }
        if (closed || drop_now)
            && let Some((stream, _)) = conn.take()
        {
            tracing::info!(dropped = drop_now, "register connection closed");
            let _ = stream.shutdown(std::net::Shutdown::Both);
            core.lost();
        } else if drop_now {
            core.lost();
        }
        if !busy {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    Ok(())
}

/// Write to a non-blocking socket, waiting up to 2 s.
fn write_stream(stream: &mut TcpStream, mut bytes: &[u8]) -> std::io::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() > deadline {
                    return Err(e);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Start the emulator on a thread of this process (for `port = "sim"`); returns when the
/// device link exists or the listener is bound.
pub fn spawn(opts: Options, stop: Arc<AtomicBool>) -> anyhow::Result<std::thread::JoinHandle<()>> {
    spawn_bound(opts, stop).map(|(h, _)| h)
}

/// [`spawn`], also returning the bound TCP address (useful with port 0).
pub fn spawn_bound(
    opts: Options,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<(std::thread::JoinHandle<()>, Option<SocketAddr>)> {
    if let Endpoint::Serial(link) = &opts.endpoint {
        super::pty::claim_link(link)?;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("sim-zvt".into())
        .spawn(move || {
            let ready = move |addr| {
                let _ = tx.send(addr);
            };
            if let Err(e) = run_with(opts, stop, ready) {
                tracing::error!(error = %e, "the built-in terminal emulator stopped");
            }
        })?;
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(addr) => Ok((handle, addr)),
        Err(_) => anyhow::bail!("the built-in terminal emulator did not start"),
    }
}
