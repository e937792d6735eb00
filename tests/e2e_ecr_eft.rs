//! End to end: card sales through `fiscald sim ecr-eft` (its own process, over TCP) and
//! the POSNET printer emulator; a lost result becomes needs_attention and is resolved by
//! a manager.

mod common;

use common::{Daemon, Sim, ZvtSim, config_text, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

fn shop(dir: &std::path::Path) -> (Sim, ZvtSim, Daemon) {
    shop_on(dir, false)
}

fn shop_on(dir: &std::path::Path, serial: bool) -> (Sim, ZvtSim, Daemon) {
    let printer = Sim::start(dir, &[]);
    let terminal = ZvtSim::start_protocol(dir, "ecr-eft", serial, &[]);
    let mut cfg = config_text(dir, &printer.link.display().to_string(), "");
    cfg.push_str(&format!(
        "\n[[terminal]]\nid = \"t1\"\nprotocol = \"ecr-eft\"\nport = \"{}\"\ncommand_timeout = 3\ntransaction_timeout = 4\n",
        terminal.port
    ));
    let daemon = Daemon::start(dir, &cfg);
    daemon.wait_ready();
    wait_until(Duration::from_secs(20), "the terminal to be ready", || {
        let (_, v) = daemon.get("/v1/devices");
        let t = v["devices"]
            .as_array()?
            .iter()
            .find(|d| d["kind"] == "payment_terminal")?
            .clone();
        (t["state"] == "ready").then_some(())
    });
    (printer, terminal, daemon)
}

fn sale(card: u64) -> Value {
    json!({
        "lines": [{"name": "Kawa ziarnista", "quantity": "1", "unit_price": card, "vat": "A"}],
        "payments": [{"method": "card", "amount": card}]
    })
}

#[test]
fn a_sale_a_decline_and_a_lost_result_resolved_by_hand() {
    let dir = tempfile::tempdir().unwrap();
    let (printer, terminal, daemon) = shop(dir.path());
    // A sale: receipt and slip on the printer.
    let (status, job) = daemon.post("/v1/sales?wait=30", &sale(1000));
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "done", "{job}");
    let pay = &job["result"]["payment"];
    assert_eq!(pay["approved"], true);
    assert_eq!(pay["amount"], 1000);
    assert!(pay["transaction_id"].is_string(), "{pay}");
    assert_eq!(printer.receipts().len(), 1);
    wait_until(Duration::from_secs(10), "the slip printout", || {
        let p = printer.memory()["printouts"].as_array().cloned()?;
        (!p.is_empty()).then_some(())
    });
    // A decline prints nothing.
    let (_, job) = daemon.post("/v1/sales?wait=30", &sale(1051));
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(printer.receipts().len(), 1);
    // The result is lost: needs_attention, never a second S1.
    let (_, job) = daemon.post("/v1/sales?wait=60", &sale(1052));
    let id = job["id"].as_i64().unwrap();
    let job = daemon.wait_job(id, Duration::from_secs(60));
    assert_eq!(job["state"], "needs_attention", "{job}");
    let tx = terminal.transactions();
    assert_eq!(
        tx.iter().filter(|t| t["amount"] == 1052).count(),
        1,
        "one transaction on the terminal: {tx:?}"
    );
    // Resolve: bad shape 422, unknown 404, then approved, then 409.
    let path = format!("/v1/payments/{id}/resolve");
    let (s, _) = daemon.post(&path, &json!({"outcome": "approved"}));
    assert_eq!(s, 422);
    let (s, _) = daemon.post(
        "/v1/payments/999999/resolve",
        &json!({"outcome": "not_charged"}),
    );
    assert_eq!(s, 404);
    let (s, v) = daemon.post(
        &path,
        &json!({"outcome": "approved", "transaction_id": "000003", "note": "printout"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(v["result"]["payment"]["transaction_id"], "000003");
    let (s, _) = daemon.post(&path, &json!({"outcome": "not_charged"}));
    assert_eq!(s, 409);
    let (_, audit) = daemon.get("/v1/audit?limit=50");
    assert!(
        audit.to_string().contains("/v1/payments/{id}/resolve"),
        "{audit}"
    );
}

/// Every file under `dir`.
fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
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

#[test]
fn a_sale_over_a_serial_pty_leaves_no_card_number_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (_printer, _terminal, daemon) = shop_on(dir.path(), true);
    let (status, job) = daemon.post("/v1/sales?wait=30", &sale(1200));
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "done", "{job}");
    drop(daemon);
    let mut files = Vec::new();
    files_under(dir.path(), &mut files);
    for f in files {
        let bytes = std::fs::read(&f).unwrap();
        assert!(
            !bytes.windows(16).any(|w| w == b"5454545454545454"),
            "{} holds the test card number",
            f.display()
        );
    }
}
