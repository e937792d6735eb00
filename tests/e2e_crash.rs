//! The daemon killed with SIGKILL in the middle of a stream of receipts, restarted, and
//! every acknowledged job ending `done` with exactly one receipt in the emulator's memory.

mod common;

use common::{Daemon, Sim, config_text};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

fn receipt(n: usize) -> Value {
    json!({
        "lines": [
            {"name": format!("Zamówienie {n}"), "quantity": "1", "unit_price": 1000 + n, "vat": "A"},
            {"name": "Dodatek", "quantity": "2", "unit_price": 50, "vat": "B"}
        ],
        "payments": [{"method": "cash", "amount": 1100 + n}]
    })
}

#[test]
fn sigkill_mid_stream_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    sim.control("delay 15"); // each reply 15 ms: a receipt takes ~150 ms, so kills land mid-receipt
    let mut d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &sim.link.display().to_string(), ""),
    );
    d.wait_ready();

    let mut acked: BTreeMap<usize, i64> = BTreeMap::new();
    let mut kills = 0;
    for (round, kill_after_ms) in [(0usize, 350u64), (1, 520), (2, 230), (3, 610)] {
        for i in round * 8..round * 8 + 8 {
            let key = format!("crash-{i}");
            let (status, job) = d.post_with(
                "/v1/receipts",
                &[
                    ("content-type", "application/json"),
                    ("idempotency-key", &key),
                ],
                receipt(i).to_string().as_bytes(),
            );
            assert!(status == 202 || status == 200, "{status} {job}");
            acked.insert(i, job["id"].as_i64().unwrap());
        }
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        d.kill9();
        kills += 1;
        d.spawn();
        // A POS retries what it is unsure about with the same key: that must not print again.
        let (status, job) = d.post_with(
            "/v1/receipts",
            &[
                ("content-type", "application/json"),
                ("idempotency-key", &format!("crash-{}", round * 8 + 3)),
            ],
            receipt(round * 8 + 3).to_string().as_bytes(),
        );
        assert!(status == 202 || status == 200, "{status} {job}");
        assert_eq!(job["id"].as_i64(), acked.get(&(round * 8 + 3)).copied());
    }
    assert_eq!(kills, 4);

    for (i, id) in &acked {
        let job = d.wait_job(*id, Duration::from_secs(120));
        assert_eq!(job["state"], "done", "job {id} (receipt {i}): {job}");
    }
    let receipts = sim.receipts();
    let mut per_order: BTreeMap<String, usize> = BTreeMap::new();
    for r in &receipts {
        *per_order
            .entry(r["lines"][0]["name"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for i in acked.keys() {
        assert_eq!(
            per_order.get(&format!("Zamówienie {i}")),
            Some(&1),
            "receipt {i} must be printed exactly once: {per_order:?}"
        );
    }
    assert_eq!(
        receipts.len(),
        acked.len(),
        "no receipt beyond the acknowledged jobs"
    );
    // Every job's receipt number points at its own receipt.
    for (i, id) in &acked {
        let (_, job) = d.get(&format!("/v1/jobs/{id}"));
        let number = job["result"]["receipt_number"].as_u64().unwrap();
        let r = receipts
            .iter()
            .find(|r| r["number"].as_u64() == Some(number))
            .unwrap();
        assert_eq!(r["lines"][0]["name"], format!("Zamówienie {i}"));
        assert_eq!(r["total"], 1100 + *i as u64);
    }
    let m = sim.memory();
    assert_eq!(m["open_receipt"], false);
    eprintln!(
        "{} receipts for {} acknowledged jobs after {kills} kills; receipts cancelled by recovery: {}",
        receipts.len(),
        acked.len(),
        m["counters"]["cancelled"]
    );
}

/// Found by the long campaign: a command held by the printer (no paper) when the daemon
/// died must run before the counters are trusted, or the document is sent a second time.
#[test]
fn a_held_cash_operation_is_not_sent_twice_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let mut d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &sim.link.display().to_string(), ""),
    );
    d.wait_ready();
    sim.control("paper out");
    let (status, job) = d.post("/v1/cash", &json!({"direction": "in", "amount": 777}));
    assert_eq!(status, 202, "{job}");
    // Let the cash command reach the printer and be held there, then crash.
    std::thread::sleep(Duration::from_millis(1500));
    d.kill9();
    d.spawn();
    std::thread::sleep(Duration::from_millis(1500));
    sim.control("paper back");
    let job = d.wait_job(job["id"].as_i64().unwrap(), Duration::from_secs(60));
    assert_eq!(job["state"], "done", "{job}");
    let ops: Vec<serde_json::Value> = sim.memory()["cash_operations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        ops.iter().filter(|o| o["amount"] == 777).count(),
        1,
        "{ops:?}"
    );
}
