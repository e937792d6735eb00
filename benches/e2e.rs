//! `cargo bench --bench e2e`: end-to-end figures against the emulator (its own process,
//! emulating the line speed, each direction on its own). Prints:
//! - a 20-line receipt's end-to-end time (API request to job done), side by side with the
//!   raw npm driver `posnetjs` printing the same receipt on an identical emulated printer
//!   (their ratio), and over the full-duplex limit of fiscald's own bytes
//!   (max(bytes out, bytes in) × 10 / baud), at 9600 and 115200 baud;
//! - the same receipt on a Novitus XML printer at 9600 baud, over the wire time of its bytes;
//! - the API's accept latency (202 for a receipt, journal fsync included), p50/p99, with
//!   8 concurrent clients;
//! - the daemon's idle resident memory.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Daemon, Sim, ZvtSim, config_text, terminal_config};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn receipt(lines: usize, tag: &str) -> Value {
    let lines: Vec<Value> = (0..lines)
        .map(|i| json!({"name": format!("Towar {tag} {i:02}"), "quantity": "1", "unit_price": 1234, "vat": "A"}))
        .collect();
    let total = 1234 * lines.len() as u64;
    json!({"lines": lines, "payments": [{"method": "cash", "amount": total}]})
}

fn link_bytes(d: &Daemon) -> u64 {
    let (out, inn) = link_directions(d);
    out + inn
}

