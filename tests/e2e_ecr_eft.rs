//! End to end: card sales through `fiscald sim ecr-eft` (its own process, over TCP) and
//! the POSNET printer emulator: each magic amount (…51 declined, …52 result lost, …53
//! slow card, …54 connection dropped after the result); a lost result becomes
//! needs_attention and is resolved by a manager (a cashier is refused; both audited).

mod common;

use common::{Daemon, Sim, ZvtSim, config_text, request_tcp_with, token_file, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

fn shop(dir: &std::path::Path) -> (Sim, ZvtSim, Daemon) {
    shop_on(dir, false)
}

fn shop_on(dir: &std::path::Path, serial: bool) -> (Sim, ZvtSim, Daemon) {
    shop_with(dir, serial, "")
}

/// A shop with `api` added to the `[api]` table (e.g. a token file and a TCP listener).
fn shop_with(dir: &std::path::Path, serial: bool, api: &str) -> (Sim, ZvtSim, Daemon) {
    let printer = Sim::start(dir, &[]);
    let terminal = ZvtSim::start_protocol(dir, "ecr-eft", serial, &[]);
    let mut cfg = config_text(dir, &printer.link.display().to_string(), "")
        .replace("[journal]", &format!("{api}\n[journal]"));
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
    drop(daemon);
    assert_no_card_number(dir.path());
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
    assert_no_card_number(dir.path());
}

/// No file under `dir` holds the emulator's test card number.
fn assert_no_card_number(dir: &std::path::Path) {
    let mut files = Vec::new();
    files_under(dir, &mut files);
    for f in files {
        let Ok(bytes) = std::fs::read(&f) else {
            continue; // a socket or a file gone meanwhile
        };
        assert!(
            !bytes.windows(16).any(|w| w == b"5454545454545454"),
            "{} holds the test card number",
            f.display()
        );
    }
}

/// The terminal's transactions for payment (job) `id`.
fn transactions_for(terminal: &ZvtSim, id: &Value) -> Vec<Value> {
    let id = id.as_i64().unwrap().to_string();
    terminal
        .transactions()
        .into_iter()
        .filter(|t| t["payment_id"] == id.as_str())
        .collect()
}

#[test]
fn each_magic_amount_of_the_emulator_over_tcp() {
    magic_amounts(false);
}

#[test]
fn each_magic_amount_of_the_emulator_over_a_serial_pty() {
    magic_amounts(true);
}

/// On serial, the dropped connection of …54 is the device going away for about 1 s and
/// coming back on a new pseudo-terminal.
fn magic_amounts(serial: bool) {
    let dir = tempfile::tempdir().unwrap();
    let (printer, terminal, daemon) = shop_on(dir.path(), serial);
    // …51 declined: failed, the terminal stored a decline, nothing printed.
    let (_, job) = daemon.post("/v1/sales?wait=30", &sale(1151));
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "card_declined", "{job}");
    let tx = transactions_for(&terminal, &job["id"]);
    assert_eq!(tx.len(), 1, "{tx:?}");
    assert_eq!(tx[0]["status"], "declined");
    assert!(printer.receipts().is_empty());
    // …52 result lost: charged once, needs_attention, nothing printed, never a second S1.
    let (_, job) = daemon.post("/v1/sales?wait=60", &sale(1152));
    let lost = daemon.wait_job(job["id"].as_i64().unwrap(), Duration::from_secs(60));
    assert_eq!(lost["state"], "needs_attention", "{lost}");
    assert!(printer.receipts().is_empty());
    // …53 slow card: the reader takes 20 s, with I1 every 2 s (shorter than the 4 s
    // transaction timeout, which each message restarts); then approved.
    let t0 = std::time::Instant::now();
    let (_, job) = daemon.post("/v1/sales?wait=60", &sale(1153));
    let slow = daemon.wait_job(job["id"].as_i64().unwrap(), Duration::from_secs(60));
    assert_eq!(slow["state"], "done", "{slow}");
    assert!(
        t0.elapsed() >= Duration::from_secs(19),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(slow["result"]["payment"]["amount"], 1153);
    // …54 connection dropped after the result: done (the result came first), and the
    // driver connects again for the next sale.
    let (_, job) = daemon.post("/v1/sales?wait=30", &sale(1154));
    assert_eq!(job["state"], "done", "{job}");
    let (_, next) = daemon.post("/v1/sales?wait=60", &sale(1210));
    assert_eq!(next["state"], "done", "{next}");
    assert_eq!(printer.receipts().len(), 3);
    // One terminal transaction per sale, whatever happened.
    for j in [&lost, &slow, &job, &next] {
        let tx = transactions_for(&terminal, &j["id"]);
        assert_eq!(tx.len(), 1, "{j}: {tx:?}");
        assert_eq!(tx[0]["status"], "approved");
    }
    assert_eq!(terminal.transactions().len(), 5);
    drop(daemon);
    assert_no_card_number(dir.path());
}

#[test]
fn a_cashier_cannot_resolve_and_both_attempts_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = token_file(
        dir.path(),
        &[
            ("cashier-secret", "pos-1", "cashier"),
            ("manager-secret", "boss", "manager"),
        ],
    );
    let port = common::free_port();
    let api = format!(
        "token_file = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n",
        tokens.display()
    );
    let (_printer, _terminal, daemon) = shop_with(dir.path(), false, &api);
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let call = |token: &str, path: &str, body: Option<Value>| {
        let auth = format!("Bearer {token}");
        request_tcp_with(
            addr,
            if body.is_some() { "POST" } else { "GET" },
            path,
            &[
                ("authorization", &auth),
                ("content-type", "application/json"),
            ],
            body.map(|b| b.to_string().into_bytes()),
        )
    };
    let (_, job) = call("cashier-secret", "/v1/sales?wait=60", Some(sale(1352)));
    let id = job["id"].as_i64().unwrap();
    let job = daemon.wait_job(id, Duration::from_secs(60));
    assert_eq!(job["state"], "needs_attention", "{job}");
    let path = format!("/v1/payments/{id}/resolve");
    let (s, v) = call(
        "cashier-secret",
        &path,
        Some(json!({"outcome": "not_charged"})),
    );
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "forbidden", "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("manager"),
        "{v}"
    );
    let (_, still) = daemon.get(&format!("/v1/jobs/{id}"));
    assert_eq!(
        still["state"], "needs_attention",
        "a refusal changes nothing: {still}"
    );
    let (s, v) = call(
        "manager-secret",
        &path,
        Some(
            json!({"outcome": "approved", "transaction_id": "000001", "note": "terminal printout"}),
        ),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(v["result"]["payment"]["resolved_by"], "boss", "{v}");
    let (s, audit) = call("manager-secret", "/v1/audit?limit=100", None);
    assert_eq!(s, 200, "{audit}");
    let entries = audit["entries"].as_array().unwrap();
    let entry = |principal: &str, outcome: &str| {
        entries.iter().find(|e| {
            e["principal"] == principal
                && e["outcome"] == outcome
                && e["operation"]
                    .as_str()
                    .is_some_and(|o| o.contains("/v1/payments/{id}/resolve"))
        })
    };
    let refused = entry("pos-1", "refused:403").unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(refused["role"], "cashier");
    assert_eq!(refused["job"], id, "{refused}");
    let accepted = entry("boss", "accepted").unwrap_or_else(|| panic!("{audit}"));
    assert_eq!(accepted["role"], "manager");
    assert_eq!(accepted["job"], id, "{accepted}");
    drop(daemon);
    assert_no_card_number(dir.path());
}
