//! End-to-end: `fiscald sim zvt` as its own process, driven by a small register written
//! here with the `zvt` codec, over TCP and over the serial PTY.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use zvt::link::{LinkConfig, LinkEvent, SerialLink};
use zvt::{Apdu, ApduDecoder, EcrCommand, PLN, PtMessage, TransactionResult};

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
            .args(["sim", "zvt"])
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// True for the message that hands master rights back to the register.
fn is_final(m: &PtMessage) -> bool {
    matches!(m, PtMessage::Completion { .. } | PtMessage::Abort { .. })
}

fn status_of(msgs: &[PtMessage]) -> TransactionResult {
    msgs.iter()
        .find_map(|m| match m {
            PtMessage::StatusInformation(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a Status-Information")
}

/// A register on TCP.
struct TcpEcr {
    stream: TcpStream,
    decoder: ApduDecoder,
}

impl TcpEcr {
    fn connect(port: u16) -> TcpEcr {
        let stream = wait_until(Duration::from_secs(10), "the terminal's port", || {
            TcpStream::connect(("127.0.0.1", port)).ok()
        });
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        TcpEcr {
            stream,
            decoder: ApduDecoder::new(),
        }
    }
    fn send(&mut self, apdu: &Apdu) {
        // The terminal may have hung up already (amount 54).
        let _ = self.stream.write_all(&apdu.encode());
    }
    /// The next message; `None` when the terminal closed the connection.
    fn recv(&mut self, timeout: Duration) -> Option<PtMessage> {
        self.try_recv(timeout)
            .expect("no message from the terminal")
    }
    /// Like [`Self::recv`], but `None` on timeout.
    fn try_recv(&mut self, timeout: Duration) -> Option<Option<PtMessage>> {
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; 1024];
        loop {
            if let Some(a) = self.decoder.next_apdu() {
                return Some(Some(PtMessage::from_apdu(&a).expect("a valid PT message")));
            }
            if Instant::now() >= deadline {
                return None;
            }
            match self.stream.read(&mut buf) {
                Ok(0) => return Some(None),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return Some(None),
            }
        }
    }
    /// Send a command and ack everything until the terminal is done (or hangs up).
    fn transact(&mut self, cmd: EcrCommand) -> Vec<PtMessage> {
        self.send(&cmd.to_apdu());
        let mut got = Vec::new();
        while let Some(m) = self.recv(Duration::from_secs(10)) {
            if m.needs_ack() {
                self.send(&EcrCommand::Ack.to_apdu());
            }
            let done = is_final(&m);
            got.push(m);
            if done {
                break;
            }
        }
        got
    }
}

#[test]
fn tcp_sale_drop_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let sim = Sim::start(dir.path(), &["--listen", &addr]);
    let mut ecr = TcpEcr::connect(port);

    let msgs = ecr.transact(EcrCommand::Authorization {
        amount: 1234,
        currency: PLN,
    });
    assert_eq!(msgs[0], PtMessage::Ack);
    let r = status_of(&msgs);
    assert_eq!(r.result_code, 0);
    assert_eq!(r.amount, Some(1234));
    assert!(r.masked_pan.as_deref().unwrap().contains('*'));
    assert!(
        msgs.iter().any(
            |m| matches!(m, PtMessage::PrintLine { text, .. } if text.contains("ZATWIERDZONO"))
        )
    );
    assert!(matches!(msgs.last(), Some(PtMessage::Completion { .. })));
    let mem = sim.memory();
    let tx = &mem["transactions"][0];
    assert_eq!(tx["type"], "sale");
    assert_eq!(tx["status"], "approved");
    assert_eq!(tx["amount"], 1234);
    assert_eq!(tx["currency"], 985);
    assert_eq!(tx["receipt_number"], r.receipt_number.unwrap());
    assert!(tx["masked_pan"].as_str().unwrap().contains("******"));

    // 54: the result arrives, then the terminal hangs up before our ack.
    let msgs = ecr.transact(EcrCommand::Authorization {
        amount: 554,
        currency: PLN,
    });
    let lost = status_of(&msgs);
    assert!(!msgs.iter().any(is_final), "{msgs:?}");
    assert!(ecr.recv(Duration::from_secs(5)).is_none());
    assert_eq!(sim.memory()["transactions"][1]["status"], "approved");

    // Recovery on a new connection: idle, then the last result again.
    let mut ecr = TcpEcr::connect(port);
    let st = ecr.transact(EcrCommand::StatusEnquiry { password: None });
    assert!(matches!(
        st[1],
        PtMessage::Completion {
            terminal_status: Some(0),
            ..
        }
    ));
    let again = ecr.transact(EcrCommand::RepeatReceipt {
        password: 0,
        service: 0x03,
    });
    assert_eq!(status_of(&again).receipt_number, lost.receipt_number);
    assert_eq!(status_of(&again).result_code, 0);

    let status = sim.control("status");
    assert!(status.starts_with("ok {"), "{status}");
    let v: Value = serde_json::from_str(&status[3..]).unwrap();
    assert_eq!(v["transactions"], 2);
    assert!(sim.control("frobnicate").starts_with("error"));

    // `silence 1`: the next command goes unanswered; the one after is served.
    assert!(sim.control("silence 1").starts_with("ok"));
    ecr.send(&EcrCommand::StatusEnquiry { password: None }.to_apdu());
    assert_eq!(ecr.try_recv(Duration::from_millis(500)), None);
    // `delay MS` before every message.
    assert!(sim.control("delay 100").starts_with("ok"));
    let t = Instant::now();
    let st = ecr.transact(EcrCommand::StatusEnquiry { password: None });
    assert_eq!(st.len(), 2);
    assert!(t.elapsed() >= Duration::from_millis(200));
    assert!(sim.control("delay 0").starts_with("ok"));

    // `drop` closes the connection.
    assert!(sim.control("drop").starts_with("ok"));
    assert!(ecr.recv(Duration::from_secs(5)).is_none());
}

/// A register on the serial PTY.
struct SerialEcr {
    file: std::fs::File,
    link: SerialLink,
    queue: Vec<Apdu>,
}

impl SerialEcr {
    fn open(path: &Path) -> SerialEcr {
        let file = wait_until(Duration::from_secs(10), "the terminal's device", || {
            std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
                .open(path)
                .ok()
        });
        SerialEcr {
            file,
            link: SerialLink::new(LinkConfig::default()),
            queue: Vec::new(),
        }
    }

    /// Move bytes both ways; returns received APDUs.
    fn pump(&mut self) -> Vec<Apdu> {
        let now = Instant::now();
        if !self.link.is_busy() && !self.queue.is_empty() {
            let a = self.queue.remove(0);
            self.link.send(&a.encode(), now).unwrap();
        }
        while let Some(bytes) = self.link.poll_transmit() {
            // The device may be gone (a dropped connection).
            let _ = self.file.write_all(&bytes);
        }
        let mut buf = [0u8; 1024];
        match self.file.read(&mut buf) {
            Ok(n) if n > 0 => self.link.handle_input(&buf[..n], Instant::now()),
            _ => std::thread::sleep(Duration::from_millis(2)),
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
                LinkEvent::Received(bytes) => got.push(Apdu::decode(&bytes).unwrap()),
                LinkEvent::Delivered => {}
                LinkEvent::Failed => panic!("the terminal did not ACK a frame"),
            }
        }
        while let Some(bytes) = self.link.poll_transmit() {
            // The device may be gone (a dropped connection).
            let _ = self.file.write_all(&bytes);
        }
        got
    }

    fn transact(&mut self, cmd: EcrCommand) -> Vec<PtMessage> {
        self.queue.push(cmd.to_apdu());
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut got = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "no end of flow; got {got:?}");
            for a in self.pump() {
                let m = PtMessage::from_apdu(&a).expect("a valid PT message");
                if m.needs_ack() {
                    self.queue.push(EcrCommand::Ack.to_apdu());
                }
                got.push(m);
            }
            let done = got.last().is_some_and(is_final) || got == [PtMessage::Nack(0x83)];
            if done && self.queue.is_empty() && !self.link.is_busy() {
                return got;
            }
        }
    }
}

