//! End to end: VAT invoices, periodic reports and copies, printed by the daemon on the
//! POSNET emulator (its own process) over a pseudo-terminal; their refusals; and a stream of
//! invoices, copies and periodic reports across SIGKILLs, each printed exactly once.

mod common;

use common::{Daemon, Sim, config_text};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

fn invoice(number: &str) -> Value {
    json!({
        "number": number,
        "buyer": {"name": "Hurtownia \"Zorza\" & Syn Sp. z o.o.", "nip": "526-000-12-46",
                  "address": "ul. Długa 1, 00-001 Warszawa"},
        "lines": [
            {"name": "Papier A4", "quantity": "5", "unit_price": 1899, "vat": "A",
             "pkwiu": "17.12.14.0", "code": "5901234123457",
             "discount": {"kind": "discount", "percent": "7.5", "name": "Rabat hurtowy"}},
            {"name": "Toner", "quantity": 1, "unit_price": 24900, "vat": "A",
             "discount": {"kind": "surcharge", "amount": 500}}
        ],
        "payments": [{"method": "transfer", "amount": 30000}, {"method": "cash", "amount": 4283}],
        "copies": 2
    })
}

fn today() -> String {
    chrono::Local::now().date_naive().to_string()
}

#[test]
fn an_invoice_for_a_business_buyer_prints_with_its_number() {
    let (_dir, sim, d) = common::printer_daemon();
    let (status, job) = d.post("/v1/invoices?wait=30", &invoice("FV 12/11/2026"));
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["kind"], "invoice", "{job}");
    // 5 × 18.99 = 9495 − 7.5 % (dt0: 8782.875 → 8783) = 8783; 24900 + 500 = 25400.
    let r = &job["result"];
    assert_eq!(r["total"], 8783 + 25400, "{r}");
    assert_eq!(r["invoice_number"], "FV 12/11/2026");
    assert_eq!(r["document_number"], 1);
    assert_eq!(r["buyer_nip"], "5260001246");
    assert_eq!(r["copies"], 2);
    assert_eq!(r["lines"][0]["amount"], 8783);

    let invoices = sim.list("invoices");
    assert_eq!(invoices.len(), 1, "one invoice");
    let i = &invoices[0];
    assert_eq!(i["invoice_number"], "FV 12/11/2026");
    assert_eq!(i["number"], 1);
    assert_eq!(i["total"], 34183);
    assert_eq!(i["copies"], 2);
    assert_eq!(r["vat_totals"], i["vat_totals"], "{r}");
    assert_eq!(r["vat_totals"]["A"], 34183);
    assert_eq!(i["buyer"]["nip"], "5260001246");
    assert_eq!(
        i["buyer"]["name"], "Hurtownia \"Zorza\" & Syn Sp. z o.o.",
        "the name prints as typed"
    );
    assert_eq!(i["lines"][0]["pkwiu"], "17.12.14.0");
    assert_eq!(i["lines"][0]["discount"]["amount"], 712);
    assert_eq!(
        i["free_data"],
        json!([
            "Zapłacono: przelew 300,00 zł",
            "Zapłacono: gotówka 42,83 zł",
            "Reszta: 1,00 zł"
        ]),
        "{i}"
    );
    assert!(sim.receipts().is_empty(), "an invoice is not a receipt");
    assert_eq!(sim.memory()["counters"]["invoices"], 1);

    // A second invoice gets the next counter.
    let (status, job) = d.post("/v1/invoices?wait=30", &invoice("FV 13/11/2026"));
    assert_eq!(
        (status, &job["result"]["document_number"]),
        (200, &json!(2))
    );
}

