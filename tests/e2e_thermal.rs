//! End to end with a Thermal (ESC P) printer: the daemon and `fiscald sim thermal` in their
//! own processes over a real pseudo-terminal, in both dialects and code pages.

mod common;

use common::kill_stream::sigkill_stream_prints_each_receipt_once;
use common::{BIN, Daemon, config_text, wait_until};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// `fiscald sim thermal` in its own process.
struct ThermalSim {
    link: PathBuf,
    state: PathBuf,
    child: Child,
}

impl ThermalSim {
    fn start(dir: &Path, dialect: &str, encoding: &str, extra: &[&str]) -> ThermalSim {
        let link = dir.join("printer.tty");
        let state = dir.join("printer.json");
        let log = std::fs::File::create(dir.join("sim.log")).unwrap();
        let child = Command::new(BIN)
            .args(["sim", "thermal", "--link"])
            .arg(&link)
            .arg("--state")
            .arg(&state)
            .args(["--dialect", dialect, "--encoding", encoding])
            .args(extra)
            .env("FISCALD_LOG", "debug")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start the emulator");
        wait_until(
            Duration::from_secs(10),
            "the emulator's device link",
            || std::fs::symlink_metadata(&link).ok(),
        );
        ThermalSim { link, state, child }
    }

    fn control(&self, cmd: &str) -> String {
        let mut p = self.link.clone().into_os_string();
        p.push(".ctl");
        let answer = fiscald::sim::control::send_control(Path::new(&p), cmd).expect("control");
        assert!(
            answer.starts_with("ok"),
            "emulator refused {cmd:?}: {answer}"
        );
        answer
    }

    fn memory(&self) -> Value {
        serde_json::from_str(&std::fs::read_to_string(&self.state).unwrap()).unwrap()
    }

