//! Fuzz the link state machine, with the terminal model behind it.
//!
//! Input: a stream of ops. `00..=7F n`: feed the next n+1 bytes at the current time;
//! `80..=BF`: advance time by (op & 3F) × 100 ms and fire due timers; `C0..=FF`: send a
//! request whose type is picked by the op (S1 among them). Checked: no panic; an S1 frame
//! is never transmitted twice; nothing empty is transmitted; every received frame
//! re-encodes; deadlines are never in the past after handling them.
#![no_main]

use ecr_eft::frame::{Decoder, Item};
use ecr_eft::link::{Link, LinkConfig, LinkEvent, Role};
use ecr_eft::message::{Message, Transaction, TransactionType};
use ecr_eft::model::{Outbound, Terminal};
use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let mut cfg = LinkConfig::new(Role::Eft);
    cfg.keepalive = Some(Duration::from_secs(1));
    let mut link = Link::new(cfg);
    let mut terminal = Terminal::new();
    let mut now = Instant::now();
    let mut seen_s1: Vec<Vec<u8>> = Vec::new();
    let mut wire = Decoder::new();
    let mut i = 0;
    while i < data.len() {
        let op = data[i];
        i += 1;
        match op {
            0x00..=0x7F => {
                let end = (i + usize::from(op) + 1).min(data.len());
                link.handle_input(&data[i..end], now);
                i = end;
            }
            0x80..=0xBF => {
                now += Duration::from_millis(u64::from(op & 0x3F) * 100);
                if link.poll_timeout().is_some_and(|t| t <= now) {
                    link.handle_timeout(now);
                }
                if terminal.poll_timeout().is_some_and(|t| t <= now) {
                    terminal.handle_timeout(now);
                }
            }
            _ => {
                let m = match op % 4 {
                    0 => Message::T1,
                    1 => Message::P1,
                    2 => Message::D2,
                    _ => Message::S1(Transaction {
                        kind: TransactionType::Sale,
                        ecr_id: "E".into(),
                        payment_id: "P".into(),
                        gross: u64::from(op),
                        net: None,
                        vat: None,
                        currency: "PLN".into(),
                        cashback: None,
                        max_cashback: None,
                    }),
                };
                link.request(m.kind(), m.to_fields().unwrap(), now).unwrap();
            }
        }
        while let Some(e) = link.poll_event() {
            if let LinkEvent::Received { frame, .. } = e {
                let bytes = frame.encode().unwrap();
                assert!(!bytes.is_empty());
                if let Ok(m) = Message::decode(&frame) {
                    terminal.handle_message(frame.token, m, now);
                }
            }
        }
        while let Some(o) = terminal.poll_send() {
            let _ = match o {
                Outbound::Reply(t, m) => link.reply(t, m.kind(), m.to_fields().unwrap(), now),
                Outbound::Request(m) => link
                    .request(m.kind(), m.to_fields().unwrap(), now)
                    .map(|_| ()),
            };
        }
        while terminal.poll_event().is_some() {}
        while let Some(t) = link.poll_transmit() {
            assert!(!t.is_empty());
            let mut items = Vec::new();
            wire.push(&t, &mut items);
            for item in items {
                if let Item::Frame { frame, .. } = item
                    && frame.kind == *b"S1"
                {
                    let bytes = frame.encode().unwrap();
                    assert!(!seen_s1.contains(&bytes), "S1 sent twice");
                    seen_s1.push(bytes);
                }
            }
        }
        if let Some(t) = link.poll_timeout() {
            assert!(t + Duration::from_secs(60) > now);
        }
    }
});