#[test]
fn bad_invoices_are_refused_naming_the_field_and_nothing_is_printed() {
    let (_dir, sim, d) = common::printer_daemon();
    let line = invoice("x")["lines"][1].clone();
    let cases: Vec<(&str, Value, &str, &str)> = vec![
        (
            "/discounts",
            json!([{"kind": "discount", "percent": "5"}]),
            "discounts",
            "POSNET printer takes no discount",
        ),
        ("/number", json!(""), "number", "must not be empty"),
        ("/number", json!("F".repeat(41)), "number", "at most 40"),
        ("/buyer/nip", json!("123-456-78-90"), "buyer.nip", "NIP"),
        ("/buyer/name", json!(""), "buyer.name", "must not be empty"),
        ("/copies", json!(10), "copies", "0 to 9"),
        ("/lines", json!(vec![line; 121]), "lines", "at most 120"),
        (
            "/lines/0/discount",
            json!({"kind": "discount", "amount": 9496}),
            "lines[0].discount",
            "",
        ),
        ("/total", json!(34184), "total", "come to 34183"),
        ("/payments/0/amount", json!(20000), "payments", "34183"),
        ("/deposits", json!([]), "deposits", "receipts only"),
        ("/footer", json!(["x"]), "footer", "receipts only"),
    ];
    for (pointer, value, field, words) in cases {
        let mut body = invoice("FV 1/2026");
        match body.pointer_mut(pointer) {
            Some(slot) => *slot = value.clone(),
            None => {
                body[&pointer[1..]] = value.clone();
            }
        }
        let (status, reply) = d.post("/v1/invoices", &body);
        assert_eq!(status, 422, "{pointer} = {value}: {reply}");
        assert_eq!(reply["error"]["field"], field, "{pointer}: {reply}");
        assert!(
            reply["error"]["message"].as_str().unwrap().contains(words),
            "{pointer}: {reply}"
        );
    }
    let mut missing = invoice("FV 1/2026");
    missing.as_object_mut().unwrap().remove("number");
    let (status, reply) = d.post("/v1/invoices", &missing);
    assert_eq!((status, &reply["error"]["field"]), (422, &json!("number")));
    assert!(
        sim.list("invoices").is_empty(),
        "nothing reached the printer"
    );
    assert_eq!(sim.memory()["counters"]["invoices"], 0);
}

#[test]
fn a_periodic_report_prints_over_the_days_asked() {
    let (_dir, sim, d) = common::printer_daemon();
    let receipt = json!({"lines": [{"name": "Chleb", "quantity": 1, "unit_price": 450, "vat": "A"}],
                         "payments": [{"method": "cash", "amount": 450}]});
    let (status, job) = d.post("/v1/receipts?wait=30", &receipt);
    assert_eq!((status, &job["state"]), (200, &json!("done")), "{job}");
    let (status, job) = d.post("/v1/reports/daily?wait=60", &json!({}));
    assert_eq!((status, &job["state"]), (200, &json!("done")), "{job}");

    let body = json!({"from": "2026-01-01", "to": today(), "summary": true});
    let (status, job) = d.post("/v1/reports/periodic?wait=60", &body);
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["kind"], "periodic_report");
    assert_eq!(job["result"]["from"], "2026-01-01");
    assert_eq!(job["result"]["to"], today());
    assert_eq!(job["result"]["summary"], true);
    let reports = sim.list("periodic_reports");
    assert_eq!(reports.len(), 1, "{reports:?}");
    assert_eq!(reports[0]["daily_reports"], 1);
    assert_eq!(reports[0]["totals"]["A"], 450);
    assert_eq!(reports[0]["summary"], true);
    assert_eq!(reports[0]["number"], job["result"]["printout_number"]);

    for (body, field) in [
        (json!({"from": "2026-11-30", "to": "2026-11-01"}), "to"),
        (json!({"monthly": "2026-13"}), "monthly"),
        (json!({"from": "2026-11-01"}), "to"),
        (json!({"from": "1.11.2026", "to": "30.11.2026"}), "from"),
    ] {
        let (status, reply) = d.post("/v1/reports/periodic", &body);
        assert_eq!(
            (status, &reply["error"]["field"]),
            (422, &json!(field)),
            "{body}: {reply}"
        );
    }
    // A range the printer refuses (it ends in the future): the job fails with its code.
    let (status, job) = d.post(
        "/v1/reports/periodic?wait=60",
        &json!({"monthly": "2099-01"}),
    );
    assert_eq!((status, &job["state"]), (200, &json!("failed")), "{job}");
    assert!(job["error"]["device_code"].is_u64(), "{job}");
    assert_eq!(sim.list("periodic_reports").len(), 1);
}

