//! End-to-end: `fiscald sim ecr-eft` as its own process, driven by a small register
//! written here with the `ecr_eft` link, over the serial PTY and over TCP.

use ecr_eft::frame::Token;
use ecr_eft::link::{Link, LinkConfig, LinkEvent, Role};
use ecr_eft::message::{Message, PLN, Transaction, TransactionResult, TransactionType};
use serde_json::Value;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fiscald");

fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The emulator process; killed on drop.
struct Sim {
    child: Child,
    state: PathBuf,
    control: PathBuf,
}

impl Sim {
    fn start(dir: &Path, endpoint: &[&str]) -> Sim {
        let state = dir.join("terminal.json");
        let control = dir.join("terminal.ctl");
        let log = std::fs::File::create(dir.join("sim.log")).unwrap();
        let child = Command::new(BIN)
            .args(["sim", "ecr-eft"])
            .args(endpoint)
            .arg("--state")
            .arg(&state)
            .arg("--control")
            .arg(&control)
            .env("FISCALD_LOG", "debug")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start the emulator");
        let c = control.clone();
        wait_until(Duration::from_secs(10), "the control socket", || {
            c.exists().then_some(())
        });
        Sim {
            child,
            state,
            control,
        }
    }
    fn memory(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.state).unwrap()).unwrap()
    }
    fn control(&self, cmd: &str) -> String {
        fiscald::sim::control::send_control(&self.control, cmd).unwrap()
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A byte stream to the terminal: the PTY device or a TCP socket (both non-blocking).
trait Stream: Read + Write {}
impl<T: Read + Write> Stream for T {}

/// A register: the `ecr_eft` link over a stream.
struct Ecr {
    io: Box<dyn Stream>,
    link: Link,
    closed: bool,
}

fn sale(gross: u64, payment: &str) -> Message {
    Message::S1(Transaction {
        kind: TransactionType::Sale,
        ecr_id: "KASA1".into(),
        payment_id: payment.into(),
        gross,
        net: Some(gross * 100 / 123),
        vat: Some(gross - gross * 100 / 123),
        currency: PLN.into(),
        cashback: None,
        max_cashback: None,
    })
}

impl Ecr {
    fn serial(path: &Path) -> Ecr {
        let file = wait_until(Duration::from_secs(10), "the terminal's device", || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(path)
                .ok()
        });
        Ecr::new(Box::new(file))
    }
    fn tcp(port: u16) -> Ecr {
        let stream = wait_until(Duration::from_secs(10), "the terminal's port", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
        stream.set_nonblocking(true).unwrap();
        Ecr::new(Box::new(stream))
    }
    fn new(io: Box<dyn Stream>) -> Ecr {
        Ecr {
            io,
            link: Link::new(LinkConfig::new(Role::Ecr)),
            closed: false,
        }
    }

    /// Move bytes both ways once; returns the messages received with their tokens.
    fn pump(&mut self) -> Vec<(Token, Message)> {
        while let Some(bytes) = self.link.poll_transmit() {
            // The device may be gone (a dropped connection).
            let _ = self.io.write_all(&bytes);
        }
        let mut buf = [0u8; 1024];
        match self.io.read(&mut buf) {
            Ok(0) => {
                self.closed = true;
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(n) => self.link.handle_input(&buf[..n], Instant::now()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(2))
            }
            Err(_) => {
                self.closed = true;
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        if self
            .link
            .poll_timeout()
            .is_some_and(|t| t <= Instant::now())
        {
            self.link.handle_timeout(Instant::now());
        }
        let mut got = Vec::new();
        while let Some(ev) = self.link.poll_event() {
            match ev {
                LinkEvent::Received { repeat: true, .. } => {}
                LinkEvent::Received { frame, .. } => got.push((
                    frame.token,
                    Message::decode(&frame).expect("a valid message"),
                )),
                LinkEvent::Failed { kind, .. } => {
                    panic!("the terminal did not ACK a {kind:?} frame")
                }
                LinkEvent::Delivered { .. } | LinkEvent::PeerLost => {}
            }
        }
        got
    }

    fn send(&mut self, m: &Message) -> Token {
        self.link
            .request(m.kind(), m.to_fields().unwrap(), Instant::now())
            .unwrap()
    }

    /// Send `m` and collect what comes back for `wait` or until an S2/T2 (answering
    /// the slip's D-messages with D0 `print_ok`).
    fn transact(&mut self, m: &Message, print_ok: bool, wait: Duration) -> Vec<Message> {
        let token = self.send(m);
        self.collect(token, print_ok, wait)
    }

    /// Collect the answers to the request with `token` (see [`Self::transact`]).
    fn collect(&mut self, token: Token, print_ok: bool, wait: Duration) -> Vec<Message> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        while Instant::now() < deadline && !self.closed {
            for (t, m) in self.pump() {
                if matches!(m, Message::D2 | Message::D6 { .. } | Message::D3) {
                    let d0 = Message::D0 { ok: print_ok };
                    self.link
                        .reply(t, *b"D0", d0.to_fields().unwrap(), Instant::now())
                        .unwrap();
                } else {
                    assert_eq!(t, token, "{m:?} echoes the request's token");
                }
                let done = matches!(m, Message::S2(_) | Message::T2(_));
                got.push(m);
                if done {
                    // Let our ACK go out.
                    for _ in 0..5 {
                        self.pump();
                    }
                    return got;
                }
            }
        }
        got
    }
}

fn result(msgs: &[Message]) -> Option<&TransactionResult> {
    msgs.iter().find_map(|m| match m {
        Message::S2(r) => Some(r),
        _ => None,
    })
}

fn kinds(msgs: &[Message]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8(m.kind().to_vec()).unwrap())
        .collect()
}

#[test]
fn serial_sale_decline_lost_result_abort_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("terminal");
    let sim = Sim::start(dir.path(), &["--link", link.to_str().unwrap()]);
    let mut ecr = Ecr::serial(&link);
    let long = Duration::from_secs(15);

    let t2 = ecr.transact(&Message::T1, true, long);
    assert!(matches!(t2.last(), Some(Message::T2(d)) if d.version == "170"));

    let msgs = ecr.transact(&sale(1234, "P-1"), true, long);
    assert_eq!(kinds(&msgs), ["I1", "I1", "I1", "D2", "D6", "D3", "S2"]);
    let r = result(&msgs).unwrap();
    assert!(r.approved());
    assert_eq!(r.amount, Some(1234));
    let slip = msgs
        .iter()
        .find_map(|m| match m {
            Message::D6 { lines } => Some(lines.join("\n")),
            _ => None,
        })
        .unwrap();
    assert!(slip.contains("545454******5454"), "{slip}");
    let tx = &sim.memory()["transactions"][0];
    assert_eq!(tx["status"], "approved");
    assert_eq!(tx["amount"], 1234);
    assert_eq!(tx["transaction_id"], r.transaction_id.as_str());
    assert_eq!(tx["masked_pan"], "545454******5454");

    // 51: declined, nothing printed.
    let msgs = ecr.transact(&sale(1251, "P-2"), true, long);
    assert!(!msgs.iter().any(|m| matches!(m, Message::D2)), "{msgs:?}");
    assert!(!result(&msgs).unwrap().approved());
    assert_eq!(sim.memory()["transactions"][1]["status"], "declined");

    // 52: approved and stored, the result never comes.
    let msgs = ecr.transact(&sale(1252, "P-3"), true, Duration::from_secs(3));
    assert!(result(&msgs).is_none(), "{msgs:?}");
    assert_eq!(sim.memory()["transactions"][2]["status"], "approved");

    // 53: the slow card reader, aborted with P1.
    let token = ecr.send(&sale(1053, "P-4"));
    let first = wait_until(long, "the first I1", || ecr.pump().into_iter().next());
    assert_eq!(first.0, token);
    assert!(matches!(first.1, Message::I1(ref p) if p.status == 20));
    // The abort's outcome pairs with the S1.
    ecr.send(&Message::P1);
    let msgs = ecr.collect(token, true, long);
    assert_eq!(kinds(&msgs).first().unwrap(), "I1");
    let r = result(&msgs).unwrap();
    assert!(!r.approved());
    assert_eq!(sim.memory()["transactions"].as_array().unwrap().len(), 3);

    // The printer refuses: the sale completes without a slip.
    let msgs = ecr.transact(&sale(1500, "P-5"), false, long);
    assert_eq!(kinds(&msgs), ["I1", "I1", "I1", "D2", "S2"]);

    let status = sim.control("status");
    assert!(status.starts_with("ok {"), "{status}");
    let v: Value = serde_json::from_str(&status[3..]).unwrap();
    assert_eq!(v["transactions"], 4);
    assert!(sim.control("frobnicate").starts_with("error"));

    // 54: the result arrives, then the device goes away and comes back.
    let msgs = ecr.transact(&sale(1054, "P-6"), true, long);
    assert!(result(&msgs).unwrap().approved());
    assert_eq!(sim.memory()["transactions"][4]["status"], "approved");
    std::thread::sleep(Duration::from_millis(300));
    let mut ecr = wait_until(long, "the device back", || {
        std::thread::sleep(Duration::from_millis(200));
        let mut e = Ecr::serial(&link);
        let t2 = e.transact(&Message::T1, true, Duration::from_secs(2));
        matches!(t2.last(), Some(Message::T2(_))).then_some(e)
    });
    let msgs = ecr.transact(&sale(2000, "P-7"), true, long);
    assert!(result(&msgs).unwrap().approved());
}

