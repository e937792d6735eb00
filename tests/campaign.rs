//! The crash-and-fault campaign.
//!
//! Starts the POSNET printer emulator and the ZVT terminal emulator in their own processes
//! and the daemon, then drives a seeded random mix of receipts (every other one with
//! discounts, a surcharge, deposits and a footer), card sales, cash operations,
//! printouts and daily reports from several concurrent clients (each retrying with its
//! `Idempotency-Key` after a failure, as a POS does). Meanwhile it kills the daemon with
//! SIGKILL at random moments and restarts it, and injects emulator faults (paper out and
//! back, cover open and closed, printer power cycles, dropped and delayed replies, garbage
//! on the line, a terminal that goes silent or drops the connection, results lost after
//! approval). At the end it compares the daemon's jobs with both emulators' memories.
//!
//! ```sh
//! cargo test --release --test campaign                                  # short (CI)
//! cargo test --release --test campaign -- --kills 1000 --seed 7         # long
//! ```
//! Options: `--seed N`, `--kills N`, `--clients N`, `--printer-protocol posnet|thermal`,
//! `--terminal-protocol zvt|ecr-eft`. Exit status 1 if any figure other than acknowledged,
//! kills, faults and needs attention is not 0.
//!
//! **ECR-EFT** (`--terminal-protocol ecr-eft`, `fiscald sim ecr-eft`): the driver never
//! resends S1 and cannot ask the terminal afterwards, so a sale interrupted by a kill or a
//! terminal fault legitimately ends in `needs_attention`, as does every result lost by the
//! terminal (…52). Those are counted, not failed, but bounded: a sale not ending in 52 may
//! only need attention when something interrupted it, so their number must not exceed the
//! kills plus the terminal faults (one terminal runs one sale at a time). The terminal's
//! memory is then checked by payment id (S1 carries the job id): 0 double charges (two
//! approved terminal transactions for one payment) and 0 orphan charges (an approved
//! terminal transaction whose payment is neither `done` nor `needs_attention`).

mod common;

use common::{Client, Daemon, Sim, ZvtSim, config_text, terminal_config};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A small seeded PRNG (xorshift64*), so a campaign can be replayed from its seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Receipt,
    Sale,
    Cash,
    Printout,
    DailyReport,
    Invoice,
}

/// An acknowledged operation.
#[derive(Debug, Clone)]
struct Acked {
    op: Op,
    job: i64,
    /// Unique text that identifies the document in the printer's memory.
    tag: String,
    /// Unique amount (card charge or cash operation).
    amount: u64,
}

struct Options {
    seed: u64,
    kills: u32,
    clients: usize,
    /// `--printer-protocol posnet|thermal|novitus-xml`: the printer family behind the daemon.
    printer_protocol: String,
    /// `--terminal-protocol zvt|ecr-eft`: the card terminal's protocol (and emulator).
    terminal_protocol: String,
}

fn options() -> Options {
    let mut o = Options {
        seed: 20261126,
        kills: 20,
        clients: 3,
        printer_protocol: "posnet".into(),
        terminal_protocol: "zvt".into(),
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let value = args.get(i + 1).and_then(|v| v.parse::<u64>().ok());
        if args[i] == "--printer-protocol" {
            match args.get(i + 1).map(String::as_str) {
                Some(p @ ("posnet" | "thermal" | "novitus-xml")) => o.printer_protocol = p.into(),
                other => panic!(
                    "--printer-protocol: expected posnet, thermal or novitus-xml, got {other:?}"
                ),
            }
            i += 2;
            continue;
        }
        if args[i] == "--terminal-protocol" {
            match args.get(i + 1).map(String::as_str) {
                Some(p @ ("zvt" | "ecr-eft")) => o.terminal_protocol = p.into(),
                other => panic!("--terminal-protocol: expected zvt or ecr-eft, got {other:?}"),
            }
            i += 2;
            continue;
        }
        match (args[i].as_str(), value) {
            ("--seed", Some(v)) => o.seed = v,
            ("--kills", Some(v)) => o.kills = v as u32,
            ("--clients", Some(v)) => o.clients = (v as usize).clamp(1, 32),
            (other, _) if other.starts_with("--") && value.is_none() => {
                // libtest-style flags passed by `cargo test` (e.g. --nocapture) are ignored.
                i += 1;
                continue;
            }
            _ => {}
        }
        i += 2;
    }
    o
}

