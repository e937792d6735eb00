//! ZVT replay: the terminal's side of a ZVT trace, on a PTY (`link=serial`) or a TCP
//! listener (`link=tcp`).
//!
//! The trace is read as a list of steps in the recorded order: each item the register
//! sent (`>`) is a request to wait for, each item the terminal sent (`<`) is sent when its
//! turn comes, and each `# <time> port … opened` note is a (re)open of the port (on TCP a
//! new connection, on serial an open of the PTY that terminal bytes may wait for). A line's
//! items were written by the register only after it had read the lines above it, so
//! sending every terminal item before waiting for the next register item never holds back
//! anything the register needs.
//!
//! - **Serial** (`--link PATH`): the link layer is played as recorded. A register frame is
//!   waited for and answered with the recorded `06` (or `15`); a terminal frame is sent as
//!   recorded (stuffed, its CRC recomputed by the recorder after masking) and the
//!   register's `06` is waited for like any request. Repetitions and NAKs are replayed
//!   where they were recorded. The replay holds no handle on the PTY's device side, so it
//!   sees the daemon open and close it: terminal bytes recorded right after a (re)open,
//!   before the register wrote anything (a terminal still in the flow of a daemon that was
//!   killed), wait for the daemon to open the PTY and then [`SETTLE`] (the daemon flushes
//!   its input as it opens the port; with `--realtime`, the recorded delay from the open).
//! - **TCP** (`--listen IP:PORT`): one APDU per line. At each reopen note the current
//!   connection is closed and the next one accepted (the daemon connects once per
//!   exchange).
//! - **What is compared**: every register item is masked as the recorder masks it
//!   ([`crate::trace::zvt_link::masked_item`] / [`crate::trace::zvt_link::masked_apdu`])
//!   and must then equal the recorded bytes. The register's commands carry no card data;
//!   the one field that differs between installations, the terminal password (in the
//!   registration, status enquiry, repeat receipt, refund, reversal and end of day), is
//!   written `000000` by the recorder and so is not compared. Nothing else the daemon
//!   sends varies between runs: no time, no counter (the trace numbers, receipt numbers and
//!   dates come from the terminal and are replayed as recorded). The CRC of a serial frame
//!   follows its APDU, so it is not compared on its own (a frame with a bad CRC still
//!   differs from one with a good one). Timing is not compared: a daemon that waits
//!   longer or shorter than recorded (a drain, a time-out) still matches.
//! - **Masked fields** in the terminal's messages (a card number with `E` nibbles, track
//!   data as `ee` bytes, `*` in slip lines) are sent as recorded: the masking keeps every
//!   length and BMP structure, so the daemon's codec reads them as it reads a terminal's
//!   own masked card number, and the job ends with the masked number the trace shows.
//! - **Limits**: a replay plays one daemon run. A trace of a daemon that was killed ends
//!   where it was killed; the next run's trace is another file, replayed by another
//!   `fiscald replay` on the same path once the daemon was killed at the same point (see
//!   `tests/e2e_replay_zvt.rs`). The idle status enquiry (every 10 s) depends on timing:
//!   fixtures end their recording sooner. A close and reopen of the PTY faster than the
//!   replay's 10 ms look is not seen, which matters only when the terminal speaks first
//!   after it.

use super::{Divergence, ReplayArgs, delay, show};
use crate::sim::pty::Pty;
use crate::sim::pump::Pump;
use crate::trace::zvt_link::{self, LinkItem, LinkSplitter};
use crate::trace::{self, Dir, Link, Trace};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use zvt::{Apdu, ApduDecoder, EcrCommand};

/// How long terminal bytes that come first after the daemon opened the port wait (without
/// `--realtime`): the daemon flushes its input right after the open.
pub const SETTLE: Duration = Duration::from_millis(200);

/// One item, as compared: its wire bytes (masked) and a reading for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub bytes: Vec<u8>,
    pub what: String,
}

/// One step of a replay.
#[derive(Debug, Clone)]
pub enum Step {
    /// Wait for the register to send this.
    Expect { line: usize, unit: Unit },
    /// Send these bytes as the terminal (after `delay` with `--realtime`).
    Send {
        line: usize,
        bytes: Vec<u8>,
        delay: Duration,
    },
    /// The register opened the port (again): on TCP, a new connection; on serial, terminal
    /// bytes that come next wait for the daemon to open the PTY.
    Reopen { line: usize },
}

