//! The sans-IO session (`posnet::session`) on a virtual clock, against the printer model
//! as its peer, with faults on the line in both directions, plus hand-made frames where
//! the model cannot produce the fault, and properties.
#![cfg(feature = "model")]

mod common;

use common::*;
use posnet::model::Printer;
use posnet::reply::Sprn;
use posnet::session::{CommandFailure, Retry, Session, SessionError, SessionEvent, UNKNOWN_TOKEN};
use posnet::{Closing, Command, DecodeError, Frame, Line};
use rust_decimal::Decimal;
use std::time::{Duration, Instant};

#[test]
fn normal_command() {
    let mut pair = Pair::new();
    assert!(pair.session.is_idle());
    pair.start(&Command::SCnt);
    let reply = pair.run().unwrap();
    assert_eq!(reply.mnemonic, "scnt");
    assert_eq!(reply.token, Some(tok(0)));
    assert_eq!(pair.wire(), [w("scnt", 0)]);
    assert_eq!(pair.events, [SessionEvent::Completed(Ok(reply))]);
    assert_eq!(pair.session.poll_timeout(), None);
    let stats = pair.session.stats();
    assert_eq!((stats.frames_out, stats.frames_in), (1, 1));
    assert_eq!(
        stats.bytes_out,
        Command::SCnt
            .to_frame()
            .with_token(tok(0))
            .encode()
            .unwrap()
            .len() as u64
    );
    assert!(stats.bytes_in > 0);
    assert_eq!((stats.frame_errors, stats.garbage_bytes), (0, 0));
    // The next command takes the next token.
    pair.start(&Command::SId);
    assert_eq!(pair.run().unwrap().token, Some(tok(1)));
}

#[test]
fn busy_and_bad_text_are_refused_without_sending() {
    let mut s = Session::new(config(), 9999);
    let now = Instant::now();
    let bad = Command::TrLine(Line {
        name: "a\tb".into(),
        vat_slot: 0,
        unit_price: 1,
        quantity: Decimal::ONE,
        amount: 1,
        unit: None,
        ..Line::default()
    });
    assert!(matches!(
        s.start(&bad, TIMEOUT, now),
        Err(SessionError::Text(_))
    ));
    assert!(s.is_idle());
    assert_eq!(s.poll_transmit(), None);
    s.start(&Command::SCnt, TIMEOUT, now).unwrap();
    assert_eq!(
        s.start(&Command::SCnt, TIMEOUT, now),
        Err(SessionError::Busy)
    );
    // Tokens wrap after 9999.
    assert_eq!(decode(&s.poll_transmit().unwrap()).token, Some(9999));
    assert_eq!(s.poll_transmit(), None);
    assert_eq!(s.next_token(), 0);
    assert_eq!(s.poll_timeout(), Some(now + TIMEOUT));
}

#[test]
fn lost_reply_is_recovered_with_rpt() {
    let mut pair = Pair::new();
    pair.fault_in("trinit", Fault::Drop, 1);
    pair.start(&Command::TrInit { block_mode: false });
    let reply = pair.run().unwrap();
    assert_eq!(
        (reply.mnemonic.as_str(), reply.token),
        ("trinit", Some(tok(0)))
    );
    // The command went out once: rpt fetched its stored answer.
    assert_eq!(pair.wire(), [w("trinit", 0), w("!sprn", 1), w("rpt", 0)]);
    assert_eq!(pair.retries(), [(tok(0), Retry::Rpt)]);
    assert!(
        pair.events
            .contains(&SessionEvent::Status(Sprn { code: 0 }))
    );
    assert_eq!(pair.count(|e| matches!(e, SessionEvent::Held(_))), 0);
    // Timing on the virtual clock: sprn at the command's timeout, rpt right after.
    assert_eq!(pair.sent[1].0, TIMEOUT);
    assert_eq!(pair.sent[2].0, TIMEOUT);
    assert!(pair.printer.memory().open_receipt);
}

