//! The terminal model: every magic amount, the slip, abort, busy, void, T1.
#![cfg(feature = "model")]

use ecr_eft::frame::Token;
use ecr_eft::message::{ERROR_BUSY, Message, Transaction, TransactionResult, TransactionType};
use ecr_eft::model::{
    ERROR_ABORTED, ERROR_DECLINED, Event, Outbound, SLOW_CARD, Terminal, TerminalMemory,
};
use std::time::{Duration, Instant};

fn s1(gross: u64, kind: TransactionType, payment: &str) -> Message {
    Message::S1(Transaction {
        kind,
        ecr_id: "KASA1".into(),
        payment_id: payment.into(),
        gross,
        net: Some(gross * 100 / 123),
        vat: Some(gross - gross * 100 / 123),
        currency: "PLN".into(),
        cashback: None,
        max_cashback: None,
    })
}

fn out(t: &mut Terminal) -> Vec<Outbound> {
    std::iter::from_fn(|| t.poll_send()).collect()
}

fn evs(t: &mut Terminal) -> Vec<Event> {
    std::iter::from_fn(|| t.poll_event()).collect()
}

fn kinds(o: &[Outbound]) -> Vec<String> {
    o.iter()
        .map(|o| match o {
            Outbound::Reply(_, Message::I1(p)) => format!("I1 {}", p.status),
            Outbound::Reply(_, m) | Outbound::Request(m) => {
                String::from_utf8(m.kind().to_vec()).unwrap()
            }
        })
        .collect()
}

fn result(o: &[Outbound]) -> Option<TransactionResult> {
    o.iter().find_map(|o| match o {
        Outbound::Reply(_, Message::S2(r)) => Some(r.clone()),
        _ => None,
    })
}

/// Run a sale, answering every D-message with D0 `ok`.
fn sale(t: &mut Terminal, gross: u64, now: Instant, print_ok: bool) -> Vec<Outbound> {
    let tok = Token::new(7, 6);
    t.handle_message(tok, s1(gross, TransactionType::Sale, "P-1"), now);
    let mut all = Vec::new();
    loop {
        let batch = out(t);
        if batch.is_empty() {
            return all;
        }
        for o in &batch {
            if let Outbound::Request(_) = o {
                t.handle_message(Token::new(99, 6), Message::D0 { ok: print_ok }, now);
            } else if let Outbound::Reply(k, _) = o {
                assert_eq!(*k, tok, "replies echo the S1 token");
            }
        }
        all.extend(batch);
    }
}

#[test]
fn approved_sale_prints_the_slip_then_answers() {
    let now = Instant::now();
    let mut t = Terminal::new();
    let o = sale(&mut t, 1000, now, true);
    assert_eq!(
        kinds(&o),
        ["I1 20", "I1 50", "I1 140", "D2", "D6", "D3", "S2"]
    );
    let r = result(&o).unwrap();
    assert!(r.approved());
    assert_eq!(r.amount, Some(1000));
    assert_eq!(r.transaction_id, "000001");
    let slip = o
        .iter()
        .find_map(|o| match o {
            Outbound::Request(Message::D6 { lines }) => Some(lines.join("\n")),
            _ => None,
        })
        .unwrap();
    assert!(slip.contains("545454******5454"), "{slip}");
    assert!(!slip.contains("5454545454545454"));
    let m = t.memory();
    assert_eq!(m.transactions.len(), 1);
    assert_eq!(m.transactions[0].status, "approved");
    assert_eq!(m.transactions[0].masked_pan, "545454******5454");
    assert_eq!(evs(&mut t), vec![Event::Persist]);
    assert!(!t.is_busy());
}

#[test]
fn refused_printer_skips_the_slip() {
    let mut t = Terminal::new();
    let o = sale(&mut t, 1000, Instant::now(), false);
    assert_eq!(kinds(&o), ["I1 20", "I1 50", "I1 140", "D2", "S2"]);
}

#[test]
fn no_d0_times_out_and_the_sale_completes() {
    let now = Instant::now();
    let mut t = Terminal::new();
    t.handle_message(Token::new(1, 6), s1(700, TransactionType::Sale, "P"), now);
    assert_eq!(kinds(&out(&mut t)), ["I1 20", "I1 50", "I1 140", "D2"]);
    let d = t.poll_timeout().unwrap();
    assert_eq!(d, now + Duration::from_secs(10));
    t.handle_timeout(d);
    assert_eq!(kinds(&out(&mut t)), ["S2"]);
}

