//! The link layer, driven with explicit time: pairing, ACK/NAK, retransmission (never of
//! S1), token wrap, keep-alive, partial frames.

use ecr_eft::frame::{ACK, NAK, Token};
use ecr_eft::link::{FailReason, Link, LinkConfig, LinkEvent, Role};
use ecr_eft::message::{Message, Transaction, TransactionResult, TransactionType};
use std::time::{Duration, Instant};

fn sale(gross: u64) -> Vec<Vec<u8>> {
    Message::S1(Transaction {
        kind: TransactionType::Sale,
        ecr_id: "K1".into(),
        payment_id: "P1".into(),
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

fn drain(link: &mut Link) -> Vec<Vec<u8>> {
    std::iter::from_fn(|| link.poll_transmit()).collect()
}

fn events(link: &mut Link) -> Vec<LinkEvent> {
    std::iter::from_fn(|| link.poll_event()).collect()
}

/// Move everything each side transmits to the other until both are quiet.
fn exchange(a: &mut Link, b: &mut Link, now: Instant) {
    loop {
        let from_a = drain(a);
        let from_b = drain(b);
        if from_a.is_empty() && from_b.is_empty() {
            return;
        }
        for t in from_a {
            b.handle_input(&t, now);
        }
        for t in from_b {
            a.handle_input(&t, now);
        }
    }
}

#[test]
fn request_and_reply_pair_by_token() {
    let now = Instant::now();
    let mut ecr = Link::new(LinkConfig::new(Role::Ecr));
    let mut eft = Link::new(LinkConfig::new(Role::Eft));
    let token = ecr.request(*b"S1", sale(1000), now).unwrap();
    assert_eq!(ecr.open_requests(), &[(token, *b"S1")]);
    exchange(&mut ecr, &mut eft, now);
    assert_eq!(
        events(&mut ecr),
        vec![LinkEvent::Delivered {
            token,
            kind: *b"S1"
        }]
    );
    let ev = events(&mut eft);
    let [LinkEvent::Received { frame, answers, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    assert_eq!(*answers, None);
    assert_eq!(frame.token, token);
    // The terminal's progress and result echo the token.
    let i1 = Message::I1(ecr_eft::message::Progress {
        status: 20,
        message: "Włóż kartę".into(),
    });
    eft.reply(token, *b"I1", i1.to_fields().unwrap(), now)
        .unwrap();
    let s2 = Message::S2(TransactionResult {
        amount: Some(1000),
        ..Default::default()
    });
    eft.reply(token, *b"S2", s2.to_fields().unwrap(), now)
        .unwrap();
    exchange(&mut ecr, &mut eft, now);
    let got: Vec<_> = events(&mut ecr)
        .into_iter()
        .map(|e| match e {
            LinkEvent::Received { frame, answers, .. } => {
                (Message::decode(&frame).unwrap().kind(), answers)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(got, vec![(*b"I1", Some(*b"S1")), (*b"S2", Some(*b"S1"))]);
    assert!(ecr.open_requests().is_empty());
    assert_eq!(events(&mut eft).len(), 2); // two Delivered
}

#[test]
fn s1_is_never_sent_twice() {
    let t0 = Instant::now();
    let mut ecr = Link::new(LinkConfig::new(Role::Ecr));
    let token = ecr.request(*b"S1", sale(500), t0).unwrap();
    assert_eq!(drain(&mut ecr).len(), 1);
    let t = ecr.poll_timeout().unwrap();
    assert_eq!(t, t0 + Duration::from_secs(3));
    ecr.handle_timeout(t);
    assert!(drain(&mut ecr).is_empty());
    assert_eq!(
        events(&mut ecr),
        vec![LinkEvent::Failed {
            token,
            kind: *b"S1",
            reason: FailReason::NoAnswer
        }]
    );
    // The terminal may have it: its S2 is still awaited.
    assert_eq!(ecr.open_requests().len(), 1);

    let token = ecr.request(*b"S1", sale(600), t).unwrap();
    drain(&mut ecr);
    ecr.handle_input(&[NAK], t);
    assert!(drain(&mut ecr).is_empty());
    assert_eq!(
        events(&mut ecr),
        vec![LinkEvent::Failed {
            token,
            kind: *b"S1",
            reason: FailReason::Nak
        }]
    );
    assert_eq!(ecr.open_requests().len(), 1);
}

#[test]
fn idempotent_frames_are_repeated_then_fail() {
    let mut now = Instant::now();
    let mut ecr = Link::new(LinkConfig::new(Role::Ecr));
    let token = ecr.request(*b"T1", Vec::new(), now).unwrap();
    let first = drain(&mut ecr);
    ecr.handle_input(&[NAK], now);
    assert_eq!(drain(&mut ecr), first, "repeated after NAK");
    for _ in 0..2 {
        now = ecr.poll_timeout().unwrap();
        ecr.handle_timeout(now);
        assert_eq!(drain(&mut ecr), first, "repeated after the timeout");
    }
    now = ecr.poll_timeout().unwrap();
    ecr.handle_timeout(now);
    assert!(drain(&mut ecr).is_empty());
    assert_eq!(
        events(&mut ecr),
        vec![LinkEvent::Failed {
            token,
            kind: *b"T1",
            reason: FailReason::NoAnswer
        }]
    );
    assert!(ecr.open_requests().is_empty());
}

#[test]
fn frames_wait_their_turn_and_bad_frames_are_naked() {
    let now = Instant::now();
    let mut ecr = Link::new(LinkConfig::new(Role::Ecr));
    ecr.request(*b"T1", Vec::new(), now).unwrap();
    ecr.request(*b"P1", Vec::new(), now).unwrap();
    assert_eq!(drain(&mut ecr).len(), 1);
    ecr.handle_input(&[ACK], now);
    let second = drain(&mut ecr);
    assert_eq!(second.len(), 1);
    assert_eq!(&second[0][8..10], b"P1");
    // A corrupted frame from the peer.
    let mut bad = Message::T1
        .to_frame(Token::new(9, 6))
        .unwrap()
        .encode()
        .unwrap();
    *bad.last_mut().unwrap() ^= 0x40;
    ecr.handle_input(&bad, now);
    assert_eq!(drain(&mut ecr), vec![vec![NAK]]);
    // ACK/NAK arriving when nothing waits are ignored.
    ecr.handle_input(&[ACK], now);
    ecr.handle_input(&[ACK, NAK, 0x00], now);
    assert!(drain(&mut ecr).is_empty());
}

#[test]
fn tokens_wrap_and_skip_open_requests() {
    let now = Instant::now();
    let mut cfg = LinkConfig::new(Role::Ecr);
    cfg.tokens = 1..4;
    let mut ecr = Link::new(cfg);
    let a = ecr.request(*b"S1", sale(1), now).unwrap();
    ecr.handle_input(&[ACK], now);
    let b = ecr.request(*b"P1", Vec::new(), now).unwrap();
    ecr.handle_input(&[ACK], now);
    let c = ecr.request(*b"P1", Vec::new(), now).unwrap();
    ecr.handle_input(&[ACK], now);
    let d = ecr.request(*b"P1", Vec::new(), now).unwrap();
    assert_eq!(
        [a, b, c, d].map(Token::value),
        [1, 2, 3, 2],
        "wraps, skipping the open S1"
    );
    ecr.close(a);
    ecr.handle_input(&[ACK], now);
    let e = ecr.request(*b"P1", Vec::new(), now).unwrap();
    assert_eq!(e.value(), 3);
    assert_eq!(a.to_wire(), b"000001");
}

#[test]
fn keepalive_pings_and_reports_a_lost_peer() {
    let t0 = Instant::now();
    let mut cfg = LinkConfig::new(Role::Ecr);
    cfg.keepalive = Some(Duration::from_secs(30));
    let mut ecr = Link::new(cfg);
    let mut eft = Link::new(LinkConfig::new(Role::Eft));
    ecr.handle_input(&[0x00], t0);
    assert_eq!(ecr.poll_timeout(), Some(t0 + Duration::from_secs(30)));
    let t1 = t0 + Duration::from_secs(30);
    ecr.handle_timeout(t1);
    let ping = drain(&mut ecr);
    assert_eq!(&ping[0][8..10], b"T1");
    // The terminal answers T2: consumed by the link.
    eft.handle_input(&ping[0], t1);
    ecr.handle_input(&drain(&mut eft).concat(), t1);
    let ev = events(&mut eft);
    let [LinkEvent::Received { frame, .. }] = ev.as_slice() else {
        panic!("{ev:?}")
    };
    eft.reply(frame.token, *b"T2", Vec::new(), t1).unwrap();
    exchange(&mut ecr, &mut eft, t1);
    assert!(events(&mut ecr).is_empty());
    // Now the peer goes silent: two pings unanswered, then PeerLost.
    let t2 = ecr.poll_timeout().unwrap();
    assert_eq!(t2, t1 + Duration::from_secs(30));
    ecr.handle_timeout(t2);
    assert_eq!(drain(&mut ecr).len(), 1);
    let mut now = t2;
    while events(&mut ecr).is_empty() || !ecr.open_requests().is_empty() {
        now = ecr.poll_timeout().unwrap();
        ecr.handle_timeout(now);
        drain(&mut ecr);
        if now > t2 + Duration::from_secs(60) {
            panic!("no PeerLost");
        }
    }
    assert!(now >= t2 + Duration::from_secs(20));
}

#[test]
fn peer_lost_is_reported() {
    let t0 = Instant::now();
    let mut cfg = LinkConfig::new(Role::Ecr);
    cfg.keepalive = Some(Duration::from_secs(5));
    let mut ecr = Link::new(cfg);
    ecr.handle_input(&[0x00], t0);
    let mut now = t0;
    let mut seen = Vec::new();
    while now < t0 + Duration::from_secs(60) && !seen.contains(&LinkEvent::PeerLost) {
        now = ecr.poll_timeout().unwrap();
        ecr.handle_timeout(now);
        drain(&mut ecr);
        seen.extend(events(&mut ecr));
    }
    assert_eq!(seen, vec![LinkEvent::PeerLost]);
    // Two pings of 10 s after 5 s idle.
    assert_eq!(now, t0 + Duration::from_secs(25));
}

#[test]
fn a_stalled_partial_frame_is_dropped() {
    let t0 = Instant::now();
    let mut eft = Link::new(LinkConfig::new(Role::Eft));
    let frame = Message::T1
        .to_frame(Token::new(5, 6))
        .unwrap()
        .encode()
        .unwrap();
    eft.handle_input(&frame[..5], t0);
    assert_eq!(eft.poll_timeout(), Some(t0 + Duration::from_secs(1)));
    let later = t0 + Duration::from_secs(2);
    eft.handle_input(&frame[5..], later);
    assert!(events(&mut eft).is_empty());
    eft.handle_input(&frame, later);
    assert_eq!(events(&mut eft).len(), 1);
}

#[test]
fn a_repeated_frame_is_flagged() {
    let t0 = Instant::now();
    let mut ecr = Link::new(LinkConfig::new(Role::Ecr));
    let token = ecr.request(*b"S1", sale(100), t0).unwrap();
    drain(&mut ecr);
    ecr.handle_input(&[ACK], t0);
    events(&mut ecr);
    let s2 = Message::S2(TransactionResult::default())
        .to_frame(token)
        .unwrap()
        .encode()
        .unwrap();
    ecr.handle_input(&s2, t0);
    // Our ACK is lost; the terminal repeats the S2 after its ACK timeout.
    ecr.handle_input(&s2, t0 + Duration::from_secs(3));
    let flags: Vec<(Option<[u8; 2]>, bool)> = events(&mut ecr)
        .into_iter()
        .map(|e| match e {
            LinkEvent::Received {
                answers, repeat, ..
            } => (answers, repeat),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(flags, vec![(Some(*b"S1"), false), (None, true)]);
    assert_eq!(drain(&mut ecr), vec![vec![ACK], vec![ACK]]);
    // Much later the same bytes are a new frame.
    ecr.handle_input(&s2, t0 + Duration::from_secs(60));
    assert!(matches!(
        events(&mut ecr).as_slice(),
        [LinkEvent::Received { repeat: false, .. }]
    ));
}

#[test]
fn a_held_kind_is_acked_only_when_the_user_says_so() {
    let t0 = Instant::now();
    let mut ecr = Link::new(LinkConfig::new(Role::Ecr));
    ecr.hold_acks(&[*b"S2"]);
    let token = ecr.request(*b"S1", sale(100), t0).unwrap();
    drain(&mut ecr);
    ecr.handle_input(&[ACK], t0);
    events(&mut ecr);
    let i1 = Message::I1(ecr_eft::message::Progress {
        status: 20,
        message: String::new(),
    })
    .to_frame(token)
    .unwrap()
    .encode()
    .unwrap();
    let s2 = Message::S2(TransactionResult::default())
        .to_frame(token)
        .unwrap()
        .encode()
        .unwrap();
    // Other kinds are ACKed as they arrive.
    ecr.handle_input(&i1, t0);
    assert_eq!(drain(&mut ecr), vec![vec![ACK]]);
    ecr.handle_input(&s2, t0);
    assert_eq!(events(&mut ecr).len(), 2);
    assert!(
        drain(&mut ecr).is_empty(),
        "S2 is not ACKed before acknowledge()"
    );
    assert!(ecr.awaiting_ack());
    // The terminal repeats it while we are still committing: still no ACK.
    ecr.handle_input(&s2, t0 + Duration::from_secs(3));
    assert!(drain(&mut ecr).is_empty());
    ecr.acknowledge();
    assert_eq!(drain(&mut ecr), vec![vec![ACK]]);
    assert!(!ecr.awaiting_ack());
    ecr.acknowledge();
    assert!(drain(&mut ecr).is_empty(), "one ACK per held frame");
    // A repetition of a frame already acknowledged is ACKed at once.
    ecr.handle_input(&s2, t0 + Duration::from_secs(4));
    assert_eq!(drain(&mut ecr), vec![vec![ACK]]);
}
