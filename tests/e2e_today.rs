//! End to end: `GET /v1/today` after a day's work on the POSNET and ZVT emulators: documents,
//! totals by VAT letter matching the printer's, card takings matching the terminal's, cash,
//! deposits, documents per hour, and the daily report falling due.

mod common;

use common::{Daemon, Sim, ZvtSim, config_text, terminal_config};
use serde_json::{Value, json};

fn today(d: &Daemon) -> Value {
    let (status, t) = d.get("/v1/today");
    assert_eq!(status, 200, "{t}");
    t
}

#[test]
fn the_day_at_a_glance_adds_up_to_what_the_devices_hold() {
    let dir = tempfile::tempdir().unwrap();
    let printer = Sim::start(dir.path(), &[]);
    let terminal = ZvtSim::start(dir.path(), false);
    let mut cfg = config_text(dir.path(), &printer.link.display().to_string(), "");
    cfg.push_str(&terminal_config(&terminal.port, ""));
    let d = Daemon::start(dir.path(), &cfg);
    d.wait_printer_and_terminal_ready();

    let t = today(&d);
    assert_eq!(t["date"], chrono::Local::now().date_naive().to_string());
    assert_eq!(t["receipts"]["count"], 0);
    assert_eq!(t["daily_reports"][0]["due"], false, "{t}");

    // A receipt with a receipt-level discount over two letters, deposits, a card sale,
    // an invoice, cash in and out, and a refused receipt.
    let receipt = json!({"lines": [{"name": "Chleb", "quantity": 1, "unit_price": 100, "vat": "A"},
                                   {"name": "Masło", "quantity": 1, "unit_price": 200, "vat": "B"}],
                         "discounts": [{"kind": "discount", "amount": 1}],
                         "deposits": [{"code": "1", "unit_price": 50, "quantity": 2}],
                         "payments": [{"method": "cash", "amount": 399}]});
    let (_, r) = d.post("/v1/receipts?wait=30", &receipt);
    assert_eq!(r["state"], "done", "{r}");
    let sale = json!({"lines": [{"name": "Kawa", "quantity": 1, "unit_price": 2510, "vat": "A"}],
                      "payments": [{"method": "card", "amount": 2510}]});
    let (_, s) = d.post("/v1/sales?wait=60", &sale);
    assert_eq!(s["state"], "done", "{s}");
    let invoice = json!({"number": "FV 1/12/2026", "buyer": {"name": "Firma", "nip": "5260001246"},
                         "lines": [{"name": "Usługa", "quantity": 1, "unit_price": 10000, "vat": "A"}],
                         "payments": [{"method": "transfer", "amount": 10000}]});
    let (_, i) = d.post("/v1/invoices?wait=30", &invoice);
    assert_eq!(i["state"], "done", "{i}");
    for (direction, amount) in [("in", 5000), ("out", 1200)] {
        let (_, c) = d.post(
            "/v1/cash?wait=30",
            &json!({"direction": direction, "amount": amount}),
        );
        assert_eq!(c["state"], "done", "{c}");
    }
    // Sold at 8 % (B), then at 23 % (A) the same day: the printer refuses it (2106).
    let locked = json!({"lines": [{"name": "Masło", "quantity": 1, "unit_price": 100, "vat": "A"}],
                        "payments": [{"method": "cash", "amount": 100}]});
    let (_, f) = d.post("/v1/receipts?wait=30", &locked);
    assert_eq!(f["state"], "failed", "{f}");

    let t = today(&d);
    assert_eq!(t["receipts"]["count"], 2, "{t}");
    assert_eq!(t["receipts"]["total"], 299 + 2510);
    assert_eq!(t["invoices"]["count"], 1);
    assert_eq!(t["invoices"]["total"], 10000);
    // The printer's own split of the day: its receipts and invoices, letter by letter.
    let mut theirs: std::collections::BTreeMap<String, u64> = Default::default();
    for doc in printer
        .receipts()
        .iter()
        .chain(printer.list("invoices").iter())
    {
        for (letter, amount) in doc["vat_totals"].as_object().unwrap() {
            *theirs.entry(letter.clone()).or_default() += amount.as_u64().unwrap();
        }
    }
    assert_eq!(t["vat_totals"], json!(theirs), "{t}");
    assert_eq!(t["vat_totals"]["A"], 99 + 2510 + 10000);
    assert_eq!(t["deposits_issued"], 100);
    let charged: u64 = terminal
        .transactions()
        .iter()
        .filter(|x| x["status"] == "approved")
        .map(|x| x["amount"].as_u64().unwrap())
        .sum();
    assert_eq!(t["card"]["net"], charged, "{t}");
    assert_eq!(t["card"]["sales"], 1);
    assert_eq!(t["card_by_terminal"]["t1"]["sales_total"], 2510);
    assert_eq!(
        (&t["cash"]["cash_in"], &t["cash"]["cash_out"]),
        (&json!(5000), &json!(1200))
    );
    assert_eq!(t["failed"], 1);
    let per_hour: u64 = t["documents_per_hour"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_u64().unwrap())
        .sum();
    assert_eq!(per_hour, 3, "{t}");
    let report = &t["daily_reports"][0];
    assert_eq!(
        (&report["printer"], &report["due"], &report["overdue"]),
        (&json!("fp1"), &json!(true), &json!(false))
    );

    // The daily report closes the day: nothing is due until the next sale.
    let (_, z) = d.post("/v1/reports/daily?wait=60", &json!({}));
    assert_eq!(z["state"], "done", "{z}");
    let report = &today(&d)["daily_reports"][0];
    assert_eq!(report["due"], false, "{report}");
    assert_eq!(report["last_report_number"], z["result"]["report_number"]);
}
