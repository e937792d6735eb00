//! A register link and a terminal (link + model) over a lossy, corrupting line with
//! random time steps: the S1 frame is never on the wire twice, the terminal never stores
//! more transactions than the register sent S1s, and nothing panics.
#![cfg(feature = "model")]

use ecr_eft::frame::{Decoder, Item};
use ecr_eft::link::{Link, LinkConfig, LinkEvent, Role};
use ecr_eft::message::{Message, Transaction, TransactionType};
use ecr_eft::model::{Outbound, Terminal};
use proptest::prelude::*;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
enum Op {
    /// Start a sale of this amount (if no transaction is open).
    Sale(u64),
    /// Let this many milliseconds pass.
    Wait(u64),
    /// Drop the next chunk in flight.
    Lose,
    /// Flip a bit in the next chunk in flight.
    Corrupt(u8),
    /// Deliver everything in flight.
    Deliver,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        1 => (1u64..100_000).prop_map(Op::Sale),
        3 => (0u64..4000).prop_map(Op::Wait),
        1 => Just(Op::Lose),
        1 => any::<u8>().prop_map(Op::Corrupt),
        4 => Just(Op::Deliver),
    ]
}

fn s1(gross: u64) -> Vec<Vec<u8>> {
    Message::S1(Transaction {
        kind: TransactionType::Sale,
        ecr_id: "K".into(),
        payment_id: format!("P{gross}"),
        gross,
        net: None,
        vat: None,
        currency: "PLN".into(),
        cashback: None,
        max_cashback: None,
    })
    .to_fields()
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]
    #[test]
    fn s1_is_never_duplicated(ops in proptest::collection::vec(op(), 1..120)) {
        let mut now = Instant::now();
        let mut ecr = Link::new(LinkConfig::new(Role::Ecr));
        let mut eft = Link::new(LinkConfig::new(Role::Eft));
        let mut terminal = Terminal::new();
        let mut to_eft: Vec<Vec<u8>> = Vec::new();
        let mut to_ecr: Vec<Vec<u8>> = Vec::new();
        let mut wire = Decoder::new();
        let mut s1_on_wire = 0usize;
        let mut s1_sent = 0usize;
        for op in ops {
            match op {
                Op::Sale(g) => {
                    if ecr.open_requests().is_empty() {
                        ecr.request(*b"S1", s1(g), now).unwrap();
                        s1_sent += 1;
                    }
                }
                Op::Wait(ms) => now += Duration::from_millis(ms),
                Op::Lose => {
                    if !to_eft.is_empty() { to_eft.remove(0); }
                    else if !to_ecr.is_empty() { to_ecr.remove(0); }
                }
                Op::Corrupt(b) => {
                    let chunk = to_eft.first_mut().or(to_ecr.first_mut());
                    if let Some(c) = chunk && !c.is_empty() {
                        let i = usize::from(b) % c.len();
                        c[i] ^= 1 << (b % 8);
                    }
                }
                Op::Deliver => {
                    for c in to_eft.drain(..) { eft.handle_input(&c, now); }
                    for c in to_ecr.drain(..) { ecr.handle_input(&c, now); }
                }
            }
            if ecr.poll_timeout().is_some_and(|t| t <= now) { ecr.handle_timeout(now); }
            if eft.poll_timeout().is_some_and(|t| t <= now) { eft.handle_timeout(now); }
            if terminal.poll_timeout().is_some_and(|t| t <= now) { terminal.handle_timeout(now); }
            while let Some(e) = eft.poll_event() {
                if let LinkEvent::Received { frame, repeat: false, .. } = e
                    && let Ok(m) = Message::decode(&frame)
                {
                    terminal.handle_message(frame.token, m, now);
                }
            }
            while let Some(o) = terminal.poll_send() {
                let _ = match o {
                    Outbound::Reply(t, m) => eft.reply(t, m.kind(), m.to_fields().unwrap(), now),
                    Outbound::Request(m) => eft.request(m.kind(), m.to_fields().unwrap(), now).map(|_| ()),
                };
            }
            while terminal.poll_event().is_some() {}
            while let Some(e) = ecr.poll_event() {
                match e {
                    LinkEvent::Received { frame, repeat: false, .. } => {
                        if matches!(&frame.kind, b"D2" | b"D6" | b"D3") {
                            let d0 = Message::D0 { ok: true };
                            ecr.reply(frame.token, *b"D0", d0.to_fields().unwrap(), now).unwrap();
                        }
                        if frame.kind == *b"S2" {
                            ecr.close(frame.token);
                        }
                    }
                    LinkEvent::Failed { token, kind: [b'S', b'1'], .. } => {
                        // The register gives up on it (the driver would mark it for attention).
                        ecr.close(token);
                    }
                    _ => {}
                }
            }
            while let Some(t) = ecr.poll_transmit() {
                let mut items = Vec::new();
                wire.push(&t, &mut items);
                s1_on_wire += items.iter().filter(|i| matches!(i, Item::Frame { frame, .. } if frame.kind == *b"S1")).count();
                to_eft.push(t);
            }
            while let Some(t) = eft.poll_transmit() { to_ecr.push(t); }
            prop_assert!(s1_on_wire <= s1_sent, "S1 on the wire {s1_on_wire} times for {s1_sent} sales");
            prop_assert!(terminal.memory().transactions.len() <= s1_sent);
        }
    }
}
