//! Serial link layer: the reference frames (§1.3.1), timers with injected time, a pair of
//! links on a simulated line that drops and corrupts bytes, and properties.

use proptest::prelude::*;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use zvt::link::{ACK, Busy, LinkConfig, LinkEvent, NAK, SerialLink, encode_frame};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

/// The print-line vector, built from its text.
fn print_line_frame() -> (Vec<u8>, Vec<u8>) {
    let mut apdu = vec![0x06, 0xD1, 0x19, 0x00];
    apdu.extend_from_slice(b"Gesamt      0       0,00");
    let mut wire = vec![0x10, 0x02];
    wire.extend_from_slice(&apdu);
    wire.extend_from_slice(&[0x10, 0x03, 0xB5, 0xAB]);
    (apdu, wire)
}

/// Every serial frame of the reference (§1.3.1): (APDU, wire bytes).
fn vectors() -> Vec<(Vec<u8>, Vec<u8>)> {
    let wires = [
        "10 02 06 00 06 12 34 56 BA 09 78 10 03 24 C3",
        "10 02 06 93 03 12 34 56 10 03 CA A4",
        "10 02 06 01 0A 04 00 00 00 01 10 10 00 49 09 78 10 03 F2 FF",
        "10 02 06 70 00 10 03 D9 F9",
        "10 02 80 00 00 10 03 F5 1F",
        "10 02 84 9C 00 10 03 C3 41",
        "10 02 06 18 00 10 03 56 3A",
        "10 02 05 01 03 12 34 56 10 03 E0 43",
        "10 02 05 01 05 12 34 56 03 04 10 03 30 94",
        "10 02 06 0F 0B F0 F0 F7 32 2E 31 34 2E 31 35 00 10 03 B1 11",
        "10 02 05 01 00 10 03 10 06",
        "10 02 06 02 00 10 03 B9 CC",
        "10 02 06 B0 00 10 03 43 F3",
        "10 02 06 0F 00 10 03 C6 33",
        "10 02 06 1E 01 6C 10 03 C9 F2",
        "10 02 04 FF 01 17 10 03 1C 58",
        "10 02 06 01 0A 04 00 00 00 00 01 00 49 09 85 10 03 CC EA",
        "10 02 06 01 0A 04 00 00 00 00 10 10 00 49 09 85 10 03 57 AC",
        "10 02 06 30 06 00 00 00 87 00 01 10 03 C2 AC",
        "10 02 06 31 0A 00 00 00 04 00 00 00 00 01 00 10 03 7E 92",
        "10 02 06 20 05 00 00 00 03 01 10 03 6B 26",
        "10 02 06 50 03 00 00 00 10 03 FB 37",
        "10 02 06 00 0E 12 34 56 BE 09 78 06 06 26 04 0A 02 06 D3 10 03 6D BC",
    ];
    let mut out: Vec<(Vec<u8>, Vec<u8>)> = wires
        .iter()
        .map(|w| {
            let wire = hex(w);
            // Un-stuff the APDU independently of the codec.
            let body = &wire[2..wire.len() - 4];
            let mut apdu = Vec::new();
            let mut i = 0;
            while i < body.len() {
                apdu.push(body[i]);
                i += if body[i] == 0x10 { 2 } else { 1 };
            }
            (apdu, wire)
        })
        .collect();
    out.push(print_line_frame());
    out
}

fn t0() -> Instant {
    Instant::now()
}

fn drain(link: &mut SerialLink) -> (Vec<u8>, Vec<LinkEvent>) {
    let mut tx = Vec::new();
    while let Some(b) = link.poll_transmit() {
        tx.extend(b);
    }
    let mut ev = Vec::new();
    while let Some(e) = link.poll_event() {
        ev.push(e);
    }
    (tx, ev)
}

#[test]
fn reference_vectors_encode() {
    for (apdu, wire) in vectors() {
        assert_eq!(encode_frame(&apdu), wire, "{apdu:02X?}");
    }
}