#[test]
fn tcp_sale_silence_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sim = Sim::start(dir.path(), &["--listen", &format!("127.0.0.1:{port}")]);
    let mut ecr = Ecr::tcp(port);
    let long = Duration::from_secs(15);
    let msgs = ecr.transact(&sale(999, "T-1"), true, long);
    assert!(result(&msgs).unwrap().approved());
    assert_eq!(sim.memory()["transactions"][0]["amount"], 999);

    assert!(sim.control("silence 1").starts_with("ok"));
    let msgs = ecr.transact(&Message::T1, true, Duration::from_millis(800));
    assert!(msgs.is_empty(), "{msgs:?}");
    let msgs = ecr.transact(&Message::T1, true, long);
    assert!(matches!(msgs.last(), Some(Message::T2(_))));

    // 54 on TCP: the socket is closed after the result.
    let msgs = ecr.transact(&sale(354, "T-2"), true, long);
    assert!(result(&msgs).unwrap().approved());
    wait_until(long, "the hang-up", || {
        ecr.pump();
        ecr.closed.then_some(())
    });
    let mut ecr = Ecr::tcp(port);
    let msgs = ecr.transact(&Message::T1, true, long);
    assert!(matches!(msgs.last(), Some(Message::T2(_))));
    assert!(sim.control("drop").starts_with("ok"));
    wait_until(long, "the dropped connection", || {
        ecr.pump();
        ecr.closed.then_some(())
    });
}
