//! A stream of receipts with SIGKILLs of the daemon in it, for every printer family: each
//! acknowledged receipt must end `done` and be printed exactly once.

use super::Daemon;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Post 4 rounds of 6 keyed receipts, SIGKILL and restart the daemon after each round at
/// spread moments, wait for every job, and check the printer's memory (`receipts()`): each
/// order printed once, as many receipts as jobs, each job's number on its own receipt.
/// Returns every job id with the receipt printed for it.
pub fn sigkill_stream_prints_each_receipt_once(
    d: &mut Daemon,
    receipts: impl Fn() -> Vec<Value>,
) -> Vec<(i64, Value)> {
    let mut acked: BTreeMap<usize, i64> = BTreeMap::new();
    for (round, kill_after_ms) in [(0usize, 300u64), (1, 470), (2, 210), (3, 560)] {
        for i in round * 6..round * 6 + 6 {
            let body = json!({
                "lines": [
                    {"name": format!("Zamówienie {i}"), "quantity": "1", "unit_price": 1000 + i, "vat": "A"},
                    {"name": "Dodatek", "quantity": "2", "unit_price": 50, "vat": "B"}
                ],
                "payments": [{"method": "cash", "amount": 1100 + i}]
            });
            let (status, job) = d.post_keyed("/v1/receipts", &format!("kill-{i}"), &body);
            assert!(status == 202 || status == 200, "{status} {job}");
            acked.insert(i, job["id"].as_i64().unwrap());
        }
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        d.kill9();
        d.spawn();
    }
    for (i, id) in &acked {
        let job = d.wait_job(*id, Duration::from_secs(120));
        assert_eq!(job["state"], "done", "job {id} (receipt {i}): {job}");
    }
    let printed = receipts();
    let mut per_order: BTreeMap<String, usize> = BTreeMap::new();
    for r in &printed {
        *per_order
            .entry(r["lines"][0]["name"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for i in acked.keys() {
        assert_eq!(
            per_order.get(&format!("Zamówienie {i}")),
            Some(&1),
            "receipt {i} exactly once: {per_order:?}"
        );
    }
    assert_eq!(printed.len(), acked.len());
    acked
        .iter()
        .map(|(i, id)| {
            let (_, job) = d.get(&format!("/v1/jobs/{id}"));
            let number = job["result"]["receipt_number"].as_u64().unwrap();
            let r = printed
                .iter()
                .find(|r| r["number"].as_u64() == Some(number))
                .unwrap_or_else(|| panic!("job {id}: no receipt number {number} printed"));
            assert_eq!(r["lines"][0]["name"], format!("Zamówienie {i}"));
            (*id, r.clone())
        })
        .collect()
}