/// One operation's request. `plain`: only what every printer family prints (no discounts,
/// deposits or footer).
fn build(op: Op, n: u64, plain: bool) -> (String, Value, String, u64) {
    match op {
        Op::Receipt => {
            let tag = format!("Paragon {n}");
            let mut body = json!({"lines": [{"name": tag, "quantity": "1", "unit_price": 100 + n % 900, "vat": "A"},
                                        {"name": "Woda", "quantity": "2", "unit_price": 150, "vat": "B"}],
                              "payments": [{"method": "cash", "amount": 100 + n % 900 + 300}]});
            if n % 2 == 1 && !plain {
                // Every other receipt is a full basket: line and receipt discounts, a
                // surcharge, deposits issued and returned, a footer line.
                body["lines"][0]["discount"] = json!({"kind": "discount", "percent": "10"});
                body["lines"][1]["discount"] = json!({"kind": "surcharge", "amount": 5});
                body["discounts"] = json!([{"kind": "discount", "amount": 10, "name": "Rabat"}]);
                body["deposits"] = json!([
                    {"code": "1", "unit_price": 50, "quantity": 2},
                    {"code": "1", "unit_price": 50, "quantity": 1, "returned": true}
                ]);
                body["footer"] = json!([format!("Zamówienie {n}")]);
                body["payments"] = json!([{"method": "cash", "amount": 2000}]);
            }
            ("/v1/receipts".into(), body, tag, 0)
        }
        Op::Sale => {
            // Unique amounts so every charge traces back to its sale; some magic endings:
            // 51 declined, 52 result lost after approval, 54 connection dropped after the result.
            let ending = [10, 10, 10, 51, 52, 54][(n % 6) as usize];
            let amount = 1000 + 100 * n + ending;
            let tag = format!("Karta {n}");
            let body = json!({"lines": [{"name": tag, "quantity": "1", "unit_price": amount, "vat": "A"}],
                              "payments": [{"method": "card", "amount": amount}]});
            ("/v1/sales".into(), body, tag, amount)
        }
        Op::Cash => {
            let amount = 10_000 + n;
            (
                "/v1/cash".into(),
                json!({"direction": "in", "amount": amount}),
                String::new(),
                amount,
            )
        }
        Op::Printout => {
            let tag = format!("Wydruk {n}");
            (
                "/v1/printouts".into(),
                json!({"lines": [tag, "Stolik 4"]}),
                tag,
                0,
            )
        }
        Op::DailyReport => ("/v1/reports/daily".into(), json!({}), String::new(), 0),
        Op::Invoice => {
            // A VAT invoice with a line discount and a surcharge, paid by transfer.
            let tag = format!("FV {n}/2026");
            let price = 1000 + n % 900;
            let body = json!({"number": tag,
                              "buyer": {"name": "Firma Sp. z o.o.", "nip": "5260001246"},
                              "lines": [{"name": format!("Usługa {n}"), "quantity": "1", "unit_price": price, "vat": "A",
                                         "discount": {"kind": "discount", "percent": "5"}},
                                        {"name": "Dojazd", "quantity": "1", "unit_price": 500, "vat": "B",
                                         "discount": {"kind": "surcharge", "amount": 20}}],
                              "payments": [{"method": "transfer", "amount": 1000}, {"method": "cash", "amount": 4000}],
                              "copies": n % 2});
            ("/v1/invoices".into(), body, tag, 0)
        }
    }
}

