//! Recovery after a restart, on tokio's virtual clock: the register's connection to a model
//! terminal (`zvt::model`) is cut in the middle of a flow, as a SIGKILL cuts it on a serial
//! line the terminal cannot see go away, and a new driver must drain what the terminal
//! still repeats, commit an interrupted outcome before acknowledging it, and register.

use super::Zvt;
use super::transport::{SERIAL_DRAIN_QUIET, Transport};
use crate::config::TerminalConfig;
use crate::device::terminal::{
    CardCommand, CardOutcome, Committed, FlowError, FlowObserver, PaymentTerminal,
};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::mpsc;
use tokio::time::Instant;
use zvt::model::Terminal;
use zvt::{Apdu, ApduDecoder, EcrCommand};

const PRINT_LINE: u16 = 0x06D1;
const STATUS_INFORMATION: u16 = 0x040F;
const COMPLETION: u16 = 0x060F;
const INTERMEDIATE: u16 = 0x04FF;

/// How the scripted line behaves.
#[derive(Default, Clone)]
struct Script {
    /// Cut the register's connection right after the terminal sent the n-th (1-based)
    /// message with this control field (the register never answers it).
    cut_after: Option<(u16, usize)>,
    /// Answer every command with `84 83` until this long after the start.
    busy_for: Option<Duration>,
    /// The terminal takes this long to read a register message (a slow line).
    input_latency: Duration,
}

/// What the terminal side saw.
#[derive(Default)]
struct Seen {
    /// Commands (not acknowledgements) from the register, by control field.
    commands: Vec<u16>,
    /// Acknowledgements received while the last message sent was a Status-Information.
    status_acks: usize,
    /// Register connections (dials).
    lines: usize,
}

/// A model terminal on a "serial line" that outlives the register's connections: a cut
/// connection is not noticed, and what the model sends meanwhile is lost.
async fn line(
    model: Arc<Mutex<Terminal>>,
    mut dials: mpsc::UnboundedReceiver<DuplexStream>,
    seen: Arc<Mutex<Seen>>,
    script: Script,
) {
    let start = Instant::now();
    let std_now = || Instant::now().into_std();
    let mut stream: Option<DuplexStream> = None;
    let mut dec = ApduDecoder::new();
    let mut inbox: VecDeque<(Instant, Apdu)> = VecDeque::new();
    let mut sent: std::collections::HashMap<u16, usize> = Default::default();
    let mut last_sent = 0u16;
    let mut buf = [0u8; 2048];
    loop {
        // Register input that has been read by now.
        while inbox.front().is_some_and(|(due, _)| *due <= Instant::now()) {
            let (_, apdu) = inbox.pop_front().expect("checked");
            let is_ack = matches!(apdu.class, 0x80 | 0x84);
            {
                let mut s = seen.lock().unwrap();
                if is_ack && last_sent == STATUS_INFORMATION {
                    s.status_acks += 1;
                }
                if !is_ack {
                    s.commands.push(apdu.control());
                }
            }
            let busy = script.busy_for.is_some_and(|d| Instant::now() < start + d);
            if busy && !is_ack {
                let nack = EcrCommand::Nack(0x83).to_apdu().encode();
                if let Some(s) = stream.as_mut() {
                    let _ = s.write_all(&nack).await;
                }
            } else {
                model.lock().unwrap().handle_apdu(&apdu, std_now());
            }
        }
        // What the terminal sends.
        loop {
            let Some(apdu) = model.lock().unwrap().poll_send() else {
                break;
            };
            let Some(s) = stream.as_mut() else {
                continue; // nobody on the line
            };
            let _ = s.write_all(&apdu.encode()).await;
            last_sent = apdu.control();
            let n = sent.entry(apdu.control()).or_default();
            *n += 1;
            if script.cut_after == Some((apdu.control(), *n)) {
                stream = None;
            }
        }
        let timer = model.lock().unwrap().poll_timeout().map(Instant::from_std);
        let due = inbox.front().map(|(d, _)| *d);
        let wake = [timer, due]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        enum Ev {
            Dial(Option<DuplexStream>),
            Read(std::io::Result<usize>),
            Tick,
        }
        // What the old connection carried is read before a new one takes the line.
        let ev = tokio::select! {
            biased;
            r = async {
                match stream.as_mut() {
                    Some(s) => s.read(&mut buf).await,
                    None => std::future::pending().await,
                }
            } => Ev::Read(r),
            d = dials.recv() => Ev::Dial(d),
            _ = tokio::time::sleep_until(wake) => Ev::Tick,
        };
        match ev {
            Ev::Dial(None) => return,
            Ev::Dial(Some(s)) => {
                stream = Some(s);
                dec = ApduDecoder::new();
                seen.lock().unwrap().lines += 1;
            }
            // The register went away; on serial the terminal does not notice.
            Ev::Read(Ok(0) | Err(_)) => stream = None,
            Ev::Read(Ok(n)) => {
                dec.push(&buf[..n]);
                while let Some(a) = dec.next_apdu() {
                    inbox.push_back((Instant::now() + script.input_latency, a));
                }
            }
            Ev::Tick => {
                let t = model.lock().unwrap().poll_timeout();
                if t.is_some_and(|t| t <= std_now()) {
                    model.lock().unwrap().handle_timeout(std_now());
                }
            }
        }
    }
}