#[test]
fn lost_command_is_sent_again_once() {
    let mut pair = Pair::new();
    pair.fault_out("trinit", Fault::Drop, 1);
    pair.start(&Command::TrInit { block_mode: false });
    let reply = pair.run().unwrap();
    assert_eq!(reply.token, Some(tok(2)));
    assert_eq!(
        pair.wire(),
        [w("trinit", 0), w("!sprn", 1), w("rpt", 0), w("trinit", 2)]
    );
    assert_eq!(pair.retries(), [(tok(0), Retry::Resend)]);
}

#[test]
fn command_lost_twice_gives_no_reply() {
    let mut pair = Pair::new();
    pair.fault_out("trinit", Fault::Drop, 2);
    pair.start(&Command::TrInit { block_mode: false });
    assert_eq!(pair.run(), Err(CommandFailure::NoReply));
    assert_eq!(
        pair.wire(),
        [
            w("trinit", 0),
            w("!sprn", 1),
            w("rpt", 0),
            w("trinit", 2),
            w("!sprn", 3),
            w("rpt", 2)
        ]
    );
    assert!(!pair.printer.memory().open_receipt);
}

#[test]
fn printer_restart_mid_command_resends() {
    let mut pair = Pair::new();
    // The printer takes the command, then loses power before the answer leaves it.
    pair.fault_in("trinit", Fault::DropAndRestart, 1);
    pair.start(&Command::TrInit { block_mode: false });
    let reply = pair.run().unwrap();
    assert_eq!(reply.token, Some(tok(2)));
    assert_eq!(
        pair.wire(),
        [w("trinit", 0), w("!sprn", 1), w("rpt", 0), w("trinit", 2)]
    );
    assert_eq!(pair.retries(), [(tok(0), Retry::Resend)]);
    assert!(pair.printer.memory().open_receipt);
    assert_eq!(pair.printer.memory().counters.cancelled, 1);
}

#[test]
fn late_reply_to_an_earlier_token_is_dropped() {
    let mut pair = Pair::new();
    // The first scnt's answer is late: rpt gets it first.
    pair.fault_in("scnt", Fault::Delay, 1);
    pair.start(&Command::SCnt);
    let first = pair.run().unwrap();
    assert_eq!(first.token, Some(tok(0)));
    assert_eq!(pair.retries(), [(tok(0), Retry::Rpt)]);
    // A receipt changes the counters, then the second scnt.
    for c in [
        Command::TrInit { block_mode: false },
        line(),
        Command::TrPayment {
            kind: posnet::PaymentKind::Cash,
            amount: 450,
            name: None,
            change: false,
        },
        Command::TrEnd(Closing {
            total: 450,
            payments: Some(450),
            change: 0,
            ..Closing::default()
        }),
    ] {
        pair.start(&c);
        pair.run().unwrap();
    }
    pair.events.clear();
    pair.fault_in("scnt", Fault::Delay, 1);
    pair.start(&Command::SCnt);
    // The first scnt's late answer arrives while the second is in flight: same mnemonic,
    // old token, old counters: dropped.
    let late_bytes = pair.delayed.remove(0);
    let late = decode(&late_bytes);
    assert_eq!(late.token, Some(tok(0)));
    pair.deliver(&late_bytes);
    pair.flush();
    assert_eq!(pair.events, [SessionEvent::Discarded(late)]);
    assert!(!pair.session.is_idle());
    // A reply to the right token but another command: dropped too.
    let other = Frame::new("sid").with_token(tok(6));
    pair.deliver(&other.encode().unwrap());
    pair.flush();
    assert_eq!(pair.events[1], SessionEvent::Discarded(other));
    pair.release();
    let second = pair.run().unwrap();
    assert_eq!(second.token, Some(tok(6)));
    assert_eq!(second.get("bn"), Some("1"));
    assert_ne!(first.get("bn"), second.get("bn"));
}

