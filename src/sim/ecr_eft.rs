//! `fiscald sim ecr-eft`: an ECR-EFT card terminal driven by the `ecr_eft::model::Terminal`
//! model, on a pseudo-terminal (serial) or on TCP (one connection at a time), with its
//! memory in a JSON state file. Both transports carry the same frames with ACK/NAK (that
//! TCP uses the serial framing unchanged is an assumption: the specification was not
//! available).
//!
//! The terminal behaves by amount (see `ecr_eft::model`): ending in 51 declined, 52
//! approved but no S2, 53 a 20 s card reader, 54 the connection drops after the S2.
//! On serial, a dropped connection means the device goes away for about 1 s and comes
//! back on a new PTY; on TCP the socket is closed.
//!
//! Control commands (one per line on the control socket, answered `ok ...`/`error ...`):
//! `status` (a JSON summary), `drop` (drop the connection now), `delay MS` (before every
//! message the terminal sends; 0 clears), `silence N` (ignore the next N register
//! messages other than D0; their frames are still ACKed).

use super::control::ControlSocket;
use super::line::{sleep_until, wire_time, write_all};
use super::pty::Pty;
use super::pump::Pump;
use ecr_eft::link::{Link, LinkConfig, LinkEvent, Role};
use ecr_eft::message::Message;
use ecr_eft::model::{Event, Outbound, Terminal, TerminalMemory};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

pub use super::zvt::{DROP_OFF_TIME, Endpoint, Options};

/// How long a dropped connection waits for the last frames to be ACKed.
const DROP_GRACE: Duration = Duration::from_secs(3);

/// What a control command asks of the transport loop.
enum Action {
    Drop,
}

/// The transport-independent part: the link, the model, persistence and faults.
struct Core {
    opts: Options,
    terminal: Terminal,
    link: Link,
    delay: Duration,
    silence: u32,
    received: u64,
    sent: u64,
    connected: bool,
    drop_at: Option<Instant>,
}

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    Stopped,
    Dropped,
    Closed,
}

/// A byte transport under the link.
trait Wire {
    /// Wait up to `wait` for input and pass it on; false when the peer closed.
    fn read(&mut self, wait: Duration, on_bytes: &mut dyn FnMut(&[u8])) -> bool;
    /// False when the peer is gone.
    fn write(&mut self, bytes: &[u8]) -> bool;
}

struct SerialWire<'a> {
    pty: &'a Pty,
    pump: Pump,
    baud: Option<u32>,
}

impl Wire for SerialWire<'_> {
    fn read(&mut self, wait: Duration, on_bytes: &mut dyn FnMut(&[u8])) -> bool {
        let baud = self.baud;
        self.pump.input(self.pty, wait, |bytes| {
            std::thread::sleep(wire_time(baud, bytes.len()));
            on_bytes(bytes);
        });
        true
    }
    fn write(&mut self, bytes: &[u8]) -> bool {
        sleep_until(Instant::now() + wire_time(self.baud, bytes.len()));
        write_all(&self.pty.master, bytes);
        true
    }
}

struct TcpWire {
    stream: TcpStream,
}

