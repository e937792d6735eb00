//! The driver against the terminal model over an in-memory pipe: a sale with its slip,
//! commit before acknowledge, refusals of flows the protocol does not have.

use super::*;
use ecr_eft::link::Link;
use ecr_eft::model::{Outbound, Terminal};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the terminal side saw.
#[derive(Default)]
struct Seen {
    /// The register ACKed the S2.
    s2_acked: AtomicBool,
    /// S1 frames received.
    s1: AtomicUsize,
}

/// The model terminal on one end of a pipe, until the pipe closes.
async fn terminal(mut io: tokio::io::DuplexStream, seen: Arc<Seen>) {
    let mut link = Link::new(LinkConfig::new(Role::Eft));
    let mut model = Terminal::new();
    let mut buf = [0u8; 1024];
    loop {
        let now = Instant::now();
        if link.poll_timeout().is_some_and(|t| t <= now) {
            link.handle_timeout(now);
        }
        if model.poll_timeout().is_some_and(|t| t <= now) {
            model.handle_timeout(now);
        }
        while let Some(ev) = link.poll_event() {
            match ev {
                LinkEvent::Received {
                    frame,
                    repeat: false,
                    ..
                } => {
                    if frame.kind == *b"S1" {
                        seen.s1.fetch_add(1, Ordering::SeqCst);
                    }
                    if let Ok(m) = Message::decode(&frame) {
                        model.handle_message(frame.token, m, Instant::now());
                    }
                }
                LinkEvent::Delivered { kind, .. } if kind == *b"S2" => {
                    seen.s2_acked.store(true, Ordering::SeqCst)
                }
                _ => {}
            }
        }
        while let Some(o) = model.poll_send() {
            let now = Instant::now();
            let _ = match o {
                Outbound::Reply(t, m) => link.reply(t, m.kind(), m.to_fields().unwrap(), now),
                Outbound::Request(m) => link
                    .request(m.kind(), m.to_fields().unwrap(), now)
                    .map(|_| ()),
            };
        }
        while model.poll_event().is_some() {}
        while let Some(b) = link.poll_transmit() {
            if io.write_all(&b).await.is_err() {
                return;
            }
        }
        match tokio::time::timeout(Duration::from_millis(10), io.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => link.handle_input(&buf[..n], Instant::now()),
            Err(_) => {}
        }
    }
}

struct Obs {
    seen: Arc<Seen>,
    fail: bool,
    display: Vec<String>,
    slip: Vec<String>,
    outcome: Option<CardOutcome>,
}

impl FlowObserver for Obs {
    type Error = String;
    fn display(&mut self, text: &str) {
        self.display.push(text.into());
    }
    fn slip_line(&mut self, line: &str) {
        self.slip.push(line.into());
    }
    async fn outcome(&mut self, o: &CardOutcome) -> Result<Committed, String> {
        // Give a premature ACK every chance to reach the terminal.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            !self.seen.s2_acked.load(Ordering::SeqCst),
            "S2 was acknowledged before it was committed"
        );
        self.outcome = Some(o.clone());
        if self.fail {
            Err("the journal is full".into())
        } else {
            Ok(Committed::journaled())
        }
    }
}

fn driver(extra: &str) -> EcrEft {
    let config: TerminalConfig = toml::from_str(&format!(
        "id = \"t1\"\nprotocol = \"ecr-eft\"\nport = \"/dev/null\"\ntransaction_timeout = 3.0\n{extra}"
    ))
    .unwrap();
    EcrEft::new(config, "/dev/null".into())
}

