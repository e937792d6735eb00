//! End to end: the NoviAPI facade on the POSNET emulator (its own process). The unmodified
//! Python client `novitus-noviapi` 0.3.2 prints receipts, a printout and a daily report and
//! reads status through it; tokens (401, the hourly limit); the role and its audit; and a
//! SIGKILL between PUT and the end of printing, after which every confirmed request still
//! ends with exactly one document and an unconfirmed one never prints.

mod common;

use common::{Daemon, Sim, config_text, free_tcp_port, request_tcp_with};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The virtual environment with the client (made by `tests/conformance/noviapi/venv.sh`).
fn client_python() -> PathBuf {
    let venv = std::env::var_os("FISCALD_NOVIAPI_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("noviapi-venv"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/noviapi/venv.sh");
    let status = Command::new("bash")
        .arg(&script)
        .arg(&venv)
        .status()
        .expect("run venv.sh (needs bash and python3 with venv)");
    assert!(
        status.success(),
        "cannot install novitus-noviapi 0.3.2 into {}",
        venv.display()
    );
    venv.join("bin/python")
}

fn facade_daemon(dir: &Path, sim: &Sim, role: &str) -> (Daemon, SocketAddr) {
    let port = free_tcp_port();
    let config = format!(
        "{}\n[noviapi]\nlisten = \"127.0.0.1:{port}\"\nrole = \"{role}\"\n",
        config_text(dir, &sim.link.display().to_string(), "")
    );
    let d = Daemon::start(dir, &config);
    d.wait_ready();
    (d, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// One request to the facade with `token` (if any) and a JSON body (if any).
fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    request_tcp_with(
        addr,
        method,
        &format!("/api/v1{path}"),
        &headers,
        body.map(|b| b.to_string().into_bytes()),
    )
}

fn token(addr: SocketAddr) -> String {
    let (status, t) = call(addr, "GET", "/token", None, None);
    assert_eq!(status, 200, "{t}");
    t["token"].as_str().unwrap().to_string()
}

/// A receipt of one line at `grosze`, paid exactly: told apart from others by its total.
fn priced_receipt(grosze: u64) -> Value {
    let price = format!("{}.{:02}", grosze / 100, grosze % 100);
    json!({"receipt": {
        "items": [{"article": {"name": "Herbata", "ptu": "A", "quantity": "1",
                               "price": price, "value": price}}],
        "summary": {"total": price, "pay_in": price}
    }})
}

fn receipt(system_number: &str) -> Value {
    json!({"receipt": {
        "items": [{"article": {"name": "Kawa", "ptu": "A", "quantity": "1",
                               "price": "7.50", "value": "7.50"}}],
        "summary": {"total": "7.50", "pay_in": "10.00", "change": "2.50"},
        "system_info": {"system_number": {"print_as": "text", "value": system_number}}
    }})
}

#[test]
fn the_unmodified_python_client_prints_receipts_a_report_and_reads_status() {
    let python = client_python();
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let (d, addr) = facade_daemon(dir.path(), &sim, "manager");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/noviapi/client.py");
    let result = dir.path().join("result.json");
    let out = Command::new(&python)
        .arg(&script)
        .arg(format!("http://{addr}"))
        .arg(&result)
        .output()
        .expect("run the client");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("13 passed, 0 failed"), "{text}");
    let result: Value = serde_json::from_str(&std::fs::read_to_string(&result).unwrap()).unwrap();

    // The receipts the client was told are done are in the printer's memory, each once.
    let receipts = sim.receipts();
    let numbers: Vec<&Value> = receipts.iter().map(|r| &r["number"]).collect();
    assert_eq!(json!(numbers), result["receipts"], "{receipts:?}");
    let footers: Vec<&Value> = receipts.iter().map(|r| &r["footer"]).collect();
    assert_eq!(
        json!(footers),
        json!([["Nr sys.: POS-1/1"], ["Nr sys.: POS-1/2"]])
    );
    let r = &receipts[0];
    assert_eq!(r["total"], 1200);
    assert_eq!(r["buyer_nip"], "5260001246");
    assert_eq!(r["lines"][1]["discount"]["amount"], 49, "{r}");
    assert_eq!(
        json!(
            r["payments"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p["method"].clone(), p["amount"].clone()))
                .collect::<Vec<_>>()
        ),
        json!([["card", 1000], ["cash", 500]])
    );
    assert_eq!(sim.list("daily_reports").len(), 1);
    assert_eq!(
        result["daily_report"],
        sim.list("daily_reports")[0]["number"]
    );
    assert_eq!(sim.list("printouts").len(), 1, "the non-fiscal printout");

    // In fiscald's journal they are ordinary jobs of the `noviapi` principal.
    let (_, jobs) = d.get("/v1/jobs?limit=100");
    let jobs = jobs["jobs"].as_array().unwrap();
    let kinds: Vec<(&str, &str)> = jobs
        .iter()
        .map(|j| (j["kind"].as_str().unwrap(), j["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| k.0 == "receipt").count(),
        2,
        "{kinds:?}"
    );
    assert!(kinds.contains(&("daily_report", "done")), "{kinds:?}");
    assert!(
        kinds.iter().all(|k| k.1 == "done" || k.1 == "cancelled"),
        "{kinds:?}"
    );
    // No token and no signing key in the log.
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    assert!(!log.contains("eyJ"), "a token was logged");
}

#[test]
fn tokens_are_required_limited_and_refused_in_the_api_shape() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let (_d, addr) = facade_daemon(dir.path(), &sim, "cashier");
    let (status, body) = call(addr, "GET", "", None, None);
    assert_eq!(status, 200, "the connection test needs no token: {body}");
    let (status, body) = call(addr, "GET", "/queue", None, None);
    assert_eq!(
        (status, &body["exception"]["code"]),
        (401, &json!(4)),
        "{body}"
    );
    let (status, body) = call(addr, "GET", "/queue", Some("not.a.token"), None);
    assert_eq!(status, 401, "{body}");

    let first = token(addr);
    let (status, body) = call(addr, "GET", "/queue", Some(&first), None);
    assert_eq!((status, body), (200, json!({"requests_in_queue": 0})));
    // PATCH refreshes with the last token; the old one is then replaced.
    let (status, t) = request_tcp_with(
        addr,
        "PATCH",
        "/api/v1/token",
        &[
            ("authorization", &format!("Bearer {first}")),
            ("content-type", "text/plain"),
        ],
        Some(Vec::new()),
    );
    assert_eq!(status, 200, "{t}");
    let second = t["token"].as_str().unwrap().to_string();
    assert!(t["expiration_date"].as_str().unwrap().ends_with('Z'), "{t}");
    assert_eq!(call(addr, "GET", "/queue", Some(&first), None).0, 401);
    assert_eq!(call(addr, "GET", "/queue", Some(&second), None).0, 200);

    // Ten GETs an hour (the first was one); the eleventh deletes the current token.
    for _ in 1..10 {
        token(addr);
    }
    let current = token_from_patch(addr, &second);
    assert!(current.is_none(), "second is no longer the last token");
    let (status, body) = call(addr, "GET", "/token", None, None);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["exception"]["code"], 2, "{body}");
    assert!(
        body["exception"]["allowed_refresh_date"]
            .as_str()
            .is_some_and(|d| d.ends_with('Z')),
        "{body}"
    );

    // With the token deleted, nothing passes without a new one.
    let (status, body) = call(
        addr,
        "POST",
        "/daily_report",
        None,
        Some(json!({"daily_report": {"date": "01/01/2026"}})),
    );
    assert_eq!(status, 401, "{body}");
}

