//! End to end: browser defences on the real listeners. DNS rebinding (a foreign `Host`),
//! cross-origin writes, POSTs without a JSON content type, and CORS for a configured
//! browser POS on loopback TCP, with Chrome's Private Network Access.

mod common;

use common::{Daemon, Sim, config_text};
use std::io::{Read, Write};

const TOKEN: &str = "manager-secret";
const POS: &str = "http://pos.example:3000";

/// One raw HTTP/1.1 exchange; returns the status and the head (lowercased).
fn exchange(stream: &mut (impl Read + Write), request: &str) -> (u16, String) {
    stream.write_all(request.as_bytes()).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).to_lowercase();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

fn request(method: &str, path: &str, headers: &[&str]) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: 0\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r + "\r\n"
}

#[test]
fn foreign_hosts_cross_origin_writes_and_non_json_posts_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let port = common::free_port();
    let config = config_text(dir.path(), &sim.link.display().to_string(), "").replace(
        "[journal]",
        &format!(
            "token_file = \"{}\"\nlisten = \"127.0.0.1:{port}\"\ncors_origins = [\"{POS}\"]\n\n[journal]",
            common::token_file(dir.path(), &[(TOKEN, "boss", "manager")]).display()
        ),
    );
    let daemon = Daemon::start(dir.path(), &config);
    daemon.wait_ready();
    let tcp = || std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let sock = || std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
    let auth = format!("Authorization: Bearer {TOKEN}");
    let json = "Content-Type: application/json";

    // DNS rebinding: a page on evil.test resolved to 127.0.0.1 (or the forwarded socket).
    let rebound = request("POST", "/v1/reports/daily", &["Host: evil.test:8080", json]);
    assert_eq!(exchange(&mut sock(), &rebound).0, 421);
    let rebound = request(
        "POST",
        "/v1/reports/daily",
        &["Host: evil.test", json, &auth],
    );
    assert_eq!(exchange(&mut tcp(), &rebound).0, 421);
    // A <form> or a no-cors fetch from another origin: no JSON content type, or an Origin.
    let form = request(
        "POST",
        "/v1/reports/daily",
        &[
            "Host: localhost",
            "Origin: http://evil.test",
            "Content-Type: text/plain",
        ],
    );
    assert_eq!(exchange(&mut sock(), &form).0, 403);
    let fetch = request(
        "POST",
        "/v1/reports/daily",
        &["Host: localhost", "Sec-Fetch-Site: cross-site", json],
    );
    assert_eq!(exchange(&mut sock(), &fetch).0, 403);
    let empty = request("POST", "/v1/reports/daily", &["Host: localhost"]);
    assert_eq!(exchange(&mut sock(), &empty).0, 415);
    let (_, jobs) = daemon.get("/v1/jobs");
    assert_eq!(
        jobs["jobs"].as_array().map(Vec::len),
        Some(0),
        "nothing was queued: {jobs}"
    );
    assert!(
        sim.memory()["daily_reports"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );

    // The refusals are counted in the audit log, one row per listener, window and kind.
    let (_, audit) = daemon.get("/v1/audit?limit=100");
    let rows = audit["entries"].as_array().cloned().unwrap_or_default();
    for (outcome, detail) in [
        ("refused:421", "wrong_host"),
        ("refused:403", "cross_origin"),
        ("invalid:415", "unsupported_media_type"),
    ] {
        assert!(
            rows.iter()
                .any(|r| r["outcome"] == outcome && r["detail"] == detail),
            "no {outcome} {detail} row in {audit}"
        );
    }

    // A listed browser POS: the preflight needs no token and allows Private Network Access.
    let host = format!("Host: 127.0.0.1:{port}");
    let origin = format!("Origin: {POS}");
    let preflight = request(
        "OPTIONS",
        "/v1/receipts",
        &[
            &host,
            &origin,
            "Access-Control-Request-Method: POST",
            "Access-Control-Request-Headers: authorization, content-type, idempotency-key",
            "Access-Control-Request-Private-Network: true",
        ],
    );
    let (status, head) = exchange(&mut tcp(), &preflight);
    assert_eq!(status, 204, "{head}");
    assert!(
        head.contains(&format!("access-control-allow-origin: {POS}")),
        "{head}"
    );
    assert!(
        head.contains("access-control-allow-private-network: true"),
        "{head}"
    );
    assert!(head.contains("idempotency-key"), "{head}");
    let other = request(
        "OPTIONS",
        "/v1/receipts",
        &[
            &host,
            "Origin: http://evil.test",
            "Access-Control-Request-Method: POST",
        ],
    );
    let (status, head) = exchange(&mut tcp(), &other);
    assert_eq!(status, 403);
    assert!(!head.contains("access-control-allow-origin"), "{head}");
    // Its real requests get the CORS answer; a listed origin may change things with a token.
    let get = request("GET", "/v1/devices", &[&host, &origin, &auth]);
    let (status, head) = exchange(&mut tcp(), &get);
    assert_eq!(status, 200, "{head}");
    assert!(
        head.contains(&format!("access-control-allow-origin: {POS}")),
        "{head}"
    );
    let post = request("POST", "/v1/reports/daily", &[&host, &origin, &auth, json]);
    let (status, head) = exchange(&mut tcp(), &post);
    assert_eq!(status, 202, "{head}");
}