#[test]
fn reply_without_token_is_taken() {
    let now = Instant::now();
    let mut s = Session::new(config(), 1);
    s.start(&Command::SCnt, TIMEOUT, now).unwrap();
    s.poll_transmit().unwrap();
    let reply = Frame::new("scnt").with("bn", "3");
    s.handle_input(&reply.encode().unwrap(), now);
    assert_eq!(s.poll_event(), Some(SessionEvent::Received(reply.clone())));
    assert_eq!(s.poll_event(), Some(SessionEvent::Completed(Ok(reply))));
    assert!(s.is_idle());
}

#[test]
fn frame_error_is_resent_then_succeeds() {
    let mut pair = Pair::new();
    pair.fault_out("trinit", Fault::Corrupt, 2);
    pair.start(&Command::TrInit { block_mode: false });
    let reply = pair.run().unwrap();
    assert_eq!(reply.token, Some(tok(2)));
    // A frame error carries no token, so it could answer an earlier frame: `rpt` makes
    // sure the command was not taken (unknown token) before it is sent again.
    assert_eq!(
        pair.wire(),
        [
            w("trinit", 0),
            w("rpt", 0),
            w("trinit", 1),
            w("rpt", 1),
            w("trinit", 2)
        ]
    );
    assert_eq!(
        pair.retries(),
        [(tok(0), Retry::FrameError), (tok(1), Retry::FrameError)]
    );
    // No timer was needed.
    assert!(pair.sent.iter().all(|(t, _)| *t == Duration::ZERO));
}

#[test]
fn persistent_frame_error_fails() {
    let mut pair = Pair::new();
    pair.fault_out("trinit", Fault::Corrupt, 10);
    pair.start(&Command::TrInit { block_mode: false });
    assert_eq!(
        pair.run(),
        Err(CommandFailure::FrameError {
            mnemonic: "trinit".into(),
            code: 5
        })
    );
    // Three attempts, each frame error checked with `rpt`.
    assert_eq!(pair.sent.len(), 6);
    assert!(!pair.printer.memory().open_receipt);
}

#[test]
fn frame_error_from_the_model_with_token() {
    // The model answers an unknown mnemonic with `ERR ?1 cm..` carrying the token.
    let mut pair = Pair::new();
    let now = pair.now;
    pair.session
        .start_frame(Frame::new("frobnicate"), TIMEOUT, now)
        .unwrap();
    pair.flush();
    assert_eq!(
        pair.run(),
        Err(CommandFailure::FrameError {
            mnemonic: "frobnicate".into(),
            code: 1
        })
    );
    assert_eq!(pair.sent.len(), 3);
}

#[test]
fn refusal_carries_the_code() {
    let mut pair = Pair::new();
    // A line without an open receipt.
    pair.start(&line());
    let expected = Printer::new()
        .handle(&line().to_frame(), local())
        .reply
        .unwrap();
    let code = expected.error_code.unwrap();
    assert_eq!(
        pair.run(),
        Err(CommandFailure::Refused {
            mnemonic: "trline".into(),
            code
        })
    );
    assert_eq!(pair.sent.len(), 1);
}

#[test]
fn paper_out_holds_the_command_until_paper_is_back() {
    let mut pair = Pair::new();
    pair.printer.paper_out(None);
    pair.start(&Command::TrInit { block_mode: false });
    let mut helds = 0;
    let reply = pair
        .run_with(|p| {
            helds = p.count(|e| matches!(e, SessionEvent::Held(_)));
            if helds == 4 {
                assert!(p.session.is_held());
                p.paper_back();
            }
        })
        .unwrap();
    assert_eq!(reply.token, Some(tok(0)));
    assert_eq!(helds, 4);
    let wire = pair.wire();
    assert_eq!(wire[0], w("trinit", 0));
    assert_eq!(
        &wire[1..],
        [w("!sprn", 1), w("!sprn", 2), w("!sprn", 3), w("!sprn", 4)]
    );
    // Polls: at the command's timeout, then every held_poll.
    let times: Vec<Duration> = pair.sent.iter().map(|(t, _)| *t).collect();
    let poll = config().held_poll;
    assert_eq!(
        times,
        [
            Duration::ZERO,
            TIMEOUT,
            TIMEOUT + poll,
            TIMEOUT + 2 * poll,
            TIMEOUT + 3 * poll
        ]
    );
    let paper_out = Sprn { code: 5 };
    let mut expected = Vec::new();
    for _ in 0..4 {
        expected.push(SessionEvent::Status(paper_out));
        expected.push(SessionEvent::Held(paper_out));
    }
    expected.push(SessionEvent::Status(Sprn { code: 0 }));
    expected.push(SessionEvent::Completed(Ok(reply)));
    assert_eq!(pair.events, expected);
    assert!(pair.printer.memory().open_receipt);
}

