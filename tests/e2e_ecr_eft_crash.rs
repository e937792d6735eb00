//! End to end, ECR-EFT: the daemon SIGKILLed in the middle of card sales. The driver never
//! resends S1 and no "last result" query is known, so a sale whose result was lost with the
//! daemon ends `needs_attention` with exactly one transaction on the terminal, and a person
//! resolves it. And the kill loop of issue 16 for ECR-EFT: after every restart the terminal
//! is `ready` within 30 s, the interrupted sales end (done, failed or needs_attention,
//! never charged twice) and the next sale works; over a serial PTY at 9600 baud and over
//! TCP, each emulator in its own process, on its own pseudo-terminal (its own temporary
//! directory).
//!
//! `FISCALD_KILL_LOOP_RUNS` sets the kills per transport (default 8). Run with
//! `--nocapture` to see the figures.

mod common;

use common::{Daemon, Sim, ZvtSim, config_text, wait_until};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The longest time from a restart to a registered terminal (issue 16).
const READY_WITHIN: Duration = Duration::from_secs(30);
/// Sales posted at once before each kill of the loop.
const SALES_PER_RUN: usize = 3;

fn shop(dir: &std::path::Path, serial: bool) -> (Sim, ZvtSim, Daemon) {
    let printer = Sim::start(dir, &[]);
    let extra: &[&str] = if serial { &["--baud", "9600"] } else { &[] };
    let terminal = ZvtSim::start_protocol(dir, "ecr-eft", serial, extra);
    let mut cfg = config_text(dir, &printer.link.display().to_string(), "");
    cfg.push_str(&format!(
        "\n[[terminal]]\nid = \"t1\"\nprotocol = \"ecr-eft\"\nport = \"{}\"\ncommand_timeout = 3\ntransaction_timeout = 4\n{}\n",
        terminal.port,
        if serial { "baud = 9600" } else { "" }
    ));
    let daemon = Daemon::start(dir, &cfg);
    daemon.wait_printer_and_terminal_ready();
    (printer, terminal, daemon)
}

fn sale(amount: u64) -> Value {
    json!({
        "lines": [{"name": format!("Towar {amount}"), "quantity": "1", "unit_price": amount, "vat": "A"}],
        "payments": [{"method": "card", "amount": amount}]
    })
}

/// The terminal's transactions for payment (job) `id`.
fn transactions_for(terminal: &ZvtSim, id: i64) -> Vec<Value> {
    terminal
        .transactions()
        .into_iter()
        .filter(|t| t["payment_id"] == id.to_string().as_str())
        .collect()
}

fn terminal_state(d: &Daemon) -> Option<String> {
    let (_, v) = d.get("/v1/devices");
    v["devices"]
        .as_array()?
        .iter()
        .find(|x| x["kind"] == "payment_terminal")
        .and_then(|x| x["state"].as_str().map(String::from))
}

