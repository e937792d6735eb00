//! ZVT wire traces and replay, end to end.
//!
//! `fixtures/traces/zvt/*.trace` are recorded from the ZVT terminal emulator, card data
//! masked as every trace masks it. Each test here runs `fiscald replay <fixture>` as the
//! terminal (a PTY for `link=serial` traces, a TCP port for `link=tcp`), runs the daemon
//! against it, posts the same payment and checks that the job ends as recorded and that
//! replay saw exactly the recorded requests (exit 0). A changed amount must make replay
//! report the divergence with both byte strings.
//!
//! Regenerate the fixtures (after an intended change on the wire) with
//! `cargo test --test e2e_replay_zvt -- --ignored regenerate`.

mod common;

use common::*;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One recorded card flow: its payment and how its job ends.
struct Flow {
    name: &'static str,
    serial: bool,
    amount: u64,
    /// The job's state and whether the payment was approved.
    state: &'static str,
    approved: bool,
}

fn flows() -> Vec<Flow> {
    vec![
        Flow {
            name: "sale",
            serial: true,
            amount: 2500,
            state: "done",
            approved: true,
        },
        // Amounts ending in 51 are declined by the emulator.
        Flow {
            name: "decline",
            serial: true,
            amount: 1051,
            state: "failed",
            approved: false,
        },
        // Amounts ending in 52 are approved and stored, but the Status-Information never
        // comes: the daemon times out, picks the terminal up again and asks for the last
        // transaction (repeat receipt), which it attaches to the payment: one charge.
        Flow {
            name: "recovered_sale",
            serial: true,
            amount: 1052,
            state: "done",
            approved: true,
        },
        Flow {
            name: "sale_tcp",
            serial: false,
            amount: 1800,
            state: "done",
            approved: true,
        },
    ]
}

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/traces/zvt")
        .join(format!("{name}.trace"))
}

fn payment(amount: u64) -> Value {
    json!({"type": "sale", "amount": amount})
}

/// The printer emulator (a daemon needs a printer) and a daemon whose terminal is at `port`.
fn daemon(dir: &Path, port: &str, terminal_extra: &str) -> (Sim, Daemon) {
    let printer = Sim::start(dir, &[]);
    let mut cfg = config_text(
        dir,
        &printer.link.display().to_string(),
        "status_poll = 3600",
    );
    cfg.push_str(&terminal_config(port, terminal_extra));
    let d = Daemon::start(dir, &cfg);
    (printer, d)
}

/// Post `flow`'s payment once the terminal is ready; the job as it ended.
fn pay(d: &Daemon, amount: u64) -> Value {
    d.wait_printer_and_terminal_ready();
    let (status, v) = d.post("/v1/payments", &payment(amount));
    assert!(status == 202 || status == 200, "{status}: {v}");
    let id = v["id"].as_i64().expect("job id");
    d.wait_job(id, Duration::from_secs(60))
}

fn check_outcome(flow: &Flow, job: &Value) {
    assert_eq!(job["state"], flow.state, "{}: {job}", flow.name);
    let approved = job["result"]["approved"].as_bool().unwrap_or(false);
    assert_eq!(approved, flow.approved, "{}: {job}", flow.name);
    if flow.approved {
        assert_eq!(job["result"]["amount"], flow.amount, "{}: {job}", flow.name);
        let pan = job["result"]["masked_pan"].as_str().unwrap_or_default();
        assert!(pan.contains('*'), "{}: {job}", flow.name);
    }
}

/// `fiscald replay` as its own process, playing the terminal.
struct Replay {
    child: Child,
    dir: PathBuf,
}

impl Replay {
    /// Start replaying `trace`; returns it and the `port` a `[[terminal]]` points at.
    fn start(dir: &Path, trace: &Path, serial: bool) -> (Replay, String) {
        let out = std::fs::File::create(dir.join("replay.out")).unwrap();
        let err = std::fs::File::create(dir.join("replay.err")).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("replay").arg(trace);
        let port = if serial {
            let link = dir.join("terminal.tty");
            cmd.arg("--link").arg(&link);
            link.display().to_string()
        } else {
            let addr = format!("127.0.0.1:{}", free_tcp_port());
            cmd.args(["--listen", &addr]);
            format!("tcp://{addr}")
        };
        let child = cmd
            .args(["--linger-ms", "500", "--timeout", "40"])
            .env("FISCALD_LOG", "debug")
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("start fiscald replay");
        let log = dir.join("replay.err");
        wait_until(Duration::from_secs(10), "the replay to listen", || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|t| t.contains("replaying a ZVT terminal"))
        });
        (
            Replay {
                child,
                dir: dir.to_path_buf(),
            },
            port,
        )
    }

    /// Wait for the replay to end; its exit code and stderr.
    fn finish(&mut self, timeout: Duration) -> (Option<i32>, String) {
        let deadline = Instant::now() + timeout;
        let code = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s.code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let err = std::fs::read_to_string(self.dir.join("replay.err")).unwrap_or_default();
        (code, err)
    }
}

