//! Headless Chromium driven over the DevTools protocol (a WebSocket), for the status
//! page tests.

use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Chromium, or `None` after printing SKIP for `test`; in CI (`CI=true`) a missing
/// Chromium fails the test instead.
pub fn chromium_or_skip(test: &str) -> Option<PathBuf> {
    let exe = chromium();
    if exe.is_none() {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("chromium is not installed, and CI=true: .ci/run must install it");
        }
        eprintln!("SKIP {test}: chromium is not installed (apt-get install chromium)");
    }
    exe
}

impl Cdp {
    /// Sign in on the page's form with `token` (it is posted to `/login`, never put in an
    /// address).
    pub fn sign_in(&mut self, token: &str) {
        self.wait_for(
            "the sign-in form",
            "document.querySelector('form[action=\"/login\"]') !== null",
            |v| v == true,
        );
        self.eval(&format!(
            "document.querySelector('input[name=token]').value = '{token}'; \
             document.querySelector('form').submit(); 'sent'"
        ));
    }
}

/// The Chromium binary on `PATH`, if any.
pub fn chromium() -> Option<PathBuf> {
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

/// Headless Chromium with the DevTools protocol on a free port; killed on drop.
pub struct Browser {
    child: Child,
    devtools: u16,
}

impl Browser {
    pub fn start(exe: &Path, profile: &Path, url: &str) -> Browser {
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
    pub fn page_ws(&self) -> String {
        super::wait_until(Duration::from_secs(20), "chromium's page target", || {
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
pub struct Cdp {
    ws: tungstenite::WebSocket<TcpStream>,
    next: u64,
}

impl Cdp {
    pub fn connect(url: &str) -> Cdp {
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

    pub fn call(&mut self, method: &str, params: Value) -> Value {
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
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true}),
        );
        r["result"]["value"].clone()
    }

    pub fn wait_for(&mut self, what: &str, expr: &str, want: impl Fn(&Value) -> bool) -> Value {
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

    pub fn screenshot(&mut self, to: &Path) {
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
