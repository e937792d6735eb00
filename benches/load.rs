//! `cargo bench --bench load`: 64 concurrent clients submit receipts and poll their jobs
//! against two emulated printers (each its own process on a PTY at 115200 baud). Checks and
//! prints:
//! - no errors: every request is answered 200/202, every job ends `done`, and each
//!   emulator's fiscal memory holds exactly the receipts submitted to it (matched by unique
//!   line names, and by receipt number);
//! - bounded memory: the daemon's `VmRSS`, sampled every 100 ms, peaks under 64 MiB;
//! - FIFO per printer: receipt numbers increase with job ids;
//! - isolation: with printer A held at paper out, printer B's p50 end-to-end latency stays
//!   within 2× of its latency with both printing; after paper back, A's queue drains.
//!
//! Without `--bench` (as `cargo test --benches` runs it) it does a short version.

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Client, Daemon, Sim, config_text, wait_until};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const PRINTERS: [&str; 2] = ["fp1", "fp2"];
const RSS_LIMIT_KIB: u64 = 64 * 1024;
/// Short pollers ask for their job this often; the others long-poll with `?wait=`.
const POLL_EVERY: Duration = Duration::from_millis(100);

/// One receipt as the client saw it.
#[derive(Debug, Clone)]
struct Rec {
    printer: &'static str,
    name: String,
    id: i64,
    submitted: Instant,
    accept: Duration,
    /// Submission to the client seeing `done`; zero when the job was not waited for inline.
    e2e: Duration,
    finished: Instant,
    receipt_number: u64,
}

/// Counters shared by every client.
#[derive(Default)]
struct Stats {
    requests: AtomicU64,
    errors: std::sync::Mutex<Vec<String>>,
}

impl Stats {
    fn error(&self, e: String) {
        let mut errors = self.errors.lock().unwrap();
        if errors.len() < 20 {
            eprintln!("load: {e}");
        }
        errors.push(e);
    }
}

fn receipt(printer: &str, name: &str) -> Vec<u8> {
    json!({
        "printer": printer,
        "lines": [
            {"name": name, "quantity": "1", "unit_price": 1299, "vat": "A"},
            {"name": "Woda mineralna 1.5l", "quantity": "2", "unit_price": 249, "vat": "B"},
            {"name": "Chleb żytni", "quantity": "1.25", "unit_price": 800, "vat": "C"}
        ],
        "payments": [{"method": "cash", "amount": 3000}]
    })
    .to_string()
    .into_bytes()
}

async fn send(
    client: &mut Client,
    stats: &Stats,
    method: &str,
    path: &str,
    body: Option<Vec<u8>>,
) -> Option<(u16, Value)> {
    stats.requests.fetch_add(1, Ordering::Relaxed);
    let headers: &[(&str, &str)] = if body.is_some() {
        &[("content-type", "application/json")]
    } else {
        &[]
    };
    match client.send(method, path, headers, body).await {
        Ok((status, v)) if status == 200 || status == 202 => Some((status, v)),
        Ok((status, v)) => {
            stats.error(format!("{method} {path}: {status} {v}"));
            None
        }
        Err(e) => {
            stats.error(format!("{method} {path}: {e}"));
            None
        }
    }
}

/// Submit one receipt: (job id, accept latency).
async fn submit(
    client: &mut Client,
    stats: &Stats,
    printer: &'static str,
    name: &str,
) -> Option<(i64, Instant, Duration)> {
    let t0 = Instant::now();
    let (status, v) = send(
        client,
        stats,
        "POST",
        "/v1/receipts",
        Some(receipt(printer, name)),
    )
    .await?;
    let accept = t0.elapsed();
    if status != 202 {
        stats.error(format!("POST {name}: {status}, expected 202: {v}"));
    }
    match v["id"].as_i64() {
        Some(id) => Some((id, t0, accept)),
        None => {
            stats.error(format!("POST {name}: no job id in {v}"));
            None
        }
    }
}