impl Drop for Replay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn replays_as_recorded(name: &str) {
    let flow = flows().into_iter().find(|f| f.name == name).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (mut r, port) = Replay::start(dir.path(), &fixture(name), flow.serial);
    let (_printer, d) = daemon(dir.path(), &port, "");
    let job = pay(&d, flow.amount);
    check_outcome(&flow, &job);
    let (code, err) = r.finish(Duration::from_secs(40));
    drop(d);
    assert_eq!(code, Some(0), "replay of {name} failed:\n{err}");
    assert!(err.contains("request matches"), "{err}");
}

#[test]
fn replay_sale_on_serial() {
    replays_as_recorded("sale");
}

#[test]
fn replay_decline_on_serial() {
    replays_as_recorded("decline");
}

#[test]
fn replay_recovered_sale_on_serial() {
    replays_as_recorded("recovered_sale");
}

#[test]
fn replay_sale_on_tcp() {
    replays_as_recorded("sale_tcp");
}

/// Post 2600 where `name` recorded 2500 (`sale`) or 1800 (`sale_tcp`): replay must stop at
/// the authorization with both byte strings.
fn changed_amount(name: &str, serial: bool, recorded: u64) {
    let dir = tempfile::tempdir().unwrap();
    let (mut r, port) = Replay::start(dir.path(), &fixture(name), serial);
    let (_printer, d) = daemon(dir.path(), &port, "");
    d.wait_printer_and_terminal_ready();
    // The replay stops answering at the divergence: the job does not end as recorded.
    let (status, v) = d.post("/v1/payments", &payment(2600));
    assert!(status == 202 || status == 200, "{status}: {v}");
    let (code, err) = r.finish(Duration::from_secs(40));
    drop(d);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("divergence: request"), "{err}");
    let expected = err.split("expected:").nth(1).expect(&err);
    let (expected, received) = expected.split_once("received:").expect(&err);
    assert!(
        expected.contains("Authorization") && expected.contains(&format!("amount: {recorded}")),
        "{err}"
    );
    assert!(
        received.contains("Authorization") && received.contains("amount: 2600"),
        "{err}"
    );
    // Both as hex too: BMP 04 is the amount in 6 BCD bytes (inside a frame on serial).
    assert!(
        expected.contains(&format!("040000000{recorded:05}")),
        "{err}"
    );
    assert!(received.contains("04000000002600"), "{err}");
}

#[test]
fn a_changed_amount_is_reported_with_both_byte_strings() {
    changed_amount("sale", true, 2500);
}

#[test]
fn a_changed_amount_on_tcp_is_reported_with_both_byte_strings() {
    changed_amount("sale_tcp", false, 1800);
}

/// The restarted sale: the fixture is two traces, one per daemon run.
const RESTART: &str = "restarted_sale";
const RESTART_AMOUNT: u64 = 2700;

/// A sale whose daemon is SIGKILLed mid-flow (the terminal has answered the authorization,
/// the Status-Information has not come) and started again: the new daemon drains the line,
/// catches the terminal's repeated Status-Information as the interrupted payment's commit
/// point, then registers. Replayed as recorded: the first trace up to the kill, then the
/// second on a new PTY at the same path, with the same journal.
#[test]
fn replay_sale_interrupted_by_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (mut r1, port) = Replay::start(dir.path(), &fixture(&format!("{RESTART}.1")), true);
    let (_printer, mut d) = daemon(dir.path(), &port, "");
    d.wait_printer_and_terminal_ready();
    let (status, v) = d.post("/v1/payments", &payment(RESTART_AMOUNT));
    assert!(status == 202 || status == 200, "{status}: {v}");
    let id = v["id"].as_i64().expect("job id");
    let log = dir.path().join("replay.err");
    wait_until(
        Duration::from_secs(30),
        "the first run's last request",
        || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|t| t.contains("every request matched"))
        },
    );
    d.kill9();
    let (code, err) = r1.finish(Duration::from_secs(10));
    assert_eq!(code, Some(0), "replay of the first run failed:\n{err}");
    let (mut r2, port2) = Replay::start(dir.path(), &fixture(&format!("{RESTART}.2")), true);
    assert_eq!(port, port2);
    d.spawn();
    let job = d.wait_job(id, Duration::from_secs(60));
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["result"]["approved"], true, "{job}");
    assert_eq!(job["result"]["amount"], RESTART_AMOUNT, "{job}");
    let (code, err) = r2.finish(Duration::from_secs(40));
    drop(d);
    assert_eq!(code, Some(0), "replay of the second run failed:\n{err}");
}

/// The trace files of `dir/traces`, oldest first.
fn traces_in(dir: &Path) -> Vec<PathBuf> {
    let mut t: Vec<PathBuf> = std::fs::read_dir(dir.join("traces"))
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    t.sort();
    t
}

