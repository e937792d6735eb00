//! `fiscald probe` against the emulators: it finds them, prints a configuration block that
//! `check-config` accepts, and changes nothing on the devices.

mod common;

use common::{BIN, Sim, ZvtSim, wait_until};
use serde_json::Value;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::{Command, Output};

fn probe(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("probe")
        .args(args)
        .env("FISCALD_LOG", "warn")
        .output()
        .expect("run fiscald probe")
}

/// The terminal's memory once the emulator has written it and its port is up (both
/// happen just after its control socket appears).
fn terminal_memory(zvt: &ZvtSim) -> Value {
    wait_until(
        std::time::Duration::from_secs(5),
        "the terminal's port",
        || match zvt.port.strip_prefix("tcp://") {
            Some(addr) => std::net::TcpStream::connect(addr).ok().map(drop),
            None => std::fs::symlink_metadata(&zvt.port).ok().map(drop),
        },
    );
    wait_until(
        std::time::Duration::from_secs(5),
        "the terminal's memory file",
        || Some(zvt.memory()).filter(|m| !m.is_null()),
    )
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The pasted block plus the two required tables must pass `check-config`.
fn check_config(dir: &Path, block: &str) -> String {
    let config = format!(
        "[api]\nsocket = \"{}\"\n\n[journal]\npath = \"{}\"\n\n{block}",
        dir.join("api.sock").display(),
        dir.join("journal.db").display()
    );
    let path = dir.join("probed.toml");
    std::fs::write(&path, &config).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check-config refused the probed block:\n{config}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text(&out)
}

#[test]
fn finds_the_printer_and_the_terminal_on_ptys_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let zvt = ZvtSim::start(dir.path(), true);
    let printer_before = sim.memory();
    let terminal_before = terminal_memory(&zvt);
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, "not a port").unwrap();
    let link = sim.link.display().to_string();
    let ports = format!("{link},{},{},/dev/null", zvt.port, plain.display());

    let out = probe(&["--ports", &ports]);
    let stdout = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    // The printer, with its identity in the comment.
    assert!(stdout.contains("[[printer]]"), "{stdout}");
    assert!(stdout.contains("protocol = \"posnet\""), "{stdout}");
    assert!(stdout.contains(&format!("port = \"{link}\"")), "{stdout}");
    assert!(stdout.contains("unique number ABC 12345678"), "{stdout}");
    assert!(stdout.contains("# VAT: A 23%, B 8%"), "{stdout}");
    // The terminal.
    assert!(stdout.contains("[[terminal]]"), "{stdout}");
    assert!(stdout.contains("protocol = \"zvt\""), "{stdout}");
    assert!(
        stdout.contains(&format!("port = \"{}\"", zvt.port)),
        "{stdout}"
    );
    // The ports that did not answer, and why.
    assert!(stdout.contains("Ports that did not answer"), "{stdout}");
    for silent in [plain.display().to_string(), "/dev/null".to_string()] {
        let row = stdout
            .lines()
            .find(|l| l.contains(&silent))
            .unwrap_or_else(|| panic!("no row for {silent}:\n{stdout}"));
        assert!(row.contains("not a serial port"), "{row}");
    }

    // Nothing fiscal happened and no state changed: no receipt, no transaction, no
    // registration, the same memory as before.
    assert!(sim.receipts().is_empty());
    assert_eq!(sim.memory(), printer_before, "the printer's memory changed");
    assert!(zvt.transactions().is_empty());
    assert_eq!(
        zvt.memory(),
        terminal_before,
        "the terminal's memory changed"
    );

    // The block is a valid configuration as pasted.
    let block = stdout
        .split_once("Paste into fiscald.toml:\n")
        .map(|(_, b)| b)
        .unwrap_or(&stdout);
    let checked = check_config(dir.path(), block);
    assert!(checked.contains("ok (1 printer(s))"), "{checked}");

    // JSON for scripts.
    let out = probe(&["--json", "--ports", &link]);
    assert_eq!(out.status.code(), Some(0));
    let v: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let p = &v["printers"][0];
    assert_eq!(p["protocol"], "posnet");
    assert_eq!(p["port"], link.as_str());
    assert_eq!(p["baud"], 115200);
    assert_eq!(p["unique_number"], "ABC 12345678");
    assert_eq!(p["vat"]["E"], "exempt");
    assert!(p["model"].as_str().is_some_and(|m| !m.is_empty()));
    assert_eq!(v["terminals"].as_array().map(Vec::len), Some(0));
    assert!(v["config"].as_str().unwrap().contains("[[printer]]"));
    assert_eq!(sim.memory(), printer_before);
}

#[test]
fn finds_the_terminal_on_tcp() {
    let dir = tempfile::tempdir().unwrap();
    let zvt = ZvtSim::start(dir.path(), false);
    let addr = zvt.port.strip_prefix("tcp://").unwrap().to_string();
    let before = terminal_memory(&zvt);

    let out = probe(&["--tcp", &addr]);
    let stdout = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("[[terminal]]"), "{stdout}");
    assert!(stdout.contains("protocol = \"zvt\""), "{stdout}");
    assert!(
        stdout.contains(&format!("port = \"{}\"", zvt.port)),
        "{stdout}"
    );
    assert!(stdout.contains("status 00 (ready)"), "{stdout}");
    assert!(!stdout.contains("[[printer]]"), "{stdout}");
    assert!(zvt.transactions().is_empty());
    assert_eq!(zvt.memory(), before, "the terminal's memory changed");

    // Only loopback; bad arguments exit 2.
    assert_eq!(probe(&["--tcp", "192.0.2.1:20007"]).status.code(), Some(2));
    assert_eq!(probe(&["--tcp", "nonsense"]).status.code(), Some(2));
    assert_eq!(probe(&["--ports", ""]).status.code(), Some(2));
}

#[test]
fn a_locked_port_is_reported_busy_and_nothing_answered_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    // Hold the port the way a running fiscald does.
    let held = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&sim.link)
        .unwrap();
    // SAFETY: flock on a descriptor owned by `held`, alive until the end of the test.
    assert_eq!(
        unsafe { libc::flock(held.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
        0
    );
    let missing = dir.path().join("ttyUSB9");
    let out = probe(&[
        "--ports",
        &format!("{},{}", sim.link.display(), missing.display()),
    ]);
    let stdout = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("No printer or terminal answered"),
        "{stdout}"
    );
    let row = |p: &Path| {
        stdout
            .lines()
            .find(|l| l.contains(&p.display().to_string()))
            .unwrap_or_else(|| panic!("no row for {}:\n{stdout}", p.display()))
            .to_string()
    };
    assert!(row(&sim.link).contains("busy"), "{stdout}");
    assert!(row(&missing).contains("missing"), "{stdout}");
    drop(held);
    assert!(sim.receipts().is_empty());
}