#[test]
fn reference_vectors_decode() {
    let now = t0();
    for (apdu, wire) in vectors() {
        let mut link = SerialLink::new(LinkConfig::default());
        link.handle_input(&wire, now);
        assert_eq!(
            drain(&mut link),
            (vec![ACK], vec![LinkEvent::Received(apdu.clone())])
        );
        // Byte by byte, too.
        for b in &wire {
            link.handle_input(std::slice::from_ref(b), now);
        }
        assert_eq!(
            drain(&mut link),
            (vec![ACK], vec![LinkEvent::Received(apdu)])
        );
    }
}

#[test]
fn crc_byte_equal_to_dle_is_raw() {
    let wire = hex("10 02 05 01 00 10 03 10 06");
    assert_eq!(encode_frame(&[5, 1, 0]), wire);
    let mut link = SerialLink::new(LinkConfig::default());
    link.handle_input(&wire, t0());
    assert_eq!(
        drain(&mut link),
        (vec![ACK], vec![LinkEvent::Received(vec![5, 1, 0])])
    );
}

#[test]
fn bad_crc_is_naked_and_dropped() {
    let mut wire = encode_frame(&[0x80, 0, 0]);
    let n = wire.len();
    wire[n - 1] ^= 1;
    let mut link = SerialLink::new(LinkConfig::default());
    link.handle_input(&wire, t0());
    assert_eq!(drain(&mut link), (vec![NAK], vec![]));
}

#[test]
fn malformed_dle_sequence_is_naked() {
    let mut link = SerialLink::new(LinkConfig::default());
    link.handle_input(&hex("10 02 80 10 55 00"), t0());
    assert_eq!(drain(&mut link), (vec![NAK], vec![]));
}

#[test]
fn noise_between_frames_is_ignored() {
    let mut link = SerialLink::new(LinkConfig::default());
    let mut wire = hex("00 FF 03 06 15 10 41 10");
    wire.extend(encode_frame(&[0x80, 0, 0]));
    wire.extend(hex("55 06"));
    link.handle_input(&wire, t0());
    assert_eq!(
        drain(&mut link),
        (vec![ACK], vec![LinkEvent::Received(vec![0x80, 0, 0])])
    );
}

#[test]
fn t1_gap_naks() {
    let cfg = LinkConfig::default();
    let now = t0();
    let wire = encode_frame(&[0x06, 0x0F, 0x00]);
    let mut link = SerialLink::new(cfg);
    assert_eq!(link.poll_timeout(), None);
    link.handle_input(&wire[..4], now);
    assert_eq!(link.poll_timeout(), Some(now + cfg.t1));
    // Just inside T1: the frame continues.
    let later = now + cfg.t1 - Duration::from_millis(1);
    link.handle_input(&wire[4..5], later);
    assert_eq!(link.poll_timeout(), Some(later + cfg.t1));
    link.handle_timeout(later + cfg.t1);
    assert_eq!(drain(&mut link), (vec![NAK], vec![]));
    assert_eq!(link.poll_timeout(), None);
    // The rest of the late frame is noise now.
    link.handle_input(&wire[5..], later + cfg.t1 * 2);
    assert_eq!(drain(&mut link), (vec![], vec![]));
}

#[test]
fn t1_gap_noticed_on_input_without_timeout_call() {
    let cfg = LinkConfig::default();
    let now = t0();
    let wire = encode_frame(&[0x80, 0x00, 0x00]);
    let mut link = SerialLink::new(cfg);
    link.handle_input(&wire[..3], now);
    link.handle_input(&wire[3..], now + cfg.t1);
    assert_eq!(drain(&mut link), (vec![NAK], vec![]));
    // The repeated frame then gets through.
    link.handle_input(&wire, now + cfg.t1 * 2);
    assert_eq!(
        drain(&mut link),
        (vec![ACK], vec![LinkEvent::Received(vec![0x80, 0, 0])])
    );
}