/// A ZVT trace read as steps.
#[derive(Debug, Clone)]
pub struct Script {
    pub link: Link,
    pub steps: Vec<Step>,
}

impl Script {
    /// How many items the register must send.
    pub fn requests(&self) -> usize {
        self.steps
            .iter()
            .filter(|s| matches!(s, Step::Expect { .. }))
            .count()
    }
}

/// The command inside an APDU, when the register's codec reads it (for the report).
fn detail(apdu: &Apdu) -> String {
    match EcrCommand::from_apdu(apdu) {
        Ok(EcrCommand::Ack) | Err(_) => String::new(),
        Ok(cmd) => format!(": {cmd:?}"),
    }
}

/// A serial item as compared: masked, stuffed again, described.
pub fn link_unit(item: &LinkItem) -> Unit {
    let masked = zvt_link::masked_item(item);
    let mut what = zvt_link::describe_item(&masked);
    if let LinkItem::Frame { apdu, .. } = &masked
        && let Ok(a) = Apdu::decode(apdu)
    {
        what.push_str(&detail(&a));
    }
    Unit {
        bytes: masked.to_wire(),
        what,
    }
}

/// A TCP APDU as compared: masked, described.
pub fn apdu_unit(apdu: &Apdu) -> Unit {
    let masked = zvt_link::masked_apdu(apdu);
    Unit {
        bytes: masked.encode(),
        what: format!("{}{}", trace::zvt_name(&masked), detail(&masked)),
    }
}

/// Read a parsed ZVT trace into a [`Script`].
pub fn script(t: &Trace) -> Result<Script, String> {
    let Some(link) = t.link else {
        return Err(
            "this ZVT trace names no link (`link=serial` or `link=tcp`): it was written before traces kept the link layer and cannot be replayed".into(),
        );
    };
    let mut steps = Vec::new();
    let mut splitter = LinkSplitter::default();
    let mut decoder = ApduDecoder::new();
    let mut opens = t.opens.iter().copied().peekable();
    let mut last = None;
    for line in &t.lines {
        while let Some((open, at)) = opens.next_if(|&(n, _)| n < line.number) {
            steps.push(Step::Reopen { line: open });
            last = Some(at);
        }
        let bytes = line.bytes.as_ref().ok_or(format!(
            "line {}: `**` marks bytes an older version hid; such a trace is read, not replayed",
            line.number
        ))?;
        match line.dir {
            Dir::In => {
                steps.push(Step::Send {
                    line: line.number,
                    bytes: bytes.clone(),
                    delay: delay(last, line.time),
                });
            }
            Dir::Out => match link {
                Link::Serial => {
                    for item in splitter.push(bytes) {
                        steps.push(Step::Expect {
                            line: line.number,
                            unit: Unit {
                                bytes: item.to_wire(),
                                what: link_unit(&item).what,
                            },
                        });
                    }
                }
                Link::Tcp => {
                    decoder.push(bytes);
                    while let Some(apdu) = decoder.next_apdu() {
                        steps.push(Step::Expect {
                            line: line.number,
                            unit: Unit {
                                bytes: apdu.encode(),
                                what: apdu_unit(&apdu).what,
                            },
                        });
                    }
                }
            },
        }
        last = Some(line.time);
    }
    let s = Script { link, steps };
    if s.requests() == 0 {
        return Err("the trace holds nothing the register sent".into());
    }
    Ok(s)
}

/// The replay's end of the line.
trait End {
    /// Wait at most `wait` for the register's bytes; completed items go to `out`.
    /// Returns how many bytes came.
    fn input(&mut self, wait: Duration, out: &mut VecDeque<Unit>) -> usize;
    fn send(&mut self, bytes: &[u8]);
    /// Bytes of an unfinished item.
    fn pending(&self) -> usize;
    /// TCP: close the connection, the next step needs a new one.
    fn reopen(&mut self) {}
    /// TCP: wait for the register's connection; false if none came within `wait`.
    fn connect(&mut self, _wait: Duration) -> bool {
        true
    }
    /// Wait until the register opened the port after `since` (serial: the PTY, seen as the
    /// end of its hang-up; TCP: a connection); false if it did not within `wait`.
    fn await_open(&mut self, _since: Instant, wait: Duration) -> bool {
        self.connect(wait)
    }
    /// TCP: the register closed the connection.
    fn closed(&self) -> bool {
        false
    }
}

