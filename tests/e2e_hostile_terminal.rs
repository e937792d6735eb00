//! End to end: a hostile card terminal (the emulator's `pan clear` fault) sends the full
//! card number in clear in every field that can carry text (BMP 22, 8B, 3C, 2A, display
//! texts, print lines, a print text block, abort texts) and in every separator style.
//! Card sales and payments run through the daemon with traces recorded and the wire
//! debug log on; then every file under the test's directory (the journal's SQLite bytes,
//! traces, logs, the emulators' state), every API answer (jobs, devices, health, audit,
//! the event stream, metrics, the status page), the printed slips in the printer
//! emulator's memory and the `fiscald diagnose` bundle are scanned: no full card number
//! anywhere, neither as digits nor with its separators, nor as hex.

mod common;

use common::{BIN, Daemon, Sim, ZvtSim, config_text, terminal_config};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use zvt::model::TEST_PAN;
use zvt::model::hostile::{STYLES, TEST_PAN_13};

/// Every form a leaked number could take in `text`; the first one found.
fn leak_in(text: &str) -> Option<String> {
    // Digits only: within each stretch of text without letters, every character but the
    // digits (and the mask character) dropped, as a reader would join them.
    for stretch in text.split(|c: char| c.is_alphabetic()) {
        let digits: String = stretch
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '*')
            .collect();
        for pan in [TEST_PAN, TEST_PAN_13] {
            if digits.contains(pan) {
                return Some(format!(
                    "{pan} (digits only) in {:?}",
                    &stretch[..stretch.len().min(300)]
                ));
            }
        }
    }
    for pan in [TEST_PAN, TEST_PAN_13] {
        let lower = text.to_ascii_lowercase();
        // Hex of its ASCII digits (traces, wire logs), with or without spaces.
        let compact: String = lower.split_whitespace().collect();
        if compact.contains(&hex::encode(pan)) {
            return Some(format!("{pan} (hex)"));
        }
        // BCD as in BMP 22.
        if compact.contains(&"54".repeat(8)) {
            return Some("BCD of the PAN (hex)".into());
        }
    }
    for style in STYLES {
        if text.contains(style) {
            return Some(style.to_string());
        }
        if text
            .to_ascii_lowercase()
            .contains(&hex::encode(style.as_bytes()))
        {
            return Some(format!("{style} (hex)"));
        }
    }
    None
}

fn scan(what: &str, bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Some(found) = leak_in(&text) {
        panic!("{what} holds the full card number: {found}");
    }
    // Raw bytes too (SQLite pages may hold text next to binary).
    for pan in [TEST_PAN, TEST_PAN_13] {
        assert!(
            !bytes.windows(pan.len()).any(|w| w == pan.as_bytes()),
            "{what} holds {pan}"
        );
    }
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let meta = std::fs::symlink_metadata(&p).unwrap();
        if meta.is_dir() {
            files_under(&p, out);
        } else if meta.is_file() {
            out.push(p);
        }
    }
}