#[test]
fn cover_closed_between_polls_then_reply_lost_is_fetched_with_rpt() {
    let mut pair = Pair::new();
    pair.printer.set_cover_open(true);
    pair.fault_in("trinit", Fault::Drop, 1);
    pair.start(&Command::TrInit { block_mode: false });
    let mut closed = false;
    let reply = pair
        .run_with(|p| {
            if !closed && p.count(|e| matches!(e, SessionEvent::Held(_))) == 2 {
                closed = true;
                p.printer.set_cover_open(false);
                // The printer runs the command, its answer is lost.
                p.paper_back();
            }
        })
        .unwrap();
    assert_eq!(reply.token, Some(tok(0)));
    let wire = pair.wire();
    assert_eq!(
        wire,
        [
            w("trinit", 0),
            w("!sprn", 1),
            w("!sprn", 2),
            w("!sprn", 3),
            w("rpt", 0)
        ]
    );
    // The cleared poll, then the command's own timeout before rpt.
    let t = |i: usize| pair.sent[i].0;
    assert_eq!(t(4) - t(3), TIMEOUT);
    assert!(
        pair.events
            .contains(&SessionEvent::Status(Sprn { code: 0 }))
    );
    assert_eq!(pair.retries(), [(tok(0), Retry::Rpt)]);
}

#[test]
fn abandon_while_held() {
    let mut pair = Pair::new();
    pair.printer.paper_out(None);
    pair.start(&Command::TrInit { block_mode: false });
    let result = pair.run_with(|p| {
        if p.count(|e| matches!(e, SessionEvent::Held(_))) == 2 {
            let now = p.now;
            p.session.abandon(now);
            p.flush();
        }
    });
    assert_eq!(result, Err(CommandFailure::Abandoned));
    assert!(pair.session.is_idle());
    assert_eq!(pair.session.poll_timeout(), None);
    pair.events.clear();
    // The printer prints it later; its answer is a stray now.
    pair.paper_back();
    assert!(
        matches!(pair.events.as_slice(), [SessionEvent::Discarded(f)] if f.token == Some(tok(0)))
    );
    // Abandon while idle does nothing.
    let now = pair.now;
    pair.session.abandon(now);
    assert_eq!(pair.session.poll_event(), None);
}

#[test]
fn silent_printer() {
    let mut pair = Pair::new();
    pair.to_printer = Box::new(|_| Fault::Drop);
    pair.start(&Command::SCnt);
    assert_eq!(
        pair.run(),
        Err(CommandFailure::Silent(config().status_timeout))
    );
    assert_eq!(pair.wire(), [w("scnt", 0), w("!sprn", 1)]);
    assert_eq!(pair.now - pair.start, TIMEOUT + config().status_timeout);
}

#[test]
fn silent_after_status_when_rpt_unanswered() {
    let mut pair = Pair::new();
    pair.fault_out("rpt", Fault::Drop, 1);
    pair.fault_in("scnt", Fault::Drop, 1);
    pair.start(&Command::SCnt);
    assert_eq!(
        pair.run(),
        Err(CommandFailure::Silent(config().status_timeout))
    );
    assert_eq!(pair.wire(), [w("scnt", 0), w("!sprn", 1), w("rpt", 0)]);
}