impl Wire for TcpWire {
    fn read(&mut self, wait: Duration, on_bytes: &mut dyn FnMut(&[u8])) -> bool {
        let mut buf = [0u8; 4096];
        let mut got = false;
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return false,
                Ok(n) => {
                    got = true;
                    on_bytes(&buf[..n]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        if !got {
            std::thread::sleep(wait);
        }
        true
    }
    fn write(&mut self, mut bytes: &[u8]) -> bool {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !bytes.is_empty() {
            match self.stream.write(bytes) {
                Ok(0) => return false,
                Ok(n) => bytes = &bytes[n..],
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return false;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return false,
            }
        }
        true
    }
}

impl Core {
    fn persist(&self) -> anyhow::Result<()> {
        if let Some(path) = &self.opts.state {
            super::state::save(path, self.terminal.memory())?;
        }
        Ok(())
    }

    fn lost(&mut self) {
        self.connected = false;
        self.drop_at = None;
        self.terminal.connection_lost();
        self.link.reset();
    }

    /// One turn of the loop over `wire`; `Some` when the session ends.
    fn turn(
        &mut self,
        wire: &mut dyn Wire,
        control: Option<&ControlSocket>,
        stop: &AtomicBool,
    ) -> anyhow::Result<Option<End>> {
        if stop.load(Ordering::Relaxed) {
            return Ok(Some(End::Stopped));
        }
        let link = &mut self.link;
        let open = wire.read(Duration::from_millis(5), &mut |bytes| {
            link.handle_input(bytes, Instant::now());
        });
        let now = Instant::now();
        if self.link.poll_timeout().is_some_and(|t| t <= now) {
            self.link.handle_timeout(now);
        }
        while let Some(ev) = self.link.poll_event() {
            match ev {
                LinkEvent::Received { repeat: true, .. } => {
                    tracing::debug!("the register repeated a frame (our ACK was lost)");
                }
                LinkEvent::Received { frame, .. } => {
                    self.received += 1;
                    match Message::decode(&frame) {
                        Ok(m) => {
                            if self.silence > 0 && !matches!(m, Message::D0 { .. }) {
                                self.silence -= 1;
                                tracing::info!(kind = ?m.kind(), "fault: ignoring this message");
                                continue;
                            }
                            tracing::debug!(message = ?m, token = %frame.token, "from the register");
                            self.terminal.handle_message(frame.token, m, Instant::now());
                        }
                        Err(e) => tracing::debug!(error = %e, "undecodable message"),
                    }
                }
                LinkEvent::Failed { kind, reason, .. } => {
                    tracing::info!(kind = %ecr_eft::frame::kind_str(&kind), ?reason, "the register did not acknowledge a frame");
                }
                LinkEvent::Delivered { .. } | LinkEvent::PeerLost => {}
            }
        }
        if self.terminal.poll_timeout().is_some_and(|t| t <= now) {
            self.terminal.handle_timeout(now);
        }
        while let Some(o) = self.terminal.poll_send() {
            if !self.delay.is_zero() {
                std::thread::sleep(self.delay);
            }
            let now = Instant::now();
            let sent = match &o {
                Outbound::Reply(t, m) => m.to_fields().map_err(|e| e.to_string()).and_then(|f| {
                    self.link
                        .reply(*t, m.kind(), f, now)
                        .map_err(|e| e.to_string())
                }),
                Outbound::Request(m) => m.to_fields().map_err(|e| e.to_string()).and_then(|f| {
                    self.link
                        .request(m.kind(), f, now)
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                }),
            };
            match sent {
                Ok(()) => self.sent += 1,
                Err(e) => {
                    tracing::warn!(error = %e, "the model built a message that cannot be sent")
                }
            }
        }
        while let Some(ev) = self.terminal.poll_event() {
            match ev {
                Event::Persist => self.persist()?,
                Event::DropConnection => {
                    self.drop_at.get_or_insert(Instant::now() + DROP_GRACE);
                }
            }
        }
        while let Some(bytes) = self.link.poll_transmit() {
            if !wire.write(&bytes) {
                return Ok(Some(End::Closed));
            }
        }
        if !open {
            return Ok(Some(End::Closed));
        }
        if let Some(at) = self.drop_at
            && (!self.link.is_busy() || Instant::now() >= at)
        {
            return Ok(Some(End::Dropped));
        }
        if let Some(Action::Drop) = self.poll_control(control) {
            return Ok(Some(End::Dropped));
        }
        Ok(None)
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
            ["silence", n] => {
                self.silence = u32::try_from(num(n)?).unwrap_or(u32::MAX);
                Ok(("messages will be ignored".into(), None))
            }
            ["status"] => {
                let s = serde_json::json!({
                    "transactions": self.terminal.memory().transactions.len(),
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

/// Run the emulator until `stop` is set. Errors only on set-up failures.
pub fn run(opts: Options, stop: Arc<AtomicBool>) -> anyhow::Result<()> {
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
        link: Link::new(LinkConfig::new(Role::Eft)),
        delay: Duration::ZERO,
        silence: 0,
        received: 0,
        sent: 0,
        connected: false,
        drop_at: None,
    };
    core.persist()?;
    match &opts.endpoint {
        Endpoint::Serial(link) => {
            let result = serve_serial(&mut core, link, control.as_ref(), &stop);
            let _ = super::pty::claim_link(link);
            result
        }
        Endpoint::Tcp(addr) => {
            let listener = TcpListener::bind(addr)
                .map_err(|e| anyhow::anyhow!("{addr}: cannot listen: {e}"))?;
            listener.set_nonblocking(true)?;
            tracing::info!(addr = %listener.local_addr()?, "emulated ECR-EFT terminal is listening");
            serve_tcp(&mut core, &listener, control.as_ref(), &stop)
        }
    }
}

fn serve_serial(
    core: &mut Core,
    link_path: &std::path::Path,
    control: Option<&ControlSocket>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let pty = Pty::create(link_path)?;
        tracing::info!(device = %pty.device.display(), link = %link_path.display(), "emulated ECR-EFT terminal is on");
        core.connected = true;
        let mut wire = SerialWire {
            pty: &pty,
            pump: Pump::new(),
            baud: core.opts.baud,
        };
        let end = loop {
            if let Some(end) = core.turn(&mut wire, control, stop)? {
                break end;
            }
        };
        pty.unlink();
        drop(pty);
        core.lost();
        if end != End::Dropped {
            break;
        }
        tracing::info!("connection dropped: the device is away");
        let until = Instant::now() + DROP_OFF_TIME;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            let _ = core.poll_control(control);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

fn serve_tcp(
    core: &mut Core,
    listener: &TcpListener,
    control: Option<&ControlSocket>,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let Ok((stream, peer)) = listener.accept() else {
            let _ = core.poll_control(control);
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        tracing::info!(%peer, "register connected");
        let _ = stream.set_nonblocking(true);
        let _ = stream.set_nodelay(true);
        core.connected = true;
        let mut wire = TcpWire { stream };
        let end = loop {
            if let Some(end) = core.turn(&mut wire, control, stop)? {
                break end;
            }
        };
        tracing::info!(?end, "register connection closed");
        let _ = wire.stream.shutdown(std::net::Shutdown::Both);
        core.lost();
    }
    Ok(())
}

/// Run the emulator on its own thread (the daemon's built-in `port = "sim"`).
pub fn spawn(opts: Options, stop: Arc<AtomicBool>) -> anyhow::Result<std::thread::JoinHandle<()>> {
    if let Endpoint::Serial(link) = &opts.endpoint {
        super::pty::claim_link(link)?;
    }
    Ok(std::thread::Builder::new()
        .name("sim-ecr-eft".into())
        .spawn(move || {
            if let Err(e) = run(opts, stop) {
                tracing::error!(error = %e, "the built-in ECR-EFT emulator stopped");
            }
        })?)
}
