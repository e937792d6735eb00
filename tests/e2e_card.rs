//! End to end: card payments and sales through the ZVT terminal emulator (its own
//! process, over TCP and over a serial PTY) and the POSNET printer emulator.

mod common;

use common::{Daemon, Sim, ZvtSim, config_text, terminal_config, wait_until};
use serde_json::{Value, json};
use std::time::Duration;

struct Shop {
    _dir: tempfile::TempDir,
    printer: Sim,
    terminal: ZvtSim,
    daemon: Daemon,
}

fn shop(serial: bool, extra_terminal: &str, extra_top: &str) -> Shop {
    let dir = tempfile::tempdir().unwrap();
    let printer = Sim::start(dir.path(), &[]);
    let terminal = ZvtSim::start(dir.path(), serial);
    let mut cfg = config_text(dir.path(), &printer.link.display().to_string(), "");
    cfg.push_str(&terminal_config(&terminal.port, extra_terminal));
    cfg.push_str(extra_top);
    let daemon = Daemon::start(dir.path(), &cfg);
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
    Shop {
        _dir: dir,
        printer,
        terminal,
        daemon,
    }
}

fn sale(card: u64) -> Value {
    json!({
        "lines": [
            {"name": "Kawa ziarnista", "quantity": "1", "unit_price": card, "vat": "A"},
            {"name": "Ciastko", "quantity": "2", "unit_price": 250, "vat": "B"}
        ],
        "payments": [{"method": "card", "amount": card}, {"method": "cash", "amount": 500}]
    })
}

fn approved(shop: &Shop) -> Vec<Value> {
    shop.terminal
        .transactions()
        .into_iter()
        .filter(|t| t["status"] == "approved")
        .collect()
}

