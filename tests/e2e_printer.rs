//! End to end: the daemon and the POSNET emulator (its own process) over a pseudo-terminal.

mod common;

use common::{Daemon, Sim, config_text, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

fn setup(sim_args: &[&str]) -> (tempfile::TempDir, Sim, Daemon) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path(), sim_args);
    let daemon = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &sim.link.display().to_string(), ""),
    );
    daemon.wait_ready();
    (dir, sim, daemon)
}

fn receipt(name: &str, lines: usize) -> Value {
    let lines: Vec<Value> = (0..lines)
        .map(|i| json!({"name": format!("{name} {i}"), "quantity": "1", "unit_price": 100 + i as u64, "vat": "A"}))
        .collect();
    let total: u64 = (0..lines.len() as u64).map(|i| 100 + i).sum();
    json!({"lines": lines, "payments": [{"method": "cash", "amount": total}]})
}

#[test]
fn receipt_is_printed_with_right_totals_and_polish_letters() {
    let (_dir, sim, d) = setup(&[]);
    let body = json!({
        "lines": [
            {"name": "Żółć gęślą jaźń", "quantity": "1.5", "unit_price": 1999, "vat": "A", "unit": "kg"},
            {"name": "Chleb", "quantity": 2, "unit_price": 450, "vat": "C"},
            {"name": "Woda", "quantity": "0.333", "unit_price": 150, "vat": "B"}
        ],
        "payments": [{"method": "card", "amount": 2000}, {"method": "cash", "amount": 2000}],
        "buyer_nip": "526-000-12-46",
        "total": 3949
    });
    let (status, job) = d.post("/v1/receipts?wait=30", &body);
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["kind"], "receipt");
    assert_eq!(job["result"]["total"], 3949);
    assert!(job["result"]["printed_at"].is_string());
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 1);
    let r = &receipts[0];
    assert_eq!(job["result"]["receipt_number"], r["number"]);
    assert_eq!(r["total"], 3949); // 2998.5 -> 2999, 900, 49.95 -> 50
    assert_eq!(r["lines"][0]["name"], "Żółć gęślą jaźń");
    assert_eq!(r["lines"][0]["amount"], 2999);
    assert_eq!(r["lines"][0]["quantity"], "1.5");
    assert_eq!(r["lines"][1]["vat"], "C");
    assert_eq!(r["lines"][2]["amount"], 50);
    assert_eq!(r["buyer_nip"], "5260001246");
    let paid: u64 = r["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|p| p["amount"].as_u64())
        .sum();
    assert!(paid >= 3949);
    assert_eq!(sim.memory()["open_receipt"], false);
}

#[test]
fn idempotency_key_replays_the_job_and_conflicts_on_a_different_body() {
    let (_dir, sim, d) = setup(&[]);
    let body = receipt("Idem", 2).to_string();
    let h = [
        ("content-type", "application/json"),
        ("idempotency-key", "pos-1-0001"),
    ];
    let (s1, j1) = d.post_with("/v1/receipts?wait=30", &h, body.as_bytes());
    assert_eq!(s1, 200, "{j1}");
    let (s2, j2) = d.post_with("/v1/receipts?wait=30", &h, body.as_bytes());
    assert_eq!(s2, 200, "{j2}");
    assert_eq!(j1["id"], j2["id"]);
    assert_eq!(j1["result"], j2["result"]);
    let other = receipt("Other", 1).to_string();
    let (s3, e3) = d.post_with("/v1/receipts", &h, other.as_bytes());
    assert_eq!(s3, 409, "{e3}");
    assert_eq!(e3["error"]["code"], "idempotency_conflict");
    assert_eq!(sim.receipts().len(), 1, "one key, one receipt");
}

