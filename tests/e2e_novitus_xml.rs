//! End to end with a Novitus XML printer: the daemon and `fiscald sim novitus-xml` in their
//! own processes over a real pseudo-terminal.

mod common;

use common::kill_stream::sigkill_stream_prints_each_receipt_once;
use common::{BIN, Daemon, Sim, config_text, wait_until};
use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;

fn setup(sim_args: &[&str]) -> (tempfile::TempDir, Sim, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start_family(dir.path(), "novitus-xml", sim_args);
    // The daemon's speed is the emulated line's (its timeouts allow for the wire time).
    let baud = sim_args
        .iter()
        .position(|a| *a == "--baud")
        .map_or("115200", |i| sim_args[i + 1]);
    let config = config_text(dir.path(), &sim.link.display().to_string(), "")
        .replace("protocol = \"posnet\"", "protocol = \"novitus-xml\"")
        .replace("baud = 115200", &format!("baud = {baud}"));
    let d = Daemon::start(dir.path(), &config);
    d.wait_ready();
    (dir, sim, d)
}

fn receipt(name: &str, lines: usize) -> Value {
    let lines: Vec<Value> = (0..lines)
        .map(|i| json!({"name": format!("{name} {i}"), "quantity": "1", "unit_price": 100 + i as u64, "vat": "A"}))
        .collect();
    let total: u64 = (0..lines.len() as u64).map(|i| 100 + i).sum();
    json!({"lines": lines, "payments": [{"method": "cash", "amount": total}]})
}

#[test]
fn polish_letters_markup_exact_amounts_the_device_vat_table_and_idempotency() {
    let (_dir, sim, d) = setup(&[]);
    // The VAT table is the device's (the emulator's default: A 23, B 8, C 5, D 0, E free).
    let (_, v) = d.get("/v1/devices");
    let dev = &v["devices"][0];
    assert_eq!(dev["vat"][0]["rate"], "23", "{v}");
    assert_eq!(dev["vat"][1]["rate"], "8", "{v}");
    assert_eq!(dev["vat"][4]["exempt"], true, "{v}");
    assert_eq!(dev["vat"][6]["active"], false, "{v}");
    assert_eq!(dev["serial_number"], "NOV12345678", "{v}");
    let body = json!({
        "lines": [
            {"name": "Żółć gęślą jaźń", "quantity": "1.5", "unit_price": 1999, "vat": "A", "unit": "kg"},
            {"name": "Sok \"Ąę\" <1 l> & syn", "quantity": 2, "unit_price": 450, "vat": "C"},
            {"name": "Woda", "quantity": "0.333", "unit_price": 150, "vat": "B"}
        ],
        "payments": [{"method": "card", "amount": 2000}, {"method": "cash", "amount": 2000}],
        "buyer_nip": "5260250274",
        "total": 3949
    });
    let (status, job) = d.post_keyed("/v1/receipts?wait=30", "k1", &body);
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "done", "{job}");
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 1);
    let r = &receipts[0];
    assert_eq!(job["result"]["receipt_number"], r["number"]);
    assert_eq!(r["total"], 3949);
    assert_eq!(r["buyer_nip"], "5260250274");
    assert_eq!(r["lines"][0]["name"], "Żółć gęślą jaźń");
    assert_eq!(r["lines"][0]["unit"], "kg");
    assert_eq!(r["lines"][0]["quantity"], "1.5");
    assert_eq!(r["lines"][0]["amount"], 2999);
    assert_eq!(r["lines"][1]["name"], "Sok \"Ąę\" <1 l> & syn");
    assert_eq!(r["lines"][1]["vat"], "C");
    assert_eq!(r["lines"][2]["amount"], 50);
    assert_eq!(r["payments"][0]["method"], "card");
    assert_eq!(r["payments"][0]["amount"], 2000);
    assert_eq!(r["change"], 51);
    // The receipt carries the job's own tag, which recovery reads back.
    let tag = r["systemno"].as_str().unwrap();
    assert!(tag.starts_with(&format!("fd{}-", job["id"])), "{tag}");
    // The same key replays the job and prints nothing more.
    let (status, again) = d.post_keyed("/v1/receipts?wait=30", "k1", &body);
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["id"], job["id"]);
    assert_eq!(sim.receipts().len(), 1);
    assert_eq!(sim.memory()["open_receipt"], false);
}