#[test]
fn a_result_lost_with_the_daemon_needs_attention_and_is_never_resent() {
    let dir = tempfile::tempdir().unwrap();
    let (printer, terminal, mut d) = shop(dir.path(), false);
    // …52: the terminal charges the card and its S2 never comes; the daemon is killed
    // while it waits for it (after the charge is stored, before the transaction timeout).
    let (status, job) = d.post_keyed("/v1/sales", "ecr-crash-1", &sale(2352));
    assert!(status == 200 || status == 202, "{job}");
    let id = job["id"].as_i64().unwrap();
    wait_until(
        Duration::from_secs(30),
        "the terminal to store the charge",
        || (!transactions_for(&terminal, id).is_empty()).then_some(()),
    );
    d.kill9();
    d.spawn();
    d.wait_printer_and_terminal_ready();
    let job = d.wait_job(id, Duration::from_secs(60));
    assert_eq!(job["state"], "needs_attention", "{job}");
    let text = job.to_string();
    assert!(text.contains("2352"), "the amount is kept: {job}");
    // Never a second S1: still one transaction after the terminal and the daemon had
    // time for one, and nothing printed.
    std::thread::sleep(Duration::from_secs(3));
    let tx = transactions_for(&terminal, id);
    assert_eq!(tx.len(), 1, "{tx:?}");
    assert_eq!(tx[0]["status"], "approved");
    assert!(printer.receipts().is_empty());
    // The same key replays the same job; it does not start a new payment.
    let (_, again) = d.post_keyed("/v1/sales", "ecr-crash-1", &sale(2352));
    assert_eq!(again["id"], id, "{again}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(transactions_for(&terminal, id).len(), 1);
    // A manager resolves it from the terminal's printout.
    let txid = tx[0]["transaction_id"].as_str().unwrap().to_string();
    let (s, v) = d.post(
        &format!("/v1/payments/{id}/resolve"),
        &json!({"outcome": "approved", "transaction_id": txid, "note": "slip in the drawer"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "done", "{v}");
    assert_eq!(v["result"]["payment"]["transaction_id"], txid.as_str());
    assert_eq!(v["result"]["payment"]["amount"], 2352);
    // The next sale works.
    let (_, next) = d.post("/v1/sales?wait=30", &sale(2410));
    assert_eq!(next["state"], "done", "{next}");
    assert_eq!(terminal.transactions().len(), 2);
    drop(d);
    assert_no_card_number(dir.path());
}

#[test]
fn a_sale_killed_before_the_terminal_charged_is_resolved_not_charged() {
    let dir = tempfile::tempdir().unwrap();
    let (printer, terminal, mut d) = shop(dir.path(), false);
    // A slow card (…53): S1 is taken, the card is not read for 20 s.
    let (_, job) = d.post_keyed("/v1/sales", "ecr-crash-2", &sale(2353));
    let id = job["id"].as_i64().unwrap();
    wait_until(Duration::from_secs(10), "the terminal to be busy", || {
        let s = terminal.control("status");
        s.contains("\"busy\":true").then_some(())
    });
    d.kill9();
    d.spawn();
    d.wait_printer_and_terminal_ready();
    let job = d.wait_job(id, Duration::from_secs(60));
    assert_eq!(job["state"], "needs_attention", "{job}");
    // The TCP connection closed with the daemon: the terminal abandoned the flow.
    assert!(transactions_for(&terminal, id).is_empty());
    let (s, v) = d.post(
        &format!("/v1/payments/{id}/resolve"),
        &json!({"outcome": "not_charged"}),
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["state"], "failed", "{v}");
    assert!(printer.receipts().is_empty());
    assert!(transactions_for(&terminal, id).is_empty());
    drop(d);
    assert_no_card_number(dir.path());
}

/// No file under `dir` (journal, logs, emulator state) holds the test card number.
fn assert_no_card_number(dir: &std::path::Path) {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file()
                && let Ok(bytes) = std::fs::read(&p)
            {
                assert!(
                    !bytes.windows(16).any(|w| w == b"5454545454545454"),
                    "{} holds the test card number",
                    p.display()
                );
            }
        }
    }
}

fn runs() -> usize {
    std::env::var("FISCALD_KILL_LOOP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

fn kill_loop(serial: bool) {
    let tag = if serial { "serial" } else { "tcp" };
    let n = runs();
    let dir = tempfile::tempdir().unwrap();
    let (_printer, terminal, mut d) = shop(dir.path(), serial);
    // A slower terminal spreads the flow, so the kills land in every part of it.
    terminal.control("delay 20");
    let span = Duration::from_millis(if serial { 3500 } else { 2000 });
    let mut next = 0u64;
    let mut sales: BTreeMap<i64, u64> = BTreeMap::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let mut to_ready = Vec::new();
    let started = Instant::now();
    let mut post = |d: &Daemon, sales: &mut BTreeMap<i64, u64>| {
        let amount = 1010 + 100 * next;
        let key = format!("ecr-loop-{tag}-{next}");
        next += 1;
        let (status, job) = d.post_keyed("/v1/sales", &key, &sale(amount));
        assert!(status == 200 || status == 202, "{status} {job}");
        let id = job["id"].as_i64().unwrap();
        sales.insert(id, amount);
        id
    };
    for k in 0..n {
        let interrupted: Vec<i64> = (0..SALES_PER_RUN).map(|_| post(&d, &mut sales)).collect();
        let frac = if n > 1 {
            k as f64 / (n - 1) as f64
        } else {
            0.0
        };
        std::thread::sleep(Duration::from_millis(100) + span.mul_f64(frac));
        d.kill9();
        let restart = Instant::now();
        d.spawn();
        wait_until(
            READY_WITHIN,
            &format!("{tag} run {k}: the terminal to register"),
            || matches!(terminal_state(&d).as_deref(), Some("ready" | "busy")).then_some(()),
        );
        to_ready.push(restart.elapsed());
        for id in &interrupted {
            let job = d.wait_job(*id, Duration::from_secs(120));
            let state = job["state"].as_str().unwrap_or("?").to_string();
            assert!(
                matches!(state.as_str(), "done" | "failed" | "needs_attention"),
                "{tag} run {k}: sale {id} ended {state}: {job}"
            );
            *outcomes.entry(state).or_default() += 1;
        }
        let id = post(&d, &mut sales);
        let job = d.wait_job(id, Duration::from_secs(60));
        assert_eq!(job["state"], "done", "{tag} run {k}: the next sale: {job}");
    }
    for (id, amount) in &sales {
        let (_, job) = d.get(&format!("/v1/jobs/{id}"));
        let charges: Vec<Value> = transactions_for(&terminal, *id)
            .into_iter()
            .filter(|t| t["status"] == "approved")
            .collect();
        assert!(
            charges.len() <= 1,
            "{tag}: sale {id} charged twice: {charges:?}"
        );
        if let Some(t) = charges.first() {
            assert_eq!(t["amount"], *amount);
        }
        match job["state"].as_str() {
            Some("done") => assert_eq!(charges.len(), 1, "{tag}: sale {id} done: {job}"),
            Some("failed") => assert!(charges.is_empty(), "{tag}: sale {id} failed: {job}"),
            Some("needs_attention") => {}
            other => panic!("{tag}: sale {id} ended {other:?}: {job}"),
        }
    }
    to_ready.sort();
    println!(
        "ECR-EFT kill loop over {tag}: {n} runs of {SALES_PER_RUN} sales in {:.0?}; time to ready \
         after restart min {:.1?}, median {:.1?}, max {:.1?}; interrupted sales: {outcomes:?}; \
         next sale done after every restart; {} terminal transactions, none charged twice",
        started.elapsed(),
        to_ready[0],
        to_ready[to_ready.len() / 2],
        to_ready[to_ready.len() - 1],
        terminal.transactions().len(),
    );
    drop(d);
    assert_no_card_number(dir.path());
}

#[test]
fn sigkill_during_ecr_eft_sales_over_serial_at_9600_baud() {
    kill_loop(true);
}

#[test]
fn sigkill_during_ecr_eft_sales_over_tcp() {
    kill_loop(false);
}