/// The printer link's bytes out and in so far.
fn link_directions(d: &Daemon) -> (u64, u64) {
    let (_, v) = d.get("/v1/devices");
    let link = &v["devices"][0]["link"];
    (
        link["bytes_out"].as_u64().unwrap_or(0),
        link["bytes_in"].as_u64().unwrap_or(0),
    )
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// `posnetjs` printing the 20-line receipt `runs` times on its own emulator at `baud`: the
/// median milliseconds, or why it could not run.
fn posnetjs_ms(baud: u32, runs: usize) -> Result<f64, String> {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/posnetjs");
    if !here.join("node_modules/posnetjs").is_dir() {
        return Err("posnetjs is not installed (cd tests/conformance/posnetjs && npm ci)".into());
    }
    let dir = tempfile::tempdir().unwrap();
    let baud_s = baud.to_string();
    let sim = Sim::start(dir.path(), &["--baud", &baud_s]);
    let mut times = Vec::new();
    for _ in 0..runs {
        let out = std::process::Command::new("node")
            .arg(here.join("bench.mjs"))
            .arg(&sim.link)
            .arg(&baud_s)
            .arg("20")
            .output()
            .map_err(|e| format!("node: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "posnetjs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        times.push(v["ms"].as_f64().unwrap_or(f64::NAN));
    }
    assert_eq!(sim.receipts().len(), runs, "posnetjs printed every receipt");
    Ok(median(times))
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn wire_ratio(baud: u32, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let baud_s = baud.to_string();
    let sim = Sim::start(dir.path(), &["--baud", &baud_s]);
    let cfg = config_text(dir.path(), &sim.link.display().to_string(), "").replace(
        "baud = 115200",
        &format!("baud = {baud}\nstatus_poll = 3600"),
    );
    let d = Daemon::start(dir.path(), &cfg);
    d.wait_ready();
    // Warm up: one receipt.
    let (_, j) = d.post("/v1/receipts?wait=60", &receipt(20, "warm"));
    assert_eq!(j["state"], "done", "{j}");
    let (mut times, mut limits) = (Vec::new(), Vec::new());
    let mut last = (0, 0);
    for run in 0..runs {
        let (out0, in0) = link_directions(&d);
        let t0 = Instant::now();
        let (status, j) = d.post("/v1/receipts?wait=60", &receipt(20, &run.to_string()));
        let elapsed = t0.elapsed();
        assert_eq!((status, j["state"].as_str()), (200, Some("done")), "{j}");
        let (out1, in1) = link_directions(&d);
        let (out, inn) = (out1 - out0, in1 - in0);
        times.push(elapsed.as_secs_f64() * 1e3);
        limits.push((out.max(inn) * 10) as f64 * 1e3 / f64::from(baud));
        last = (out, inn);
    }
    drop(d);
    drop(sim);
    let (ms, limit) = (median(times), median(limits));
    let js = posnetjs_ms(baud, runs);
    let (js_text, ratio_text, meets_js) = match &js {
        Ok(js) => (
            format!("{js:.1} ms"),
            format!("{:.3}", ms / js),
            if baud <= 9600 {
                ms / js <= 0.9
            } else {
                ms <= *js
            },
        ),
        Err(why) => (format!("not run: {why}"), "-".into(), false),
    };
    println!(
        "20-line receipt at {baud:>6} baud: fiscald {ms:.1} ms, posnetjs {js_text}, fiscald/posnetjs {ratio_text} (target {}); \
         full-duplex limit of fiscald's bytes {limit:.1} ms ({} B out, {} B in), fiscald/limit {:.3}{}",
        if baud <= 9600 { "≤ 0.90" } else { "≤ 1.00" },
        last.0,
        last.1,
        ms / limit,
        if baud <= 9600 {
            " (target ≤ 1.15)"
        } else {
            ""
        },
    );
    println!(
        "  targets at {baud}: {}",
        if meets_js && (baud > 9600 || ms / limit <= 1.15) {
            "met"
        } else {
            "NOT met"
        }
    );
}

/// The 20-line receipt on a printer of another family (`protocol` `novitus-xml` or
/// `thermal`) at `baud`: end-to-end time over the wire time of its bytes (both the
/// full-duplex limit, max(out, in), and out + in, since every packet or command waits for
/// its reply), and the frames it took.
fn family_ratio(protocol: &'static str, label: &str, baud: u32, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let baud_s = baud.to_string();
    let sim = Sim::start_family(dir.path(), protocol, &["--baud", &baud_s]);
    let cfg = config_text(dir.path(), &sim.link.display().to_string(), "")
        .replace(
            "protocol = \"posnet\"",
            &format!("protocol = \"{protocol}\""),
        )
        .replace(
            "baud = 115200",
            &format!("baud = {baud}\nstatus_poll = 3600"),
        );
    let d = Daemon::start(dir.path(), &cfg);
    d.wait_ready();
    let (_, j) = d.post("/v1/receipts?wait=60", &receipt(20, "warm"));
    assert_eq!(j["state"], "done", "{j}");
    let frames_out = |d: &Daemon| {
        let (_, v) = d.get("/v1/devices");
        v["devices"][0]["link"]["frames_out"].as_u64().unwrap_or(0)
    };
    let (mut times, mut limits, mut sums) = (Vec::new(), Vec::new(), Vec::new());
    let (mut last, mut packets) = ((0, 0), 0);
    for run in 0..runs {
        let ((out0, in0), f0) = (link_directions(&d), frames_out(&d));
        let t0 = Instant::now();
        let (status, j) = d.post("/v1/receipts?wait=60", &receipt(20, &run.to_string()));
        let elapsed = t0.elapsed();
        assert_eq!((status, j["state"].as_str()), (200, Some("done")), "{j}");
        let ((out1, in1), f1) = (link_directions(&d), frames_out(&d));
        let (out, inn) = (out1 - out0, in1 - in0);
        times.push(elapsed.as_secs_f64() * 1e3);
        limits.push((out.max(inn) * 10) as f64 * 1e3 / f64::from(baud));
        sums.push(((out + inn) * 10) as f64 * 1e3 / f64::from(baud));
        last = (out, inn);
        packets = f1 - f0;
    }
    let (ms, limit, sum) = (median(times), median(limits), median(sums));
    println!(
        "{label} 20-line receipt at {baud:>6} baud: fiscald {ms:.1} ms; wire time of its bytes {sum:.1} ms \
         ({} B out, {} B in, {packets} frames out), fiscald/wire {:.3}; full-duplex limit {limit:.1} ms, fiscald/limit {:.3}",
        last.0,
        last.1,
        ms / sum,
        ms / limit,
    );
}

fn device_bytes(d: &Daemon, kind: &str) -> u64 {
    let (_, v) = d.get("/v1/devices");
    let dev = v["devices"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["kind"] == kind).cloned())
        .unwrap_or_default();
    dev["link"]["bytes_in"].as_u64().unwrap_or(0) + dev["link"]["bytes_out"].as_u64().unwrap_or(0)
}

/// A card sale (payment on a serial ZVT terminal, then the fiscal receipt) at `baud` on
/// both lines: end-to-end time over the wire time of every byte on both lines.
fn card_sale_ratio(baud: u32, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let baud_s = baud.to_string();
    let printer = Sim::start(dir.path(), &["--baud", &baud_s]);
    let terminal_dir = dir.path().join("t");
    std::fs::create_dir_all(&terminal_dir).unwrap();
    let terminal = ZvtSim::start_with(&terminal_dir, true, &["--baud", &baud_s]);
    let mut cfg = config_text(dir.path(), &printer.link.display().to_string(), "").replace(
        "baud = 115200",
        &format!("baud = {baud}\nstatus_poll = 3600"),
    );
    cfg.push_str(
        &terminal_config(&terminal.port, &format!("baud = {baud}\nslip = \"none\""))
            .replace("transaction_timeout = 4", "transaction_timeout = 30"),
    );
    let d = Daemon::start(dir.path(), &cfg);
    d.wait_ready();
    let sale = |tag: &str| {
        json!({"lines": [{"name": format!("Kawa {tag}"), "quantity": "1", "unit_price": 1500, "vat": "A"},
                         {"name": "Ciastko", "quantity": "2", "unit_price": 450, "vat": "B"}],
               "payments": [{"method": "card", "amount": 2400}]})
    };
    let (_, j) = d.post("/v1/sales?wait=60", &sale("warm"));
    assert_eq!(j["state"], "done", "{j}");
    let mut ratios = Vec::new();
    let mut last = (Duration::ZERO, Duration::ZERO, 0);
    for run in 0..runs {
        let before = link_bytes(&d) + device_bytes(&d, "payment_terminal");
        let t0 = Instant::now();
        let (status, j) = d.post("/v1/sales?wait=60", &sale(&run.to_string()));
        let elapsed = t0.elapsed();
        assert_eq!((status, j["state"].as_str()), (200, Some("done")), "{j}");
        let bytes = link_bytes(&d) + device_bytes(&d, "payment_terminal") - before;
        let wire = Duration::from_nanos(bytes * 10 * 1_000_000_000 / u64::from(baud));
        ratios.push(elapsed.as_secs_f64() / wire.as_secs_f64());
        last = (elapsed, wire, bytes);
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "card sale at {baud:>6} baud:        end-to-end {:>7.1} ms, wire {:>7.1} ms ({} bytes); ratio median {:.3} (min {:.3}, max {:.3}, {runs} runs)",
        last.0.as_secs_f64() * 1e3,
        last.1.as_secs_f64() * 1e3,
        last.2,
        ratios[ratios.len() / 2],
        ratios[0],
        ratios[ratios.len() - 1],
    );
}

fn accept_latency(clients: usize, per_client: usize) {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &sim.link.display().to_string(), ""),
    );
    d.wait_ready();
    let socket = d.socket.clone();
    let handles: Vec<_> = (0..clients)
        .map(|c| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let mut client = common::Client::connect(&socket).await.unwrap();
                    let mut lat = Vec::with_capacity(per_client);
                    for i in 0..per_client {
                        let body = receipt(3, &format!("{c}-{i}")).to_string().into_bytes();
                        let t0 = Instant::now();
                        let (status, _) = client
                            .send(
                                "POST",
                                "/v1/receipts",
                                &[("content-type", "application/json")],
                                Some(body),
                            )
                            .await
                            .unwrap();
                        lat.push(t0.elapsed());
                        assert_eq!(status, 202);
                    }
                    lat
                })
            })
        })
        .collect();
    let mut all: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    println!(
        "accept latency, {clients} concurrent clients, {} receipts: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        all.len(),
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
        all[all.len() - 1].as_secs_f64() * 1e3,
    );
}