/// Read an HTTP response on the socket for `wait`, as raw text (for the event stream).
fn raw_get(socket: &Path, path: &str, headers: &str, wait: Duration) -> String {
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let until = std::time::Instant::now() + wait;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    while std::time::Instant::now() < until {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn sale(amount: u64) -> Value {
    json!({
        "lines": [{"name": "Kawa", "quantity": "1", "unit_price": amount, "vat": "A"}],
        "payments": [{"method": "card", "amount": amount}]
    })
}

#[test]
fn a_hostile_terminal_leaks_no_card_number_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let printer = Sim::start(dir.path(), &[]);
    let terminal = ZvtSim::start(dir.path(), true);
    let mut cfg = config_text(
        dir.path(),
        &printer.link.display().to_string(),
        "record = true",
    );
    cfg.push_str(&terminal_config(&terminal.port, "record = true"));
    let mut daemon = Daemon::start(dir.path(), &cfg);
    daemon.wait_printer_and_terminal_ready();
    terminal.control("pan clear");

    // A live event stream, read while the sales run.
    let socket = daemon.socket.clone();
    let live =
        std::thread::spawn(move || raw_get(&socket, "/v1/events", "", Duration::from_secs(40)));

    // Approved (slip with every style and a text block), declined (abort text), lost
    // Status-Information (recovered by status enquiry / repeat receipt), a slow card
    // reader (display texts), and plain payments.
    let mut answers = Vec::new();
    let mut ids = Vec::new();
    for amount in [1000, 1051, 1052, 1053] {
        let (status, job) = daemon.post("/v1/sales?wait=60", &sale(amount));
        assert!(job["state"].is_string(), "{status} {job}");
        ids.push(job["id"].as_i64().unwrap());
        answers.push((format!("POST /v1/sales {amount}"), job.to_string()));
    }
    for amount in [2500, 2551] {
        let (_, job) = daemon.post(
            "/v1/payments?wait=30",
            &json!({"type": "sale", "amount": amount}),
        );
        assert!(job["state"].is_string(), "{job}");
        ids.push(job["id"].as_i64().unwrap());
        answers.push((format!("POST /v1/payments {amount}"), job.to_string()));
    }
    for id in &ids {
        let job = daemon.wait_job(*id, Duration::from_secs(60));
        answers.push((format!("GET /v1/jobs/{id}"), job.to_string()));
    }
    let (_, first) = daemon.get(&format!("/v1/jobs/{}", ids[0]));
    assert_eq!(first["state"], "done", "{first}");
    let text = first.to_string();
    assert!(text.contains("545454"), "the masked number is kept: {text}");

    for path in [
        "/v1/jobs?limit=1000",
        "/v1/devices",
        "/v1/health",
        "/v1/audit?limit=1000",
        "/metrics",
        "/",
    ] {
        let (_, v) = daemon.get(path);
        answers.push((format!("GET {path}"), v.to_string()));
    }
    answers.push((
        "GET /v1/events (resumed)".into(),
        raw_get(
            &daemon.socket,
            "/v1/events",
            "Last-Event-ID: 0\r\n",
            Duration::from_secs(2),
        ),
    ));
    answers.push(("GET /v1/events (live)".into(), live.join().unwrap()));
    for (what, text) in &answers {
        scan(what, text.as_bytes());
    }

    // The slips the printer printed.
    let printed = printer.memory().to_string();
    assert!(printed.contains("545454"), "a slip was printed: {printed}");
    scan("the printer emulator's memory", printed.as_bytes());

    // The support bundle.
    let bundle = dir.path().join("bundle.tar.gz");
    let run = Command::new(BIN)
        .args(["diagnose", "--config"])
        .arg(&daemon.config)
        .arg("--out")
        .arg(&bundle)
        .arg("--log")
        .arg(dir.path().join("daemon.log"))
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    scan("diagnose's output", &run.stdout);
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(&bundle).unwrap());
    let mut archive = tar::Archive::new(gz);
    let mut entries = 0;
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        scan(&format!("the bundle's {name}"), &bytes);
        entries += 1;
    }
    assert!(entries > 3, "{entries} files in the bundle");

    // Every file: journal (and its WAL), traces, the daemon's debug log with the wire
    // lines, the emulators' logs and state. The daemon is stopped first so that
    // everything is flushed.
    daemon.terminate();
    drop(terminal);
    drop(printer);
    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    let names: Vec<String> = files
        .iter()
        .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("traces/t1-")),
        "{names:?}"
    );
    assert!(names.iter().any(|n| n == "journal.db"), "{names:?}");
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(log.contains("fiscald::wire"), "the wire debug log is on");
    for f in &files {
        if f == &bundle {
            continue;
        }
        scan(&f.display().to_string(), &std::fs::read(f).unwrap());
    }
}