/// Record the restarted sale (see [`replay_sale_interrupted_by_a_restart`]).
fn record_restart() {
    let dir = tempfile::tempdir().unwrap();
    let zvt = ZvtSim::start(dir.path(), true);
    zvt.control("pan clear");
    let (printer, mut d) = daemon(dir.path(), &zvt.port, "record = true");
    d.wait_printer_and_terminal_ready();
    // Every terminal message comes 1.5 s late: time to kill the daemon between the
    // terminal's answer to the authorization and its Status-Information.
    zvt.control("delay 1500");
    let (status, v) = d.post("/v1/payments", &payment(RESTART_AMOUNT));
    assert!(status == 202 || status == 200, "{status}: {v}");
    let id = v["id"].as_i64().expect("job id");
    let first = traces_in(dir.path()).pop().unwrap();
    // The authorization, the terminal's ACK frame and the daemon's link ACK of it.
    let answered = |t: &str| {
        let after = t.split(" Authorization ").nth(1)?;
        let lines: Vec<&str> = after.lines().skip(1).collect();
        (lines.len() == 3 && lines[1].contains("80 00 ACK") && lines[2].contains("> 06"))
            .then_some(())
    };
    wait_until(Duration::from_secs(30), "the terminal's answer", || {
        answered(&std::fs::read_to_string(&first).ok()?)
    });
    d.kill9();
    let text = std::fs::read_to_string(&first).unwrap();
    assert!(answered(&text).is_some(), "killed too late:\n{text}");
    d.spawn();
    let job = d.wait_job(id, Duration::from_secs(90));
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["result"]["approved"], true, "{job}");
    d.terminate();
    drop(printer);
    drop(zvt);
    let traces = traces_in(dir.path());
    assert_eq!(traces.len(), 2, "{traces:?}");
    for (i, t) in traces.iter().enumerate() {
        let out = fixture(&format!("{RESTART}.{}", i + 1));
        std::fs::copy(t, &out).unwrap();
        eprintln!("recorded {}", out.display());
    }
}

/// The fixtures were recorded from a terminal that sends the card number in clear: none
/// of it is left, in any form, and no line carries the password.
#[test]
fn fixtures_hold_no_card_number_and_no_password() {
    let pan = zvt::model::TEST_PAN;
    let spaced = "5454 5454 5454 5454";
    let pan13 = zvt::model::hostile::TEST_PAN_13;
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture("x").parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    for file in files {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(&file).unwrap();
        let hexes: String = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split_whitespace().nth(3))
            .collect::<Vec<_>>()
            .join("\n");
        // Wherever the outcome is, the card number is there, masked in place.
        assert!(
            !text.contains("Status information") || text.contains("22f0f8545454eeeeee5454"),
            "{name}: the card number is in no BMP 22:\n{text}"
        );
        for needle in [
            pan.to_string(),
            pan[..12].to_string(),
            pan[4..].to_string(),
            hex::encode(pan),
            hex::encode(&pan[..10]),
            hex::encode(&pan[6..]),
            hex::encode(spaced),
            hex::encode(&spaced[..12]),
            hex::encode(&spaced[5..]),
            hex::encode(pan13),
            "123456".to_string(),
            hex::encode("123456"),
        ] {
            assert!(!hexes.contains(&needle), "{name}: {needle} in the trace");
            assert!(!text.contains(&needle), "{name}: {needle} in the trace");
        }
    }
}

/// Record every fixture from the emulator (`--ignored regenerate`).
#[test]
#[ignore = "writes fixtures/traces/zvt; run after an intended change on the wire"]
fn regenerate() {
    let out_dir = fixture("x").parent().unwrap().to_path_buf();
    std::fs::create_dir_all(&out_dir).unwrap();
    for flow in flows() {
        let dir = tempfile::tempdir().unwrap();
        let zvt = ZvtSim::start(dir.path(), flow.serial);
        // A terminal that sends the full card number in clear everywhere it can: the
        // recorder must mask all of it, and the masked trace must still replay.
        zvt.control("pan clear");
        let (printer, mut d) = daemon(dir.path(), &zvt.port, "record = true");
        let job = pay(&d, flow.amount);
        check_outcome(&flow, &job);
        d.terminate();
        drop(printer);
        drop(zvt);
        let traces: Vec<PathBuf> = std::fs::read_dir(dir.path().join("traces"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(traces.len(), 1, "{traces:?}");
        std::fs::copy(&traces[0], fixture(flow.name)).unwrap();
        eprintln!("recorded {}", fixture(flow.name).display());
    }
    record_restart();
}

/// A serial trace needs `--link`, a TCP one `--listen`: the wrong one is refused (exit 2)
/// with the right one named.
#[test]
fn the_wrong_endpoint_for_a_trace_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    for (name, arg, value, needed) in [
        ("sale", "--listen", "127.0.0.1:1".to_string(), "--link"),
        (
            "sale_tcp",
            "--link",
            dir.path().join("t.tty").display().to_string(),
            "--listen",
        ),
    ] {
        let out = Command::new(BIN)
            .arg("replay")
            .arg(fixture(name))
            .args([arg, &value])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(needed), "{name}: {err}");
    }
    assert!(!dir.path().join("t.tty").exists());
}