    fn receipts(&self) -> Vec<Value> {
        self.memory()["receipts"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for ThermalSim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn setup(
    dialect: &str,
    encoding: &str,
    sim_args: &[&str],
) -> (tempfile::TempDir, ThermalSim, Daemon) {
    let dir = tempfile::tempdir().unwrap();
    let sim = ThermalSim::start(dir.path(), dialect, encoding, sim_args);
    let config = config_text(dir.path(), &sim.link.display().to_string(), "").replace(
        "protocol = \"posnet\"",
        &format!("protocol = \"thermal\"\ndialect = \"{dialect}\"\nencoding = \"{encoding}\""),
    );
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
fn polish_letters_exact_amounts_and_the_device_vat_table_in_both_code_pages() {
    for (dialect, encoding) in [("posnet", "mazovia"), ("novitus", "cp1250")] {
        let (_dir, sim, d) = setup(dialect, encoding, &[]);
        // The VAT table is the device's (the emulator's default: A 23, B 8, C 5, D 0, E exempt).
        let (_, v) = d.get("/v1/devices");
        let vat = &v["devices"][0]["vat"];
        assert_eq!(vat[0]["rate"], "23", "{v}");
        assert_eq!(vat[1]["rate"], "8", "{v}");
        assert_eq!(vat[4]["exempt"], true, "{v}");
        assert_eq!(vat[6]["active"], false, "{v}");
        assert_eq!(v["devices"][0]["serial_number"], "THM12345678");
        let body = json!({
            "lines": [
                {"name": "Żółć gęślą jaźń", "quantity": "1.5", "unit_price": 1999, "vat": "A", "unit": "kg"},
                {"name": "ĄĆĘŁŃÓŚŹŻ", "quantity": 2, "unit_price": 450, "vat": "C"},
                {"name": "Woda", "quantity": "0.333", "unit_price": 150, "vat": "B"}
            ],
            "payments": [{"method": "card", "amount": 2000}, {"method": "cash", "amount": 1949}],
            "total": 3949
        });
        let (status, job) = d.post_keyed("/v1/receipts?wait=30", "k1", &body);
        assert_eq!(status, 200, "{job}");
        assert_eq!(job["state"], "done", "{dialect}/{encoding}: {job}");
        let receipts = sim.receipts();
        assert_eq!(receipts.len(), 1);
        let r = &receipts[0];
        assert_eq!(job["result"]["receipt_number"], r["number"]);
        assert_eq!(r["total"], 3949);
        assert_eq!(r["lines"][0]["name"], "Żółć gęślą jaźń");
        assert_eq!(r["lines"][0]["unit"], "kg");
        assert_eq!(r["lines"][0]["gross"], 2999);
        assert_eq!(r["lines"][1]["name"], "ĄĆĘŁŃÓŚŹŻ");
        assert_eq!(r["lines"][2]["gross"], 50);
        assert_eq!(r["payments"][0]["kind"], "card");
        assert_eq!(r["payments"][0]["amount"], 2000);
        // The same key replays the job and prints nothing more.
        let (status, again) = d.post_keyed("/v1/receipts?wait=30", "k1", &body);
        assert_eq!(status, 200, "{again}");
        assert_eq!(again["id"], job["id"]);
        assert_eq!(sim.receipts().len(), 1);
        assert_eq!(sim.memory()["trf"], true);
    }
}

#[test]
fn text_the_code_page_cannot_encode_is_refused_with_422_and_prints_nothing() {
    let (_dir, sim, d) = setup("posnet", "mazovia", &[]);
    // 'Č' is in Windows-1250 but not in Mazovia.
    let body = json!({"lines": [{"name": "Čaj", "quantity": "1", "unit_price": 100, "vat": "A"}],
        "payments": [{"method": "cash", "amount": 100}]});
    let (status, err) = d.post("/v1/receipts", &body);
    assert_eq!(status, 422, "{err}");
    assert!(err.to_string().contains("lines[0].name"), "{err}");
    assert!(err.to_string().contains("mazovia"), "{err}");
    // What the Thermal driver does not print is refused before queuing too.
    let nip = json!({"lines": [{"name": "Chleb", "quantity": "1", "unit_price": 100, "vat": "A"}],
        "payments": [{"method": "cash", "amount": 100}], "buyer_nip": "526-000-12-46"});
    let (status, err) = d.post("/v1/receipts", &nip);
    assert_eq!(status, 422, "{err}");
    let (status, err) = d.post("/v1/printouts", &json!({"lines": ["a"]}));
    assert_eq!(status, 422, "{err}");
    let (_, jobs) = d.get("/v1/jobs");
    assert_eq!(jobs["jobs"].as_array().map_or(0, Vec::len), 0, "{jobs}");
    assert!(sim.receipts().is_empty());
    assert_eq!(sim.memory()["open_receipt"], false);
}

#[test]
fn a_device_refusal_fails_the_job_with_its_code_and_leaves_nothing_open() {
    let (_dir, sim, d) = setup("novitus", "cp1250", &[]);
    // Slot G is inactive on the device; the daemon's validation knows the table and refuses.
    let g = json!({"lines": [{"name": "Sok", "quantity": "1", "unit_price": 500, "vat": "G"}],
        "payments": [{"method": "cash", "amount": 500}]});
    let (status, err) = d.post("/v1/receipts", &g);
    assert_eq!(status, 422, "{err}");
    // Cash out of more than the drawer holds: the printer refuses with its code 30.
    let (status, job) = d.post(
        "/v1/cash?wait=30",
        &json!({"direction": "out", "amount": 100_000}),
    );
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "failed", "{job}");
    assert_eq!(job["error"]["device_code"], 30, "{job}");
    let (_, job) = d.post(
        "/v1/cash?wait=30",
        &json!({"direction": "in", "amount": 5000}),
    );
    assert_eq!(job["state"], "done", "{job}");
    let (_, job) = d.post("/v1/reports/daily?wait=30", &json!({}));
    assert_eq!(job["state"], "done", "{job}");
    let m = sim.memory();
    assert_eq!(m["cash_operations"].as_array().unwrap().len(), 1);
    assert_eq!(m["daily_reports"].as_array().unwrap().len(), 1);
    assert_eq!(m["open_receipt"], false);
}

#[test]
fn paper_out_mid_receipt_waits_for_paper_and_prints_exactly_one_receipt() {
    let (_dir, sim, d) = setup("posnet", "mazovia", &["--fault", "paper out after 3"]);
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
fn power_cycle_mid_receipt_ends_with_exactly_one_receipt() {
    let (_dir, sim, d) = setup("novitus", "mazovia", &[]);
    sim.control("delay 40");
    let (status, job) = d.post("/v1/receipts", &receipt("Prąd", 12));
    assert_eq!(status, 202, "{job}");
    let id = job["id"].as_i64().unwrap();
    wait_until(Duration::from_secs(10), "the receipt to be open", || {
        (sim.memory()["open_receipt"] == true).then_some(())
    });
    std::thread::sleep(Duration::from_millis(150));
    sim.control("power cycle 1500");
    sim.control("delay 0");
    let job = d.wait_job(id, Duration::from_secs(60));
    assert_eq!(job["state"], "done", "{job}");
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 1, "exactly one receipt: {receipts:?}");
    assert_eq!(receipts[0]["lines"].as_array().unwrap().len(), 12);
    assert_eq!(job["result"]["receipt_number"], receipts[0]["number"]);
    assert!(sim.memory()["counters"]["cancelled"].as_u64().unwrap_or(0) >= 1);
}

#[test]
fn sigkill_mid_stream_prints_every_receipt_exactly_once() {
    let (_dir, sim, mut d) = setup("posnet", "cp1250", &[]);
    sim.control("delay 10");
    let printed = sigkill_stream_prints_each_receipt_once(&mut d, || sim.receipts());
    eprintln!(
        "{} receipts, one per job, after 4 kills; cancelled by recovery: {}",
        printed.len(),
        sim.memory()["counters"]["cancelled"]
    );
}

#[test]
fn probe_recognises_a_thermal_printer_read_only_and_prints_a_ready_block() {
    for dialect in ["posnet", "novitus"] {
        let dir = tempfile::tempdir().unwrap();
        let sim = ThermalSim::start(dir.path(), dialect, "mazovia", &[]);
        let before = sim.memory();
        let out = Command::new(BIN)
            .args(["probe", "--ports"])
            .arg(&sim.link)
            .env("FISCALD_LOG", "warn")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(out.status.code(), Some(0), "{stdout}");
        assert!(stdout.contains("protocol = \"thermal\""), "{stdout}");
        assert!(
            stdout.contains(&format!("dialect = \"{dialect}\"")),
            "{stdout}"
        );
        assert!(stdout.contains("encoding = \"mazovia\""), "{stdout}");
        assert!(stdout.contains("unique number THM12345678"), "{stdout}");
        assert!(stdout.contains("# VAT: A 23%, B 8%"), "{stdout}");
        // The block is a valid configuration.
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
}
