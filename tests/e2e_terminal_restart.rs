//! The kill loop: four card sales posted at once, the daemon SIGKILLed at spread moments
//! of their flows (the terminal still sending slip lines, outcomes or completions), then
//! restarted. After every restart the terminal must register again within 30 s, the
//! interrupted sales must end (`done`, `failed` or `needs_attention`, never charged twice:
//! compared with the emulator's transactions), and the next sale must succeed. Over a
//! serial PTY at 9600 baud and over TCP, each emulator in its own process and on its own
//! pseudo-terminal.
//!
//! `FISCALD_KILL_LOOP_RUNS` sets the number of kills per transport (default 10, the
//! issue's figure is 30). The figures (runs, time to ready, outcomes) are printed; run with
//! `--nocapture` to see them.

mod common;

use common::{Daemon, Sim, ZvtSim, config_text, terminal_config, wait_until};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Sales posted at once before each kill.
const SALES_PER_RUN: usize = 4;
/// The longest time from a restart to a registered terminal.
const READY_WITHIN: Duration = Duration::from_secs(30);

fn runs() -> usize {
    std::env::var("FISCALD_KILL_LOOP_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

/// The kill moment of run `k` of `n`: spread from 0.1 s to `span` after the sales.
fn kill_after(k: usize, n: usize, span: Duration) -> Duration {
    let min = Duration::from_millis(100);
    if n <= 1 {
        return min;
    }
    min + (span - min) * u32::try_from(k).unwrap() / u32::try_from(n - 1).unwrap()
}

/// A sale of a distinct amount (so every charge is traced to its sale), approved by the
/// emulator (no magic ending).
fn sale(i: usize) -> (u64, Value) {
    let amount = 1000 + 100 * i as u64 + 10;
    let body = json!({
        "lines": [{"name": format!("Towar {i}"), "quantity": "1", "unit_price": amount, "vat": "A"}],
        "payments": [{"method": "card", "amount": amount}]
    });
    (amount, body)
}

fn post_sale(d: &Daemon, tag: &str, i: usize) -> (i64, u64) {
    let (amount, body) = sale(i);
    let key = format!("kill-loop-{tag}-{i}");
    let (status, job) = d.post_keyed("/v1/sales", &key, &body);
    assert!(status == 202 || status == 200, "{status} {job}");
    (job["id"].as_i64().unwrap(), amount)
}

/// The terminal's state as the API shows it.
fn terminal_state(d: &Daemon) -> Option<String> {
    let (_, v) = d.get("/v1/devices");
    v["devices"]
        .as_array()?
        .iter()
        .find(|x| x["kind"] == "payment_terminal")
        .and_then(|x| x["state"].as_str().map(String::from))
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn kill_loop(serial: bool) {
    let tag = if serial { "serial" } else { "tcp" };
    let n = runs();
    let dir = tempfile::tempdir().unwrap();
    let printer = Sim::start(dir.path(), &[]);
    let terminal = if serial {
        ZvtSim::start_with(dir.path(), true, &["--baud", "9600"])
    } else {
        ZvtSim::start(dir.path(), false)
    };
    // A slower terminal spreads the flow, so the kills land in every part of it.
    terminal.control("delay 20");
    let extra = if serial { "baud = 9600" } else { "" };
    let mut cfg = config_text(dir.path(), &printer.link.display().to_string(), "");
    cfg.push_str(&terminal_config(&terminal.port, extra));
    let mut d = Daemon::start(dir.path(), &cfg);
    d.wait_printer_and_terminal_ready();
    // How long four sales take here: the kills are spread over that.
    let span = if serial {
        Duration::from_millis(4000)
    } else {
        Duration::from_millis(2500)
    };

    let mut next = 0usize;
    let mut sales: BTreeMap<i64, u64> = BTreeMap::new();
    let mut to_ready = Vec::new();
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    let started = Instant::now();
    for k in 0..n {
        let mut interrupted = Vec::new();
        for _ in 0..SALES_PER_RUN {
            let (id, amount) = post_sale(&d, tag, next);
            next += 1;
            sales.insert(id, amount);
            interrupted.push(id);
        }
        std::thread::sleep(kill_after(k, n, span));
        d.kill9();
        let restart = Instant::now();
        d.spawn();
        // Registered: `ready`, or `busy` with a job (a job runs only after registering).
        wait_until(
            READY_WITHIN,
            &format!("{tag} run {k}: the terminal to register"),
            || matches!(terminal_state(&d).as_deref(), Some("ready" | "busy")).then_some(()),
        );
        to_ready.push(restart.elapsed());
        for id in &interrupted {
            let job = d.wait_job(*id, Duration::from_secs(120));
            let state = job["state"].as_str().unwrap_or("?").to_string();
            assert!(
                matches!(state.as_str(), "done" | "failed" | "needs_attention"),
                "{tag} run {k}: sale {id} ended {state}: {job}"
            );
            *outcomes.entry(state).or_default() += 1;
        }
        // The next sale succeeds.
        let (id, amount) = post_sale(&d, tag, next);
        next += 1;
        sales.insert(id, amount);
        let job = d.wait_job(id, Duration::from_secs(60));
        assert_eq!(job["state"], "done", "{tag} run {k}: the next sale: {job}");
    }

    // Never charged twice; done means charged once, failed means not charged.
    let transactions = terminal.transactions();
    for (id, amount) in &sales {
        let (_, job) = d.get(&format!("/v1/jobs/{id}"));
        let charges = transactions
            .iter()
            .filter(|t| t["status"] == "approved" && t["amount"] == *amount)
            .count();
        assert!(
            charges <= 1,
            "{tag}: sale {id} charged {charges} times: {job}"
        );
        match job["state"].as_str() {
            Some("done") => assert_eq!(charges, 1, "{tag}: sale {id} done: {job}"),
            Some("failed") => assert_eq!(charges, 0, "{tag}: sale {id} failed: {job}"),
            Some("needs_attention") => {}
            other => panic!("{tag}: sale {id} ended {other:?}: {job}"),
        }
    }
    let (min, max) = (
        *to_ready.iter().min().unwrap(),
        *to_ready.iter().max().unwrap(),
    );
    let med = median(&mut to_ready);
    // What the restarted daemons met on the line (from their logs).
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    let count = |what: &str| log.lines().filter(|l| l.contains(what)).count();
    let figures = format!(
        "kill loop over {tag}: {n} runs of {SALES_PER_RUN} sales in {:.0?}; time to ready after restart \
         min {min:.1?}, median {med:.1?}, max {max:.1?}; interrupted sales: {outcomes:?}; \
         next sale done after every restart; {} terminal transactions, none charged twice; \
         drained {} messages of abandoned flows, caught {} outcomes of interrupted flows, {} busy answers to a registration",
        started.elapsed(),
        transactions.len(),
        count("drained a message of an abandoned flow"),
        count("the outcome of an interrupted flow"),
        count("draining before registering again"),
    );
    println!("{figures}");
}

#[test]
fn sigkill_during_card_sales_over_serial_at_9600_baud() {
    kill_loop(true);
}

#[test]
fn sigkill_during_card_sales_over_tcp() {
    kill_loop(false);
}