#[test]
fn a_copy_of_a_receipt_or_an_invoice_prints_from_the_printers_memory() {
    let (_dir, mut sim, d) = common::printer_daemon();
    let receipt = json!({"lines": [{"name": "Mleko", "quantity": 2, "unit_price": 399, "vat": "B"}],
                         "payments": [{"method": "card", "amount": 798}]});
    let (_, r) = d.post("/v1/receipts?wait=30", &receipt);
    assert_eq!(r["state"], "done", "{r}");
    let receipt_job = r["id"].as_i64().unwrap();
    let (_, i) = d.post("/v1/invoices?wait=30", &invoice("FV 7/2026"));
    assert_eq!(i["state"], "done", "{i}");
    let invoice_job = i["id"].as_i64().unwrap();

    let (status, copy) = d.post(&format!("/v1/jobs/{receipt_job}/copy?wait=30"), &json!({}));
    assert_eq!(status, 200, "{copy}");
    assert_eq!(
        (&copy["kind"], &copy["state"]),
        (&json!("copy"), &json!("done"))
    );
    assert_eq!(copy["result"]["document"], "receipt");
    assert_eq!(copy["result"]["of_job"], receipt_job);
    assert_eq!(
        copy["result"]["document_number"],
        r["result"]["receipt_number"]
    );
    let (status, copy) = d.post(&format!("/v1/jobs/{invoice_job}/copy?wait=30"), &json!({}));
    assert_eq!((status, &copy["state"]), (200, &json!("done")), "{copy}");
    assert_eq!(copy["result"]["document"], "invoice");
    let copies = sim.list("copies");
    assert_eq!(copies.len(), 2, "{copies:?}");
    assert_eq!(copies[0]["of"], "receipt");
    assert_eq!(
        copies[0]["documents"],
        json!([r["result"]["receipt_number"]])
    );
    assert_eq!(copies[1]["of"], "invoice");
    assert_eq!(copies[1]["documents"], json!([1]));
    assert_eq!(sim.receipts().len(), 1, "a copy is not a fiscal receipt");

    // Not a printed receipt or invoice: 409, and no job; no such job: 404.
    let copy_job = copy["id"].as_i64().unwrap();
    let (status, reply) = d.post(&format!("/v1/jobs/{copy_job}/copy"), &json!({}));
    assert_eq!(status, 409, "{reply}");
    assert_eq!(reply["error"]["code"], "not_copyable", "{reply}");
    let (status, _) = d.post("/v1/jobs/99999/copy", &json!({}));
    assert_eq!(status, 404);
    let (status, reply) = d.post(&format!("/v1/jobs/{receipt_job}/copy"), &json!({"x": 1}));
    assert_eq!(status, 422, "{reply}");

    // The printer's protected memory no longer holds the receipt: 409 with the failed job.
    sim.restart_with(|m| m["receipts"] = json!([]));
    let mut tries = 0;
    let (status, gone) = loop {
        let (status, gone) = d.post(&format!("/v1/jobs/{receipt_job}/copy?wait=30"), &json!({}));
        tries += 1;
        if gone["state"] == "failed" || tries > 10 {
            break (status, gone);
        }
    };
    assert_eq!(status, 409, "{gone}");
    assert_eq!(gone["state"], "failed", "{gone}");
    assert_eq!(gone["error"]["code"], "document_not_found", "{gone}");
    assert_eq!(gone["error"]["device_code"], 2930, "{gone}");
    assert_eq!(sim.list("copies").len(), 2);
}