fn check_sale_done(shop: &Shop, job: &Value, card: u64) {
    assert_eq!(job["state"], "done", "{job}");
    let pay = &job["result"]["payment"];
    assert_eq!(pay["approved"], true, "{job}");
    assert_eq!(pay["amount"], card);
    assert_eq!(pay["currency"], "PLN");
    let pan = pay["masked_pan"].as_str().unwrap();
    assert!(pan.contains('*') && pan.len() >= 12, "{pan}");
    assert!(
        pay["auth_code"].is_string()
            && pay["trace_number"].is_u64()
            && pay["terminal_receipt_number"].is_u64(),
        "{pay}"
    );
    let receipt_no = job["result"]["receipt"]["receipt_number"].as_u64().unwrap();
    let receipts = shop.printer.receipts();
    let r = receipts
        .iter()
        .find(|r| r["number"].as_u64() == Some(receipt_no))
        .expect("the receipt");
    let card_paid: u64 = r["payments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["method"] == "card")
        .filter_map(|p| p["amount"].as_u64())
        .sum();
    assert_eq!(card_paid, card, "the receipt records the card payment: {r}");
}

#[test]
fn card_sale_over_tcp_prints_receipt_and_slip() {
    let shop = shop(false, "", "");
    let (status, job) = shop.daemon.post("/v1/sales?wait=30", &sale(1000));
    assert_eq!(status, 200, "{job}");
    check_sale_done(&shop, &job, 1000);
    assert_eq!(approved(&shop).len(), 1);
    assert_eq!(shop.printer.receipts().len(), 1);
    wait_until(Duration::from_secs(10), "the slip printout", || {
        let p = shop.printer.memory()["printouts"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (!p.is_empty()).then_some(())
    });
    assert!(
        job["result"]["payment"]["slip"]
            .as_array()
            .is_some_and(|s| !s.is_empty())
    );
}

#[test]
fn card_sale_over_serial_pty() {
    let shop = shop(true, "", "");
    let (status, job) = shop.daemon.post("/v1/sales?wait=30", &sale(1200));
    assert_eq!(status, 200, "{job}");
    check_sale_done(&shop, &job, 1200);
}

#[test]
fn declined_card_prints_nothing() {
    let shop = shop(false, "", "");
    let (_, job) = shop.daemon.post("/v1/sales?wait=30", &sale(1051));
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["code"], "card_declined", "{job}");
    assert!(job["error"]["device_code"].is_u64(), "{job}");
    assert!(shop.printer.receipts().is_empty());
    assert!(approved(&shop).is_empty());
}

#[test]
fn lost_result_is_recovered_without_a_second_charge() {
    // 52: approved and stored, but the result never comes.
    let shop = shop(false, "", "");
    let (_, job) = shop.daemon.post("/v1/sales?wait=40", &sale(1052));
    check_sale_done(&shop, &job, 1052);
    assert_eq!(approved(&shop).len(), 1, "exactly one charge");
    assert_eq!(shop.printer.receipts().len(), 1);
}

#[test]
fn dropped_connection_after_result_is_recovered() {
    // 54: the connection drops after the result, before the register acknowledges it.
    for serial in [false, true] {
        let shop = shop(serial, "", "");
        let (_, job) = shop.daemon.post("/v1/sales?wait=40", &sale(1054));
        check_sale_done(&shop, &job, 1054);
        assert_eq!(
            approved(&shop).len(),
            1,
            "exactly one charge (serial: {serial})"
        );
        assert_eq!(shop.printer.receipts().len(), 1);
    }
}

#[test]
fn slow_card_reader_keeps_the_transaction_alive() {
    // 53: the card reader takes 20 s with intermediate status messages.
    let shop = shop(false, "", "");
    let (_, job) = shop.daemon.post("/v1/sales", &sale(1053));
    let id = job["id"].as_i64().unwrap();
    let shown = wait_until(
        Duration::from_secs(15),
        "the terminal's display text",
        || {
            let (_, v) = shop.daemon.get("/v1/devices");
            let t = v["devices"]
                .as_array()?
                .iter()
                .find(|d| d["kind"] == "payment_terminal")?
                .clone();
            t["display"].as_str().map(String::from)
        },
    );
    assert!(!shown.is_empty());
    let job = shop.daemon.wait_job(id, Duration::from_secs(60));
    check_sale_done(&shop, &job, 1053);
}

#[test]
fn payments_refund_reversal_and_end_of_day() {
    let shop = shop(false, "", "");
    let d = &shop.daemon;
    let (_, sale) = d.post(
        "/v1/payments?wait=30",
        &json!({"type": "sale", "amount": 2500, "reference": "order 7"}),
    );
    assert_eq!(sale["state"], "done", "{sale}");
    assert_eq!(sale["result"]["approved"], true);
    let receipt_no = sale["result"]["terminal_receipt_number"].as_u64().unwrap();
    let (_, refund) = d.post(
        "/v1/payments?wait=30",
        &json!({"type": "refund", "amount": 700}),
    );
    assert_eq!(refund["state"], "done", "{refund}");
    let (_, rev) = d.post(
        "/v1/payments?wait=30",
        &json!({"type": "reversal", "amount": 2500, "original_receipt_number": receipt_no}),
    );
    assert_eq!(rev["state"], "done", "{rev}");
    let (_, again) = d.post(
        "/v1/payments?wait=30",
        &json!({"type": "reversal", "amount": 2500, "original_receipt_number": receipt_no}),
    );
    assert_eq!(
        again["state"], "failed",
        "a second reversal is refused: {again}"
    );
    let (s, e) = d.post("/v1/payments", &json!({"type": "reversal", "amount": 1}));
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("original_receipt_number")),
        "{e}"
    );
    let (_, eod) = d.post("/v1/terminals/t1/end-of-day?wait=30", &json!({}));
    assert_eq!(eod["state"], "done", "{eod}");
    assert!(eod["result"]["total"].is_u64(), "{eod}");
    let batches = shop.terminal.memory()["batches"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(batches.len(), 1);
    let (s, _) = d.post("/v1/terminals/nope/end-of-day", &json!({}));
    assert_eq!(s, 404);
}

#[test]
fn a_sale_waits_for_paper_then_completes() {
    let shop = shop(false, "", "");
    shop.printer.control("paper out");
    let (_, job) = shop.daemon.post("/v1/sales", &sale(1300));
    let id = job["id"].as_i64().unwrap();
    wait_until(
        Duration::from_secs(20),
        "the payment to be approved",
        || (approved(&shop).len() == 1).then_some(()),
    );
    std::thread::sleep(Duration::from_millis(500));
    let (_, j) = shop.daemon.get(&format!("/v1/jobs/{id}"));
    assert_eq!(j["state"], "running", "the sale waits for its receipt: {j}");
    shop.printer.control("paper back");
    let job = shop.daemon.wait_job(id, Duration::from_secs(30));
    check_sale_done(&shop, &job, 1300);
    assert_eq!(approved(&shop).len(), 1);
}