/// Records what a flow reported, and checks that an outcome is not acknowledged before
/// it returned.
#[derive(Default)]
struct Recorder {
    seen: Arc<Mutex<Seen>>,
    slip: Vec<String>,
    outcomes: Vec<CardOutcome>,
    acks_before_commit: Vec<usize>,
}

impl FlowObserver for Recorder {
    type Error = &'static str;
    fn display(&mut self, _text: &str) {}
    fn slip_line(&mut self, line: &str) {
        self.slip.push(line.to_string());
    }
    async fn outcome(&mut self, outcome: &CardOutcome) -> Result<Committed, &'static str> {
        let before = self.seen.lock().unwrap().status_acks;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            self.seen.lock().unwrap().status_acks,
            before,
            "acknowledged before the commit"
        );
        self.acks_before_commit.push(before);
        self.outcomes.push(outcome.clone());
        Ok(Committed::journaled())
    }
}

struct Bench {
    model: Arc<Mutex<Terminal>>,
    seen: Arc<Mutex<Seen>>,
    dials: mpsc::UnboundedSender<DuplexStream>,
}

impl Bench {
    fn new(script: Script) -> Bench {
        let model = Arc::new(Mutex::new(Terminal::new()));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(line(model.clone(), rx, seen.clone(), script));
        Bench {
            model,
            seen,
            dials: tx,
        }
    }

    /// A driver (a daemon's life) whose connections go to this line.
    fn driver(&self, quiet: Duration) -> Zvt {
        let config: TerminalConfig = toml::from_str(
            "id = \"t1\"\nprotocol = \"zvt\"\nport = \"/dev/null\"\ncommand_timeout = 3.0\ntransaction_timeout = 8.0\n",
        )
        .unwrap();
        let mut zvt = Zvt::new(config, "/dev/ttyS9".into());
        let dials = self.dials.clone();
        zvt.dial = Some(Box::new(move || {
            let (ours, theirs) = tokio::io::duplex(4096);
            dials.send(theirs).expect("the line runs");
            Transport::over_stream(Box::new(ours), quiet)
        }));
        zvt
    }

    fn recorder(&self) -> Recorder {
        Recorder {
            seen: self.seen.clone(),
            ..Default::default()
        }
    }

    fn transactions(&self) -> Vec<(u64, String)> {
        let m = self.model.lock().unwrap();
        m.memory()
            .transactions
            .iter()
            .map(|t| (t.amount, t.status.clone()))
            .collect()
    }

    fn registrations(&self) -> usize {
        let s = self.seen.lock().unwrap();
        s.commands.iter().filter(|c| **c == 0x0600).count()
    }
}

const SALE: CardCommand = CardCommand::Sale {
    amount: 1234,
    currency: 985,
};

/// A driver that connected and registered.
async fn registered(bench: &Bench) -> (Zvt, Recorder) {
    let mut a = bench.driver(SERIAL_DRAIN_QUIET);
    a.connect().await.unwrap();
    let mut obs = bench.recorder();
    a.register(&mut obs).await.map_err(|_| "register").unwrap();
    (a, obs)
}