struct Serial {
    pty: Pty,
    pump: Pump,
    splitter: LinkSplitter,
    /// The daemon has the PTY open.
    open: bool,
    /// When it last opened it.
    opened_at: Option<Instant>,
}

impl Serial {
    /// Notice the daemon opening or closing the PTY; true while it has it open.
    fn watch(&mut self) -> bool {
        let open = self.pty.client_open();
        if open && !self.open {
            tracing::debug!("the register opened the port");
            self.opened_at = Some(Instant::now());
        }
        self.open = open;
        open
    }
}

impl End for Serial {
    fn input(&mut self, wait: Duration, out: &mut VecDeque<Unit>) -> usize {
        if !self.watch() {
            std::thread::sleep(wait);
            return 0;
        }
        let splitter = &mut self.splitter;
        self.pump.input(&self.pty, wait, |b| {
            out.extend(splitter.push(b).iter().map(link_unit));
        })
    }
    fn send(&mut self, bytes: &[u8]) {
        crate::sim::line::write_all(&self.pty.master, bytes);
    }
    fn pending(&self) -> usize {
        self.splitter.pending()
    }
    fn await_open(&mut self, since: Instant, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        loop {
            self.watch();
            if self.open && self.opened_at.is_some_and(|t| t >= since) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

struct Tcp {
    listener: TcpListener,
    conn: Option<TcpStream>,
    decoder: ApduDecoder,
    eof: bool,
    buf: Box<[u8]>,
}

impl End for Tcp {
    fn input(&mut self, wait: Duration, out: &mut VecDeque<Unit>) -> usize {
        let Some(conn) = &mut self.conn else {
            std::thread::sleep(wait);
            return 0;
        };
        let _ = conn.set_read_timeout(Some(wait.max(Duration::from_millis(1))));
        let n = match conn.read(&mut self.buf) {
            Ok(0) => {
                self.eof = true;
                0
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                0
            }
            Err(_) => {
                self.eof = true;
                0
            }
        };
        self.decoder.push(&self.buf[..n]);
        while let Some(apdu) = self.decoder.next_apdu() {
            out.push_back(apdu_unit(&apdu));
        }
        n
    }
    fn send(&mut self, bytes: &[u8]) {
        if let Some(c) = &mut self.conn {
            let _ = c.write_all(bytes);
        }
    }
    fn pending(&self) -> usize {
        self.decoder.pending()
    }
    fn reopen(&mut self) {
        if let Some(c) = self.conn.take() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
        self.decoder.clear();
        self.eof = false;
    }
    fn connect(&mut self, wait: Duration) -> bool {
        if self.conn.is_some() {
            return true;
        }
        let deadline = Instant::now() + wait;
        loop {
            match self.listener.accept() {
                Ok((c, peer)) => {
                    tracing::debug!(%peer, "the register connected");
                    let _ = c.set_nonblocking(false);
                    let _ = c.set_nodelay(true);
                    self.conn = Some(c);
                    return true;
                }
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return false,
            }
        }
    }
    fn closed(&self) -> bool {
        self.eof
    }
}

/// Run the replay until done; `Ok` when the whole trace was played.
pub fn run(
    script: &Script,
    args: &ReplayArgs,
    stop: &AtomicBool,
) -> anyhow::Result<Result<(), Divergence>> {
    let requests = script.requests();
    match script.link {
        Link::Serial => {
            let link = args.serial_link()?;
            let mut pty = Pty::create(link)?;
            // Without its own handle the replay sees the daemon open and close the PTY.
            pty.release_slave();
            tracing::info!(device = %pty.device.display(), link = %link.display(), requests, "replaying a ZVT terminal");
            let mut end = Serial {
                pty,
                pump: Pump::new(),
                splitter: LinkSplitter::default(),
                open: false,
                opened_at: None,
            };
            let result = play(&mut end, script, args, stop);
            end.pty.unlink();
            Ok(result)
        }
        Link::Tcp => {
            let addr = args
                .listen
                .ok_or_else(|| anyhow::anyhow!("this trace is replayed on TCP: give --listen"))?;
            let listener = TcpListener::bind(addr)
                .map_err(|e| anyhow::anyhow!("{addr}: cannot listen: {e}"))?;
            listener.set_nonblocking(true)?;
            tracing::info!(addr = %listener.local_addr()?, requests, "replaying a ZVT terminal");
            let mut end = Tcp {
                listener,
                conn: None,
                decoder: ApduDecoder::new(),
                eof: false,
                buf: vec![0u8; 4096].into_boxed_slice(),
            };
            Ok(play(&mut end, script, args, stop))
        }
    }
}

/// The report of a request that differs or is missing.
fn expected_vs(unit: &Unit, received: Option<&Unit>) -> String {
    format!(
        "  expected: {}\n  received: {}",
        show(&unit.bytes, &unit.what),
        received.map_or("nothing".to_string(), |r| show(&r.bytes, &r.what))
    )
}

/// Try `f` in short waits until it succeeds, `timeout` passed or `stop` was set.
fn patiently(stop: &AtomicBool, timeout: Duration, mut f: impl FnMut(Duration) -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if f(Duration::from_millis(100)) {
            return true;
        }
        if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
            return false;
        }
    }
}

fn play(
    end: &mut dyn End,
    script: &Script,
    args: &ReplayArgs,
    stop: &AtomicBool,
) -> Result<(), Divergence> {
    let total = script.requests();
    let timeout = Duration::from_secs(args.timeout);
    let linger = Duration::from_millis(args.linger_ms);
    let tick = Duration::from_millis(10);
    let mut received: VecDeque<Unit> = VecDeque::new();
    let mut done = 0;
    let mut last_activity = Instant::now();
    // The end of the step before a reopen: terminal bytes right after it wait for an open
    // of the port that came later.
    let mut reopened: Option<Instant> = None;
    let mut step_done = Instant::now();
    for step in &script.steps {
        match step {
            Step::Reopen { line } => {
                tracing::debug!(line, "the register (re)opens the port");
                end.reopen();
                received.clear();
                reopened.get_or_insert(step_done);
            }
            Step::Send { line, bytes, delay } => {
                if let Some(since) = reopened.take() {
                    if !patiently(stop, timeout, |w| end.await_open(since, w)) {
                        return Err(Divergence(format!(
                            "the register did not open the port within {timeout:?} (trace line {line}, after {done} of {total} requests)"
                        )));
                    }
                    // The daemon flushes its input right after it opens the port.
                    std::thread::sleep(if args.realtime { *delay } else { SETTLE });
                } else if args.realtime {
                    std::thread::sleep(*delay);
                }
                if !patiently(stop, timeout, |w| end.connect(w)) {
                    return Err(Divergence(format!(
                        "the register did not connect within {timeout:?} (trace line {line}, after {done} of {total} requests)"
                    )));
                }
                end.send(bytes);
                last_activity = Instant::now();
                step_done = last_activity;
            }
            Step::Expect { line, unit } => loop {
                if stop.load(Ordering::Relaxed) {
                    return Err(Divergence(format!(
                        "stopped after {done} of {total} requests; the next expected is at trace line {line}:\n{}",
                        expected_vs(unit, None)
                    )));
                }
                if let Some(got) = received.pop_front() {
                    if got.bytes != unit.bytes {
                        return Err(Divergence(format!(
                            "request {} of {total} (trace line {line}) differs (masked as the trace masks it: the password is not compared, CRCs follow the APDU)\n{}",
                            done + 1,
                            expected_vs(unit, Some(&got))
                        )));
                    }
                    tracing::debug!(request = done + 1, line, what = %got.what, "request matches");
                    done += 1;
                    last_activity = Instant::now();
                    step_done = last_activity;
                    reopened = None;
                    break;
                }
                if !patiently(stop, timeout, |w| end.connect(w)) {
                    if stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    return Err(Divergence(format!(
                        "the register did not connect within {timeout:?} after {done} of {total} requests\n{}",
                        expected_vs(unit, None)
                    )));
                }
                if end.closed() {
                    return Err(Divergence(format!(
                        "the register closed the connection after {done} of {total} requests (trace line {line})\n{}",
                        expected_vs(unit, None)
                    )));
                }
                if end.input(tick, &mut received) > 0 {
                    last_activity = Instant::now();
                }
                if received.is_empty() && last_activity.elapsed() >= timeout {
                    return Err(Divergence(format!(
                        "the client sent nothing for {timeout:?} after {done} of {total} requests (trace line {line})\n{}",
                        expected_vs(unit, None)
                    )));
                }
            },
        }
    }
    // Every request was seen: nothing more may come while the line lingers.
    tracing::info!(requests = total, "every request matched; lingering");
    loop {
        if let Some(got) = received.pop_front() {
            return Err(Divergence(format!(
                "request {} comes after the end of the trace ({total} requests)\n  expected: nothing\n  received: {}",
                done + 1,
                show(&got.bytes, &got.what)
            )));
        }
        if stop.load(Ordering::Relaxed) {
            return Ok(());
        }
        if end.input(tick, &mut received) > 0 {
            last_activity = Instant::now();
        }
        if received.is_empty() && end.pending() == 0 && last_activity.elapsed() >= linger {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "# fiscald trace v1 device=t1 protocol=zvt link=serial fiscald=0 start=2025-01-01T00:00:00.000000Z\n";

    fn frame(apdu: &Apdu) -> String {
        hex::encode(zvt::link::encode_frame(&apdu.encode()))
    }

    #[test]
    fn a_serial_trace_becomes_steps_and_the_password_is_not_compared() {
        let reg = EcrCommand::Registration {
            password: 123_456,
            config: 0xBA,
            currency: Some(985),
        }
        .to_apdu();
        let masked = zvt_link::masked_apdu(&reg);
        let text = format!(
            "{HEAD}# 2025-01-01T00:00:00.000000Z port /dev/x opened\n\
             2025-01-01T00:00:00.100000Z t1 > {}  # frame\n\
             2025-01-01T00:00:00.101000Z t1 < 06  # link ACK\n\
             2025-01-01T00:00:00.102000Z t1 < {}  # frame\n\
             2025-01-01T00:00:00.103000Z t1 > 06  # link ACK\n",
            frame(&masked),
            frame(&Apdu::new(0x80, 0, vec![])),
        );
        let s = script(&trace::parse(&text).unwrap()).unwrap();
        assert_eq!(s.link, Link::Serial);
        assert_eq!(s.requests(), 2);
        assert!(matches!(s.steps[0], Step::Reopen { line: 2 }));
        assert!(matches!(s.steps[2], Step::Send { ref bytes, .. } if bytes == &[0x06]));
        // The register's registration with its real password matches the masked line.
        let Step::Expect { unit, .. } = &s.steps[1] else {
            panic!("{:?}", s.steps);
        };
        let item = LinkItem::Frame {
            apdu: reg.encode(),
            crc_ok: true,
        };
        assert_eq!(link_unit(&item).bytes, unit.bytes);
        assert!(!hex::encode(&unit.bytes).contains("123456"));
        // Another amount in an authorization does not.
        let a = |amount| {
            link_unit(&LinkItem::Frame {
                apdu: EcrCommand::Authorization {
                    amount,
                    currency: 985,
                }
                .to_apdu()
                .encode(),
                crc_ok: true,
            })
        };
        assert_ne!(a(2500).bytes, a(2600).bytes);
        assert!(a(2500).what.contains("amount: 2500"), "{}", a(2500).what);
    }

    #[test]
    fn tcp_reopens_are_steps_and_old_or_unlinked_traces_are_refused() {
        let text = "# fiscald trace v1 device=t1 protocol=zvt link=tcp fiscald=0 start=2025-01-01T00:00:00.000000Z\n\
             # 2025-01-01T00:00:00.000000Z port tcp://127.0.0.1:1 opened\n\
             2025-01-01T00:00:00.100000Z t1 > 060006000000ba0985  # 06 00\n\
             2025-01-01T00:00:00.101000Z t1 < 800000\n\
             # 2025-01-01T00:00:00.200000Z port tcp://127.0.0.1:1 opened\n\
             2025-01-01T00:00:00.300000Z t1 > 050103000000\n";
        let s = script(&trace::parse(text).unwrap()).unwrap();
        let kinds: Vec<&str> = s
            .steps
            .iter()
            .map(|s| match s {
                Step::Expect { .. } => "expect",
                Step::Send { .. } => "send",
                Step::Reopen { .. } => "reopen",
            })
            .collect();
        assert_eq!(kinds, ["reopen", "expect", "send", "reopen", "expect"]);
        let unlinked = text.replace(" link=tcp", "");
        assert!(
            script(&trace::parse(&unlinked).unwrap())
                .unwrap_err()
                .contains("link")
        );
        let old = text.replace("060006000000ba0985", "060006******ba0985");
        assert!(
            script(&trace::parse(&old).unwrap())
                .unwrap_err()
                .contains("older version")
        );
    }
}