#[test]
fn a_sale_past_its_print_deadline_needs_attention_and_can_be_reversed() {
    let shop = shop(false, "", "\n[sales]\nprint_deadline = 2\n");
    // The printer is gone: the receipt cannot start.
    shop.printer.control("power cycle 30000");
    let (_, job) = shop.daemon.post("/v1/sales", &sale(1400));
    let id = job["id"].as_i64().unwrap();
    let job = shop.daemon.wait_job(id, Duration::from_secs(40));
    assert_eq!(job["state"], "needs_attention", "{job}");
    assert_eq!(
        job["result"]["payment"]["approved"], true,
        "the approved payment is in the result: {job}"
    );
    assert_eq!(job["error"]["code"], "receipt_not_printed");
    assert_eq!(approved(&shop).len(), 1, "never reversed on its own");
    let (s, rev) = shop
        .daemon
        .post(&format!("/v1/sales/{id}/reverse?wait=30"), &json!(null));
    assert_eq!(s, 200, "{rev}");
    assert_eq!(rev["state"], "done", "{rev}");
    let reversed = shop
        .terminal
        .transactions()
        .into_iter()
        .filter(|t| t["status"] == "reversed")
        .count();
    assert_eq!(reversed, 1);
    // Reversing again returns the same reversal job.
    let (_, again) = shop
        .daemon
        .post(&format!("/v1/sales/{id}/reverse"), &json!(null));
    assert_eq!(again["id"], rev["id"]);
}

#[test]
fn no_full_card_number_anywhere() {
    let shop = shop(false, "", "");
    // The terminal misbehaves and sends the full card number, in BMP 22 and on the slip.
    shop.terminal.control("pan clear");
    for amount in [1000, 1051, 1052] {
        let (_, job) = shop.daemon.post("/v1/sales?wait=40", &sale(amount));
        assert!(job["state"].is_string());
    }
    // Any run of 13 to 19 digits (spaces allowed) that passes the Luhn check is a card number.
    let mut texts = vec![];
    let (_, jobs) = shop.daemon.get("/v1/jobs?limit=100");
    texts.push((std::path::PathBuf::from("GET /v1/jobs"), jobs.to_string()));
    assert!(
        jobs.to_string().contains("545454"),
        "the masked PAN is there: {jobs}"
    );
    for entry in std::fs::read_dir(&shop.daemon.dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            texts.push((
                path.clone(),
                String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned(),
            ));
        }
    }
    for (path, text) in texts {
        if let Some(pan) = find_pan(&text) {
            panic!("{} holds a full card number {pan}", path.display());
        }
    }
}

/// A Luhn-valid number of 13–19 digits (single spaces allowed between digits) that
/// stands on its own, i.e. is not part of a longer word or hex string.
fn find_pan(text: &str) -> Option<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let start = i;
        let mut digits = String::new();
        while i < chars.len()
            && (chars[i].is_ascii_digit()
                || (chars[i] == ' '
                    && i + 1 < chars.len()
                    && chars[i + 1].is_ascii_digit()
                    && !digits.is_empty()))
        {
            if chars[i].is_ascii_digit() {
                digits.push(chars[i]);
            }
            i += 1;
        }
        let before = start.checked_sub(1).map(|k| chars[k]);
        let after = chars.get(i).copied();
        let standalone = !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric());
        if standalone && (13..=19).contains(&digits.len()) && zvt::pan::luhn_valid(&digits) {
            return Some(digits);
        }
    }
    None
}

#[test]
fn the_pan_finder_finds_pans() {
    assert_eq!(
        find_pan("pan \"5454545454545454\" x").as_deref(),
        Some("5454545454545454")
    );
    assert_eq!(
        find_pan("5454 5454 5454 5454").as_deref(),
        Some("5454545454545454")
    );
    assert_eq!(find_pan("545454******5454"), None);
    assert_eq!(find_pan("ab5454545454545454cd"), None);
}