/// Poll a job until it ends; `long` uses `?wait=`, otherwise a plain GET every [`POLL_EVERY`].
async fn finish(client: &mut Client, stats: &Stats, id: i64, long: bool) -> Option<Value> {
    let path = if long {
        format!("/v1/jobs/{id}?wait=30")
    } else {
        format!("/v1/jobs/{id}")
    };
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let (_, job) = send(client, stats, "GET", &path, None).await?;
        match job["state"].as_str() {
            Some("queued" | "running") => {}
            Some("done") => return Some(job),
            _ => {
                stats.error(format!("job {id} ended {job}"));
                return None;
            }
        }
        if Instant::now() > deadline {
            stats.error(format!("job {id} still {} after 300 s", job["state"]));
            return None;
        }
        if !long {
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

fn rec_of(
    printer: &'static str,
    name: String,
    (id, submitted, accept): (i64, Instant, Duration),
    job: &Value,
    stats: &Stats,
) -> Rec {
    let finished = Instant::now();
    let receipt_number = job["result"]["receipt_number"].as_u64().unwrap_or_else(|| {
        stats.error(format!("job {id}: no receipt_number in {job}"));
        0
    });
    if job["printer"] != printer {
        stats.error(format!("job {id} ran on {} not {printer}", job["printer"]));
    }
    Rec {
        printer,
        name,
        id,
        submitted,
        accept,
        e2e: finished - submitted,
        finished,
        receipt_number,
    }
}

/// A POS till: `n` receipts one after another, each submitted then polled until done.
async fn till(
    socket: PathBuf,
    stats: Arc<Stats>,
    printer: &'static str,
    tag: String,
    n: usize,
    long: bool,
) -> Vec<Rec> {
    let mut client = match Client::connect(&socket).await {
        Ok(c) => c,
        Err(e) => {
            stats.error(format!("connect: {e}"));
            return Vec::new();
        }
    };
    let mut recs = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("Load {tag} {i:03}");
        let Some(sub) = submit(&mut client, &stats, printer, &name).await else {
            continue;
        };
        if let Some(job) = finish(&mut client, &stats, sub.0, long).await {
            recs.push(rec_of(printer, name, sub, &job, &stats));
        }
    }
    recs
}

/// A till that submits `n` receipts without waiting; returns what it submitted.
async fn submit_only(
    socket: PathBuf,
    stats: Arc<Stats>,
    printer: &'static str,
    tag: String,
    n: usize,
) -> Vec<(String, (i64, Instant, Duration))> {
    let mut client = match Client::connect(&socket).await {
        Ok(c) => c,
        Err(e) => {
            stats.error(format!("connect: {e}"));
            return Vec::new();
        }
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let name = format!("Load {tag} {i:03}");
        if let Some(sub) = submit(&mut client, &stats, printer, &name).await {
            out.push((name, sub));
        }
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn sorted(it: impl Iterator<Item = Duration>) -> Vec<Duration> {
    let mut v: Vec<Duration> = it.collect();
    v.sort();
    v
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `VmRSS` and `VmHWM` of `pid`, in KiB.
fn rss(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Samples the daemon's `VmRSS` every 100 ms until dropped.
struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<(u64, usize)>>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let (mut peak, mut samples) = (0, 0);
            while !flag.load(Ordering::Relaxed) {
                if let Some((now, _)) = rss(pid) {
                    peak = peak.max(now);
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (peak, samples)
        });
        RssSampler {
            stop,
            handle: Some(handle),
        }
    }

    /// (peak VmRSS KiB, samples)
    fn finish(mut self) -> (u64, usize) {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.take().unwrap().join().unwrap()
    }
}

fn second_printer(port: &Path) -> String {
    format!(
        "\n[[printer]]\nid = \"fp2\"\nprotocol = \"posnet\"\nport = \"{}\"\nbaud = 115200\ncommand_timeout = 1.5\npaper_wait = 300\n",
        port.display()
    )
}

fn job_count(d: &Daemon, state: &str) -> usize {
    let (_, v) = d.get(&format!("/v1/jobs?state={state}&limit=1000"));
    v["jobs"].as_array().map_or(usize::MAX, Vec::len)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` passes nothing: run briefly.
    let quick = !std::env::args().any(|a| a == "--bench");
    // Receipts per till while both printers print, per B till while A is stalled, and
    // queued per A till during the stall.
    let (per_till, per_b_stalled, per_a_stalled) = if quick { (2, 1, 1) } else { (12, 8, 4) };

    let dir = tempfile::tempdir().unwrap();
    let (dir_a, dir_b) = (dir.path().join("a"), dir.path().join("b"));
    std::fs::create_dir_all(&dir_a).unwrap();
    std::fs::create_dir_all(&dir_b).unwrap();
    let sim_a = Sim::start(&dir_a, &["--baud", "115200"]);
    let sim_b = Sim::start(&dir_b, &["--baud", "115200"]);
    let cfg = config_text(
        dir.path(),
        &sim_a.link.display().to_string(),
        &second_printer(&sim_b.link),
    )
    .replace("paper_wait = 60", "paper_wait = 300");
    let d = Daemon::start(dir.path(), &cfg);
    wait_until(Duration::from_secs(30), "both printers ready", || {
        let (_, v) = d.get("/v1/devices");
        let devs = v["devices"].as_array()?;
        (devs.len() == 2 && devs.iter().all(|x| x["state"] == "ready")).then_some(())
    });
    let pid = d.pid().expect("daemon pid");
    let (rss_idle, _) = rss(pid).expect("daemon /proc status");
    let sampler = RssSampler::start(pid);
    let stats = Arc::new(Stats::default());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let socket = d.socket.clone();
    println!(
        "fiscald load test{}: {CLIENTS} concurrent clients, 2 emulated printers at 115200 baud (own processes, real PTYs)",
        if quick { " (quick)" } else { "" }
    );
    let t_start = Instant::now();

    // Phase 1: both printers print; tills alternate between them, and between long-polling
    // and short-polling their jobs.
    let phase1: Vec<Rec> = rt.block_on(async {
        let tasks: Vec<_> = (0..CLIENTS)
            .map(|c| {
                let printer = PRINTERS[c % 2];
                let long = (c / 2) % 2 == 0;
                tokio::spawn(till(
                    socket.clone(),
                    stats.clone(),
                    printer,
                    format!("{printer} t{c:02}"),
                    per_till,
                    long,
                ))
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let phase1_time = t_start.elapsed();

    // Phase 2: A (fp1) out of paper with a queue of receipts; B (fp2) serves the same 32
    // tills as before.
    sim_a.control("paper out");
    let t_stall = Instant::now();
    let (stalled_a, phase2_b, b_time) = rt.block_on(async {
        let a_tasks: Vec<_> = (0..CLIENTS / 2)
            .map(|c| {
                tokio::spawn(submit_only(
                    socket.clone(),
                    stats.clone(),
                    "fp1",
                    format!("fp1 s{c:02}"),
                    per_a_stalled,
                ))
            })
            .collect();
        let mut stalled = Vec::new();
        for t in a_tasks {
            stalled.extend(t.await.unwrap());
        }
        let t_b = Instant::now();
        let b_tasks: Vec<_> = (0..CLIENTS / 2)
            .map(|c| {
                tokio::spawn(till(
                    socket.clone(),
                    stats.clone(),
                    "fp2",
                    format!("fp2 s{c:02}"),
                    per_b_stalled,
                    c % 2 == 0,
                ))
            })
            .collect();
        let mut b = Vec::new();
        for t in b_tasks {
            b.extend(t.await.unwrap());
        }
        (stalled, b, t_b.elapsed())
    });
    // Nothing of A's queue may have printed while it had no paper.
    let (_, devs) = d.get("/v1/devices");
    let a_dev = devs["devices"]
        .as_array()
        .and_then(|l| l.iter().find(|x| x["id"] == "fp1").cloned())
        .unwrap_or_default();
    let a_state = a_dev["state"].as_str().unwrap_or("?").to_string();
    let a_depth = a_dev["queue_depth"].as_u64().unwrap_or(0);
    let a_printed_while_stalled = sim_a
        .receipts()
        .iter()
        .filter(|r| {
            r["lines"][0]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("Load fp1 s"))
        })
        .count();
    let stall_time = t_stall.elapsed();
    sim_a.control("paper back");
    let t_back = Instant::now();
    let drained_a: Vec<Rec> = rt.block_on(async {
        let tasks: Vec<_> = stalled_a
            .chunks(per_a_stalled.max(1))
            .enumerate()
            .map(|(i, chunk)| {
                let chunk = chunk.to_vec();
                let socket = socket.clone();
                let stats = stats.clone();
                tokio::spawn(async move {
                    let mut client = match Client::connect(&socket).await {
                        Ok(c) => c,
                        Err(e) => {
                            stats.error(format!("connect: {e}"));
                            return Vec::new();
                        }
                    };
                    let mut recs = Vec::new();
                    for (name, sub) in chunk {
                        if let Some(job) = finish(&mut client, &stats, sub.0, i % 2 == 0).await {
                            recs.push(rec_of("fp1", name, sub, &job, &stats));
                        }
                    }
                    recs
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all
    });
    let drain_time = t_back.elapsed();
    let total_time = t_start.elapsed();
    let (rss_peak, rss_samples) = sampler.finish();
    let (rss_end, hwm) = rss(pid).expect("daemon /proc status");
    let (_, devs) = d.get("/v1/devices");
    let link_bytes: HashMap<String, u64> = devs["devices"]
        .as_array()
        .map(|l| {
            l.iter()
                .map(|x| {
                    let link = &x["link"];
                    (
                        x["id"].as_str().unwrap_or("").to_string(),
                        link["bytes_in"].as_u64().unwrap_or(0)
                            + link["bytes_out"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let open_jobs: usize = [
        "queued",
        "running",
        "failed",
        "needs_attention",
        "cancelled",
    ]
    .iter()
    .map(|s| job_count(&d, s))
    .sum();

    // ---- checks ----
    let mut failures: Vec<String> = Vec::new();
    let errors = stats.errors.lock().unwrap().clone();
    if !errors.is_empty() {
        failures.push(format!(
            "{} request errors, first: {}",
            errors.len(),
            errors[0]
        ));
    }
    if open_jobs != 0 {
        failures.push(format!("{open_jobs} jobs not done at the end"));
    }
    let all: Vec<&Rec> = phase1.iter().chain(&phase2_b).chain(&drained_a).collect();
    let expected = CLIENTS * per_till + CLIENTS / 2 * (per_b_stalled + per_a_stalled);
    if all.len() != expected {
        failures.push(format!("{} receipts done, {expected} submitted", all.len()));
    }
    // Emulator memory: exactly the submitted receipts, with the numbers the jobs reported.
    for (printer, sim) in [("fp1", &sim_a), ("fp2", &sim_b)] {
        let memory: Vec<(String, u64)> = sim
            .receipts()
            .iter()
            .map(|r| {
                (
                    r["lines"][0]["name"].as_str().unwrap_or("").to_string(),
                    r["number"].as_u64().unwrap_or(0),
                )
            })
            .collect();
        let printed: HashMap<&str, u64> = memory.iter().map(|(n, k)| (n.as_str(), *k)).collect();
        let mine: Vec<&&Rec> = all.iter().filter(|r| r.printer == printer).collect();
        if printed.len() != memory.len() {
            failures.push(format!(
                "{printer}: {} receipts in memory but {} distinct names (a duplicate)",
                memory.len(),
                printed.len()
            ));
        }
        if memory.len() != mine.len() {
            failures.push(format!(
                "{printer}: {} receipts in the emulator's memory, {} jobs done",
                memory.len(),
                mine.len()
            ));
        }
        for r in &mine {
            match printed.get(r.name.as_str()) {
                None => failures.push(format!(
                    "{printer}: {:?} (job {}) not in memory",
                    r.name, r.id
                )),
                Some(&n) if n != r.receipt_number => failures.push(format!(
                    "{printer}: {:?} (job {}) is receipt {n} in memory, job says {}",
                    r.name, r.id, r.receipt_number
                )),
                Some(_) => {}
            }
        }
        // FIFO: receipt numbers increase with job ids.
        let by_id: BTreeMap<i64, u64> = mine.iter().map(|r| (r.id, r.receipt_number)).collect();
        let inversions = by_id
            .values()
            .zip(by_id.values().skip(1))
            .filter(|(a, b)| a >= b)
            .count();
        if inversions != 0 {
            failures.push(format!(
                "{printer}: {inversions} FIFO inversions (receipt numbers not increasing with job ids)"
            ));
        }
    }
    if rss_peak > RSS_LIMIT_KIB {
        failures.push(format!(
            "peak VmRSS {:.1} MiB over {} MiB",
            rss_peak as f64 / 1024.0,
            RSS_LIMIT_KIB / 1024
        ));
    }
    if a_printed_while_stalled != 0 {
        failures.push(format!(
            "{a_printed_while_stalled} of A's receipts printed while it had no paper"
        ));
    }

    // ---- figures ----
    println!(
        "requests: {} ({} receipts, {} errors); jobs per printer: fp1 {}, fp2 {}; total time {:.1} s",
        stats.requests.load(Ordering::Relaxed),
        all.len(),
        errors.len(),
        all.iter().filter(|r| r.printer == "fp1").count(),
        all.iter().filter(|r| r.printer == "fp2").count(),
        total_time.as_secs_f64()
    );
    println!(
        "both printing: {} receipts in {:.1} s",
        phase1.len(),
        phase1_time.as_secs_f64()
    );
    for printer in PRINTERS {
        let mine: Vec<&Rec> = phase1.iter().filter(|r| r.printer == printer).collect();
        let first = mine.iter().map(|r| r.submitted).min();
        let last = mine.iter().map(|r| r.finished).max();
        if let (Some(first), Some(last)) = (first, last) {
            let span = last - first;
            println!(
                "both printing, {printer}: {} receipts in {:.1} s, {:.1} receipts/s",
                mine.len(),
                span.as_secs_f64(),
                mine.len() as f64 / span.as_secs_f64()
            );
        }
    }
    for printer in PRINTERS {
        let n = all.iter().filter(|r| r.printer == printer).count().max(1) as u64;
        let bytes = link_bytes.get(printer).copied().unwrap_or(0);
        // 10 bits a byte at 115200 baud, both directions (status polls included).
        println!(
            "{printer} line: {bytes} bytes, {} a receipt, {:.1} ms of wire time a receipt (the line's limit: {:.1} receipts/s)",
            bytes / n,
            (bytes / n) as f64 * 10.0 / 115.2,
            115_200.0 / 10.0 / (bytes / n).max(1) as f64
        );
    }
    let acc = sorted(all.iter().map(|r| r.accept));
    println!(
        "accept latency (202), {} receipts: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        acc.len(),
        ms(percentile(&acc, 0.5)),
        ms(percentile(&acc, 0.99)),
        ms(acc.last().copied().unwrap_or_default())
    );
    let e2e = sorted(phase1.iter().map(|r| r.e2e));
    println!(
        "end-to-end latency (submit to done seen; {CLIENTS} tills, one receipt at a time, half polling every {} ms), {} receipts: p50 {:.0} ms, p99 {:.0} ms",
        POLL_EVERY.as_millis(),
        e2e.len(),
        ms(percentile(&e2e, 0.5)),
        ms(percentile(&e2e, 0.99))
    );
    let b_normal = sorted(phase1.iter().filter(|r| r.printer == "fp2").map(|r| r.e2e));
    let b_stalled = sorted(phase2_b.iter().map(|r| r.e2e));
    let (p50_normal, p50_stalled) = (percentile(&b_normal, 0.5), percentile(&b_stalled, 0.5));
    println!(
        "isolation: fp2 end-to-end p50 {:.0} ms (p99 {:.0} ms) with fp1 printing, p50 {:.0} ms (p99 {:.0} ms; {} receipts in {:.1} s, {:.1}/s) with fp1 out of paper ({}, queue {a_depth}); ratio {:.2}",
        ms(p50_normal),
        ms(percentile(&b_normal, 0.99)),
        ms(p50_stalled),
        ms(percentile(&b_stalled, 0.99)),
        b_stalled.len(),
        b_time.as_secs_f64(),
        b_stalled.len() as f64 / b_time.as_secs_f64(),
        a_state,
        p50_stalled.as_secs_f64() / p50_normal.as_secs_f64().max(1e-9)
    );
    println!(
        "fp1 held {:.1} s with paper out: {} queued receipts printed 0 while stalled, {} after paper back, drained in {:.1} s",
        stall_time.as_secs_f64(),
        stalled_a.len(),
        drained_a.len(),
        drain_time.as_secs_f64()
    );
    println!(
        "daemon memory: VmRSS idle {:.1} MiB, peak {:.1} MiB ({rss_samples} samples every 100 ms), at the end {:.1} MiB; VmHWM {:.1} MiB (limit {} MiB)",
        rss_idle as f64 / 1024.0,
        rss_peak as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        hwm as f64 / 1024.0,
        RSS_LIMIT_KIB / 1024
    );
    if p50_stalled > p50_normal * 2 {
        failures.push(format!(
            "fp2's p50 grew from {:.0} ms to {:.0} ms while fp1 was stalled",
            ms(p50_normal),
            ms(p50_stalled)
        ));
    }
    println!(
        "checks: no errors, all done, emulator memories exact, FIFO per printer, bounded memory, isolation: {}",
        if failures.is_empty() { "ok" } else { "FAILED" }
    );
    if !failures.is_empty() {
        for f in &failures {
            eprintln!("FAILED: {f}");
        }
        // Keep the logs for a look.
        let kept = dir.keep();
        eprintln!("logs kept in {}", kept.display());
        std::process::exit(1);
    }
    drop(d);
}