/// A PATCH with `token`; the new token, or None when refused.
fn token_from_patch(addr: SocketAddr, token: &str) -> Option<String> {
    let (status, t) = request_tcp_with(
        addr,
        "PATCH",
        "/api/v1/token",
        &[("authorization", &format!("Bearer {token}"))],
        Some(Vec::new()),
    );
    (status == 200).then(|| t["token"].as_str().unwrap().to_string())
}

#[test]
fn the_role_limits_what_the_facade_may_do_and_refusals_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let (d, addr) = facade_daemon(dir.path(), &sim, "cashier");
    let t = token(addr);
    let today = chrono::Local::now().format("%d/%m/%Y").to_string();
    let (status, body) = call(
        addr,
        "POST",
        "/daily_report",
        Some(&t),
        Some(json!({"daily_report": {"date": today}})),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["exception"]["code"], 6, "{body}");
    assert!(
        body["exception"]["description"]
            .as_str()
            .unwrap()
            .contains("manager"),
        "{body}"
    );
    // A receipt is a cashier's.
    let (status, body) = call(addr, "POST", "/receipt", Some(&t), Some(receipt("R-1")));
    assert_eq!(status, 201, "{body}");
    let id = body["request"]["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    // A bad body: 400 with the field named, in the API's shape; a parse error is code 7.
    let mut bad = receipt("R-2");
    bad["receipt"]["summary"]["total"] = json!("7.51");
    let (status, body) = call(addr, "POST", "/receipt", Some(&t), Some(bad));
    assert_eq!((status, &body["exception"]["code"]), (400, &json!(8)));
    assert!(
        body["exception"]["description"]
            .as_str()
            .unwrap()
            .starts_with("receipt.summary.total: is 751"),
        "{body}"
    );
    let (status, body) = request_tcp_with(
        addr,
        "POST",
        "/api/v1/receipt",
        &[
            ("authorization", &format!("Bearer {t}")),
            ("content-type", "application/json"),
        ],
        Some(b"{\"receipt\":".to_vec()),
    );
    assert_eq!((status, &body["exception"]["code"]), (400, &json!(7)));
    // Unsupported and unknown endpoints.
    let (status, body) = call(addr, "POST", "/graphic", Some(&t), Some(json!({})));
    assert_eq!(status, 400, "{body}");
    assert!(
        body["exception"]["description"]
            .as_str()
            .unwrap()
            .contains("not supported")
    );
    assert_eq!(
        call(addr, "PUT", &format!("/lock/{id}"), Some(&t), None).0,
        400
    );
    assert_eq!(
        call(addr, "GET", &format!("/invoice/{id}"), Some(&t), None).0,
        404,
        "a receipt's id is not an invoice's"
    );

    wait_audited(&d, "POST /api/v1/daily_report", "refused:403");
    assert!(sim.list("daily_reports").is_empty());
    assert!(
        sim.receipts().is_empty(),
        "nothing confirmed, nothing printed"
    );

    // Paper out: the first confirmed receipt is held printing, the second waits queued. The
    // queued one can be deleted (its job is cancelled, audited); the one printing cannot.
    sim.control("paper out");
    let mut ids = Vec::new();
    for sn in ["P-1", "P-2"] {
        let (_, body) = call(addr, "POST", "/receipt", Some(&t), Some(receipt(sn)));
        let id = body["request"]["id"].as_str().unwrap().to_string();
        assert_eq!(
            call(addr, "PUT", &format!("/receipt/{id}"), Some(&t), None).0,
            200
        );
        ids.push(id);
    }
    common::wait_until(Duration::from_secs(20), "the first to be printing", || {
        let (_, b) = call(addr, "GET", &format!("/receipt/{}", ids[0]), Some(&t), None);
        (b["request"]["status"] == "PENDING").then_some(())
    });
    let (_, b) = call(addr, "GET", &format!("/receipt/{}", ids[1]), Some(&t), None);
    assert_eq!(b["request"]["status"], "QUEUED", "{b}");
    let (_, q) = call(addr, "GET", "/queue", Some(&t), None);
    assert_eq!(
        q["requests_in_queue"], 2,
        "the stored R-1 and the queued P-2: {q}"
    );
    let (status, b) = call(
        addr,
        "DELETE",
        &format!("/receipt/{}", ids[1]),
        Some(&t),
        None,
    );
    assert_eq!(
        (status, b),
        (200, json!({"request": {"status": "DELETED"}}))
    );
    let (status, b) = call(
        addr,
        "DELETE",
        &format!("/receipt/{}", ids[0]),
        Some(&t),
        None,
    );
    assert_eq!(status, 400, "it is printing: {b}");
    wait_audited(&d, "DELETE /api/v1/receipt", "cancelled");
    sim.control("paper back");
    let (_, b) = call(
        addr,
        "GET",
        &format!("/receipt/{}?timeout=20000", ids[0]),
        Some(&t),
        None,
    );
    assert_eq!(b["request"]["status"], "DONE", "{b}");
    assert_eq!(sim.receipts().len(), 1, "only P-1 printed");
}