/// Post until acknowledged (retrying with the same key while the daemon is down), or give
/// up when `stop` is set. Returns the job id.
fn post_until_acked(
    socket: &std::path::Path,
    path: &str,
    key: &str,
    body: &Value,
    stop: &AtomicBool,
) -> Option<i64> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    loop {
        let sent = rt.block_on(async {
            let mut c = Client::connect(socket).await?;
            c.send(
                "POST",
                path,
                &[
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                Some(body.to_string().into_bytes()),
            )
            .await
        });
        match sent {
            Ok((200 | 202, job)) => return job["id"].as_i64(),
            Ok((status, answer)) => panic!("unexpected {status} for {path} {body}: {answer}"),
            Err(_) if stop.load(Ordering::Relaxed) => return None,
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// Poll a job until it ends (retrying while the daemon is down), for at most 60 s or until
/// `stop` is set.
fn wait_until_ended(socket: &std::path::Path, job: i64, stop: &AtomicBool) {
    let Ok(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    else {
        return;
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let answer = rt.block_on(async {
            let mut c = Client::connect(socket).await?;
            c.send("GET", &format!("/v1/jobs/{job}?wait=5"), &[], None)
                .await
        });
        match answer {
            Ok((200, j)) if !matches!(j["state"].as_str(), Some("queued" | "running")) => return,
            Ok(_) => {}
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

fn quiet_control(path: &std::path::Path, cmd: &str) -> bool {
    fiscald::sim::posnet::send_control(path, cmd).is_ok_and(|a| a.starts_with("ok"))
}

fn main() {
    let o = options();
    let started = Instant::now();
    let dir = tempfile::tempdir().expect("tempdir");
    // Thermal prints receipts, cash operations and daily reports only: the mix leaves out
    // printouts, invoices and a full basket's extras, and a sale's slip is not printed.
    let thermal = o.printer_protocol == "thermal";
    // Novitus XML prints printouts too, but no invoices and no receipt extras.
    let novitus_xml = o.printer_protocol == "novitus-xml";
    let plain = thermal || novitus_xml;
    let printer = if novitus_xml {
        Sim::start_family(dir.path(), "novitus-xml", &[])
    } else if thermal {
        Sim::start_family(
            dir.path(),
            "thermal",
            &["--dialect", "posnet", "--encoding", "mazovia"],
        )
    } else {
        Sim::start(dir.path(), &[])
    };
    let ecr_eft = o.terminal_protocol == "ecr-eft";
    let terminal = ZvtSim::start_protocol(dir.path(), &o.terminal_protocol, false, &[]);
    printer.control("delay 3");
    terminal.control("delay 4");
    let mut cfg = config_text(dir.path(), &printer.link.display().to_string(), "")
        .replace("paper_wait = 60", "paper_wait = 120");
    if novitus_xml {
        cfg = cfg.replace("protocol = \"posnet\"", "protocol = \"novitus-xml\"");
    }
    if thermal {
        cfg = cfg.replace(
            "protocol = \"posnet\"",
            "protocol = \"thermal\"\ndialect = \"posnet\"\nencoding = \"mazovia\"",
        );
    }
    let slip = if thermal { "slip = \"none\"" } else { "" };
    let mut terminal_table = terminal_config(&terminal.port, slip);
    if ecr_eft {
        terminal_table = terminal_table.replace("protocol = \"zvt\"", "protocol = \"ecr-eft\"");
    }
    cfg.push_str(&terminal_table);
    cfg.push_str("\n[sales]\nprint_deadline = 300\n");
    let daemon = Arc::new(Mutex::new(Daemon::start(dir.path(), &cfg)));
    let socket = daemon.lock().unwrap().socket.clone();
    daemon.lock().unwrap().wait_ready();

    let stop = Arc::new(AtomicBool::new(false));
    let seq = Arc::new(AtomicU64::new(1));
    let ledger: Arc<Mutex<Vec<Acked>>> = Arc::default();
    let faults = Arc::new(AtomicU64::new(0));
    // Terminal faults applied (drop, silence): each may interrupt one card sale.
    let terminal_faults = Arc::new(AtomicU64::new(0));

    // Clients.
    let mut threads = Vec::new();
    for c in 0..o.clients {
        let (stop, seq, ledger, socket) =
            (stop.clone(), seq.clone(), ledger.clone(), socket.clone());
        let mut rng = Rng::new(o.seed ^ ((c as u64 + 1) * 0x1000_0001));
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let op = match rng.below(100) {
                    0..=41 => Op::Receipt,
                    42..=49 if plain => Op::Receipt,
                    42..=49 => Op::Invoice,
                    50..=74 => Op::Sale,
                    75..=84 => Op::Cash,
                    85..=96 if thermal => Op::Receipt,
                    85..=96 => Op::Printout,
                    _ => Op::DailyReport,
                };
                let n = seq.fetch_add(1, Ordering::Relaxed);
                let (path, body, tag, amount) = build(op, n, plain);
                let key = format!("campaign-{n}");
                if let Some(job) = post_until_acked(&socket, &path, &key, &body, &stop) {
                    ledger.lock().unwrap().push(Acked {
                        op,
                        job,
                        tag,
                        amount,
                    });
                    // A till waits for its document before the next one (a closed loop), so
                    // the queue stays as long as the number of tills.
                    wait_until_ended(&socket, job, &stop);
                }
                std::thread::sleep(Duration::from_millis(rng.between(20, 250)));
            }
        }));
    }
    // Faults.
    {
        let (stop, faults, terminal_faults) =
            (stop.clone(), faults.clone(), terminal_faults.clone());
        let (pctl, tctl) = (printer.control_path(), terminal.control.clone());
        let mut rng = Rng::new(o.seed ^ 0xFA17);
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(rng.between(200, 1500)));
                let pause = Duration::from_millis(rng.between(100, 1200));
                let kind = rng.below(9);
                let done = match kind {
                    0 => {
                        quiet_control(&pctl, "paper out") && {
                            std::thread::sleep(pause);
                            quiet_control(&pctl, "paper back")
                        }
                    }
                    1 => quiet_control(&pctl, "paper out after 2"),
                    2 => {
                        quiet_control(&pctl, "cover open") && {
                            std::thread::sleep(pause);
                            quiet_control(&pctl, "cover close")
                        }
                    }
                    3 => quiet_control(&pctl, &format!("power cycle {}", rng.between(200, 900))),
                    4 => quiet_control(&pctl, "drop 1"),
                    5 => quiet_control(&pctl, "garbage 40"),
                    6 => {
                        quiet_control(&pctl, "delay 120") && {
                            std::thread::sleep(pause);
                            quiet_control(&pctl, "delay 3")
                        }
                    }
                    7 => quiet_control(&tctl, "drop"),
                    _ => quiet_control(&tctl, "silence 1"),
                };
                if done {
                    faults.fetch_add(1, Ordering::Relaxed);
                    if kind >= 7 {
                        terminal_faults.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // "paper out after 2" must not leave the printer without paper for good.
                std::thread::sleep(pause);
                quiet_control(&pctl, "paper back");
            }
        }));
    }
    // Kills.
    let mut rng = Rng::new(o.seed ^ 0xDEAD);
    for _ in 0..o.kills {
        std::thread::sleep(Duration::from_millis(rng.between(200, 1500)));
        let mut d = daemon.lock().unwrap();
        d.kill9();
        d.spawn();
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        let _ = t.join();
    }
    // Clear every fault and let the work settle.
    for cmd in ["paper back", "cover close", "delay 0"] {
        quiet_control(&printer.control_path(), cmd);
    }
    quiet_control(&terminal.control, "delay 0");
    let d = daemon.lock().unwrap();
    let acked = ledger.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut jobs: BTreeMap<i64, Value> = BTreeMap::new();
    for a in &acked {
        loop {
            let (_, job) = d.get(&format!("/v1/jobs/{}?wait=5", a.job));
            let state = job["state"].as_str().unwrap_or("").to_string();
            if !matches!(state.as_str(), "queued" | "running" | "") || Instant::now() > deadline {
                jobs.insert(a.job, job);
                break;
            }
        }
    }

    // Compare with the emulators' memories.
    let pm = printer.memory();
    let receipts = pm["receipts"].as_array().cloned().unwrap_or_default();
    let printouts = pm["printouts"].as_array().cloned().unwrap_or_default();
    let invoices = pm["invoices"].as_array().cloned().unwrap_or_default();
    let cash_ops = pm["cash_operations"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let charges = terminal.transactions();
    let count_receipts = |tag: &str| {
        receipts
            .iter()
            .filter(|r| r["lines"][0]["name"] == tag)
            .count()
    };
    let (mut lost, mut duplicated, mut orphaned, mut open) = (0, 0, 0, 0);
    let mut problems = Vec::new();
    let mut by_state: BTreeMap<(Op, String), usize> = BTreeMap::new();
    for a in &acked {
        let job = &jobs[&a.job];
        let state = job["state"].as_str().unwrap_or("?").to_string();
        *by_state.entry((a.op, state.clone())).or_default() += 1;
        let done = state == "done";
        if matches!(state.as_str(), "queued" | "running" | "?") {
            open += 1;
            problems.push(format!("job {} ({:?}) still {state}", a.job, a.op));
            continue;
        }
        let (printed, charged) = match a.op {
            Op::Receipt => (count_receipts(&a.tag), 0),
            Op::Sale => (
                count_receipts(&a.tag),
                charges
                    .iter()
                    .filter(|t| {
                        t["status"] == "approved"
                            && if ecr_eft {
                                t["payment_id"] == a.job.to_string().as_str()
                            } else {
                                t["amount"] == a.amount
                            }
                    })
                    .count(),
            ),
            Op::Cash => (
                cash_ops.iter().filter(|c| c["amount"] == a.amount).count(),
                0,
            ),
            Op::Printout => (
                printouts
                    .iter()
                    .filter(|p| p["lines"][0] == a.tag.as_str())
                    .count(),
                0,
            ),
            Op::Invoice => (
                invoices
                    .iter()
                    .filter(|i| i["invoice_number"] == a.tag.as_str())
                    .count(),
                0,
            ),
            Op::DailyReport => continue,
        };
        if printed > 1 || charged > 1 {
            duplicated += 1;
            problems.push(format!(
                "job {} ({:?}) {state}: printed {printed}, charged {charged}",
                a.job, a.op
            ));
        } else if done && (printed == 0 || (a.op == Op::Sale && charged == 0)) {
            lost += 1;
            problems.push(format!(
                "job {} ({:?}) done but printed {printed}, charged {charged}: {job}",
                a.job, a.op
            ));
        } else if !done && state != "needs_attention" && printed > 0 {
            duplicated += 1; // printed while reported not done: the POS would print it again
            problems.push(format!(
                "job {} ({:?}) {state} but printed {printed}: {job}",
                a.job, a.op
            ));
        } else if a.op == Op::Sale && charged == 1 && printed == 0 && state != "needs_attention" {
            orphaned += 1;
            problems.push(format!(
                "job {} sale {state}: charged without a receipt: {job}",
                a.job
            ));
        }
    }
    let open_receipt = pm["open_receipt"] == true;
    let kills = o.kills;
    let attention = attention_figures(&acked, &jobs, &charges, ecr_eft);
    let (mut double, mut orphan_charges, mut unexplained) = (0, 0, 0);
    if ecr_eft {
        (double, orphan_charges) = ecr_eft_charges(&d, &jobs, &charges, &mut problems);
        let interrupts = u64::from(kills) + terminal_faults.load(Ordering::Relaxed);
        if attention.interrupted as u64 > interrupts {
            unexplained = 1;
            problems.push(format!(
                "{} sales not ending in 52 need attention, more than the {interrupts} kills and terminal faults",
                attention.interrupted
            ));
        }
    }
    println!(
        "crash-and-fault campaign: seed {}, {} clients, {:.0} s",
        o.seed,
        o.clients,
        started.elapsed().as_secs_f64()
    );
    println!("  operations acknowledged: {}", acked.len());
    println!("  kills:                   {kills}");
    println!(
        "  faults:                  {}",
        faults.load(Ordering::Relaxed)
    );
    println!("  lost:                    {lost}");
    println!("  duplicated:              {duplicated}");
    println!("  orphaned:                {orphaned}");
    println!("  jobs left open:          {open}");
    println!(
        "  needs attention:         {} ({} result lost (…52), {} of them charged; {} interrupted, {} of them charged)",
        attention.total,
        attention.lost_result,
        attention.lost_result_charged,
        attention.interrupted,
        attention.charged - attention.lost_result_charged
    );
    if ecr_eft {
        println!("  double charges:          {double}");
        println!("  orphan charges:          {orphan_charges}");
        println!(
            "  terminal transactions:   {} ({} approved)",
            charges.len(),
            charges.iter().filter(|t| t["status"] == "approved").count()
        );
    }
    println!(
        "  printer receipt open:    {}",
        if open_receipt { "yes" } else { "no" }
    );
    let states: Vec<String> = by_state
        .iter()
        .map(|((op, s), n)| format!("{op:?}/{s}: {n}"))
        .collect();
    println!("  outcomes: {}", states.join(", "));
    for p in problems.iter().take(20) {
        println!("  ! {p}");
    }
    let bad = lost
        + duplicated
        + orphaned
        + open
        + usize::from(open_receipt)
        + double
        + orphan_charges
        + unexplained;
    println!(
        "campaign: {} passed, {} failed",
        usize::from(bad == 0),
        usize::from(bad != 0)
    );
    if bad != 0 {
        std::process::exit(1);
    }
}

/// Card sales that ended in `needs_attention` (an allowed outcome: a person resolves them).
struct Attention {
    total: usize,
    /// The terminal kept the result (amount ending in 52): always needs attention.
    lost_result: usize,
    /// Any other amount: a kill or a terminal fault interrupted the sale.
    interrupted: usize,
    /// With an approved transaction in the terminal's memory.
    charged: usize,
    /// Of `lost_result`, charged.
    lost_result_charged: usize,
}

fn attention_figures(
    acked: &[Acked],
    jobs: &BTreeMap<i64, Value>,
    charges: &[Value],
    by_payment_id: bool,
) -> Attention {
    let mut a = Attention {
        total: 0,
        lost_result: 0,
        interrupted: 0,
        charged: 0,
        lost_result_charged: 0,
    };
    for s in acked.iter().filter(|s| s.op == Op::Sale) {
        if jobs[&s.job]["state"] != "needs_attention" {
            continue;
        }
        a.total += 1;
        if s.amount % 100 == 52 {
            a.lost_result += 1;
        } else {
            a.interrupted += 1;
        }
        let charged = charges.iter().any(|t| {
            t["status"] == "approved"
                && if by_payment_id {
                    t["payment_id"] == s.job.to_string().as_str()
                } else {
                    t["amount"] == s.amount
                }
        });
        a.charged += usize::from(charged);
        if s.amount % 100 == 52 {
            a.lost_result_charged += usize::from(charged);
        }
    }
    a
}

/// ECR-EFT: every approved transaction in the terminal's memory against the daemon's
/// payment of its payment id (the job id, sent in S1), including payments whose POST was
/// never acknowledged to a client. Returns (double charges, orphan charges).
fn ecr_eft_charges(
    d: &Daemon,
    jobs: &BTreeMap<i64, Value>,
    charges: &[Value],
    problems: &mut Vec<String>,
) -> (usize, usize) {
    let mut by_payment: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for t in charges.iter().filter(|t| t["status"] == "approved") {
        let id = t["payment_id"].as_str().unwrap_or("").to_string();
        by_payment.entry(id).or_default().push(t);
    }
    let (mut double, mut orphan) = (0, 0);
    for (id, txs) in &by_payment {
        if txs.len() > 1 {
            double += 1;
            problems.push(format!("payment {id} charged {} times: {txs:?}", txs.len()));
        }
        let state = match id.parse::<i64>().ok().and_then(|n| jobs.get(&n)) {
            Some(job) => job["state"].as_str().unwrap_or("?").to_string(),
            None => {
                // Not acknowledged to a client: ask the daemon, letting it settle.
                let deadline = Instant::now() + Duration::from_secs(60);
                loop {
                    let (status, job) = d.get(&format!("/v1/jobs/{id}?wait=5"));
                    let state = job["state"].as_str().unwrap_or("").to_string();
                    if status == 404 || Instant::now() > deadline {
                        break format!("absent ({status})");
                    }
                    if !matches!(state.as_str(), "queued" | "running" | "") {
                        break state;
                    }
                }
            }
        };
        if !matches!(state.as_str(), "done" | "needs_attention") {
            orphan += 1;
            problems.push(format!(
                "terminal transaction {} for payment {id} is approved but the payment is {state}",
                txs[0]["transaction_id"]
            ));
        }
    }
    (double, orphan)
}