#[test]
fn serial_sale_decline_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let tty = dir.path().join("terminal.tty");
    let sim = Sim::start(dir.path(), &["--link", tty.to_str().unwrap()]);
    let mut ecr = SerialEcr::open(&tty);

    // 10.00 PLN: the amount has a 0x10 byte, so the frame is DLE-stuffed.
    let msgs = ecr.transact(EcrCommand::Authorization {
        amount: 1000,
        currency: PLN,
    });
    assert_eq!(msgs[0], PtMessage::Ack);
    let r = status_of(&msgs);
    assert_eq!((r.result_code, r.amount), (0, Some(1000)));
    assert!(matches!(msgs.last(), Some(PtMessage::Completion { .. })));

    let msgs = ecr.transact(EcrCommand::Authorization {
        amount: 251,
        currency: PLN,
    });
    assert_eq!(status_of(&msgs).result_code, 0x05);
    assert!(matches!(
        msgs.last(),
        Some(PtMessage::Abort {
            result_code: 0x05,
            ..
        })
    ));
    let mem = sim.memory();
    assert_eq!(mem["transactions"][0]["status"], "approved");
    assert_eq!(mem["transactions"][0]["amount"], 1000);
    assert_eq!(mem["transactions"][1]["status"], "declined");

    // `drop`: the device goes away and comes back on a new PTY.
    let before = std::fs::read_link(&tty).unwrap();
    assert!(sim.control("drop").starts_with("ok"));
    wait_for_new_device(&tty, &before);
    drop(ecr);
    let mut ecr = SerialEcr::open(&tty);

    // 54: the result arrives, then the device goes away; the payment stays approved.
    let before = std::fs::read_link(&tty).unwrap();
    ecr.queue.push(
        EcrCommand::Authorization {
            amount: 354,
            currency: PLN,
        }
        .to_apdu(),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let r = loop {
        assert!(Instant::now() < deadline, "no Status-Information");
        let got = ecr.pump();
        if let Some(r) = got.iter().find_map(|a| match PtMessage::from_apdu(a) {
            Ok(PtMessage::StatusInformation(r)) => Some(r),
            _ => None,
        }) {
            break r;
        }
    };
    assert_eq!(r.result_code, 0);
    wait_for_new_device(&tty, &before);
    assert_eq!(sim.memory()["transactions"][2]["status"], "approved");
    drop(ecr);
    let mut ecr = SerialEcr::open(&tty);
    let again = ecr.transact(EcrCommand::RepeatReceipt {
        password: 0,
        service: 0x03,
    });
    assert_eq!(status_of(&again).receipt_number, r.receipt_number);

    let msgs = ecr.transact(EcrCommand::EndOfDay { password: 0 });
    assert_eq!(status_of(&msgs).amount, Some(1354));
    let mem = sim.memory();
    assert_eq!(mem["batches"][0]["count"], 2);
    assert_eq!(mem["batches"][0]["total"], 1354);
}

/// Wait until the device at `tty` went away (or changed) and is back.
fn wait_for_new_device(tty: &Path, before: &Path) {
    wait_until(Duration::from_secs(5), "the device to go away", || {
        (std::fs::read_link(tty).ok().as_deref() != Some(before)).then_some(())
    });
    wait_until(Duration::from_secs(5), "the device to come back", || {
        std::fs::read_link(tty).ok()
    });
}