/// A stream of invoices, copies and periodic reports with the daemon SIGKILLed in the middle,
/// restarted, and every acknowledged job ending `done`, each document printed exactly once.
#[test]
fn sigkill_in_a_stream_of_invoices_and_copies_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    sim.control("delay 15");
    let mut d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &sim.link.display().to_string(), ""),
    );
    d.wait_ready();
    let (_, first) = d.post("/v1/invoices?wait=30", &invoice("FV 0/2026"));
    assert_eq!(first["state"], "done", "{first}");
    let original = first["id"].as_i64().unwrap();

    let mut invoices: BTreeMap<String, i64> = BTreeMap::new();
    let mut others: Vec<i64> = Vec::new();
    for (round, kill_after_ms) in [(0usize, 300u64), (1, 470), (2, 210), (3, 560)] {
        for i in round * 6..round * 6 + 6 {
            let number = format!("FV {}/2026", i + 1);
            let (status, job) =
                d.post_keyed("/v1/invoices", &format!("inv-{i}"), &invoice(&number));
            assert!(status == 202 || status == 200, "{status} {job}");
            invoices.insert(number, job["id"].as_i64().unwrap());
            if i % 3 == 0 {
                let (status, job) = d.post_keyed(
                    &format!("/v1/jobs/{original}/copy"),
                    &format!("copy-{i}"),
                    &json!({}),
                );
                assert!(status == 202 || status == 200, "{status} {job}");
                others.push(job["id"].as_i64().unwrap());
            }
        }
        let (status, job) = d.post_keyed(
            "/v1/reports/periodic",
            &format!("per-{round}"),
            &json!({"from": "2026-01-01", "to": today()}),
        );
        assert!(status == 202 || status == 200, "{status} {job}");
        others.push(job["id"].as_i64().unwrap());
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        d.kill9();
        d.spawn();
        // The POS retries an invoice it is unsure about with the same key: no second print.
        let again = round * 6 + 2;
        let number = format!("FV {}/2026", again + 1);
        let (_, job) = d.post_keyed("/v1/invoices", &format!("inv-{again}"), &invoice(&number));
        assert_eq!(job["id"].as_i64(), invoices.get(&number).copied());
    }
    for (number, id) in &invoices {
        let job = d.wait_job(*id, Duration::from_secs(120));
        assert_eq!(job["state"], "done", "invoice {number}: {job}");
    }
    for id in &others {
        let job = d.wait_job(*id, Duration::from_secs(120));
        assert_eq!(job["state"], "done", "job {id}: {job}");
    }
    let printed = sim.list("invoices");
    let mut per_number: BTreeMap<String, usize> = BTreeMap::new();
    for i in &printed {
        *per_number
            .entry(i["invoice_number"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for number in invoices.keys() {
        assert_eq!(
            per_number.get(number),
            Some(&1),
            "{number} once: {per_number:?}"
        );
    }
    assert_eq!(
        printed.len(),
        invoices.len() + 1,
        "no invoice beyond the jobs"
    );
    // Each job's printer number points at its own invoice.
    for (number, id) in &invoices {
        let (_, job) = d.get(&format!("/v1/jobs/{id}"));
        let n = job["result"]["document_number"].as_u64().unwrap();
        let i = printed
            .iter()
            .find(|i| i["number"].as_u64() == Some(n))
            .unwrap();
        assert_eq!(&i["invoice_number"], number);
    }
    let printouts = sim.list("copies").len() + sim.list("periodic_reports").len();
    assert_eq!(printouts, others.len(), "each copy and report printed once");
    let m = sim.memory();
    assert_eq!(m["open_receipt"], false);
    eprintln!(
        "{} invoices, {} copies and periodic reports for as many jobs after 4 kills; invoices cancelled by recovery: {}",
        printed.len(),
        printouts,
        m["counters"]["cancelled_invoices"]
    );
}