fn wait_audited(d: &Daemon, operation: &str, outcome: &str) {
    common::wait_until(Duration::from_secs(10), "the audit entry", || {
        let (_, audit) = d.get("/v1/audit?limit=100");
        audit["entries"]
            .as_array()?
            .iter()
            .any(|e| {
                e["principal"] == "noviapi"
                    && e["operation"] == operation
                    && e["outcome"] == outcome
            })
            .then_some(())
    });
}

/// Confirmed requests queued before a SIGKILL each end with exactly one receipt; a PUT
/// repeated after the restart prints nothing more; a request never confirmed never prints.
#[test]
fn sigkill_between_put_and_printing_still_gives_exactly_one_document() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    sim.control("delay 15");
    let (mut d, addr) = facade_daemon(dir.path(), &sim, "cashier");
    let t = token(addr);
    let unconfirmed = {
        let (status, body) = call(addr, "POST", "/receipt", Some(&t), Some(receipt("LOST")));
        assert_eq!(status, 201, "{body}");
        body["request"]["id"].as_str().unwrap().to_string()
    };
    let mut ids = Vec::new();
    let mut interrupted = 0;
    for (round, kill_after_ms) in [(0, 250u64), (1, 520), (2, 80)] {
        let t = token(addr);
        for i in 0..4 {
            let sn = 100 + round * 10 + i;
            let (status, body) = call(addr, "POST", "/receipt", Some(&t), Some(priced_receipt(sn)));
            assert_eq!(status, 201, "{body}");
            let id = body["request"]["id"].as_str().unwrap().to_string();
            let (status, body) = call(addr, "PUT", &format!("/receipt/{id}"), Some(&t), None);
            assert_eq!(
                (status, &body["request"]["status"]),
                (200, &json!("CONFIRMED"))
            );
            ids.push((sn, id));
        }
        std::thread::sleep(Duration::from_millis(kill_after_ms));
        let (_, running) = d.get("/v1/jobs?state=running");
        interrupted += running["jobs"].as_array().map_or(0, Vec::len);
        d.kill9();
        d.spawn();
        d.wait_ready();
        // The restart drew a new signing key: the old token is refused.
        assert_eq!(call(addr, "GET", "/queue", Some(&t), None).0, 401);
        // The POS, unsure, confirms its last request again.
        let t = token(addr);
        let (_, last) = ids.last().unwrap();
        let (status, body) = call(addr, "PUT", &format!("/receipt/{last}"), Some(&t), None);
        assert_eq!(
            (status, &body["request"]["status"]),
            (200, &json!("CONFIRMED"))
        );
    }
    let t = token(addr);
    for (sn, id) in &ids {
        let body = common::wait_until(Duration::from_secs(120), "the receipt to end", || {
            let (status, body) = call(
                addr,
                "GET",
                &format!("/receipt/{id}?timeout=5000"),
                Some(&t),
                None,
            );
            assert_eq!(status, 200, "{body}");
            (body["request"]["status"] != "QUEUED" && body["request"]["status"] != "PENDING")
                .then_some(body)
        });
        assert_eq!(body["request"]["status"], "DONE", "{sn}: {body}");
        assert!(body["request"]["jpkid"].is_u64(), "{body}");
    }
    let (status, body) = call(
        addr,
        "GET",
        &format!("/receipt/{unconfirmed}"),
        Some(&t),
        None,
    );
    assert_eq!(
        (status, &body["request"]["status"]),
        (200, &json!("STORED")),
        "{body}"
    );
    // Told apart by their totals (a footer may be cut by a kill after the fiscal part).
    let printed: Vec<u64> = sim
        .receipts()
        .iter()
        .map(|r| r["total"].as_u64().unwrap())
        .collect();
    for (total, _) in &ids {
        let n = printed.iter().filter(|t| *t == total).count();
        assert_eq!(n, 1, "the receipt of {total} printed once: {printed:?}");
    }
    assert_eq!(
        printed.len(),
        ids.len(),
        "nothing else printed: {printed:?}"
    );
    assert!(
        interrupted > 0,
        "no kill landed while a receipt was printing"
    );
}