#[test]
fn t2_repeats_twice_then_fails() {
    let cfg = LinkConfig::default();
    let now = t0();
    let apdu = [0x06, 0x01, 0x00];
    let frame = encode_frame(&apdu);
    let mut link = SerialLink::new(cfg);
    link.send(&apdu, now).unwrap();
    assert!(link.is_busy());
    assert_eq!(link.send(&apdu, now), Err(Busy));
    assert_eq!(drain(&mut link), (frame.clone(), vec![]));
    let mut t = now;
    for _ in 0..2 {
        t = link.poll_timeout().unwrap();
        assert_eq!(t, t.max(now) /* monotone */);
        link.handle_timeout(t - Duration::from_millis(1));
        assert_eq!(drain(&mut link), (vec![], vec![]));
        link.handle_timeout(t);
        assert_eq!(drain(&mut link), (frame.clone(), vec![]));
    }
    assert_eq!(link.poll_timeout(), Some(t + cfg.t2));
    link.handle_timeout(t + cfg.t2);
    assert_eq!(drain(&mut link), (vec![], vec![LinkEvent::Failed]));
    assert!(!link.is_busy());
    assert_eq!(link.poll_timeout(), None);
    // A late ACK means nothing now.
    link.handle_input(&[ACK], t + cfg.t2 * 2);
    assert_eq!(drain(&mut link), (vec![], vec![]));
}

#[test]
fn nak_repeats_and_ack_delivers() {
    let now = t0();
    let apdu = [0x06, 0x50, 0x03, 0, 0, 0];
    let frame = encode_frame(&apdu);
    let mut link = SerialLink::new(LinkConfig::default());
    link.send(&apdu, now).unwrap();
    assert_eq!(drain(&mut link).0, frame);
    link.handle_input(&[NAK], now);
    assert_eq!(drain(&mut link), (frame.clone(), vec![]));
    link.handle_input(&[NAK], now);
    assert_eq!(drain(&mut link), (frame.clone(), vec![]));
    link.handle_input(&[ACK], now);
    assert_eq!(drain(&mut link), (vec![], vec![LinkEvent::Delivered]));
    assert!(!link.is_busy());
    // The next send starts with a fresh repeat budget.
    link.send(&apdu, now).unwrap();
    drain(&mut link);
    for _ in 0..2 {
        link.handle_input(&[NAK], now);
        assert_eq!(drain(&mut link), (frame.clone(), vec![]));
    }
    link.handle_input(&[NAK], now);
    assert_eq!(drain(&mut link), (vec![], vec![LinkEvent::Failed]));
}

#[test]
fn custom_repeats_and_reset() {
    let cfg = LinkConfig {
        max_repeats: 0,
        ..LinkConfig::default()
    };
    let now = t0();
    let mut link = SerialLink::new(cfg);
    link.send(&[0x06, 0x02, 0x00], now).unwrap();
    link.handle_input(&[NAK], now);
    assert_eq!(drain(&mut link).1, vec![LinkEvent::Failed]);
    link.send(&[0x06, 0x02, 0x00], now).unwrap();
    link.handle_input(&hex("10 02 06"), now);
    link.reset();
    assert!(!link.is_busy());
    assert_eq!(link.poll_timeout(), None);
    assert_eq!(drain(&mut link), (vec![], vec![]));
    link.handle_input(&encode_frame(&[0x80, 0, 0]), now);
    assert_eq!(
        drain(&mut link).1,
        vec![LinkEvent::Received(vec![0x80, 0, 0])]
    );
}

#[test]
fn duplicate_frame_is_acked_and_delivered_again() {
    let now = t0();
    let wire = encode_frame(&[0x04, 0xFF, 0x01, 0x17]);
    let mut link = SerialLink::new(LinkConfig::default());
    link.handle_input(&wire, now);
    link.handle_input(&wire, now + Duration::from_secs(5));
    let (tx, ev) = drain(&mut link);
    assert_eq!(tx, vec![ACK, ACK]);
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0], ev[1]);
}