fn idle_memory() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let d = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &sim.link.display().to_string(), ""),
    );
    d.wait_ready();
    let (_, j) = d.post("/v1/receipts?wait=60", &receipt(20, "mem"));
    assert_eq!(j["state"], "done");
    std::thread::sleep(Duration::from_secs(3));
    let pid = d.pid().expect("daemon pid");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    println!(
        "daemon idle resident memory: {:.1} MiB (VmRSS; peak VmHWM {:.1} MiB)",
        field("VmRSS:") as f64 / 1024.0,
        field("VmHWM:") as f64 / 1024.0
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing useful: run briefly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let runs = if quick { 1 } else { 7 };
    println!("fiscald end-to-end benchmark (emulator in its own process, real PTY)");
    // `cargo bench --bench e2e -- novitus-xml` (or `thermal`): that figure only.
    if std::env::args().any(|a| a == "novitus-xml") {
        family_ratio("novitus-xml", "Novitus XML", 9600, runs);
        return;
    }
    if std::env::args().any(|a| a == "thermal") {
        family_ratio("thermal", "Thermal", 9600, runs);
        return;
    }
    wire_ratio(9600, runs);
    wire_ratio(115_200, runs);
    card_sale_ratio(9600, runs);
    family_ratio("novitus-xml", "Novitus XML", 9600, runs);
    family_ratio("thermal", "Thermal", 9600, runs);
    accept_latency(8, if quick { 5 } else { 100 });
    idle_memory();
}