#[test]
fn status_refused_or_unreadable_is_bad_status() {
    let now = Instant::now();
    for reply in [
        Frame::error_reply("!sprn", 7),
        Frame::new("sprn").with("xx", "1"),
    ] {
        let mut s = Session::new(config(), 10);
        s.start(&Command::SCnt, TIMEOUT, now).unwrap();
        s.handle_timeout(now + TIMEOUT);
        let sprn = decode(&[s.poll_transmit().unwrap(), s.poll_transmit().unwrap()][1]);
        assert_eq!(sprn.mnemonic, "!sprn");
        s.handle_input(&reply.with_token(11).encode().unwrap(), now + TIMEOUT);
        let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
        assert!(
            matches!(
                events.last(),
                Some(SessionEvent::Completed(Err(CommandFailure::BadStatus(_))))
            ),
            "{events:?}"
        );
    }
}

#[test]
fn frame_error_to_status_query_asks_again() {
    let mut pair = Pair::new();
    pair.fault_in("scnt", Fault::Drop, 1);
    pair.fault_out("!sprn", Fault::Corrupt, 1);
    pair.start(&Command::SCnt);
    pair.run().unwrap();
    assert_eq!(
        pair.wire(),
        [w("scnt", 0), w("!sprn", 1), w("!sprn", 2), w("rpt", 0)]
    );
}

#[test]
fn frame_error_to_rpt_asks_again() {
    let mut pair = Pair::new();
    pair.fault_in("scnt", Fault::Drop, 1);
    pair.fault_out("rpt", Fault::Corrupt, 1);
    pair.start(&Command::SCnt);
    // The corrupted rpt gets a token-less ERR ?5: the rpt's own frame error, asked again.
    let reply = pair.run().unwrap();
    assert_eq!(
        pair.wire(),
        [w("scnt", 0), w("!sprn", 1), w("rpt", 0), w("rpt", 0)]
    );
    assert_eq!(reply.token, Some(tok(0)));
    assert_eq!(pair.retries(), [(tok(0), Retry::Rpt)]);
    // With the command's token and `cm rpt` it is the rpt's own frame error: rpt again.
    let now = Instant::now();
    let mut s = Session::new(config(), 0);
    s.start(&Command::SCnt, TIMEOUT, now).unwrap();
    s.handle_timeout(now + TIMEOUT);
    s.handle_input(
        &Frame::new("sprn")
            .with("pr", "0")
            .with_token(1)
            .encode()
            .unwrap(),
        now + TIMEOUT,
    );
    s.handle_input(
        &Frame::error_reply("ERR", 5)
            .with("cm", "rpt")
            .with_token(0)
            .encode()
            .unwrap(),
        now + TIMEOUT,
    );
    let wire: Vec<String> = std::iter::from_fn(|| s.poll_transmit())
        .map(|b| decode(&b).mnemonic)
        .collect();
    assert_eq!(wire, ["scnt", "!sprn", "rpt", "rpt"]);
    s.handle_input(
        &Frame::error_reply("ERR", UNKNOWN_TOKEN)
            .with("cm", "rpt")
            .with_token(0)
            .encode()
            .unwrap(),
        now + TIMEOUT,
    );
    assert_eq!(decode(&s.poll_transmit().unwrap()).token, Some(2));
}

/// A fixed input stream for the split tests: garbage, a stale reply, an invalid frame, a
/// token-less frame error (`rpt` asks for the command's answer), more garbage, and the
/// repeated reply.
fn split_input() -> Vec<u8> {
    let mut input = b"\x00\xffnoise".to_vec();
    input.extend(
        Frame::new("scnt")
            .with("bn", "9")
            .with_token(12)
            .encode()
            .unwrap(),
    );
    let mut bad = Frame::new("scnt").with_token(100).encode().unwrap();
    let n = bad.len();
    bad[n - 2] ^= 1;
    input.extend(bad);
    input.extend(Frame::error_reply("ERR", 5).encode().unwrap());
    input.extend(b"\x02half a frame");
    input.extend(
        Frame::new("scnt")
            .with("bn", "1")
            .with_token(100)
            .encode()
            .unwrap(),
    );
    input.extend(b"tail");
    input
}