async fn sale(amount: u64, fail: bool, extra: &str) -> (Result<FlowEnd, String>, Obs) {
    let (a, b) = tokio::io::duplex(4096);
    let seen = Arc::new(Seen::default());
    tokio::spawn(terminal(b, seen.clone()));
    let mut d = driver(extra).over(Box::new(a));
    let info = d.status().await.unwrap();
    assert_eq!(info.terminal_id.as_deref(), Some("T0000001"));
    let mut obs = Obs {
        seen: seen.clone(),
        fail,
        display: vec![],
        slip: vec![],
        outcome: None,
    };
    let cmd = CardCommand::Sale {
        amount,
        currency: 985,
    };
    let r = d.run("42", &cmd, &mut obs).await.map_err(|e| match e {
        FlowError::Device(e) => e.message,
        FlowError::Observer(e) => format!("observer: {e}"),
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(seen.s1.load(Ordering::SeqCst), 1, "exactly one S1");
    (r, obs)
}

#[tokio::test]
async fn a_sale_commits_before_it_acknowledges() {
    let (r, obs) = sale(1234, false, "").await;
    let end = r.unwrap();
    let o = end.outcome.unwrap();
    assert!(o.approved);
    assert_eq!(o.amount, Some(1234));
    assert_eq!(o.trace_number, Some(1));
    assert_eq!(o.transaction_id.as_deref(), Some("000001"));
    assert_eq!(o.terminal_id.as_deref(), Some("T0000001"));
    assert!(
        obs.seen.s2_acked.load(Ordering::SeqCst),
        "acknowledged after the commit"
    );
    assert!(
        obs.slip.iter().any(|l| l == "KARTA 545454******5454"),
        "{:?}",
        obs.slip
    );
    assert!(!obs.display.is_empty());
}

#[tokio::test]
async fn an_outcome_that_cannot_be_committed_is_never_acknowledged() {
    let (r, obs) = sale(1234, true, "").await;
    assert_eq!(r.unwrap_err(), "observer: the journal is full");
    assert!(obs.outcome.is_some());
    assert!(!obs.seen.s2_acked.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_decline_is_an_outcome_with_no_slip() {
    let (r, obs) = sale(1251, false, "").await;
    let o = r.unwrap().outcome.unwrap();
    assert!(!o.approved);
    assert_eq!(o.result_code, 51);
    assert!(obs.slip.is_empty());
}

#[tokio::test]
async fn a_slip_refused_for_the_terminal_prints_nothing_here() {
    let (r, obs) = sale(1234, false, "slip = \"terminal\"\n").await;
    assert!(r.unwrap().outcome.unwrap().approved);
    assert!(obs.slip.is_empty());
}

#[tokio::test]
async fn a_lost_result_is_an_unknown_outcome_never_a_resend() {
    let (r, obs) = sale(1252, false, "").await;
    let msg = r.unwrap_err();
    assert!(msg.contains("no message from the terminal"), "{msg}");
    assert!(obs.outcome.is_none());
}

#[tokio::test]
async fn flows_the_protocol_lacks_are_refused_before_anything_is_sent() {
    let mut d = driver("");
    for cmd in [
        CardCommand::Refund {
            amount: 1,
            currency: 985,
        },
        CardCommand::Reversal { receipt_number: 1 },
        CardCommand::EndOfDay,
    ] {
        let mut obs = Obs {
            seen: Arc::default(),
            fail: false,
            display: vec![],
            slip: vec![],
            outcome: None,
        };
        match d.run("1", &cmd, &mut obs).await {
            Err(FlowError::Device(e)) => {
                assert!(e.is_refusal());
                assert_eq!(e.category, ErrorCategory::NotPossible);
                assert!(e.message.contains("nothing was sent"), "{}", e.message);
            }
            other => panic!("{cmd:?}: {:?}", other.map(|_| ())),
        }
    }
    assert_eq!(
        d.last_transaction().await.unwrap(),
        LastTransaction::Unsupported
    );
}

#[test]
fn transaction_ids_become_trace_numbers() {
    assert_eq!(trace_number("000017"), Some(17));
    assert_eq!(trace_number(""), None);
    let derived = trace_number("N/A-7").unwrap();
    assert!(derived >= DERIVED_TRACE_BIT);
    assert_eq!(trace_number("N/A-7"), Some(derived));
    assert_ne!(trace_number("N/A-8"), Some(derived));
}

#[test]
fn only_masked_card_data_leaves_the_driver() {
    let r = TransactionResult {
        card_token: "5454545454545454".into(),
        transaction_id: "9".into(),
        amount: Some(100),
        ..Default::default()
    };
    let o = outcome(&r);
    assert_eq!(o.masked_pan.as_deref(), Some("545454******5454"));
    assert_eq!(explain(993).category, ErrorCategory::TerminalBusy);
    assert_eq!(explain(51).shown, "051");
}

#[test]
fn link_timeouts_come_from_the_configuration() {
    let d = driver("ack_timeout_ms = 500\nmax_retransmits = 1\nkeepalive_ms = 20000\n");
    assert_eq!(d.link.ack_timeout, Duration::from_millis(500));
    assert_eq!(d.link.max_retransmits, 1);
    assert_eq!(d.link.keepalive, Some(Duration::from_secs(20)));
    let d = driver("");
    assert_eq!(d.link, LinkConfig::new(Role::Ecr));
}

/// A scripted terminal: on S1 it sends the same `I1` (same token, same text) every
/// `every`, `times` times, then an approved S2.
async fn repeating_status_terminal(mut io: tokio::io::DuplexStream, every: Duration, times: u32) {
    let mut link = Link::new(LinkConfig::new(Role::Eft));
    let mut buf = [0u8; 1024];
    let mut flow: Option<(Token, Instant, u32)> = None;
    loop {
        let now = Instant::now();
        if link.poll_timeout().is_some_and(|t| t <= now) {
            link.handle_timeout(now);
        }
        while let Some(ev) = link.poll_event() {
            if let LinkEvent::Received {
                frame,
                repeat: false,
                ..
            } = ev
                && frame.kind == *b"S1"
            {
                flow = Some((frame.token, now, 0));
            }
        }
        if let Some((token, start, sent)) = flow.as_mut()
            && now >= *start + every * *sent
        {
            let m = if *sent < times {
                Message::I1(ecr_eft::message::Progress {
                    status: 20,
                    message: "Włóż kartę".into(),
                })
            } else {
                Message::S2(TransactionResult {
                    transaction_id: "000009".into(),
                    amount: Some(1234),
                    ..Default::default()
                })
            };
            link.reply(*token, m.kind(), m.to_fields().unwrap(), now)
                .unwrap();
            *sent += 1;
            if *sent > times {
                flow = None;
            }
        }
        while let Some(b) = link.poll_transmit() {
            if io.write_all(&b).await.is_err() {
                return;
            }
        }
        match tokio::time::timeout(Duration::from_millis(10), io.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => link.handle_input(&buf[..n], Instant::now()),
            Err(_) => {}
        }
    }
}

/// A slow card reader repeats the very same status frame; the link reports it as a
/// repetition, yet it shows the terminal is alive and on our transaction: the silence
/// timeout must restart on it, or the sale is abandoned while the card may still be
/// charged (it was: the emulator's …53 slow card became needs_attention).
#[tokio::test]
async fn a_repeated_status_restarts_the_transaction_timeout() {
    let (a, b) = tokio::io::duplex(4096);
    // transaction_timeout is 3 s; a status every 1.5 s for 6 s, then the result.
    tokio::spawn(repeating_status_terminal(b, Duration::from_millis(1500), 4));
    let mut d = driver("").over(Box::new(a));
    let mut obs = Obs {
        seen: Arc::default(),
        fail: false,
        display: vec![],
        slip: vec![],
        outcome: None,
    };
    let cmd = CardCommand::Sale {
        amount: 1234,
        currency: 985,
    };
    let end = match d.run("43", &cmd, &mut obs).await {
        Ok(end) => end,
        Err(FlowError::Device(e)) => panic!("{}", e.message),
        Err(FlowError::Observer(e)) => panic!("{e}"),
    };
    let o = end.outcome.unwrap();
    assert!(o.approved);
    assert_eq!(o.transaction_id.as_deref(), Some("000009"));
}

/// The terminal closes the connection right after a result (the emulator's …54). The next
/// S1 must not go into the dead connection (it would be an unknown outcome, needs_attention,
/// with nothing charged): the driver connects again first, and when it cannot, nothing
/// was sent (a refusal).
#[tokio::test]
async fn a_connection_closed_while_idle_is_not_used_for_the_next_sale() {
    let (a, b) = tokio::io::duplex(4096);
    let seen = Arc::new(Seen::default());
    let terminal_task = tokio::spawn(terminal(b, seen.clone()));
    // command_timeout bounds the attempts to connect again (to /dev/null, which fails).
    let mut d = driver("command_timeout = 0.5\n").over(Box::new(a));
    d.status().await.unwrap();
    terminal_task.abort();
    let _ = terminal_task.await;
    let mut obs = Obs {
        seen: seen.clone(),
        fail: false,
        display: vec![],
        slip: vec![],
        outcome: None,
    };
    let cmd = CardCommand::Sale {
        amount: 1234,
        currency: 985,
    };
    match d.run("44", &cmd, &mut obs).await {
        Err(FlowError::Device(e)) => {
            assert!(e.is_refusal(), "{e:?}");
            assert!(e.message.contains("nothing was charged"), "{}", e.message);
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert_eq!(seen.s1.load(Ordering::SeqCst), 0);
}

/// A terminal still in a flow a restart abandoned: it answers the first S1 busy (993, with
/// the S1's token), sends the abandoned flow's slip start, then takes the next S1.
async fn busy_once_terminal(mut io: tokio::io::DuplexStream, seen: Arc<Seen>) {
    let mut link = Link::new(LinkConfig::new(Role::Eft));
    let mut buf = [0u8; 1024];
    loop {
        let now = Instant::now();
        if link.poll_timeout().is_some_and(|t| t <= now) {
            link.handle_timeout(now);
        }
        while let Some(ev) = link.poll_event() {
            if let LinkEvent::Received {
                frame,
                repeat: false,
                ..
            } = ev
                && frame.kind == *b"S1"
            {
                let n = seen.s1.fetch_add(1, Ordering::SeqCst);
                let r = if n == 0 {
                    TransactionResult {
                        error: ERROR_BUSY,
                        ..Default::default()
                    }
                } else {
                    TransactionResult {
                        transaction_id: "000010".into(),
                        amount: Some(1234),
                        ..Default::default()
                    }
                };
                let m = Message::S2(r);
                link.reply(frame.token, m.kind(), m.to_fields().unwrap(), now)
                    .unwrap();
                if n == 0 {
                    let d2 = Message::D2;
                    link.request(d2.kind(), d2.to_fields().unwrap(), now)
                        .unwrap();
                }
            }
        }
        while let Some(b) = link.poll_transmit() {
            if io.write_all(&b).await.is_err() {
                return;
            }
        }
        match tokio::time::timeout(Duration::from_millis(10), io.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => link.handle_input(&buf[..n], Instant::now()),
            Err(_) => {}
        }
    }
}

/// Busy (993) echoing our S1's token means the terminal did not take it: the driver lets
/// the line go quiet (answering the other flow) and sends the sale again, once.
#[tokio::test]
async fn a_busy_terminal_gets_the_sale_again_once_the_line_is_quiet() {
    let (a, b) = tokio::io::duplex(4096);
    let seen = Arc::new(Seen::default());
    tokio::spawn(busy_once_terminal(b, seen.clone()));
    let mut d = driver("").over(Box::new(a));
    let mut obs = Obs {
        seen: seen.clone(),
        fail: false,
        display: vec![],
        slip: vec![],
        outcome: None,
    };
    let cmd = CardCommand::Sale {
        amount: 1234,
        currency: 985,
    };
    let end = match d.run("45", &cmd, &mut obs).await {
        Ok(end) => end,
        Err(FlowError::Device(e)) => panic!("{}", e.message),
        Err(FlowError::Observer(e)) => panic!("{e}"),
    };
    assert!(end.outcome.unwrap().approved);
    assert_eq!(seen.s1.load(Ordering::SeqCst), 2, "busy, then taken");
}