#[test]
fn invalid_receipts_are_refused_naming_the_field_and_queue_nothing() {
    let (_dir, sim, d) = setup(&[]);
    let cases = [
        (
            json!({"lines": [], "payments": [{"method": "cash", "amount": 1}]}),
            "lines",
        ),
        (
            json!({"lines": [{"name": "A", "quantity": "1", "unit_price": 100, "vat": "F"}], "payments": [{"method": "cash", "amount": 100}]}),
            "lines[0].vat",
        ),
        (
            json!({"lines": [{"name": "A", "quantity": "1e2", "unit_price": 100, "vat": "A"}], "payments": [{"method": "cash", "amount": 100}]}),
            "lines[0].quantity",
        ),
        (
            json!({"lines": [{"name": "A", "quantity": "1", "unit_price": 10.5, "vat": "A"}], "payments": [{"method": "cash", "amount": 100}]}),
            "lines[0].unit_price",
        ),
        (
            json!({"lines": [{"name": "A", "quantity": "1", "unit_price": 100, "vat": "A"}, {"name": "Zupa\u{0002}", "quantity": "1", "unit_price": 100, "vat": "A"}], "payments": [{"method": "cash", "amount": 200}]}),
            "lines[1].name",
        ),
        (
            json!({"lines": [{"name": "A", "quantity": "1", "unit_price": 100, "vat": "A"}], "payments": [{"method": "card", "amount": 150}]}),
            "payments",
        ),
        (
            json!({"lines": [{"name": "A", "quantity": "1", "unit_price": 100, "vat": "A"}], "payments": [{"method": "cash", "amount": 100}], "buyer_nip": "1234567890"}),
            "buyer_nip",
        ),
        (
            json!({"lines": [{"name": "A", "quantity": "1", "unit_price": 100, "vat": "A"}], "payments": [{"method": "cash", "amount": 100}], "totl": 100}),
            "totl",
        ),
        (
            json!({"lines": [{"name": "A", "quantity": "1", "unit_price": 100, "vat": "A"}], "payments": [{"method": "cash", "amount": 100}], "total": 99}),
            "total",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = d.post("/v1/receipts", &body);
        assert_eq!(status, 422, "{body} -> {err}");
        assert_eq!(err["error"]["field"], field, "{err}");
        assert!(err["error"]["message"].as_str().unwrap().contains(field));
    }
    let (status, err) = d.post_with(
        "/v1/receipts",
        &[("content-type", "application/json")],
        b"{not json",
    );
    assert_eq!(status, 400, "{err}");
    let (status, _) = d.post_with("/v1/receipts", &[("content-type", "text/plain")], b"{}");
    assert_eq!(status, 415);
    let (status, err) = d.get("/v1/nothing-here");
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (_, jobs) = d.get("/v1/jobs");
    assert_eq!(
        jobs["jobs"].as_array().unwrap().len(),
        0,
        "nothing may be queued"
    );
    assert!(sim.receipts().is_empty());
}

#[test]
fn paper_out_mid_receipt_waits_for_paper_and_prints_exactly_one_receipt() {
    let (_dir, sim, d) = setup(&["--fault", "paper out after 3"]);
    let (status, job) = d.post("/v1/receipts", &receipt("Papier", 6));
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_i64().unwrap();
    wait_until(
        Duration::from_secs(20),
        "the printer to report paper out",
        || {
            let (_, v) = d.get("/v1/devices");
            (v["devices"][0]["state"] == "paper_out").then_some(())
        },
    );
    let (_, j) = d.get(&format!("/v1/jobs/{id}"));
    assert_eq!(j["state"], "running", "the job waits for paper: {j}");
    sim.control("paper back");
    let job = d.wait_job(id, Duration::from_secs(30));
    assert_eq!(job["state"], "done", "{job}");
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 1, "exactly one receipt");
    assert_eq!(receipts[0]["lines"].as_array().unwrap().len(), 6);
    let (_, v) = d.get("/v1/devices");
    assert_eq!(v["devices"][0]["state"], "ready");
}

#[test]
fn daily_report_cash_and_printout() {
    let (_dir, sim, d) = setup(&[]);
    let (s, j) = d.post("/v1/receipts?wait=30", &receipt("Dzień", 1));
    assert_eq!((s, j["state"].as_str()), (200, Some("done")), "{j}");
    let (s, j) = d.post(
        "/v1/cash?wait=30",
        &json!({"direction": "in", "amount": 10000}),
    );
    assert_eq!((s, j["state"].as_str()), (200, Some("done")), "{j}");
    let (s, j) = d.post(
        "/v1/printouts?wait=30",
        &json!({"lines": ["Zamówienie 17", "", "Stolik 4"]}),
    );
    assert_eq!((s, j["state"].as_str()), (200, Some("done")), "{j}");
    let (s, j) = d.post("/v1/reports/daily?wait=60", &json!({}));
    assert_eq!((s, j["state"].as_str()), (200, Some("done")), "{j}");
    assert_eq!(j["result"]["report_number"], 1);
    let m = sim.memory();
    assert_eq!(m["daily_reports"].as_array().unwrap().len(), 1);
    assert_eq!(m["daily_reports"][0]["totals"]["A"], 100);
    assert_eq!(m["cash_operations"][0]["amount"], 10000);
    assert_eq!(m["printouts"][0]["lines"][0], "Zamówienie 17");
    // A zero report may follow; a second zero report in a row is refused (382).
    let (_, j) = d.post("/v1/reports/daily?wait=60", &json!({}));
    assert_eq!(j["state"], "done", "{j}");
    let (_, j) = d.post("/v1/reports/daily?wait=60", &json!({}));
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["error"]["device_code"], 382, "{j}");
}