fn run_split(chunks: &[&[u8]]) -> (Vec<SessionEvent>, Vec<Vec<u8>>) {
    let now = Instant::now();
    let mut s = Session::new(config(), 100);
    s.start(&Command::SCnt, TIMEOUT, now).unwrap();
    for c in chunks {
        s.handle_input(c, now);
    }
    (
        std::iter::from_fn(|| s.poll_event()).collect(),
        std::iter::from_fn(|| s.poll_transmit()).collect(),
    )
}

#[test]
fn split_input_at_every_byte_boundary_gives_the_same_events() {
    let input = split_input();
    let whole = run_split(&[&input]);
    assert!(
        matches!(whole.0.last(), Some(SessionEvent::Completed(Ok(f))) if f.token == Some(100)),
        "{:#?}",
        whole.0
    );
    assert_eq!(whole.1.len(), 2);
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(run_split(&[a, b]), whole, "split at {i}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run_split(&bytes), whole);
}

#[test]
fn split_model_replies_give_the_same_events() {
    let scenario = |chunk: usize| {
        let mut pair = Pair::new();
        pair.chunk = chunk;
        pair.fault_in("trinit", Fault::Drop, 1);
        pair.start(&Command::TrInit { block_mode: false });
        pair.run().unwrap();
        (pair.wire(), pair.session.stats(), pair.events)
    };
    let whole = scenario(usize::MAX);
    for chunk in 1..12 {
        assert_eq!(scenario(chunk), whole, "pieces of {chunk}");
    }
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    /// Something arriving on the line, or the clock running out.
    #[derive(Debug, Clone)]
    enum Step {
        /// Bytes that may contain STX/ETX and partial frames.
        Garbage(Vec<u8>),
        /// A well-formed frame with a token the session never uses.
        Stale {
            mnemonic: usize,
            token: u16,
            code: Option<u32>,
            pr: u32,
        },
        /// A frame with no token.
        Tokenless {
            mnemonic: usize,
            code: Option<u32>,
            pr: u32,
        },
        /// The session's timer fires.
        Timeout,
    }

    const MNEMONICS: [&str; 5] = ["scnt", "!sprn", "sprn", "ERR", "rpt"];

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            proptest::collection::vec(
                prop_oneof![Just(2u8), Just(3u8), Just(9u8), any::<u8>()],
                0..40
            )
            .prop_map(Step::Garbage),
            (
                0..MNEMONICS.len(),
                0u16..4000,
                proptest::option::of(prop_oneof![Just(13u32), 0u32..20]),
                0u32..12
            )
                .prop_map(|(mnemonic, token, code, pr)| Step::Stale {
                    mnemonic,
                    token,
                    code,
                    pr
                }),
            (0..MNEMONICS.len(), proptest::option::of(0u32..20), 0u32..12)
                .prop_map(|(mnemonic, code, pr)| Step::Tokenless { mnemonic, code, pr }),
            Just(Step::Timeout),
        ]
    }

    fn frame(mnemonic: usize, token: Option<u16>, code: Option<u32>, pr: u32) -> Frame {
        let m = MNEMONICS[mnemonic];
        let mut f = if m.ends_with("sprn") {
            Frame::new(m).with("pr", pr.to_string())
        } else {
            Frame::new(m)
        };
        f.token = token;
        f.error_code = code;
        f
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Random splits, garbage, stale frames and timeouts: no panic, a frame with a
        /// foreign token is always discarded, and the command completes only with a reply
        /// that carries one of its own tokens or none.
        #[test]
        fn stale_frames_never_complete_a_command(
            steps in proptest::collection::vec(step(), 0..40),
            splits in proptest::collection::vec(1usize..30, 1..20),
            reply_at in proptest::option::of(0usize..40),
        ) {
            let start = Instant::now();
            let mut now = start;
            let mut s = Session::new(config(), 5000);
            s.start(&Command::SCnt, TIMEOUT, now).unwrap();
            let mut ours: Vec<u16> = Vec::new();
            let mut events = Vec::new();
            let drain = |s: &mut Session, ours: &mut Vec<u16>, events: &mut Vec<SessionEvent>| {
                while let Some(b) = s.poll_transmit() {
                    if let Some(t) = decode(&b).token {
                        ours.push(t);
                    }
                }
                events.extend(std::iter::from_fn(|| s.poll_event()));
            };
            drain(&mut s, &mut ours, &mut events);
            let mut bytes = Vec::new();
            let mut split = splits.iter().cycle();
            for (i, st) in steps.iter().enumerate() {
                if reply_at == Some(i)
                    && let Some(t) = s.current_token()
                {
                    bytes.extend(Frame::new("scnt").with("bn", "1").with_token(t).encode().unwrap());
                }
                match st {
                    Step::Garbage(g) => bytes.extend(g),
                    Step::Stale { mnemonic, token, code, pr } => {
                        bytes.extend(frame(*mnemonic, Some(*token), *code, *pr).encode_raw());
                    }
                    Step::Tokenless { mnemonic, code, pr } => {
                        bytes.extend(frame(*mnemonic, None, *code, *pr).encode_raw());
                    }
                    Step::Timeout => {
                        // Feed what is there first, in random pieces.
                        let mut rest = std::mem::take(&mut bytes);
                        while !rest.is_empty() {
                            let n = (*split.next().unwrap()).min(rest.len());
                            let tail = rest.split_off(n);
                            s.handle_input(&rest, now);
                            rest = tail;
                        }
                        if let Some(at) = s.poll_timeout() {
                            now = now.max(at);
                            s.handle_timeout(now);
                        } else if s.is_idle() {
                            let _ = s.start(&Command::SCnt, TIMEOUT, now);
                        }
                    }
                }
                drain(&mut s, &mut ours, &mut events);
            }
            s.handle_input(&bytes, now);
            drain(&mut s, &mut ours, &mut events);
            for pair in events.windows(2) {
                if let SessionEvent::Received(f) = &pair[0]
                    && f.token.is_some_and(|t| !ours.contains(&t))
                {
                    prop_assert_eq!(&pair[1], &SessionEvent::Discarded(f.clone()));
                }
            }
            for e in &events {
                if let SessionEvent::Completed(Ok(f)) = e {
                    prop_assert_eq!(f.mnemonic.as_str(), "scnt");
                    prop_assert!(f.token.is_none_or(|t| ours.contains(&t)), "{:?}", f);
                    prop_assert_eq!(f.error_code, None);
                }
            }
            let st = s.stats();
            prop_assert_eq!(st.frames_in as usize, events.iter().filter(|e| matches!(e, SessionEvent::Received(_))).count());
        }
    }
}