#[test]
fn a_new_frame_start_inside_a_frame_restarts() {
    let now = t0();
    let mut wire = hex("10 02 06 01");
    wire.extend(encode_frame(&[0x80, 0, 0]));
    let mut link = SerialLink::new(LinkConfig::default());
    link.handle_input(&wire, now);
    assert_eq!(
        drain(&mut link),
        (vec![ACK], vec![LinkEvent::Received(vec![0x80, 0, 0])])
    );
}

// ---------------------------------------------------------------------------------------
// A pair of links on a simulated line (quinn's `Pair` idea).

/// A deterministic fault plan: per byte written, by index on each direction.
#[derive(Default, Clone)]
struct Faults {
    drop: Vec<usize>,
    corrupt: Vec<usize>,
}

struct Pair {
    a: SerialLink,
    b: SerialLink,
    now: Instant,
    /// Bytes in flight a→b and b→a, with the number already written on that direction.
    ab: VecDeque<u8>,
    ba: VecDeque<u8>,
    ab_count: usize,
    ba_count: usize,
    ab_faults: Faults,
    ba_faults: Faults,
    a_events: Vec<LinkEvent>,
    b_events: Vec<LinkEvent>,
}

impl Pair {
    fn new() -> Self {
        Pair {
            a: SerialLink::new(LinkConfig::default()),
            b: SerialLink::new(LinkConfig::default()),
            now: t0(),
            ab: VecDeque::new(),
            ba: VecDeque::new(),
            ab_count: 0,
            ba_count: 0,
            ab_faults: Faults::default(),
            ba_faults: Faults::default(),
            a_events: Vec::new(),
            b_events: Vec::new(),
        }
    }

    fn write(line: &mut VecDeque<u8>, count: &mut usize, faults: &Faults, bytes: Vec<u8>) {
        for b in bytes {
            let i = *count;
            *count += 1;
            if faults.drop.contains(&i) {
                continue;
            }
            line.push_back(if faults.corrupt.contains(&i) {
                b ^ 0x5A
            } else {
                b
            });
        }
    }

    /// Move every pending byte across the line (1 ms later), then fire due timers.
    /// Returns false when nothing happened.
    fn step(&mut self) -> bool {
        let mut progress = false;
        while let Some(bytes) = self.a.poll_transmit() {
            Self::write(&mut self.ab, &mut self.ab_count, &self.ab_faults, bytes);
            progress = true;
        }
        while let Some(bytes) = self.b.poll_transmit() {
            Self::write(&mut self.ba, &mut self.ba_count, &self.ba_faults, bytes);
            progress = true;
        }
        self.now += Duration::from_millis(1);
        if !self.ab.is_empty() {
            let bytes: Vec<u8> = self.ab.drain(..).collect();
            self.b.handle_input(&bytes, self.now);
            progress = true;
        }
        if !self.ba.is_empty() {
            let bytes: Vec<u8> = self.ba.drain(..).collect();
            self.a.handle_input(&bytes, self.now);
            progress = true;
        }
        while let Some(e) = self.a.poll_event() {
            self.a_events.push(e);
        }
        while let Some(e) = self.b.poll_event() {
            self.b_events.push(e);
        }
        if !progress {
            // Idle line: jump to the next timer.
            let next = [self.a.poll_timeout(), self.b.poll_timeout()]
                .into_iter()
                .flatten()
                .min();
            match next {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.a.handle_timeout(self.now);
                    self.b.handle_timeout(self.now);
                    progress = true;
                }
                None => return false,
            }
        }
        progress
    }

    fn drive(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("the pair did not settle");
    }
}

#[test]
fn pair_clean_line() {
    let mut p = Pair::new();
    let start = p.now;
    p.a.send(
        &[0x06, 0x01, 0x0A, 4, 0, 0, 0, 0x10, 0x10, 0x00, 0x49, 0x09],
        p.now,
    )
    .unwrap();
    p.drive();
    assert_eq!(p.a_events, vec![LinkEvent::Delivered]);
    assert_eq!(
        p.b_events,
        vec![LinkEvent::Received(vec![
            0x06, 0x01, 0x0A, 4, 0, 0, 0, 0x10, 0x10, 0x00, 0x49, 0x09
        ])]
    );
    assert!(p.now - start < Duration::from_millis(10));
}

