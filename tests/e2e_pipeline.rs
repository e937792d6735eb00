//! End to end: the POSNET driver pipelines a document's commands (several requests on the
//! wire before their replies) and, with `pipeline = false`, sends one command at a time;
//! both print the same receipt. Read from the daemon's own wire trace.

mod common;

use common::{Daemon, Sim, config_text};
use serde_json::json;

/// The longest run of requests the daemon wrote with no reply between them.
fn longest_run_of_requests(dir: &std::path::Path) -> usize {
    let traces = dir.join("traces");
    let mut longest = 0;
    for entry in std::fs::read_dir(&traces).expect("the trace directory") {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut run = 0;
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            match line.split_whitespace().nth(2) {
                Some(">") => {
                    run += 1;
                    longest = longest.max(run);
                }
                Some("<") => run = 0,
                _ => {}
            }
        }
    }
    longest
}

fn receipt() -> serde_json::Value {
    let lines: Vec<_> = (0..12)
        .map(|i| json!({"name": format!("Towar {i:02}"), "quantity": "1", "unit_price": 100 + i, "vat": "A"}))
        .collect();
    json!({"lines": lines, "payments": [{"method": "cash", "amount": 5000}]})
}

fn print_with(extra: &str) -> (usize, serde_json::Value, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &["--baud", "38400"]);
    let cfg = config_text(
        dir.path(),
        &sim.link.display().to_string(),
        &format!("record = true\nstatus_poll = 3600\n{extra}"),
    )
    .replace("baud = 115200", "baud = 38400");
    let d = Daemon::start(dir.path(), &cfg);
    d.wait_ready();
    let (status, job) = d.post("/v1/receipts?wait=30", &receipt());
    assert_eq!((status, &job["state"]), (200, &json!("done")), "{job}");
    drop(d);
    (longest_run_of_requests(dir.path()), job, sim.receipts())
}

#[test]
fn a_document_is_pipelined_and_pipeline_false_sends_one_command_at_a_time() {
    let (pipelined, job, receipts) = print_with("");
    assert!(
        pipelined >= 3,
        "requests in a row with pipelining: {pipelined}"
    );
    assert_eq!(receipts.len(), 1);
    assert_eq!(job["result"]["total"], receipts[0]["total"]);
    let (single, job, receipts) = print_with("pipeline = false");
    assert_eq!(single, 1, "pipeline = false: one request at a time");
    assert_eq!(receipts.len(), 1);
    assert_eq!(job["result"]["total"], receipts[0]["total"]);
}

#[test]
fn a_window_outside_the_printers_limits_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config_text(dir.path(), "sim", "pipeline_commands = 40");
    let path = dir.path().join("fiscald.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("printer[0].pipeline_commands"), "{err}");
}