#[test]
fn stored_frame_error_fetched_by_rpt_resends_the_command() {
    let now = Instant::now();
    let mut s = Session::new(config(), 0);
    s.start(&Command::SCnt, TIMEOUT, now).unwrap();
    s.handle_timeout(now + TIMEOUT);
    s.handle_input(
        &Frame::new("sprn")
            .with("pr", "0")
            .with_token(1)
            .encode()
            .unwrap(),
        now + TIMEOUT,
    );
    // rpt brings back the printer's stored answer: a frame error for scnt @0.
    s.handle_input(
        &Frame::error_reply("ERR", 3)
            .with("cm", "scnt")
            .with_token(0)
            .encode()
            .unwrap(),
        now + TIMEOUT,
    );
    let wire: Vec<String> = std::iter::from_fn(|| s.poll_transmit())
        .map(|b| {
            let f = decode(&b);
            format!("{}@{}", f.mnemonic, f.token.unwrap())
        })
        .collect();
    assert_eq!(wire, ["scnt@0", "!sprn@1", "rpt@0", "scnt@2"]);
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event())
        .filter(|e| matches!(e, SessionEvent::Retried { .. }))
        .collect();
    assert_eq!(
        events,
        [SessionEvent::Retried {
            mnemonic: "scnt".into(),
            token: 0,
            retry: Retry::FrameError
        }]
    );
}