#[test]
fn pair_corrupted_frame_is_repeated() {
    let mut p = Pair::new();
    p.ab_faults.corrupt = vec![3];
    p.a.send(&[0x80, 0x00, 0x00], p.now).unwrap();
    p.drive();
    assert_eq!(p.a_events, vec![LinkEvent::Delivered]);
    assert_eq!(p.b_events, vec![LinkEvent::Received(vec![0x80, 0, 0])]);
}

#[test]
fn pair_dropped_byte_t1_nak_then_repeat() {
    let mut p = Pair::new();
    // Drop the CRC's last byte: the receiver waits T1, NAKs; the sender repeats.
    let frame_len = encode_frame(&[0x06, 0x0F, 0x00]).len();
    p.ab_faults.drop = vec![frame_len - 1];
    p.a.send(&[0x06, 0x0F, 0x00], p.now).unwrap();
    let start = p.now;
    p.drive();
    assert_eq!(p.a_events, vec![LinkEvent::Delivered]);
    assert_eq!(
        p.b_events,
        vec![LinkEvent::Received(vec![0x06, 0x0F, 0x00])]
    );
    let took = p.now - start;
    assert!(
        took >= Duration::from_millis(200) && took < Duration::from_secs(1),
        "{took:?}"
    );
}

#[test]
fn pair_lost_ack_gives_a_duplicate() {
    let mut p = Pair::new();
    p.ba_faults.drop = vec![0];
    p.a.send(&[0x04, 0x0F, 0x02, 0x27, 0x00], p.now).unwrap();
    let start = p.now;
    p.drive();
    assert_eq!(p.a_events, vec![LinkEvent::Delivered]);
    assert_eq!(p.b_events.len(), 2, "delivered twice: {:?}", p.b_events);
    assert!(p.now - start >= Duration::from_secs(5));
}

#[test]
fn pair_dead_line_fails_after_three_tries() {
    let mut p = Pair::new();
    p.ab_faults.drop = (0..1000).collect();
    p.a.send(&[0x06, 0x70, 0x00], p.now).unwrap();
    let start = p.now;
    p.drive();
    assert_eq!(p.a_events, vec![LinkEvent::Failed]);
    assert!(p.b_events.is_empty());
    let took = p.now - start;
    assert!(
        took >= Duration::from_secs(15) && took < Duration::from_secs(16),
        "{took:?}"
    );
}

#[test]
fn pair_both_directions() {
    let mut p = Pair::new();
    p.a.send(&[0x06, 0x01, 0x00], p.now).unwrap();
    p.b.send(&[0x04, 0xFF, 0x01, 0x17], p.now).unwrap();
    p.drive();
    assert_eq!(
        p.a_events,
        vec![
            LinkEvent::Received(vec![0x04, 0xFF, 0x01, 0x17]),
            LinkEvent::Delivered
        ]
    );
    assert_eq!(
        p.b_events,
        vec![
            LinkEvent::Received(vec![0x06, 0x01, 0x00]),
            LinkEvent::Delivered
        ]
    );
}

// ---------------------------------------------------------------------------------------
// Properties

fn special_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(0x10u8),
            Just(0x02),
            Just(0x03),
            Just(0x06),
            Just(0x15),
            any::<u8>()
        ],
        0..300,
    )
}

/// Split `wire` at the sorted cut points.
fn chunks(wire: &[u8], cuts: &[prop::sample::Index]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        out.push(wire[last..p].to_vec());
        last = p;
    }
    out.push(wire[last..].to_vec());
    out
}

