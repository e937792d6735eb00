//! End to end: several printers, port locking, job cancelling and the TCP listener's tokens.

mod common;

use common::{Daemon, Sim, config_text, wait_until};
use serde_json::json;
use std::time::{Duration, Instant};

fn small_receipt(name: &str) -> serde_json::Value {
    json!({"printer": "fp1", "lines": [{"name": name, "quantity": "1", "unit_price": 250, "vat": "A"}],
           "payments": [{"method": "cash", "amount": 250}]})
}

#[test]
fn a_printer_out_of_paper_does_not_delay_another() {
    let dir = tempfile::tempdir().unwrap();
    let d1 = dir.path().join("one");
    let d2 = dir.path().join("two");
    std::fs::create_dir_all(&d1).unwrap();
    std::fs::create_dir_all(&d2).unwrap();
    let sim1 = Sim::start(&d1, &["--fault", "paper out"]);
    let sim2 = Sim::start(&d2, &[]);
    let mut cfg = config_text(dir.path(), &sim1.link.display().to_string(), "");
    cfg.push_str(&format!(
        "\n[[printer]]\nid = \"fp2\"\nprotocol = \"posnet\"\nport = \"{}\"\ncommand_timeout = 1.5\n",
        sim2.link.display()
    ));
    let d = Daemon::start(dir.path(), &cfg);
    wait_until(Duration::from_secs(20), "both printers identified", || {
        let (_, v) = d.get("/v1/devices");
        let states: Vec<String> = v["devices"]
            .as_array()?
            .iter()
            .map(|x| x["state"].as_str().unwrap_or("").to_string())
            .collect();
        (states == ["paper_out", "ready"]).then_some(())
    });
    // Without a printer id the request is ambiguous now.
    let mut no_id = small_receipt("X");
    no_id.as_object_mut().unwrap().remove("printer");
    let (s, e) = d.post("/v1/receipts", &no_id);
    assert_eq!(
        (s, e["error"]["field"].as_str()),
        (422, Some("printer")),
        "{e}"
    );

    let (_, stuck) = d.post("/v1/receipts", &small_receipt("Na papierze"));
    let mut other = small_receipt("Obok");
    other["printer"] = json!("fp2");
    let t0 = Instant::now();
    let (s, j) = d.post("/v1/receipts?wait=20", &other);
    assert_eq!((s, j["state"].as_str()), (200, Some("done")), "{j}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "fp2 waited {:?}",
        t0.elapsed()
    );
    assert_eq!(sim2.receipts().len(), 1);
    assert!(sim1.receipts().is_empty());
    let (_, s1) = d.get(&format!("/v1/jobs/{}", stuck["id"]));
    assert!(
        matches!(s1["state"].as_str(), Some("queued" | "running")),
        "{s1}"
    );
    sim1.control("paper back");
    let j1 = d.wait_job(stuck["id"].as_i64().unwrap(), Duration::from_secs(30));
    assert_eq!(j1["state"], "done", "{j1}");
    assert_eq!(sim1.receipts().len(), 1);
}

#[test]
fn queued_jobs_can_be_cancelled_running_ones_cannot() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &sim.link.display().to_string(), ""),
    );
    d.wait_ready();
    sim.control("paper out");
    let (_, first) = d.post("/v1/receipts", &small_receipt("Pierwszy"));
    let (_, second) = d.post("/v1/receipts", &small_receipt("Drugi"));
    let first_id = first["id"].as_i64().unwrap();
    wait_until(Duration::from_secs(10), "the first job to run", || {
        let (_, j) = d.get(&format!("/v1/jobs/{first_id}"));
        (j["state"] == "running").then_some(())
    });
    let (s, c) = d.post(&format!("/v1/jobs/{}/cancel", second["id"]), &json!(null));
    assert_eq!((s, c["state"].as_str()), (200, Some("cancelled")), "{c}");
    let (s, c) = d.post(&format!("/v1/jobs/{first_id}/cancel"), &json!(null));
    assert_eq!(
        (s, c["error"]["code"].as_str()),
        (409, Some("not_cancellable")),
        "{c}"
    );
    sim.control("paper back");
    assert_eq!(
        d.wait_job(first_id, Duration::from_secs(30))["state"],
        "done"
    );
    let (_, list) = d.get("/v1/jobs?state=cancelled");
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1);
    let (_, list) = d.get("/v1/jobs?limit=1");
    assert_eq!(list["jobs"][0]["id"], second["id"], "newest first");
    std::thread::sleep(Duration::from_millis(300));
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0]["lines"][0]["name"], "Pierwszy");
}

#[test]
fn a_second_daemon_cannot_open_the_same_port() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let d1 = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &sim.link.display().to_string(), ""),
    );
    d1.wait_ready();
    let dir2 = dir.path().join("second");
    std::fs::create_dir_all(&dir2).unwrap();
    let d2 = Daemon::start(
        &dir2,
        &config_text(&dir2, &sim.link.display().to_string(), ""),
    );
    let why = wait_until(
        Duration::from_secs(10),
        "the second daemon to report the lock",
        || {
            let (_, v) = d2.get("/v1/devices");
            let e = v["devices"][0]["last_error"].as_str()?.to_string();
            e.contains("in use").then_some(e)
        },
    );
    assert!(why.contains("second fiscald"), "{why}");
    let (_, v) = d2.get("/v1/devices");
    assert_eq!(v["devices"][0]["state"], "offline");
    let (_, h) = d2.get("/v1/health");
    assert_eq!(h["status"], "degraded");
    let (s, j) = d1.post("/v1/receipts?wait=20", &small_receipt("Jeden"));
    assert_eq!((s, j["state"].as_str()), (200, Some("done")));
}

#[test]
fn tcp_listener_needs_a_valid_bearer_token() {
    use sha2::Digest;
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let tokens = dir.path().join("tokens");
    let hash = hex::encode(sha2::Sha256::digest(b"s3cret-token"));
    std::fs::write(
        &tokens,
        format!("# sha256 name role\n{hash} pos-1 cashier\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let cfg = config_text(dir.path(), &sim.link.display().to_string(), "").replace(
        "[journal]",
        &format!(
            "listen = \"127.0.0.1:{port}\"\ntoken_file = \"{}\"\n\n[journal]",
            tokens.display()
        ),
    );
    let d = Daemon::start(dir.path(), &cfg);
    d.wait_ready();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let (s, e) = common::request_tcp(addr, "GET", "/v1/health", &[]);
    assert_eq!(
        (s, e["error"]["code"].as_str()),
        (401, Some("unauthorized")),
        "{e}"
    );
    let (s, _) = common::request_tcp(
        addr,
        "GET",
        "/v1/health",
        &[("authorization", "Bearer wrong")],
    );
    assert_eq!(s, 401);
    let (s, h) = common::request_tcp(
        addr,
        "GET",
        "/v1/health",
        &[("authorization", "Bearer s3cret-token")],
    );
    assert_eq!((s, h["status"].as_str()), (200, Some("ok")), "{h}");
    // The Unix socket needs no token.
    assert_eq!(d.get("/v1/health").0, 200);
}

#[test]
fn a_token_file_readable_by_others_stops_the_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o644)).unwrap();
    let cfg = config_text(dir.path(), "sim", "").replace(
        "[journal]",
        &format!(
            "listen = \"127.0.0.1:1\"\ntoken_file = \"{}\"\n\n[journal]",
            tokens.display()
        ),
    );
    let path = dir.path().join("f.toml");
    std::fs::write(&path, cfg).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("readable by others"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
