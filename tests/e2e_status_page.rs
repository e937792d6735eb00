//! End to end: the status page (`GET /`) in headless Chromium, over loopback TCP with a
//! technician's token. The token is typed into the page's sign-in form, which posts it
//! to `/login` (so it never enters an address or the history); the answer sets a session
//! cookie and redirects to `/`. Then paper runs out in the emulator and the page must show
//! it from the event stream, without a reload.
//!
//! Chromium is driven over the DevTools protocol (a WebSocket). Without Chromium the test
//! prints SKIP and passes, except in CI (`CI=true`), where it fails.

mod common;

use common::{Daemon, Sim, ZvtSim, config_text, request_tcp, terminal_config};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TOKEN: &str = "technician-secret";

fn chromium() -> Option<PathBuf> {
    for name in ["chromium", "chromium-browser"] {
        for dir in std::env::var("PATH").unwrap_or_default().split(':') {
            let p = Path::new(dir).join(name);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

fn token_file(dir: &Path) -> PathBuf {
    use sha2::Digest;
    use std::os::unix::fs::PermissionsExt;
    let hash = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    let path = dir.join("tokens");
    std::fs::write(&path, format!("{hash} tech technician\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Headless Chromium with the DevTools protocol on a free port; killed on drop.
struct Browser {
    child: Child,
    devtools: u16,
}

impl Browser {
    fn start(exe: &Path, profile: &Path, url: &str) -> Browser {
        let mut child = Command::new(exe)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-dev-shm-usage",
                "--window-size=1200,760",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start chromium");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("ws://127.0.0.1:").nth(1) {
                    let port: String = rest.chars().take_while(char::is_ascii_digit).collect();
                    let _ = tx.send(port.parse::<u16>().ok());
                }
            }
        });
        let devtools = rx
            .recv_timeout(Duration::from_secs(30))
            .ok()
            .flatten()
            .expect("chromium's DevTools port");
        Browser { child, devtools }
    }

    /// The WebSocket URL of the first page.
    fn page_ws(&self) -> String {
        common::wait_until(Duration::from_secs(20), "chromium's page target", || {
            let mut s = TcpStream::connect(("127.0.0.1", self.devtools)).ok()?;
            s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
            write!(
                s,
                "GET /json/list HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
                self.devtools
            )
            .ok()?;
            // Read the head, then exactly Content-Length bytes (the server may keep the
            // connection open).
            let mut raw = Vec::new();
            let mut buf = [0u8; 4096];
            let body = loop {
                let n = s.read(&mut buf).ok()?;
                if n == 0 {
                    return None;
                }
                raw.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&raw).into_owned();
                let Some((head, body)) = text.split_once("\r\n\r\n") else {
                    continue;
                };
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                if body.len() >= len {
                    break body.to_string();
                }
            };
            let body = body.as_str();
            let list: Value = serde_json::from_str(body).ok()?;
            list.as_array()?
                .iter()
                .find(|t| t["type"] == "page")
                .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                .map(String::from)
        })
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal DevTools protocol client.
struct Cdp {
    ws: tungstenite::WebSocket<TcpStream>,
    next: u64,
}

impl Cdp {
    fn connect(url: &str) -> Cdp {
        let host = url
            .trim_start_matches("ws://")
            .split('/')
            .next()
            .unwrap()
            .to_string();
        let stream = TcpStream::connect(&host).expect("connect to DevTools");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let (ws, _) = tungstenite::client(url, stream).expect("DevTools WebSocket handshake");
        Cdp { ws, next: 1 }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        let msg = json!({"id": id, "method": method, "params": params}).to_string();
        self.ws
            .send(tungstenite::Message::Text(msg.into()))
            .expect("send to DevTools");
        loop {
            let m = self.ws.read().expect("read from DevTools");
            let tungstenite::Message::Text(text) = m else {
                continue;
            };
            let v: Value = serde_json::from_str(text.as_str()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    /// Evaluate a JavaScript expression in the page; its value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    fn wait_for(&mut self, what: &str, expr: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.eval(expr);
            if want(&v) {
                return v;
            }
            if Instant::now() > deadline {
                let dom = self.eval("document.body ? document.body.innerText : ''");
                panic!("timed out waiting for {what}: last {v}; page text:\n{dom}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn screenshot(&mut self, to: &Path) {
        use std::io::Write as _;
        let r = self.call("Page.captureScreenshot", json!({"format": "png"}));
        let b64 = r["data"].as_str().unwrap_or("");
        let bytes = decode_base64(b64);
        std::fs::File::create(to)
            .and_then(|mut f| f.write_all(&bytes))
            .unwrap();
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("a screenshot in base64")
}

#[test]
fn the_status_page_shows_paper_out_live() {
    let Some(exe) = chromium() else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromium is not installed, and CI=true: .ci/run must install it");
        }
        eprintln!(
            "SKIP the_status_page_shows_paper_out_live: chromium is not installed (apt-get install chromium)"
        );
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let port = free_port();
    let tokens = token_file(dir.path());
    let api = format!(
        "token_file = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n",
        tokens.display()
    );
    let terminal = ZvtSim::start(dir.path(), false);
    let mut config = config_text(
        dir.path(),
        &sim.link.display().to_string(),
        "status_poll = 0.2",
    )
    .replace("[journal]", &format!("{api}\n[journal]"));
    config.push_str(&terminal_config(&terminal.port, ""));
    let d = Daemon::start(dir.path(), &config);
    d.wait_printer_and_terminal_ready();
    let (status, job) = d.post(
        "/v1/receipts?wait=20",
        &json!({"lines": [{"name": "Kawa", "quantity": 1, "unit_price": 990, "vat": "A"}],
                "payments": [{"method": "cash", "amount": 990}]}),
    );
    assert_eq!(status, 200, "{job}");
    let (status, job) = d.post(
        "/v1/sales?wait=60",
        &json!({"lines": [{"name": "Herbata", "quantity": 2, "unit_price": 505, "vat": "B"}],
                "payments": [{"method": "card", "amount": 1010}]}),
    );
    assert_eq!((status, &job["state"]), (200, &json!("done")), "{job}");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // Without a token or session, TCP shows how to sign in; a wrong token is refused.
    let (status, page) = request_tcp(addr, "GET", "/", &[]);
    assert_eq!(status, 401);
    assert!(page.as_str().unwrap_or("").contains("token"), "{page}");
    assert!(
        page.as_str()
            .unwrap_or("")
            .contains("method=post action=\"/login\""),
        "{page}"
    );
    // A token in the address is refused, even a valid one: it would stay in the history.
    for token in ["wrong", TOKEN] {
        let (status, page) = request_tcp(addr, "GET", &format!("/?token={token}"), &[]);
        assert_eq!(status, 400, "{page}");
        assert!(page.as_str().unwrap_or("").contains("form"), "{page}");
    }
    // The API does not take a session cookie it never gave.
    let (status, _) = request_tcp(
        addr,
        "GET",
        "/v1/devices",
        &[("cookie", "fiscald_session=00")],
    );
    assert_eq!(status, 401);

    let profile = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let browser = Browser::start(&exe, &profile, &format!("http://127.0.0.1:{port}/"));
    let mut cdp = Cdp::connect(&browser.page_ws());
    // A wrong token first: the form answers 401 and stays.
    for (token, title) in [("wrong", "401"), (TOKEN, "ok")] {
        cdp.wait_for(
            "the sign-in form",
            "document.querySelector('form[action=\"/login\"]') !== null",
            |v| v == true,
        );
        cdp.eval(&format!(
            "document.querySelector('input[name=token]').value = '{token}'; \
             document.querySelector('form').submit(); 'sent'"
        ));
        if title == "401" {
            cdp.wait_for(
                "the refusal",
                "document.body ? document.body.innerText : ''",
                |v| v.as_str().unwrap_or("").contains("not in the token file"),
            );
        }
    }
    cdp.wait_for(
        "the printer row to show ready",
        "(document.getElementById('dev-fp1') || {getAttribute: () => null}).getAttribute('data-state')",
        |v| v == "ready",
    );
    cdp.wait_for(
        "the live indicator",
        "document.getElementById('live').textContent",
        |v| v == "live",
    );
    // The token never was in the address bar or the history, and the session cookie is
    // not readable by script.
    assert_eq!(cdp.eval("location.pathname + location.search"), json!("/"));
    let history = cdp.call("Page.getNavigationHistory", json!({}));
    let urls = history.to_string();
    assert!(
        urls.contains("127.0.0.1") && !urls.contains(TOKEN),
        "{urls}"
    );
    assert_eq!(cdp.eval("document.cookie"), json!(""));
    // The last jobs list shows the receipt.
    let jobs = cdp.eval("document.getElementById('jobs').innerText");
    assert!(jobs.as_str().unwrap_or("").contains("receipt"), "{jobs}");
    // Each device with its model and number; the terminal with its terminal id.
    let printer_row = cdp.eval("document.getElementById('dev-fp1').innerText");
    assert!(
        printer_row.as_str().unwrap_or("").contains("no. "),
        "{printer_row}"
    );
    let terminal_id = d.get("/v1/devices").1["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "t1")
        .map(|t| t["terminal_id"].as_str().unwrap_or("").to_string())
        .unwrap_or_default();
    assert!(!terminal_id.is_empty());
    let terminal_row = cdp.eval("document.getElementById('dev-t1').innerText");
    assert!(
        terminal_row
            .as_str()
            .unwrap_or("")
            .contains(&format!("terminal id {terminal_id}")),
        "{terminal_row}"
    );
    // The day at a glance: two receipts (one of them the sale's), the card takings, the
    // totals by VAT letter, the daily report due, and the chart of documents per hour.
    cdp.wait_for(
        "the today panel",
        "document.getElementById('t-receipts').textContent",
        |v| v == "2 · 20,00 zł",
    );
    assert_eq!(
        cdp.eval("document.getElementById('t-card').textContent + ' | ' + document.getElementById('t-card-l').textContent"),
        json!("10,10 zł | card takings (net): 1 sale, 0 refunds")
    );
    assert_eq!(
        cdp.eval("document.getElementById('vat-A').innerText"),
        json!("A\t9,90 zł")
    );
    assert_eq!(
        cdp.eval("document.getElementById('vat-B').innerText"),
        json!("B\t10,10 zł")
    );
    assert_eq!(
        cdp.eval("document.getElementById('report-fp1').getAttribute('data-due')"),
        json!("true")
    );
    assert_eq!(
        cdp.eval(
            "[...document.querySelectorAll('#chart rect')].reduce((s, r) => s + Number(r.getAttribute('data-count')), 0)"
        ),
        json!(2)
    );
    assert_eq!(
        cdp.eval("document.querySelectorAll('#chart rect').length"),
        json!(24)
    );
    // The page must update from the event stream, not by being loaded again.
    cdp.eval("window.__sameDocument = true");

    sim.control("paper out");
    cdp.wait_for(
        "the printer row to show paper out",
        "document.getElementById('dev-fp1').getAttribute('data-state')",
        |v| v == "paper_out",
    );
    let row = cdp.eval("document.getElementById('dev-fp1').innerText");
    let row = row.as_str().unwrap_or("");
    assert!(row.contains("paper out"), "{row}");
    assert_eq!(cdp.eval("window.__sameDocument === true"), json!(true));
    let log = cdp.eval("document.getElementById('log').innerText");
    assert!(log.as_str().unwrap_or("").contains("paper out"), "{log}");

    cdp.wait_for(
        "the health summary to follow",
        "document.getElementById('health').textContent",
        |v| v == "needs attention",
    );
    // A screenshot for people (kept when FISCALD_SCREENSHOT names a file).
    let shot = match std::env::var_os("FISCALD_SCREENSHOT") {
        Some(p) => PathBuf::from(p),
        None => dir.path().join("status-page.png"),
    };
    cdp.screenshot(&shot);
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false)
    );

    sim.control("paper back");
    cdp.wait_for(
        "the printer row to show ready again",
        "document.getElementById('dev-fp1').getAttribute('data-state')",
        |v| v == "ready",
    );
    drop(browser);
}