#[test]
fn the_facade_listens_on_loopback_only_and_names_a_configured_printer() {
    let dir = tempfile::tempdir().unwrap();
    let check = |section: &str| {
        let config = format!(
            "{}\n[noviapi]\n{section}\n",
            config_text(dir.path(), "/dev/null", "")
        );
        std::fs::write(dir.path().join("f.toml"), config).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_fiscald"))
            .args(["check-config", "--config"])
            .arg(dir.path().join("f.toml"))
            .output()
            .unwrap();
        assert!(!out.status.success(), "{section} accepted");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = check("listen = \"0.0.0.0:8888\"");
    assert!(
        err.contains("noviapi.listen") && err.contains("loopback"),
        "{err}"
    );
    let err = check("listen = \"127.0.0.1:8888\"\nprinter = \"fp9\"");
    assert!(
        err.contains("noviapi.printer") && err.contains("fp1"),
        "{err}"
    );
    let err = check("listen = \"127.0.0.1:8888\"\nterminal = \"t1\"");
    assert!(err.contains("noviapi.terminal"), "{err}");
    let err = check("listen = \"127.0.0.1:8888\"\nrole = \"boss\"");
    assert!(err.contains("role"), "{err}");
}

/// Confirm `id` on `endpoint` and wait for it to end; the check's answer.
fn confirm_and_wait(addr: SocketAddr, t: &str, endpoint: &str, id: &str) -> Value {
    let (status, body) = call(addr, "PUT", &format!("/{endpoint}/{id}"), Some(t), None);
    assert_eq!(status, 200, "{body}");
    common::wait_until(Duration::from_secs(60), "the request to end", || {
        let (_, body) = call(
            addr,
            "GET",
            &format!("/{endpoint}/{id}?timeout=5000"),
            Some(t),
            None,
        );
        let s = body["request"]["status"].as_str()?.to_string();
        (s != "QUEUED" && s != "PENDING").then_some(body)
    })
}

#[test]
fn an_invoice_and_a_card_payment_on_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let terminal = common::ZvtSim::start(dir.path(), false);
    let port = free_tcp_port();
    let config = format!(
        "{}{}\n[noviapi]\nlisten = \"127.0.0.1:{port}\"\nterminal = \"t1\"\n",
        config_text(dir.path(), &sim.link.display().to_string(), ""),
        common::terminal_config(&terminal.port, "")
    );
    let d = Daemon::start(dir.path(), &config);
    d.wait_printer_and_terminal_ready();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let t = token(addr);

    let invoice = json!({"invoice": {
        "info": {"number": "FV 7/12/2026", "copy_count": 1},
        "buyer": {"name": "Hurtownia Zorza", "id_type": "nip", "id": "526-000-12-46",
                  "address": ["ul. Długa 1", "00-001 Warszawa"]},
        "items": [{"article": {"name": "Papier A4", "ptu": "A", "quantity": "5",
                               "price": "18.99", "value": "94.95"}}],
        "payments": [{"transfer": {"value": "94.95"}}],
        "summary": {"total": "94.95", "pay_in": "94.95"}
    }});
    let (status, body) = call(addr, "POST", "/invoice", Some(&t), Some(invoice));
    assert_eq!(status, 201, "{body}");
    let id = body["request"]["id"].as_str().unwrap().to_string();
    let done = confirm_and_wait(addr, &t, "invoice", &id);
    assert_eq!(done["request"]["status"], "DONE", "{done}");
    let invoices = sim.list("invoices");
    assert_eq!(invoices.len(), 1);
    assert_eq!(invoices[0]["invoice_number"], "FV 7/12/2026");
    assert_eq!(invoices[0]["total"], 9495);
    assert_eq!(invoices[0]["buyer"]["nip"], "5260001246");
    assert_eq!(done["request"]["jpkid"], invoices[0]["number"], "{done}");
    assert!(done["request"].get("response").is_none(), "{done}");

    // A returnable bottle: a container item becomes a deposit outside the fiscal total.
    let with_bottle = json!({"receipt": {
        "items": [{"article": {"name": "Woda 0,5 l", "ptu": "A", "quantity": "2",
                               "price": "2.00", "value": "4.00"}},
                  {"container": {"name": "Butelka PET", "number": 1, "quantity": "2.00",
                                 "value": "1.00"}}],
        "payments": [{"cash": {"value": "5.00"}}],
        "summary": {"total": "4.00", "pay_in": "5.00", "change": "0.00"}
    }});
    let (status, body) = call(addr, "POST", "/receipt", Some(&t), Some(with_bottle));
    assert_eq!(status, 201, "{body}");
    let id = body["request"]["id"].as_str().unwrap().to_string();
    let done = confirm_and_wait(addr, &t, "receipt", &id);
    assert_eq!(done["request"]["status"], "DONE", "{done}");
    let receipts = sim.receipts();
    let printed = receipts.last().unwrap();
    assert_eq!(printed["total"], 400);
    assert_eq!(printed["amount_due"], 500);
    assert_eq!(
        printed["deposits"].as_array().unwrap().len(),
        1,
        "{printed}"
    );
    assert_eq!(done["request"]["jpkid"], printed["number"], "{done}");

    // The communication test answers from the terminal's state and charges nothing.
    let test = json!({"eft": {"operation": "communication_test"}});
    let (status, body) = call(addr, "POST", "/eft", Some(&t), Some(test));
    assert_eq!(status, 201, "{body}");
    let id = body["request"]["id"].as_str().unwrap().to_string();
    let done = confirm_and_wait(addr, &t, "eft", &id);
    assert_eq!(done["request"]["status"], "DONE", "{done}");
    assert_eq!(done["device"]["status"], "OK", "{done}");
    let reply = &done["request"]["response"]["eft"];
    assert_eq!(reply["error_code"], 0, "{done}");
    assert!(
        reply["eft_id"].as_str().is_some_and(|id| !id.is_empty()),
        "{done}"
    );
    assert!(terminal.transactions().is_empty(), "a test is not a charge");

    let eft = json!({"eft": {"operation": "transaction", "brutto": "12.34",
                             "document_id": "POS-1/99"}});
    let (status, body) = call(addr, "POST", "/eft", Some(&t), Some(eft));
    assert_eq!(status, 201, "{body}");
    let id = body["request"]["id"].as_str().unwrap().to_string();
    let done = confirm_and_wait(addr, &t, "eft", &id);
    assert_eq!(done["request"]["status"], "DONE", "{done}");
    let reply = &done["request"]["response"]["eft"];
    assert_eq!(reply["amount"], "12.34", "{done}");
    assert_eq!(reply["error_code"], 0, "{done}");
    let pan = reply["card_token"].as_str().unwrap();
    assert!(pan.contains('*') && pan.len() >= 12, "masked: {pan}");
    assert!(
        reply["transaction_id"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    let approved: Vec<Value> = terminal
        .transactions()
        .into_iter()
        .filter(|t| t["status"] == "approved")
        .collect();
    assert_eq!(approved.len(), 1, "one charge: {approved:?}");
    assert_eq!(approved[0]["amount"], 1234);
}