/// Line discounts and surcharges go out as amounts the daemon resolved (a percentage with
/// the daemon's rounding), so the printer's total is the daemon's; receipt-level discounts
/// are not in the protocol's receipt and stay refused.
#[test]
fn line_discounts_and_surcharges_print_with_the_daemons_total() {
    let (_dir, sim, d) = setup(&[]);
    let body = json!({
        "lines": [
            {"name": "Kawa", "quantity": "3", "unit_price": 1299, "vat": "A",
             "discount": {"kind": "discount", "percent": "15", "name": "Rabat 15%"}},
            {"name": "Ciastko", "quantity": "2", "unit_price": 450, "vat": "B",
             "discount": {"kind": "surcharge", "amount": 50, "name": "Na wynos"}},
            {"name": "Woda", "quantity": "1", "unit_price": 199, "vat": "A"}
        ],
        "payments": [{"method": "cash", "amount": 5000}]
    });
    let (status, job) = d.post("/v1/receipts?wait=30", &body);
    assert_eq!((status, &job["state"]), (200, &json!("done")), "{job}");
    // 3 × 12.99 = 38.97, less 15 % = 33.12 (value after, rounded half up); 9.00 + 0.50;
    // 1.99: 44.61.
    let total = job["result"]["total"].as_u64().unwrap();
    assert_eq!(total, 3312 + 950 + 199, "{job}");
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 1);
    let r = &receipts[0];
    assert_eq!(r["total"], total);
    assert_eq!(r["lines"][0]["amount"], 3312);
    assert_eq!(r["lines"][0]["discount"]["value"], 585);
    assert_eq!(r["lines"][0]["discount"]["markup"], false);
    assert_eq!(r["lines"][0]["discount"]["name"], "Rabat 15%");
    assert_eq!(r["lines"][1]["amount"], 950);
    assert_eq!(r["lines"][1]["discount"]["markup"], true);
    assert_eq!(r["change"], 5000 - total);
    // A discount on the subtotal: refused before anything is queued.
    let (status, err) = d.post(
        "/v1/receipts",
        &json!({"lines": [{"name": "Sok", "quantity": "1", "unit_price": 500, "vat": "A"}],
                "payments": [{"method": "cash", "amount": 500}],
                "discounts": [{"kind": "discount", "amount": 50}]}),
    );
    assert_eq!(status, 422, "{err}");
    assert!(err.to_string().contains("discounts"), "{err}");
    assert_eq!(sim.receipts().len(), 1);
}

#[test]
fn validation_refusals_print_nothing_and_device_refusals_keep_their_code() {
    let (_dir, sim, d) = setup(&[]);
    let line = |vat: &str, name: &str| json!({"name": name, "quantity": "1", "unit_price": 500, "vat": vat});
    let cash = json!([{"method": "cash", "amount": 500}]);
    // Slot G is not in the device's table; 漢 is not in Windows-1250; footers are not sent
    // by this driver; invoices are not in the protocol.
    for (path, body, field) in [
        (
            "/v1/receipts",
            json!({"lines": [line("G", "Sok")], "payments": cash}),
            "vat",
        ),
        (
            "/v1/receipts",
            json!({"lines": [line("A", "Herbata 漢")], "payments": cash}),
            "lines[0].name",
        ),
        (
            "/v1/receipts",
            json!({"lines": [line("A", "Sok")], "payments": cash, "footer": ["Dziękujemy"]}),
            "footer",
        ),
        ("/v1/printouts", json!({"lines": ["漢字"]}), "lines[0]"),
    ] {
        let (status, err) = d.post(path, &body);
        assert_eq!(status, 422, "{path} {body}: {err}");
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    // Documents the protocol has no form for: refused before queuing, saying so.
    for (path, body) in [
        (
            "/v1/invoices",
            json!({"number": "FV 1/2026", "buyer": {"name": "Firma", "nip": "5260001246"},
                   "lines": [line("A", "Usługa")], "payments": cash}),
        ),
        (
            "/v1/reports/periodic",
            json!({"from": "2026-01-01", "to": "2026-01-31"}),
        ),
    ] {
        let (status, err) = d.post(path, &body);
        assert_eq!(status, 422, "{path}: {err}");
        assert!(err.to_string().contains("Novitus XML"), "{path}: {err}");
    }
    let (_, jobs) = d.get("/v1/jobs");
    assert_eq!(jobs["jobs"].as_array().map_or(0, Vec::len), 0, "{jobs}");
    // Cash out of more than the drawer holds: the printer refuses with its own code.
    let (status, job) = d.post(
        "/v1/cash?wait=30",
        &json!({"direction": "out", "amount": 100_000}),
    );
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["device_code"], 51, "{job}");
    let msg = job["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains("fp1") && msg.contains("Novitus XML"), "{job}");
    let (_, job) = d.post(
        "/v1/cash?wait=30",
        &json!({"direction": "in", "amount": 5000}),
    );
    assert_eq!(job["state"], "done", "{job}");
    let (_, job) = d.post(
        "/v1/printouts?wait=30",
        &json!({"lines": ["Zamówienie <12> & co", "Łódź"]}),
    );
    assert_eq!(job["state"], "done", "{job}");
    let (_, job) = d.post("/v1/reports/daily?wait=30", &json!({}));
    assert_eq!(job["state"], "done", "{job}");
    let m = sim.memory();
    assert!(m["receipts"].as_array().unwrap().is_empty());
    assert_eq!(m["cash_operations"].as_array().unwrap().len(), 1);
    assert_eq!(m["printouts"][0]["lines"][0], "Zamówienie <12> & co");
    assert_eq!(m["daily_reports"].as_array().unwrap().len(), 1);
    assert_eq!(m["open_receipt"], false);
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
    let job = d.wait_job(id, Duration::from_secs(60));
    assert_eq!(job["state"], "done", "{job}");
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0]["lines"].as_array().unwrap().len(), 6);
}