proptest! {
    #[test]
    fn any_apdu_round_trips_in_any_chunks(
        apdus in prop::collection::vec(special_bytes(), 1..4),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        let wire: Vec<u8> = apdus.iter().flat_map(|a| encode_frame(a)).collect();
        let mut link = SerialLink::new(LinkConfig::default());
        let now = t0();
        for c in chunks(&wire, &cuts) {
            link.handle_input(&c, now);
        }
        let (tx, ev) = drain(&mut link);
        prop_assert_eq!(tx, vec![ACK; apdus.len()]);
        let expected: Vec<LinkEvent> = apdus.into_iter().map(LinkEvent::Received).collect();
        prop_assert_eq!(ev, expected);
    }

    #[test]
    fn never_panics_and_received_frames_are_sound(
        input in prop::collection::vec(special_bytes(), 0..6),
        gaps in prop::collection::vec(0u64..400, 6),
        send in any::<bool>(),
    ) {
        let mut link = SerialLink::new(LinkConfig { t1: Duration::from_millis(200), ..LinkConfig::default() });
        let mut now = t0();
        if send {
            link.send(&[0x06, 0x01, 0x00], now).unwrap();
        }
        for (chunk, gap) in input.iter().zip(&gaps) {
            now += Duration::from_millis(*gap);
            if link.poll_timeout().is_some_and(|t| t <= now) {
                link.handle_timeout(now);
            }
            link.handle_input(chunk, now);
        }
        while let Some(e) = link.poll_event() {
            if let LinkEvent::Received(apdu) = e {
                let mut check = SerialLink::new(LinkConfig::default());
                check.handle_input(&encode_frame(&apdu), now);
                prop_assert_eq!(check.poll_event(), Some(LinkEvent::Received(apdu)));
            }
        }
        while let Some(t) = link.poll_transmit() {
            prop_assert!(!t.is_empty());
        }
    }
}

proptest! {
    /// The passive splitter (traces, replay) and the active link read the same line the
    /// same way: the frames the link accepts are the splitter's good frames, the link NAKs
    /// every bad-CRC frame and no more than the bad-CRC and broken ones (a frame abandoned
    /// for a new `DLE STX` is broken but not NAKed), and the splitter's items give back
    /// every byte of the line (a bad CRC is given back as another bad one).
    #[test]
    fn the_splitter_reads_a_line_as_the_link_does(
        input in prop::collection::vec(special_bytes(), 0..6),
        frames in prop::collection::vec(special_bytes(), 0..3),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    ) {
        use zvt::link::{LinkItem, LinkSplitter};
        let mut wire: Vec<u8> = Vec::new();
        for (i, junk) in input.iter().enumerate() {
            wire.extend(junk);
            if let Some(f) = frames.get(i) {
                wire.extend(encode_frame(f));
            }
        }
        let now = t0();
        let mut link = SerialLink::new(LinkConfig::default());
        let mut splitter = LinkSplitter::default();
        let mut items = Vec::new();
        for c in chunks(&wire, &cuts) {
            link.handle_input(&c, now);
            items.extend(splitter.push(&c));
        }
        let (tx, ev) = drain(&mut link);
        let good: Vec<LinkEvent> = items
            .iter()
            .filter_map(|i| match i {
                LinkItem::Frame { apdu, crc_ok: true } => Some(LinkEvent::Received(apdu.clone())),
                _ => None,
            })
            .collect();
        let received: Vec<LinkEvent> = ev
            .into_iter()
            .filter(|e| matches!(e, LinkEvent::Received(_)))
            .collect();
        prop_assert_eq!(received, good);
        let bad_crc = items
            .iter()
            .filter(|i| matches!(i, LinkItem::Frame { crc_ok: false, .. }))
            .count();
        let broken = items.iter().filter(|i| matches!(i, LinkItem::Broken(_))).count();
        let naks = tx.iter().filter(|&&b| b == NAK).count();
        prop_assert!(bad_crc <= naks && naks <= bad_crc + broken, "{} {} {}", bad_crc, naks, broken);
        let mut back: Vec<u8> = items.iter().flat_map(LinkItem::to_wire).collect();
        let held = splitter.pending();
        back.extend(&wire[wire.len() - held..]);
        if bad_crc == 0 {
            prop_assert_eq!(back, wire);
        } else {
            prop_assert_eq!(back.len(), wire.len());
        }
    }
}