#[test]
fn magic_51_is_declined_without_a_slip() {
    let mut t = Terminal::new();
    let o = sale(&mut t, 1251, Instant::now(), true);
    assert_eq!(kinds(&o), ["I1 20", "I1 50", "I1 150", "S2"]);
    let r = result(&o).unwrap();
    assert_eq!(r.error, ERROR_DECLINED);
    assert_eq!(t.memory().transactions[0].status, "declined");
}

#[test]
fn magic_52_stores_but_never_answers() {
    let mut t = Terminal::new();
    let o = sale(&mut t, 1252, Instant::now(), true);
    assert!(result(&o).is_none());
    assert_eq!(t.memory().transactions[0].status, "approved");
    assert!(!t.is_busy(), "the next S1 is taken");
}

#[test]
fn magic_53_is_slow_and_can_be_aborted() {
    let t0 = Instant::now();
    let mut t = Terminal::new();
    t.handle_message(Token::new(3, 6), s1(1053, TransactionType::Sale, "P"), t0);
    assert_eq!(kinds(&out(&mut t)), ["I1 20"]);
    let mut now = t0;
    let mut statuses = 0;
    while now < t0 + SLOW_CARD {
        now = t.poll_timeout().unwrap();
        t.handle_timeout(now);
        let o = out(&mut t);
        statuses += o.len();
        if now >= t0 + SLOW_CARD {
            break;
        }
        if o.is_empty() {
            panic!("timer without progress");
        }
    }
    assert!(statuses >= 9);
    assert_eq!(t.memory().transactions.len(), 0, "still waiting for D0");

    let mut t = Terminal::new();
    t.handle_message(Token::new(4, 6), s1(1053, TransactionType::Sale, "P"), t0);
    out(&mut t);
    t.handle_message(Token::new(5, 6), Message::P1, t0 + Duration::from_secs(3));
    let o = out(&mut t);
    assert_eq!(kinds(&o), ["I1 180", "S2"]);
    assert_eq!(result(&o).unwrap().error, ERROR_ABORTED);
    assert!(t.memory().transactions.is_empty());
    assert!(!t.is_busy());
}

#[test]
fn magic_54_drops_the_connection_after_the_result() {
    let mut t = Terminal::new();
    let o = sale(&mut t, 1054, Instant::now(), true);
    assert_eq!(kinds(&o).last().unwrap(), "S2");
    assert_eq!(evs(&mut t), vec![Event::Persist, Event::DropConnection]);
    assert_eq!(t.memory().transactions[0].status, "approved");
}

#[test]
fn busy_t1_and_void() {
    let now = Instant::now();
    let mut t = Terminal::new();
    t.handle_message(Token::new(1, 6), s1(1053, TransactionType::Sale, "A"), now);
    out(&mut t);
    t.handle_message(Token::new(2, 6), s1(100, TransactionType::Sale, "B"), now);
    t.handle_message(Token::new(3, 6), Message::T1, now);
    let o = out(&mut t);
    assert!(
        matches!(&o[0], Outbound::Reply(k, Message::S2(r)) if *k == Token::new(2, 6) && r.error == ERROR_BUSY)
    );
    assert!(matches!(&o[1], Outbound::Reply(k, Message::T2(_)) if *k == Token::new(3, 6)));

    let mut t = Terminal::from_memory(TerminalMemory::default());
    sale(&mut t, 2000, now, true);
    t.handle_message(
        Token::new(8, 6),
        s1(2000, TransactionType::Void, "P-1"),
        now,
    );
    let r = result(&out(&mut t)).unwrap();
    assert!(r.approved());
    assert_eq!(t.memory().transactions[0].status, "voided");
    let json = serde_json::to_value(t.memory()).unwrap();
    let tx = &json["transactions"][0];
    for key in ["amount", "status", "masked_pan", "transaction_id"] {
        assert!(!tx[key].is_null(), "{key}");
    }
}

/// Found by the `link` fuzz target: a gross wider than S2's amount field (decoding is
/// lenient on widths) must be refused, not echoed into an S2 that cannot be encoded.
#[test]
fn too_large_amounts_are_refused() {
    let mut t = Terminal::new();
    t.handle_message(
        Token::new(1, 6),
        s1(10_000_000_000_000, TransactionType::Sale, "P"),
        Instant::now(),
    );
    let o = out(&mut t);
    assert_eq!(kinds(&o), ["S2"]);
    let r = result(&o).unwrap();
    assert_eq!(r.error, ecr_eft::model::ERROR_BAD_REQUEST);
    assert!(Message::S2(r).to_fields().is_ok());
    assert!(t.memory().transactions.is_empty());
}
