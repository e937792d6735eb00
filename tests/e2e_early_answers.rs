//! End to end: early answers reach the client. A body over the limit gets its 413, and a
//! request refused before its body was read its 401, with the JSON error body, in Python's
//! `http.client` (which sends the whole request before it reads) and in curl, on the Unix
//! socket and on loopback TCP. The daemon reads and discards the rest of such a body up to
//! 8 MiB or 10 s (`src/drain.rs`); past that it closes the connection and stays healthy.

mod common;

use common::{Daemon, Sim, config_text};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TOKEN: &str = "early-answers-secret";
const MIB: usize = 1024 * 1024;

/// The Python client next to this file.
fn client_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/early_answers_client.py")
}

/// A daemon on the emulator with a loopback TCP listener and a token file with [`TOKEN`].
fn start(dir: &Path) -> (Sim, Daemon, std::net::SocketAddr) {
    use sha2::Digest;
    use std::os::unix::fs::PermissionsExt;
    let tokens = dir.join("tokens");
    let hash = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    std::fs::write(&tokens, format!("{hash} pos-1 cashier\n")).unwrap();
    std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let sim = Sim::start(dir, &[]);
    let api = format!(
        "listen = \"{addr}\"\ntoken_file = \"{}\"\n[journal]",
        tokens.display()
    );
    let config = config_text(dir, &sim.link.display().to_string(), "").replace("[journal]", &api);
    let daemon = Daemon::start(dir, &config);
    daemon.wait_ready();
    (sim, daemon, addr)
}

/// Run the Python client with `args`; its JSON report.
fn python(args: &[&str]) -> Value {
    let out = Command::new("python3")
        .arg(client_script())
        .args(args)
        .output()
        .expect("python3 (needed by this test)");
    assert!(
        out.status.success(),
        "python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    })
}

/// The client saw `status` and the API's error body with `code`.
fn answered(report: &Value, status: u16, code: &str) {
    assert_eq!(report["status"], status, "{report}");
    assert_eq!(report["error"], Value::Null, "{report}");
    assert_eq!(report["body"]["error"]["code"], code, "{report}");
    assert!(report["body"]["error"]["message"].is_string(), "{report}");
}

#[test]
fn http_client_and_curl_see_the_early_answer_and_its_body() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, daemon, addr) = start(dir.path());
    let socket = daemon.socket.display().to_string();
    let size = (4 * MIB).to_string();
    let tcp = addr.to_string();

    // 4 MiB on the socket: the 413, and the connection still carries the next request.
    let r = python(&[
        "--unix",
        &socket,
        "--size",
        &size,
        "--then-get",
        "/v1/health",
    ]);
    answered(&r, 413, "body_too_large");
    assert_eq!(r["reused"]["status"], 200, "{r}");
    assert_eq!(r["reused"]["same_socket"], true, "{r}");

    // The same on loopback TCP with a bearer token.
    let r = python(&["--tcp", &tcp, "--token", TOKEN, "--size", &size]);
    answered(&r, 413, "body_too_large");

    // Refused before the body is read at all: no token on TCP.
    let r = python(&["--tcp", &tcp, "--size", &size]);
    answered(&r, 401, "unauthorized");

    if Command::new("sh")
        .args(["-c", "command -v curl"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        let body = dir.path().join("big.json");
        std::fs::write(&body, vec![b'x'; 4 * MIB]).unwrap();
        let data = format!("@{}", body.display());
        let auth = format!("Authorization: Bearer {TOKEN}");
        let tcp_url = format!("http://{addr}/v1/receipts");
        let socket_args = ["--unix-socket", &socket, "http://localhost/v1/receipts"];
        let tcp_args = ["-H", &auth, &tcp_url];
        // curl sends `Expect: 100-continue` for a large body; `-H Expect:` turns it off,
        // so the whole body comes at once.
        for (target, expect) in [
            (&socket_args[..], None),
            (&socket_args[..], Some("Expect:")),
            (&tcp_args[..], None),
            (&tcp_args[..], Some("Expect:")),
        ] {
            let mut curl = Command::new("curl");
            curl.args(["-sS", "-o", "-", "-w", "\n%{http_code}"]).args([
                "-H",
                "Content-Type: application/json",
                "--data-binary",
                &data,
            ]);
            if let Some(h) = expect {
                curl.args(["-H", h]);
            }
            let out = curl.args(target).output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            let (body, status) = text.rsplit_once('\n').unwrap_or(("", ""));
            assert_eq!(
                status,
                "413",
                "curl {target:?} {expect:?}: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let body: Value = serde_json::from_str(body).unwrap();
            assert_eq!(body["error"]["code"], "body_too_large", "{body}");
        }
    } else {
        eprintln!("curl is not installed: the curl half of this test is skipped");
    }
}

#[test]
fn a_body_over_the_drain_bound_gets_a_clean_close_and_the_daemon_stays_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, daemon, _) = start(dir.path());
    let socket = daemon.socket.display().to_string();

    // 12 MiB: past the 8 MiB the daemon discards, it closes the connection. The client
    // is told at once (a broken pipe or a reset while sending, or the 413 if it read it
    // first), and never left waiting.
    let started = Instant::now();
    let r = python(&[
        "--unix",
        &socket,
        "--size",
        &(12 * MIB).to_string(),
        "--timeout",
        "30",
    ]);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(25), "{took:?}: {r}");
    if r["status"].is_null() {
        let e = r["error"].as_str().unwrap_or("");
        assert!(
            e.contains("BrokenPipe") || e.contains("ConnectionReset"),
            "not a clean close: {r}"
        );
    } else {
        answered(&r, 413, "body_too_large");
    }

    // The daemon is healthy: it answers, prints, and still drains the next large body.
    let (s, health) = daemon.get("/v1/health");
    assert_eq!(s, 200, "{health}");
    let (s, job) = daemon.post(
        "/v1/receipts?wait=10",
        &json!({"lines": [{"name": "Chleb", "quantity": "1", "unit_price": 450, "vat": "A"}],
                "payments": [{"method": "cash", "amount": 450}]}),
    );
    assert!(s == 200 || s == 202, "{s} {job}");
    let id = job["id"].as_i64().unwrap_or_else(|| panic!("{job}"));
    assert_eq!(
        daemon.wait_job(id, Duration::from_secs(20))["state"],
        "done"
    );
    let r = python(&["--unix", &socket, "--size", &(4 * MIB).to_string()]);
    answered(&r, 413, "body_too_large");
}

#[test]
fn a_stalled_body_after_an_early_answer_is_closed_within_the_bound() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, daemon, _) = start(dir.path());
    let mut conn = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
    write!(
        conn,
        "POST /v1/receipts HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        4 * MIB
    )
    .unwrap();
    conn.write_all(&vec![b'x'; 512 * 1024]).unwrap();
    // The 413 comes at once, while the rest of the body is still owed.
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let started = Instant::now();
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("body_too_large") {
        let n = conn.read(&mut buf).expect("the early answer");
        assert!(n > 0, "closed before the answer");
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(
        seen.starts_with(b"HTTP/1.1 413 "),
        "{}",
        String::from_utf8_lossy(&seen)
    );
    // The client then sends nothing more: the daemon closes the connection within its
    // bounds (10 s), not when the client gives up.
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("no close after {:?}: {e}", started.elapsed()),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "{:?}",
        started.elapsed()
    );
    let (s, _) = daemon.get("/v1/health");
    assert_eq!(s, 200);
}
