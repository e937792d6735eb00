//! The daemon killed with SIGKILL at points in a run of card sales (emulators in their
//! own processes), restarted: every acknowledged sale ends `done` with exactly one
//! approved transaction and one receipt, `failed` with none, or `needs_attention`;
//! never two charges.

mod common;

use common::{Daemon, Sim, ZvtSim, config_text, terminal_config};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

fn sale(i: usize) -> (u64, Value) {
    // Distinct amounts so every charge can be traced to its sale; some magic endings.
    let ending = match i % 6 {
        1 => 51, // declined
        3 => 52, // result lost
        5 => 54, // connection dropped after the result
        _ => 10,
    };
    let amount = 1000 + 100 * i as u64 + ending;
    let body = json!({
        "lines": [{"name": format!("Towar {i}"), "quantity": "1", "unit_price": amount, "vat": "A"}],
        "payments": [{"method": "card", "amount": amount}]
    });
    (amount, body)
}

#[test]
fn sigkill_during_card_sales_never_charges_twice() {
    let dir = tempfile::tempdir().unwrap();
    let printer = Sim::start(dir.path(), &[]);
    let terminal = ZvtSim::start(dir.path(), false);
    terminal.control("delay 15");
    let mut cfg = config_text(dir.path(), &printer.link.display().to_string(), "");
    cfg.push_str(&terminal_config(&terminal.port, ""));
    let mut d = Daemon::start(dir.path(), &cfg);
    d.wait_ready();

    let mut acked: BTreeMap<usize, (i64, u64)> = BTreeMap::new();
    let mut kills = 0;
    for (round, kill_after_ms) in [(0usize, 700u64), (1, 1300), (2, 400), (3, 2100)] {
        for i in round * 6..round * 6 + 6 {
            let (amount, body) = sale(i);
            let key = format!("card-crash-{i}");
            let (status, job) = d.post_with(
                "/v1/sales",
                &[
                    ("content-type", "application/json"),
                    ("idempotency-key", &key),
                ],
                body.to_string().as_bytes(),
            );
            assert!(status == 202 || status == 200, "{status} {job}");
            acked.insert(i, (job["id"].as_i64().unwrap(), amount));
        }
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        d.kill9();
        kills += 1;
        d.spawn();
    }
    assert_eq!(kills, 4);

    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    let mut jobs = BTreeMap::new();
    for (i, (id, _)) in &acked {
        let job = d.wait_job(*id, Duration::from_secs(180));
        *states
            .entry(job["state"].as_str().unwrap_or("?").to_string())
            .or_default() += 1;
        jobs.insert(*i, job);
    }
    let transactions = terminal.transactions();
    let receipts = printer.receipts();
    for (i, (_, amount)) in &acked {
        let job = &jobs[i];
        let charges = transactions
            .iter()
            .filter(|t| t["status"] == "approved" && t["amount"] == *amount)
            .count();
        let printed = receipts.iter().filter(|r| r["total"] == *amount).count();
        assert!(charges <= 1, "sale {i} charged {charges} times: {job}");
        assert!(printed <= 1, "sale {i} printed {printed} times: {job}");
        match job["state"].as_str() {
            Some("done") => {
                assert_eq!((charges, printed), (1, 1), "sale {i} done: {job}");
                assert_eq!(job["result"]["payment"]["amount"], *amount);
            }
            Some("failed") => assert_eq!((charges, printed), (0, 0), "sale {i} failed: {job}"),
            Some("needs_attention") => assert_eq!(printed, 0, "sale {i}: {job}"),
            other => panic!("sale {i} ended {other:?}: {job}"),
        }
        if *amount % 100 == 51 {
            assert_eq!(
                job["state"], "failed",
                "a declined card never becomes a sale: {job}"
            );
        }
    }
    assert_eq!(
        receipts.len(),
        states.get("done").copied().unwrap_or(0),
        "no receipt beyond the done sales"
    );
    eprintln!(
        "{} sales after {kills} kills: {states:?}; {} terminal transactions",
        acked.len(),
        transactions.len()
    );
}
