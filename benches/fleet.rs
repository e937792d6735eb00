//! `cargo bench --bench fleet`: the fleet link's figures against Debian's `nats-server`
//! (JetStream, file store, loopback):
//! - publish throughput: the publisher task sending an outbox of device events (written
//!   through the journal, as the daemon writes them), events per second until the broker
//!   acknowledged the last one;
//! - backlog drain rate: the daemon prints receipts with the broker down, then the broker
//!   comes back, and the backlog (every job event of those receipts) drains: events per
//!   second from the broker's start to an empty outbox, as `/v1/health` reports it.
//!
//! Without `--bench` (as `cargo test --benches` runs it) it does a short version. Without
//! `nats-server` it prints SKIP (and fails with `CI=true`).

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Daemon, Sim, config_text, free_tcp_port, wait_until};
use fiscald::device::DeviceState;
use fiscald::fleet::event::DeviceEvent;
use serde_json::json;
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

fn broker(bin: &str, dir: &Path, port: u16) -> Child {
    let child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("nats"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start nats-server");
    wait_until(Duration::from_secs(20), "nats-server", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).ok()
    });
    child
}

fn fleet_toml(port: u16) -> String {
    format!("nats = \"nats://127.0.0.1:{port}\"\ntill = \"bench-till\"\n")
}

/// The publisher alone: `n` outbox rows to the broker.
fn publish_throughput(bin: &str, n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let mut b = broker(bin, dir.path(), port);
    let cfg: fiscald::fleet::FleetConfig = toml::from_str(&fleet_toml(port)).unwrap();
    let journal = fiscald::journal::Journal::open(&dir.path().join("j.db")).unwrap();
    journal
        .enable_outbox(&cfg.till, cfg.max_rows, cfg.max_bytes)
        .unwrap();
    for i in 0..n {
        journal
            .record_device_state(DeviceEvent {
                device: "fp1".into(),
                kind: "fiscal_printer",
                state: if i % 2 == 0 {
                    DeviceState::Ready
                } else {
                    DeviceState::Busy
                },
                detail: Some(format!("bench event {i}")),
            })
            .unwrap();
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let status = std::sync::Arc::new(fiscald::fleet::FleetStatus::new(&cfg.till, &cfg.stream));
    let t0 = Instant::now();
    let task = rt.spawn(fiscald::fleet::publisher::run(
        journal.clone(),
        cfg,
        status,
        shutdown.clone(),
    ));
    wait_until(Duration::from_secs(300), "the outbox to drain", || {
        (journal.outbox_stats().unwrap().backlog == 0).then_some(())
    });
    let secs = t0.elapsed().as_secs_f64();
    shutdown.cancel();
    let _ = rt.block_on(task);
    let _ = b.kill();
    let _ = b.wait();
    println!(
        "fleet publish throughput: {n} events in {secs:.2} s = {:.0} events/s (one in flight, acked, marked sent)",
        n as f64 / secs
    );
}

/// The daemon's backlog after an outage: `receipts` receipts printed with the broker down.
fn drain_rate(bin: &str, receipts: usize) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_tcp_port();
    let sim = Sim::start(dir.path(), &[]);
    let mut cfg = config_text(dir.path(), &sim.link.display().to_string(), "");
    cfg.push_str(&format!("\n[fleet]\n{}", fleet_toml(port)));
    let mut d = Daemon::start(dir.path(), &cfg);
    d.wait_ready();
    for i in 0..receipts {
        let body = json!({
            "lines": [{"name": format!("Bench {i}"), "quantity": "1", "unit_price": 100 + i, "vat": "A"}],
            "payments": [{"method": "cash", "amount": 100 + i}]
        });
        let (status, job) = d.post("/v1/receipts?wait=30", &body);
        assert_eq!(job["state"], "done", "{status} {job}");
    }
    let (_, h) = d.get("/v1/health");
    let backlog = h["fleet"]["backlog"].as_u64().unwrap();
    let t0 = Instant::now();
    let mut b = broker(bin, dir.path(), port);
    wait_until(Duration::from_secs(300), "the backlog to drain", || {
        let (_, h) = d.get("/v1/health");
        (h["fleet"]["backlog"] == 0 && h["fleet"]["connected"] == true).then_some(())
    });
    let secs = t0.elapsed().as_secs_f64();
    d.terminate();
    let _ = b.kill();
    let _ = b.wait();
    println!(
        "fleet backlog drain: {backlog} events ({receipts} receipts) in {secs:.2} s from the broker's start = {:.0} events/s (includes the reconnect back-off)",
        backlog as f64 / secs
    );
}

fn main() {
    let quick = !std::env::args().any(|a| a == "--bench");
    let Some(bin) = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("nats-server is not installed, and CI=true: .ci/run must install it");
        }
        println!("SKIP fleet bench: nats-server is not installed (apt-get install nats-server)");
        return;
    };
    publish_throughput(bin, if quick { 300 } else { 5000 });
    drain_rate(bin, if quick { 5 } else { 100 });
}
