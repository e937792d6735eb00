//! End to end: `GET /v1/events` (device and job state changes, `Last-Event-ID`) and
//! `GET /metrics` (Prometheus text), against the emulator.

mod common;

use common::{Daemon, Sim, config_text};
use fiscald::ctl::{SseEvent, SseParser};
use serde_json::{Value, json};
use std::path::Path;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// An open event stream, read on its own thread.
struct Stream {
    status: u16,
    content_type: String,
    rx: mpsc::Receiver<SseEvent>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Stream {
    fn open(socket: &Path, last_event_id: Option<&str>) -> Stream {
        let (tx, rx) = mpsc::channel();
        let (head_tx, head_rx) = mpsc::channel();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let socket = socket.to_path_buf();
        let last = last_event_id.map(String::from);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                use http_body_util::BodyExt;
                let io = tokio::net::UnixStream::connect(&socket).await.unwrap();
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
                        .await
                        .unwrap();
                tokio::spawn(conn);
                let mut req = hyper::Request::get("http://localhost/v1/events")
                    .header("accept", "text/event-stream");
                if let Some(l) = &last {
                    req = req.header("last-event-id", l);
                }
                let resp = sender
                    .send_request(
                        req.body(http_body_util::Empty::<bytes::Bytes>::new())
                            .unwrap(),
                    )
                    .await
                    .unwrap();
                let ct = resp
                    .headers()
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let _ = head_tx.send((resp.status().as_u16(), ct));
                let mut body = resp.into_body();
                let mut parser = SseParser::default();
                loop {
                    tokio::select! {
                        f = body.frame() => match f {
                            Some(Ok(f)) => {
                                if let Ok(data) = f.into_data() {
                                    for ev in parser.push(&data) {
                                        if tx.send(ev).is_err() {
                                            return;
                                        }
                                    }
                                }
                            }
                            _ => return,
                        },
                        _ = &mut stopped => return,
                    }
                }
            });
        });
        let (status, content_type) = head_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the event stream's response head");
        Stream {
            status,
            content_type,
            rx,
            stop: Some(stop),
        }
    }

    /// Events until `done` accepts one (included), or panic after `timeout`.
    fn until(&self, timeout: Duration, what: &str, done: impl Fn(&Value) -> bool) -> Vec<SseEvent> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(ev) => {
                    let data: Value = serde_json::from_str(&ev.data).unwrap_or(Value::Null);
                    let stop = done(&data);
                    seen.push(ev);
                    if stop {
                        return seen;
                    }
                }
                Err(_) => panic!("timed out waiting for {what}; events so far: {seen:#?}"),
            }
        }
    }

    /// Whatever arrives within `d`.
    fn drain(&self, d: Duration) -> Vec<SseEvent> {
        let deadline = Instant::now() + d;
        let mut seen = Vec::new();
        while let Ok(ev) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            seen.push(ev);
        }
        seen
    }

    fn close(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

fn data(ev: &SseEvent) -> Value {
    serde_json::from_str(&ev.data).expect("event data is JSON")
}

fn id(ev: &SseEvent) -> u64 {
    ev.id
        .as_deref()
        .expect("every event has an id")
        .parse()
        .expect("numeric id")
}

fn is_device(d: &Value, state: &str) -> bool {
    d["type"] == "device" && d["device"] == "fp1" && d["state"] == state
}

fn receipt() -> Value {
    json!({
        "lines": [{"name": "Chleb", "quantity": 1, "unit_price": 450, "vat": "A"}],
        "payments": [{"method": "cash", "amount": 450}]
    })
}

#[test]
fn events_follow_devices_and_jobs_and_resume_after_a_reconnect() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let d = Daemon::start(
        dir.path(),
        &config_text(
            dir.path(),
            &sim.link.display().to_string(),
            "status_poll = 0.2",
        ),
    );
    d.wait_ready();

    let s = Stream::open(&d.socket, None);
    assert_eq!(s.status, 200);
    assert!(
        s.content_type.starts_with("text/event-stream"),
        "{}",
        s.content_type
    );

    // Paper out and back.
    sim.control("paper out");
    let first = s.until(Duration::from_secs(10), "paper_out", |d| {
        is_device(d, "paper_out")
    });
    let out = first.last().unwrap();
    assert_eq!(out.event.as_deref(), Some("device"));
    let out_data = data(out);
    assert_eq!(out_data["kind"], "fiscal_printer");
    assert!(
        out_data["detail"].as_str().unwrap_or("").contains("paper"),
        "{out_data}"
    );
    let out_id = id(out);
    sim.control("paper back");
    let mut after_out = s.until(Duration::from_secs(10), "ready again", |d| {
        is_device(d, "ready")
    });

    // A receipt: queued, running, done, with the printer busy in between.
    let (status, job) = d.post("/v1/receipts?wait=20", &receipt());
    assert_eq!(status, 200, "{job}");
    let job_id = job["id"].as_i64().unwrap();
    after_out.extend(s.until(Duration::from_secs(20), "the job to be done", |d| {
        d["type"] == "job" && d["job"] == job_id && d["state"] == "done"
    }));
    after_out.extend(s.drain(Duration::from_millis(800)));

    // Ids increase; the job's states come in order; the device went busy and back.
    let ids: Vec<u64> = after_out.iter().map(id).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids[0] > out_id);
    let job_states: Vec<String> = after_out
        .iter()
        .map(data)
        .filter(|d| d["type"] == "job" && d["job"] == job_id)
        .map(|d| {
            assert_eq!(d["kind"], "receipt");
            assert_eq!(d["device"], "fp1");
            d["state"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(job_states, ["queued", "running", "done"]);
    let device_states: Vec<String> = after_out
        .iter()
        .map(data)
        .filter(|d| d["type"] == "device")
        .map(|d| d["state"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(device_states.first().map(String::as_str), Some("ready"));
    assert!(
        device_states.iter().any(|s| s == "busy"),
        "{device_states:?}"
    );
    assert_eq!(device_states.last().map(String::as_str), Some("ready"));
    s.close();

    // Reconnect from the paper-out event: exactly the events missed after it.
    let again = Stream::open(&d.socket, Some(&out_id.to_string()));
    let replay = again.drain(Duration::from_millis(800));
    let got: Vec<(u64, String)> = replay.iter().map(|e| (id(e), e.data.clone())).collect();
    let want: Vec<(u64, String)> = after_out.iter().map(|e| (id(e), e.data.clone())).collect();
    assert_eq!(got, want);
    // From the last one: nothing.
    let last = want.last().unwrap().0;
    let none = Stream::open(&d.socket, Some(&last.to_string()));
    assert!(none.drain(Duration::from_millis(500)).is_empty());
    // From an id the daemon no longer has (or never had): reset first.
    let old = Stream::open(&d.socket, Some("1"));
    let reset = old.until(Duration::from_secs(5), "reset", |_| true);
    assert_eq!(reset[0].event.as_deref(), Some("reset"));
    assert_eq!(id(&reset[0]), last);

    // Paper low (`sdev pe`), and back.
    sim.control("paper out after 1000");
    again.until(Duration::from_secs(10), "paper_low", |d| {
        is_device(d, "paper_low")
    });
    sim.control("paper back");
    again.until(Duration::from_secs(10), "ready after paper low", |d| {
        is_device(d, "ready")
    });

    // Ids keep increasing across a restart.
    let mut d = d;
    d.terminate();
    d.spawn();
    d.wait_ready();
    let after = Stream::open(&d.socket, Some(&last.to_string()));
    let first = after.until(Duration::from_secs(5), "reset after a restart", |_| true);
    assert_eq!(first[0].event.as_deref(), Some("reset"));
    assert!(id(&first[0]) > last, "{} <= {last}", id(&first[0]));
}

/// Parse Prometheus text exposition: `(name, labels, value)` for every sample; panics on a
/// malformed line.
fn parse_prometheus(text: &str) -> Vec<(String, String, f64)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let words: Vec<&str> = rest.split_whitespace().collect();
            assert!(
                matches!(words.first(), Some(&"HELP") | Some(&"TYPE")),
                "bad comment {line:?}"
            );
            if words[0] == "TYPE" {
                assert!(
                    matches!(
                        words.get(2),
                        Some(&"counter" | &"gauge" | &"histogram" | &"summary" | &"untyped")
                    ),
                    "bad TYPE {line:?}"
                );
            }
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample line has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => {
                assert!(l.ends_with('}'), "bad labels in {line:?}");
                (n, l.trim_end_matches('}'))
            }
            None => (series, ""),
        };
        assert!(
            !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name in {line:?}"
        );
        out.push((name.to_string(), labels.to_string(), value));
    }
    out
}

#[test]
fn metrics_are_prometheus_text_with_every_family() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &sim.link.display().to_string(), ""),
    );
    d.wait_ready();
    // One lost reply, recovered with `rpt`: a retry.
    sim.control("drop 1");
    let (status, job) = d.post("/v1/receipts?wait=20", &receipt());
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "done", "{job}");

    let (status, body) = d.get("/metrics");
    assert_eq!(status, 200);
    let text = body.as_str().expect("text, not JSON").to_string();
    let samples = parse_prometheus(&text);
    let value = |name: &str, labels: &[&str]| -> Option<f64> {
        samples
            .iter()
            .find(|(n, l, _)| n == name && labels.iter().all(|x| l.contains(x)))
            .map(|s| s.2)
    };
    for family in [
        "fiscald_job_transitions_total",
        "fiscald_device_state",
        "fiscald_queue_depth",
        "fiscald_link_bytes_total",
        "fiscald_link_frames_total",
        "fiscald_link_frame_errors_total",
        "fiscald_retries_total",
        "fiscald_reconciliations_total",
        "fiscald_journal_commit_seconds_bucket",
        "fiscald_journal_commit_seconds_sum",
        "fiscald_journal_commit_seconds_count",
        "fiscald_event_subscribers",
    ] {
        assert!(
            samples.iter().any(|(n, _, _)| n == family),
            "{family} missing from:\n{text}"
        );
    }
    assert_eq!(
        value(
            "fiscald_job_transitions_total",
            &[r#"kind="receipt""#, r#"state="done""#]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "fiscald_device_state",
            &[r#"device="fp1""#, r#"state="ready""#]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            "fiscald_device_state",
            &[r#"device="fp1""#, r#"state="paper_out""#]
        ),
        Some(0.0)
    );
    assert_eq!(
        value("fiscald_queue_depth", &[r#"device="fp1""#]),
        Some(0.0)
    );
    assert!(
        value(
            "fiscald_link_bytes_total",
            &[r#"device="fp1""#, r#"direction="out""#]
        )
        .unwrap()
            > 0.0
    );
    assert!(
        value(
            "fiscald_link_frames_total",
            &[r#"device="fp1""#, r#"direction="in""#]
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(
        value(
            "fiscald_retries_total",
            &[r#"device="fp1""#, r#"reason="rpt""#]
        ),
        Some(1.0),
        "{text}"
    );
    assert!(value("fiscald_journal_commit_seconds_count", &[r#"op="finish""#]).unwrap() >= 1.0);
    assert!(
        value(
            "fiscald_journal_commit_seconds_count",
            &[r#"op="submit_batch""#]
        )
        .unwrap()
            >= 1.0
    );
}
