//! End to end: `fiscald ctl` (the real binary) against the daemon and the POSNET emulator.

mod common;

use common::{BIN, Daemon, Sim, config_text, wait_until};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run `fiscald ctl ARGS` with `stdin`; stderr is not a terminal, so no progress is drawn.
fn ctl(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = Command::new(BIN)
        .arg("ctl")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fiscald ctl");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(bytes) = stdin {
        input.write_all(bytes).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("fiscald ctl output")
}

/// `fiscald ctl --socket SOCKET ARGS`.
fn ctl_on(d: &Daemon, args: &[&str], stdin: Option<&[u8]>) -> Output {
    let socket = d.socket.display().to_string();
    let mut all = vec!["--socket", socket.as_str()];
    all.extend_from_slice(args);
    ctl(&all, stdin)
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exit code")
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn show(o: &Output) -> String {
    format!(
        "exit {:?}\n-- stdout --\n{}\n-- stderr --\n{}",
        o.status.code(),
        out(o),
        err(o)
    )
}

fn json_out(o: &Output) -> Value {
    serde_json::from_str(out(o).trim()).unwrap_or_else(|e| panic!("not JSON ({e}): {}", show(o)))
}

fn setup() -> (tempfile::TempDir, Sim, Daemon) {
    common::printer_daemon()
}

fn receipt_body(name: &str, price: u64) -> String {
    json!({
        "lines": [{"name": name, "quantity": "1", "unit_price": price, "vat": "A"}],
        "payments": [{"method": "cash", "amount": price}]
    })
    .to_string()
}

#[test]
fn ctl_covers_the_printer_api() {
    let (dir, sim, d) = setup();

    // status and devices, as tables and as JSON
    let o = ctl_on(&d, &["status"], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(out(&o).contains(": ok"), "{}", show(&o));
    let table: Vec<String> = out(&o).lines().map(str::to_string).collect();
    assert!(table[1].starts_with("ID "), "{}", show(&o));
    assert!(
        table[2].starts_with("fp1 ") && table[2].contains("fiscal_printer"),
        "{}",
        show(&o)
    );
    assert!(table[2].contains("ready"), "{}", show(&o));
    // columns line up: STATE starts at the same place in the header and the row
    let col = table[1].find("STATE").unwrap();
    assert_eq!(&table[2][col..col + 5], "ready", "{}", show(&o));

    let o = ctl_on(&d, &["status", "--json"], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let v = json_out(&o);
    assert_eq!(v["health"]["status"], "ok");
    assert_eq!(v["devices"][0]["id"], "fp1");

    let o = ctl_on(&d, &["devices"], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(out(&o).starts_with("ID"), "{}", show(&o));
    assert!(out(&o).contains("LAST_ERROR"), "{}", show(&o));
    let o = ctl_on(&d, &["--json", "devices"], None);
    assert_eq!(json_out(&o)["devices"][0]["state"], "ready");

    // a receipt from a file, then one from stdin
    let file = dir.path().join("receipt.json");
    std::fs::write(&file, receipt_body("Chleb", 450)).unwrap();
    let o = ctl_on(&d, &["receipt", file.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(out(&o).contains("done"), "{}", show(&o));
    assert!(out(&o).contains("total 4.50"), "{}", show(&o));
    assert_eq!(sim.receipts().len(), 1);

    let o = ctl_on(
        &d,
        &["receipt", "--json"],
        Some(receipt_body("Masło", 799).as_bytes()),
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let job = json_out(&o);
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["result"]["total"], 799);
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 2);
    assert_eq!(receipts[1]["lines"][0]["name"], "Masło");
    assert_eq!(job["result"]["receipt_number"], receipts[1]["number"]);
    let receipt_job = job["id"].as_i64().unwrap();

    // the same idempotency key gives the same job, printed once
    let key_args = ["--idempotency-key", "ctl-test-1", "--json", "receipt", "-"];
    let body = receipt_body("Ser", 1200);
    let a = json_out(&ctl_on(&d, &key_args, Some(body.as_bytes())));
    let b = json_out(&ctl_on(&d, &key_args, Some(body.as_bytes())));
    assert_eq!(a["id"], b["id"]);
    assert_eq!(sim.receipts().len(), 3);

    // a validation error: exit 2, the field named on stderr, nothing printed
    let bad = json!({
        "lines": [{"name": "A", "quantity": "1", "unit_price": 100, "vat": "F"}],
        "payments": [{"method": "cash", "amount": 100}]
    })
    .to_string();
    let o = ctl_on(&d, &["receipt"], Some(bad.as_bytes()));
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(err(&o).contains("lines[0].vat"), "{}", show(&o));
    assert!(err(&o).contains("422"), "{}", show(&o));
    // with --json the API's error body is on stdout
    let o = ctl_on(&d, &["--json", "receipt"], Some(bad.as_bytes()));
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert_eq!(json_out(&o)["error"]["field"], "lines[0].vat");
    // not JSON at all, or an unreadable file: bad input without asking the daemon
    let o = ctl_on(&d, &["receipt"], Some(b"{\"lines\": ["));
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(err(&o).contains("stdin: not valid JSON"), "{}", show(&o));
    let o = ctl_on(&d, &["receipt", "/nonexistent/receipt.json"], None);
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(
        err(&o).contains("/nonexistent/receipt.json"),
        "{}",
        show(&o)
    );
    assert_eq!(sim.receipts().len(), 3);

    // cash in 1000 grosze and 12.50 zł, a printout, the daily report
    let o = ctl_on(&d, &["cash", "in", "1000"], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(out(&o).contains("done"), "{}", show(&o));
    let o = ctl_on(&d, &["cash", "out", "2.50", "--printer", "fp1"], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let o = ctl_on(&d, &["cash", "in", "1.234"], None);
    assert_eq!(code(&o), 2, "{}", show(&o));

    let text = "Zamówienie 17\n\nStolik 4\n";
    let o = ctl_on(&d, &["print"], Some(text.as_bytes()));
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(out(&o).contains("printout no."), "{}", show(&o));

    let o = ctl_on(&d, &["report", "daily", "--json"], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let report = json_out(&o);
    assert_eq!(report["kind"], "daily_report");
    assert_eq!(report["state"], "done", "{report}");

    let m = sim.memory();
    assert_eq!(m["cash_operations"][0]["amount"], 1000, "{m}");
    assert_eq!(m["cash_operations"][1]["amount"], 250, "{m}");
    assert_eq!(m["printouts"][0]["lines"][0], "Zamówienie 17", "{m}");
    assert_eq!(m["printouts"][0]["lines"][2], "Stolik 4", "{m}");
    assert_eq!(m["daily_reports"].as_array().unwrap().len(), 1, "{m}");

    // jobs, as a table and as JSON
    let o = ctl_on(&d, &["jobs"], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let listing = out(&o);
    let lines: Vec<&str> = listing.lines().collect();
    assert!(lines[0].starts_with("ID"), "{}", show(&o));
    assert!(lines[0].contains("RESULT/ERROR"), "{}", show(&o));
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with(&format!("{receipt_job} ")) && l.contains("receipt")),
        "{}",
        show(&o)
    );
    assert!(
        lines.iter().any(|l| l.contains("daily_report")),
        "{}",
        show(&o)
    );
    let o = ctl_on(
        &d,
        &["jobs", "--state", "done", "--limit", "2", "--json"],
        None,
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let jobs = json_out(&o);
    assert_eq!(jobs["jobs"].as_array().unwrap().len(), 2, "{jobs}");

    // one job
    let id = receipt_job.to_string();
    let o = ctl_on(&d, &["job", &id], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(out(&o).contains("done"), "{}", show(&o));
    assert!(out(&o).contains("receipt no."), "{}", show(&o));
    let o = ctl_on(&d, &["job", &id, "--json"], None);
    assert_eq!(json_out(&o)["id"], receipt_job);
    let o = ctl_on(&d, &["job", "999999"], None);
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(err(&o).contains("404"), "{}", show(&o));

    // cancelling a job that has ended is a conflict: bad input
    let o = ctl_on(&d, &["cancel", &id], None);
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(err(&o).contains("409"), "{}", show(&o));

    // --wait 0 does not wait: the job is reported as queued (or already running)
    let o = ctl_on(&d, &["--wait", "0", "--json", "cash", "in", "100"], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    let queued = json_out(&o);
    let qid = queued["id"].as_i64().unwrap();
    let o = ctl_on(&d, &["job", &qid.to_string(), "--wait", "30"], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(out(&o).contains("done"), "{}", show(&o));

    // the socket from --config
    let config = d.config.display().to_string();
    let o = ctl(&["--config", &config, "devices", "--json"], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_eq!(json_out(&o)["devices"][0]["id"], "fp1");

    // events: follows the stream if the daemon has one; otherwise a clear error and exit 3
    let socket = d.socket.display().to_string();
    let mut child = Command::new(BIN)
        .args(["ctl", "--socket", &socket, "events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run fiscald ctl events");
    let start = Instant::now();
    let ended = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(3) {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    match ended {
        Some(_) => {
            let o = child.wait_with_output().unwrap();
            assert_eq!(code(&o), 3, "{}", show(&o));
            assert!(err(&o).contains("event stream"), "{}", show(&o));
        }
        None => {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[test]
fn ctl_printer_trouble_is_a_device_failure() {
    let (_dir, sim, d) = setup();
    sim.control("paper out");
    wait_until(Duration::from_secs(20), "paper out to be seen", || {
        let (_, v) = d.get("/v1/devices");
        (v["devices"][0]["state"] == "paper_out").then_some(())
    });
    // status reports the degraded device with exit 1
    let o = ctl_on(&d, &["status"], None);
    assert_eq!(code(&o), 1, "{}", show(&o));
    assert!(out(&o).contains("degraded"), "{}", show(&o));
    assert!(out(&o).contains("paper_out"), "{}", show(&o));
    // a receipt that cannot finish within --wait: exit 4, still pending
    let o = ctl_on(
        &d,
        &["--wait", "2", "--json", "receipt"],
        Some(receipt_body("Mleko", 350).as_bytes()),
    );
    assert_eq!(code(&o), 4, "{}", show(&o));
    let job = json_out(&o);
    assert!(
        matches!(job["state"].as_str(), Some("queued" | "running")),
        "{job}"
    );
}

#[test]
fn ctl_without_a_daemon_exits_3() {
    let o = ctl(&["--socket", "/nonexistent", "status"], None);
    assert_eq!(code(&o), 3, "{}", show(&o));
    assert!(err(&o).contains("/nonexistent"), "{}", show(&o));
    assert!(err(&o).contains("cannot reach the daemon"), "{}", show(&o));

    let o = ctl(&["--socket", "/nonexistent", "receipt"], Some(b"{}"));
    assert_eq!(code(&o), 3, "{}", show(&o));

    // the socket named in a configuration file
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("fiscald.toml");
    std::fs::write(&cfg, config_text(dir.path(), "/dev/null", "")).unwrap();
    let o = ctl(&["--config", cfg.to_str().unwrap(), "devices"], None);
    assert_eq!(code(&o), 3, "{}", show(&o));
    assert!(
        err(&o).contains(&dir.path().join("api.sock").display().to_string()),
        "{}",
        show(&o)
    );
}

#[test]
fn ctl_refuses_bad_arguments_with_2() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["--socket", "/nonexistent", "jobs", "--state", "sleeping"],
        vec!["--socket", "/nonexistent", "cash", "sideways", "100"],
        vec!["--socket", "/nonexistent", "cash", "in", "12.345"],
        vec!["--socket", "/nonexistent", "job", "seven"],
        vec!["--config", "/nonexistent/fiscald.toml", "status"],
        vec!["--url", "http://127.0.0.1:9", "status"],
    ] {
        let o = ctl(&args, None);
        assert_eq!(code(&o), 2, "{args:?}: {}", show(&o));
    }
    // --url needs a token file that others cannot read, and a loopback address
    let token = dir.path().join("token");
    std::fs::write(&token, "secret\n").unwrap();
    set_mode(&token, 0o644);
    let t = token.to_str().unwrap();
    let o = ctl(
        &["--url", "http://127.0.0.1:9", "--token-file", t, "status"],
        None,
    );
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(err(&o).contains("readable by others"), "{}", show(&o));
    set_mode(&token, 0o600);
    let o = ctl(
        &[
            "--url",
            "http://192.0.2.1:8787",
            "--token-file",
            t,
            "status",
        ],
        None,
    );
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(err(&o).contains("loopback"), "{}", show(&o));
    // nobody listening there: cannot reach the daemon
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let o = ctl(&["--url", &url, "--token-file", t, "status"], None);
    assert_eq!(code(&o), 3, "{}", show(&o));
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn ctl_over_loopback_tcp_with_a_token() {
    use sha2::Digest;
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path(), &[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tokens = dir.path().join("tokens");
    let secret = "ctl-test-token-0123456789";
    std::fs::write(
        &tokens,
        format!(
            "{} pos\n",
            hex::encode(sha2::Sha256::digest(secret.as_bytes()))
        ),
    )
    .unwrap();
    set_mode(&tokens, 0o600);
    let mut config = config_text(dir.path(), &sim.link.display().to_string(), "");
    config = config.replacen(
        "[api]\n",
        &format!(
            "[api]\nlisten = \"127.0.0.1:{port}\"\ntoken_file = \"{}\"\n",
            tokens.display()
        ),
        1,
    );
    let d = Daemon::start(dir.path(), &config);
    d.wait_ready();

    let token = dir.path().join("token");
    std::fs::write(&token, format!("{secret}\n")).unwrap();
    set_mode(&token, 0o600);
    let url = format!("http://127.0.0.1:{port}");
    let t = token.to_str().unwrap();
    let o = ctl(
        &["--url", &url, "--token-file", t, "receipt"],
        Some(receipt_body("Kawa", 900).as_bytes()),
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_eq!(sim.receipts().len(), 1);

    // a wrong token is refused by the daemon: 401, bad input
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token\n").unwrap();
    set_mode(&wrong, 0o600);
    let o = ctl(
        &[
            "--url",
            &url,
            "--token-file",
            wrong.to_str().unwrap(),
            "devices",
        ],
        None,
    );
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(err(&o).contains("401"), "{}", show(&o));
}

#[test]
fn ctl_card_payment_and_sale() {
    use common::{ZvtSim, terminal_config};
    let dir = tempfile::tempdir().unwrap();
    let printer = Sim::start(dir.path(), &[]);
    let terminal = ZvtSim::start(dir.path(), false);
    let mut cfg = config_text(dir.path(), &printer.link.display().to_string(), "");
    cfg.push_str(&terminal_config(&terminal.port, ""));
    let d = Daemon::start(dir.path(), &cfg);
    d.wait_ready();
    wait_until(Duration::from_secs(20), "the terminal to be ready", || {
        let (_, v) = d.get("/v1/devices");
        let t = v["devices"]
            .as_array()?
            .iter()
            .find(|x| x["kind"] == "payment_terminal")?
            .clone();
        (t["state"] == "ready").then_some(())
    });

    let o = ctl_on(&d, &["devices"], None);
    assert!(out(&o).contains("payment_terminal"), "{}", show(&o));

    let o = ctl_on(
        &d,
        &["payment", "--type", "sale", "--amount", "12.50", "--json"],
        None,
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    let job = json_out(&o);
    assert_eq!(job["kind"], "payment", "{job}");
    assert_eq!(job["state"], "done", "{job}");
    let tx = terminal.transactions();
    assert!(
        tx.iter()
            .any(|t| t["amount"] == 1250 && t["status"] == "approved"),
        "{tx:?}"
    );

    let sale = json!({
        "lines": [{"name": "Kawa", "quantity": "1", "unit_price": 1990, "vat": "A"}],
        "payments": [{"method": "card", "amount": 1990}]
    })
    .to_string();
    let o = ctl_on(&d, &["sale"], Some(sale.as_bytes()));
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(out(&o).contains("(sale on t1): done"), "{}", show(&o));
    assert_eq!(printer.receipts().len(), 1);

    // a bad payment type is refused by the argument parser
    let o = ctl_on(&d, &["payment", "--type", "gift", "--amount", "100"], None);
    assert_eq!(code(&o), 2, "{}", show(&o));
}

#[test]
fn ctl_payment_resolve_settles_a_payment_in_needs_attention() {
    use common::ZvtSim;
    let dir = tempfile::tempdir().unwrap();
    let printer = Sim::start(dir.path(), &[]);
    let terminal = ZvtSim::start_protocol(dir.path(), "ecr-eft", false, &[]);
    let mut cfg = config_text(dir.path(), &printer.link.display().to_string(), "");
    cfg.push_str(&format!(
        "\n[[terminal]]\nid = \"t1\"\nprotocol = \"ecr-eft\"\nport = \"{}\"\ncommand_timeout = 3\ntransaction_timeout = 4\n",
        terminal.port
    ));
    let d = Daemon::start(dir.path(), &cfg);
    d.wait_printer_and_terminal_ready();
    // Two payments whose results the terminal keeps to itself (…52): needs_attention.
    let mut ids = Vec::new();
    for amount in ["11.52", "12.52"] {
        let o = ctl_on(
            &d,
            &["payment", "--type", "sale", "--amount", amount, "--json"],
            None,
        );
        assert_eq!(code(&o), 1, "{}", show(&o));
        let job = json_out(&o);
        assert_eq!(job["state"], "needs_attention", "{job}");
        ids.push(job["id"].as_i64().unwrap().to_string());
    }
    // The arguments: exactly one outcome; a transaction id only with --approved.
    for bad in [
        &["payment", "resolve", &ids[0]][..],
        &["payment", "resolve", &ids[0], "--approved"],
        &[
            "payment",
            "resolve",
            &ids[0],
            "--not-charged",
            "--transaction-id",
            "1",
        ],
        &["payment", "resolve", &ids[0], "--approved", "--not-charged"],
    ] {
        let o = ctl_on(&d, bad, None);
        assert_eq!(code(&o), 2, "{bad:?}: {}", show(&o));
    }
    // Approved, as the printout says.
    let tx = terminal.transactions();
    let txid = tx
        .iter()
        .find(|t| t["amount"] == 1152)
        .and_then(|t| t["transaction_id"].as_str())
        .unwrap_or_else(|| panic!("{tx:?}"))
        .to_string();
    let o = ctl_on(
        &d,
        &[
            "payment",
            "resolve",
            &ids[0],
            "--approved",
            "--transaction-id",
            &txid,
            "--note",
            "printout in the drawer",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(
        out(&o).contains("recorded as approved: done"),
        "{}",
        show(&o)
    );
    let (_, job) = d.get(&format!("/v1/jobs/{}", ids[0]));
    assert_eq!(job["state"], "done", "{job}");
    assert!(job["result"].to_string().contains(&txid), "{job}");
    // Not charged, with --json.
    let o = ctl_on(
        &d,
        &["payment", "resolve", &ids[1], "--not-charged", "--json"],
        None,
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert_eq!(json_out(&o)["state"], "failed", "{}", show(&o));
    // Resolving again is a conflict (409), an unknown job is 404: both exit 2.
    let o = ctl_on(&d, &["payment", "resolve", &ids[0], "--not-charged"], None);
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(err(&o).contains("needs_attention"), "{}", show(&o));
    let o = ctl_on(&d, &["payment", "resolve", "99999", "--not-charged"], None);
    assert_eq!(code(&o), 2, "{}", show(&o));
    // Audited.
    let (_, audit) = d.get("/v1/audit?limit=50");
    let resolves = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["operation"] == "POST /v1/payments/{id}/resolve" && e["outcome"] == "accepted"
        })
        .count();
    assert_eq!(resolves, 2, "{audit}");
}

#[test]
fn ctl_prints_an_invoice_a_periodic_report_and_a_copy() {
    let (dir, sim, d) = setup();
    let file = dir.path().join("invoice.json");
    let invoice = json!({
        "number": "FV 3/12/2026",
        "buyer": {"name": "Firma Sp. z o.o.", "nip": "5260001246"},
        "lines": [{"name": "Papier", "quantity": 2, "unit_price": 1250, "vat": "A"}],
        "payments": [{"method": "transfer", "amount": 2500}]
    });
    std::fs::write(&file, invoice.to_string()).unwrap();
    let o = ctl_on(&d, &["invoice", file.to_str().unwrap()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(out(&o).contains("invoice FV 3/12/2026"), "{}", show(&o));
    assert!(out(&o).contains("total 25.00"), "{}", show(&o));
    assert_eq!(sim.list("invoices").len(), 1);

    let o = ctl_on(
        &d,
        &["--json", "invoice", "-"],
        Some(invoice.to_string().as_bytes()),
    );
    let job = json_out(&o);
    assert_eq!(job["result"]["document_number"], 2, "{}", show(&o));
    let o = ctl_on(&d, &["copy", &job["id"].to_string()], None);
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(out(&o).contains("copy of invoice no. 2"), "{}", show(&o));
    assert_eq!(sim.list("copies").len(), 1);

    let today = chrono::Local::now().date_naive().to_string();
    let o = ctl_on(
        &d,
        &[
            "report",
            "periodic",
            "--from",
            "2026-01-01",
            "--to",
            &today,
            "--summary",
        ],
        None,
    );
    assert_eq!(code(&o), 0, "{}", show(&o));
    assert!(
        out(&o).contains("periodic report 2026-01-01 to"),
        "{}",
        show(&o)
    );
    let reports = sim.list("periodic_reports");
    assert_eq!((reports.len(), &reports[0]["summary"]), (1, &json!(true)));

    // Bad input: exit 2 and the field named; nothing printed.
    let o = ctl_on(&d, &["report", "periodic", "--monthly", "2026-13"], None);
    assert_eq!(code(&o), 2, "{}", show(&o));
    assert!(err(&o).contains("monthly"), "{}", show(&o));
    let o = ctl_on(&d, &["report", "periodic", "--from", "2026-01-01"], None);
    assert_eq!(code(&o), 2, "{}", show(&o));
    let o = ctl_on(&d, &["copy", "424242"], None);
    assert_ne!(code(&o), 0, "{}", show(&o));
    assert_eq!(sim.list("periodic_reports").len(), 1);
    assert_eq!(sim.list("copies").len(), 1);
}