#[test]
fn held_reply_arriving_while_a_status_poll_is_out_completes() {
    let now = Instant::now();
    let mut s = Session::new(config(), 0);
    s.start(&Command::TrInit { block_mode: false }, TIMEOUT, now)
        .unwrap();
    let t1 = now + TIMEOUT;
    s.handle_timeout(t1);
    let paper_out = Frame::new("sprn").with("pr", "5");
    s.handle_input(&paper_out.clone().with_token(1).encode().unwrap(), t1);
    assert!(s.is_held());
    assert_eq!(s.poll_timeout(), Some(t1 + config().held_poll));
    s.handle_timeout(t1 + config().held_poll);
    let wire: Vec<Frame> = std::iter::from_fn(|| s.poll_transmit())
        .map(|b| decode(&b))
        .collect();
    assert_eq!(wire[2], Frame::new("!sprn").with_token(2));
    // The command's reply beats the poll's answer; the answer then is a stray.
    let reply = Frame::new("trinit").with_token(0);
    s.handle_input(&reply.encode().unwrap(), t1 + config().held_poll);
    s.handle_input(
        &paper_out.clone().with_token(2).encode().unwrap(),
        t1 + config().held_poll,
    );
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event())
        .filter(|e| !matches!(e, SessionEvent::Received(_)))
        .collect();
    assert_eq!(
        events,
        [
            SessionEvent::Status(Sprn { code: 5 }),
            SessionEvent::Held(Sprn { code: 5 }),
            SessionEvent::Status(Sprn { code: 0 }),
            SessionEvent::Completed(Ok(reply)),
            SessionEvent::Discarded(paper_out.with_token(2)),
        ]
    );
    assert!(s.is_idle() && !s.is_held());
}

#[test]
fn stale_status_answer_is_not_taken_for_the_poll() {
    let now = Instant::now();
    let mut s = Session::new(config(), 0);
    s.start(&Command::SCnt, TIMEOUT, now).unwrap();
    s.handle_timeout(now + TIMEOUT);
    // An answer to an older sprn (token 9999) saying paper out: not this poll's.
    let stale = Frame::new("sprn").with("pr", "5").with_token(9999);
    s.handle_input(&stale.encode().unwrap(), now + TIMEOUT);
    assert!(!s.is_held());
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(events.last(), Some(&SessionEvent::Discarded(stale)));
    assert_eq!(
        s.poll_timeout(),
        Some(now + TIMEOUT + config().status_timeout)
    );
}

#[test]
fn reset_input_forgets_a_partial_frame_and_stats_count_everything() {
    let now = Instant::now();
    let mut s = Session::new(config(), 0);
    s.start(&Command::SCnt, TIMEOUT, now).unwrap();
    let out = s.poll_transmit().unwrap();
    s.handle_input(b"xy", now);
    let reply = Frame::new("scnt").with_token(0).encode().unwrap();
    // Half a frame, then the line drops; after reconnecting the whole reply comes.
    s.handle_input(&reply[..5], now);
    s.reset_input();
    s.handle_input(&reply, now);
    let mut bad = reply.clone();
    bad[3] ^= 1;
    s.handle_input(&bad, now);
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert!(matches!(events[0], SessionEvent::Garbage(ref g) if g == b"xy"));
    assert!(matches!(events[2], SessionEvent::Completed(Ok(_))));
    assert!(matches!(
        events[3],
        SessionEvent::Invalid {
            error: DecodeError::BadCrc { .. },
            ..
        }
    ));
    let st = s.stats();
    assert_eq!(st.bytes_out, out.len() as u64);
    assert_eq!(st.bytes_in, (2 + 5 + 2 * reply.len()) as u64);
    assert_eq!((st.frames_out, st.frames_in), (1, 1));
    assert_eq!((st.frame_errors, st.garbage_bytes), (1, 2));
}