/// A second life that registered `took` after its restart: it waited for the quiet line,
/// then registered once, and the terminal holds the first sale, approved once.
fn drained_then_registered(bench: &Bench, took: Duration) {
    assert!(
        took >= SERIAL_DRAIN_QUIET && took < Duration::from_secs(30),
        "{took:?}"
    );
    assert_eq!(bench.registrations(), 2, "one registration per life");
    assert_eq!(bench.transactions(), vec![(1234, "approved".into())]);
}

/// The first life: register, start a sale, and lose the line where the script cuts it.
async fn first_life(bench: &Bench) -> Recorder {
    let (mut a, mut obs) = registered(bench).await;
    let r = a.run("1", &SALE, &mut obs).await;
    assert!(
        matches!(&r, Err(FlowError::Device(e)) if !e.is_refusal()),
        "the first life ends with a lost link"
    );
    obs
}

/// The second life: connect and register; returns its interrupted observer and how long
/// it took until the terminal was registered.
async fn second_life(bench: &Bench, quiet: Duration) -> (Zvt, Recorder, Duration) {
    tokio::time::sleep(Duration::from_millis(500)).await; // the restart
    let started = Instant::now();
    let mut b = bench.driver(quiet);
    b.connect().await.unwrap();
    let mut interrupted = bench.recorder();
    let info = b.register(&mut interrupted).await;
    assert!(info.is_ok(), "registered after the restart");
    let took = started.elapsed();
    // Let the terminal read the last acknowledgement.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (b, interrupted, took)
}

/// After recovery the terminal is idle and takes the next sale on the same connection.
async fn next_sale_succeeds(bench: &Bench, b: &mut Zvt) {
    let mut obs = bench.recorder();
    let next = CardCommand::Sale {
        amount: 2210,
        currency: 985,
    };
    let end = b
        .run("2", &next, &mut obs)
        .await
        .map_err(|_| "run")
        .unwrap();
    assert!(end.outcome.is_some_and(|o| o.approved));
    assert_eq!(bench.seen.lock().unwrap().lines, 2, "no reopen");
}