#[test]
fn a_device_error_fails_the_job_with_the_printers_code() {
    let (_dir, sim, d) = setup(&[]);
    // Sell at 8 %, then the same product at 23 %: the printer's name/rate lock refuses it (2106).
    let b = |vat: &str| json!({"lines": [{"name": "Sok jabłkowy", "quantity": "1", "unit_price": 500, "vat": vat}], "payments": [{"method": "cash", "amount": 500}]});
    let (_, j) = d.post("/v1/receipts?wait=30", &b("B"));
    assert_eq!(j["state"], "done", "{j}");
    let (_, j) = d.post("/v1/receipts?wait=30", &b("A"));
    assert_eq!(j["state"], "failed", "{j}");
    assert_eq!(j["error"]["code"], "item_locked", "{j}");
    assert_eq!(j["error"]["device_code"], 2106, "{j}");
    assert_eq!(sim.receipts().len(), 1);
    assert_eq!(
        sim.memory()["open_receipt"],
        false,
        "the refused receipt was cancelled"
    );
}

#[test]
fn power_cycle_mid_receipt_ends_with_exactly_one_receipt() {
    let (_dir, sim, d) = setup(&[]);
    sim.control("delay 40");
    let (status, job) = d.post("/v1/receipts", &receipt("Prąd", 12));
    assert_eq!(status, 202);
    let id = job["id"].as_i64().unwrap();
    // Let a few lines go out, then cut the power.
    wait_until(Duration::from_secs(10), "the receipt to be open", || {
        (sim.memory()["open_receipt"] == true).then_some(())
    });
    std::thread::sleep(Duration::from_millis(150));
    sim.control("power cycle 1500");
    sim.control("delay 0");
    let job = d.wait_job(id, Duration::from_secs(60));
    assert_eq!(job["state"], "done", "{job}");
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 1, "exactly one receipt: {receipts:?}");
    assert_eq!(receipts[0]["lines"].as_array().unwrap().len(), 12);
    assert_eq!(job["result"]["receipt_number"], receipts[0]["number"]);
    let cancelled = sim.memory()["counters"]["cancelled"].as_u64().unwrap_or(0);
    assert!(
        cancelled >= 1,
        "the power cut interrupted an open receipt, which the printer cancelled"
    );
}

#[test]
fn dropped_reply_and_line_garbage_are_recovered_without_duplicates() {
    let (_dir, sim, d) = setup(&[]);
    sim.control("garbage 40");
    let (_, j) = d.post("/v1/receipts?wait=30", &receipt("Szum", 2));
    assert_eq!(j["state"], "done", "{j}");
    // The reply to some command in the middle of the next receipt is lost.
    sim.control("delay 0");
    let (_, j0) = d.post("/v1/receipts", &receipt("Cisza", 3));
    let id = j0["id"].as_i64().unwrap();
    sim.control("drop 1");
    let j = d.wait_job(id, Duration::from_secs(60));
    assert_eq!(j["state"], "done", "{j}");
    let status: Value =
        serde_json::from_str(sim.control("status").trim_start_matches("ok ")).unwrap();
    assert_eq!(status["drop_replies"], 0, "a reply was really dropped");
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 2, "{receipts:?}");
}

#[test]
fn sigterm_stops_the_daemon_with_exit_code_zero_and_the_job_survives() {
    let (_dir, sim, mut d) = setup(&[]);
    sim.control("paper out");
    let socket = d.socket.clone();
    let body = receipt("Stop", 2).to_string().into_bytes();
    // A POS waiting on a job that waits for paper must not hold up the shutdown.
    let waiter = std::thread::spawn(move || {
        common::request(
            &socket,
            "POST",
            "/v1/receipts?wait=60",
            &[("content-type", "application/json")],
            Some(body),
        )
    });
    wait_until(Duration::from_secs(10), "the job to start", || {
        let (_, v) = d.get("/v1/devices");
        (v["devices"][0]["state"] == "paper_out").then_some(())
    });
    let t0 = std::time::Instant::now();
    assert_eq!(d.terminate(), Some(0));
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "shutdown took {:?}",
        t0.elapsed()
    );
    let (status, job) = waiter.join().unwrap();
    assert_eq!(status, 202, "{job}");
    assert!(sim.receipts().is_empty());
    // After a restart the interrupted job is reconciled and finishes once the paper is back.
    d.spawn();
    sim.control("paper back");
    let job = d.wait_job(job["id"].as_i64().unwrap(), Duration::from_secs(30));
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(sim.receipts().len(), 1);
}

#[test]
fn check_config_reports_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        config_text(dir.path(), "/dev/null", "max_name_length = \"long\""),
    )
    .unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml:14:19"), "{err}");
    assert!(
        err.contains("expected usize") || err.contains("invalid type"),
        "{err}"
    );
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config_text(dir.path(), "/dev/null", "")).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["check-config", "--config"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