#[test]
fn power_cycle_with_a_receipt_open_ends_with_exactly_one_receipt() {
    // 60 lines do not fit one packet: at 19200 baud the second is on the line for about a
    // second while the receipt is open on the printer.
    let (_dir, sim, d) = setup(&["--baud", "19200"]);
    let (status, job) = d.post("/v1/receipts", &receipt("Prąd", 60));
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_i64().unwrap();
    wait_until(Duration::from_secs(20), "the receipt to be open", || {
        (sim.memory()["open_receipt"] == true).then_some(())
    });
    sim.control("power cycle 1500");
    let job = d.wait_job(id, Duration::from_secs(90));
    assert_eq!(job["state"], "done", "{job}");
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 1, "exactly one receipt: {receipts:?}");
    assert_eq!(receipts[0]["lines"].as_array().unwrap().len(), 60);
    assert_eq!(job["result"]["receipt_number"], receipts[0]["number"]);
    assert_eq!(sim.memory()["open_receipt"], false);
}

#[test]
fn sigkill_mid_stream_prints_every_receipt_exactly_once() {
    let (_dir, sim, mut d) = setup(&["--baud", "38400"]);
    sim.control("delay 10");
    let printed = sigkill_stream_prints_each_receipt_once(&mut d, || sim.receipts());
    for (id, r) in &printed {
        // Each receipt closed with its job's tag.
        assert!(
            r["systemno"]
                .as_str()
                .unwrap()
                .starts_with(&format!("fd{id}-")),
            "{r}"
        );
    }
}

#[test]
fn probe_recognises_a_novitus_xml_printer_read_only_and_prints_a_ready_block() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start_family(dir.path(), "novitus-xml", &[]);
    let before = sim.memory();
    let out = Command::new(BIN)
        .args(["probe", "--ports"])
        .arg(&sim.link)
        .env("FISCALD_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("protocol = \"novitus-xml\""), "{stdout}");
    assert!(stdout.contains("unique number NOV12345678"), "{stdout}");
    assert!(stdout.contains("# VAT: A 23%, B 8%"), "{stdout}");
    let block = stdout
        .split("[[printer]]")
        .nth(1)
        .map(|b| format!("[[printer]]{}", b.split("\n\n").next().unwrap()))
        .unwrap();
    let config = format!(
        "[api]\nsocket = \"{}\"\n\n[journal]\npath = \"{}\"\n\n{block}\n",
        dir.path().join("api.sock").display(),
        dir.path().join("journal.db").display()
    );
    let path = dir.path().join("probed.toml");
    std::fs::write(&path, &config).unwrap();
    let check = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{config}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Read-only: the fiscal memory did not change.
    assert_eq!(sim.memory(), before);
}