#[tokio::test(start_paused = true)]
async fn a_restart_in_the_middle_of_the_slip_lines_drains_them_then_registers() {
    let bench = Bench::new(Script {
        cut_after: Some((PRINT_LINE, 3)),
        ..Script::default()
    });
    let a = first_life(&bench).await;
    assert_eq!(
        a.outcomes.len(),
        1,
        "the outcome was committed before the cut"
    );
    let (mut b, interrupted, took) = second_life(&bench, SERIAL_DRAIN_QUIET).await;
    // The rest of the slip (from the repeated third line) reached the drain.
    assert!(!interrupted.slip.is_empty());
    assert!(interrupted.outcomes.is_empty());
    drained_then_registered(&bench, took);
    assert!(!bench.model.lock().unwrap().is_busy());
    next_sale_succeeds(&bench, &mut b).await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_in_the_middle_of_the_status_information_commits_it_before_the_ack() {
    let bench = Bench::new(Script {
        cut_after: Some((STATUS_INFORMATION, 1)),
        ..Script::default()
    });
    let a = first_life(&bench).await;
    // The first life may have committed it, but never acknowledged it.
    assert_eq!(bench.seen.lock().unwrap().status_acks, 0);
    assert!(a.outcomes.len() <= 1);
    let (mut b, interrupted, took) = second_life(&bench, SERIAL_DRAIN_QUIET).await;
    assert_eq!(interrupted.outcomes.len(), 1, "the drain's outcome");
    assert!(interrupted.outcomes[0].approved);
    assert_eq!(interrupted.outcomes[0].amount, Some(1234));
    assert_eq!(interrupted.acks_before_commit, vec![0]);
    assert_eq!(
        bench.seen.lock().unwrap().status_acks,
        1,
        "acknowledged once"
    );
    assert!(!interrupted.slip.is_empty(), "the slip followed");
    assert!(took < Duration::from_secs(30), "{took:?}");
    // Acknowledged, so the terminal keeps it (an unacknowledged one reverses after 30 s).
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(bench.transactions(), vec![(1234, "approved".into())]);
    next_sale_succeeds(&bench, &mut b).await;
}

#[tokio::test(start_paused = true)]
async fn a_restart_in_the_middle_of_the_completion_drains_it_then_registers() {
    let bench = Bench::new(Script {
        cut_after: Some((COMPLETION, 3)), // a registration's two come first
        ..Script::default()
    });
    let a = first_life(&bench).await;
    assert_eq!(a.outcomes.len(), 1);
    let (mut b, interrupted, took) = second_life(&bench, SERIAL_DRAIN_QUIET).await;
    assert!(interrupted.outcomes.is_empty() && interrupted.slip.is_empty());
    drained_then_registered(&bench, took);
    next_sale_succeeds(&bench, &mut b).await;
}

#[tokio::test(start_paused = true)]
async fn a_terminal_still_reading_the_card_is_drained_to_the_end_of_its_flow() {
    let bench = Bench::new(Script {
        cut_after: Some((INTERMEDIATE, 1)),
        ..Script::default()
    });
    let (mut a, mut obs) = registered(&bench).await;
    let slow = CardCommand::Sale {
        amount: 1253, // the model's slow card reader: 20 s of intermediate status
        currency: 985,
    };
    assert!(a.run("1", &slow, &mut obs).await.is_err());
    drop(a);
    let (mut b, interrupted, took) = second_life(&bench, SERIAL_DRAIN_QUIET).await;
    assert_eq!(
        interrupted.outcomes.len(),
        1,
        "the outcome came to the drain"
    );
    assert_eq!(interrupted.outcomes[0].amount, Some(1253));
    assert!(took < Duration::from_secs(30), "{took:?}");
    assert_eq!(bench.transactions(), vec![(1253, "approved".into())]);
    next_sale_succeeds(&bench, &mut b).await;
}

#[tokio::test(start_paused = true)]
async fn a_busy_terminal_keeps_the_connection_drains_and_is_asked_again() {
    let bench = Bench::new(Script {
        busy_for: Some(Duration::from_secs(10)),
        ..Script::default()
    });
    let mut b = bench.driver(SERIAL_DRAIN_QUIET);
    b.connect().await.unwrap();
    let mut obs = bench.recorder();
    let started = Instant::now();
    b.register(&mut obs).await.map_err(|_| "register").unwrap();
    // 6.5 s of quiet, 84 83, 6.5 s more, then registered.
    assert_eq!(bench.registrations(), 2);
    assert!(started.elapsed() >= SERIAL_DRAIN_QUIET * 2);
    assert_eq!(
        bench.seen.lock().unwrap().lines,
        1,
        "the port was not reopened"
    );
    let end = b
        .run("1", &SALE, &mut obs)
        .await
        .map_err(|_| "run")
        .unwrap();
    assert!(end.outcome.is_some_and(|o| o.approved));
}

#[tokio::test(start_paused = true)]
async fn a_registration_that_crosses_a_repeated_message_is_matched_to_its_own_answer() {
    // The register's command and the terminal's repetition of a slip line cross on a slow
    // line: the terminal's answer (84 83) comes after the foreign message.
    let bench = Bench::new(Script {
        cut_after: Some((PRINT_LINE, 2)),
        input_latency: Duration::from_millis(200),
        ..Script::default()
    });
    let a = first_life(&bench).await;
    assert_eq!(a.outcomes.len(), 1);
    // A drain shorter than the terminal's repeat timer (as a misconfigured one would be)
    // ends 4.9 s after the cut: the registration leaves just before the repetition.
    let (mut b, interrupted, _) = second_life(&bench, Duration::from_millis(4400)).await;
    assert!(
        !interrupted.slip.is_empty(),
        "the crossing slip line was acknowledged"
    );
    assert!(
        bench.registrations() >= 3,
        "busy, drained, registered again"
    );
    assert_eq!(bench.seen.lock().unwrap().lines, 2, "no reopen");
    assert!(!bench.model.lock().unwrap().is_busy());
    assert_eq!(bench.transactions(), vec![(1234, "approved".into())]);
    next_sale_succeeds(&bench, &mut b).await;
}

#[tokio::test(start_paused = true)]
async fn an_idle_terminal_on_a_clean_reconnect_is_not_drained() {
    let bench = Bench::new(Script::default());
    let (mut a, mut obs) = registered(&bench).await;
    a.run("1", &SALE, &mut obs)
        .await
        .map_err(|_| "run")
        .unwrap();
    // A connection per exchange (TCP): reconnecting after a completed flow needs no drain.
    a.disconnect();
    a.connect().await.unwrap();
    let started = Instant::now();
    a.register(&mut obs).await.map_err(|_| "register").unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}
