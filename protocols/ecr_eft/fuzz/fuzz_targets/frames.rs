//! Fuzz the frame decoder and message decoding.
//!
//! Input: a split-selector byte, then a byte stream. Checked: the decoder gives the same
//! items whole, cut at one point and in small chunks; every intact frame re-encodes to
//! bytes that decode back to it; `Message::decode` never panics, a decoded message
//! (without masked text) encodes to a frame whose decoding gives it again, and no decoded terminal
//! message holds a Luhn-valid run of 13 to 19 digits in clear.
#![no_main]

use ecr_eft::frame::{Decoder, Item};
use ecr_eft::message::Message;
use libfuzzer_sys::fuzz_target;

fn run(chunks: &[&[u8]]) -> Vec<Item> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for c in chunks {
        d.push(c, &mut out);
    }
    out
}

/// A Luhn-valid window of 13 to 19 digits, the digits joined across characters that are
/// not alphanumeric (the masker's rule).
fn clear_card_number(s: &str) -> bool {
    s.split(|c: char| c.is_alphanumeric() && !c.is_ascii_digit())
        .any(|segment| {
            let digits: Vec<u32> = segment.chars().filter_map(|c| c.to_digit(10)).collect();
            (0..digits.len()).any(|i| (13..=19).any(|n| digits.get(i..i + n).is_some_and(luhn)))
        })
}

fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d > 4 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

/// The text a decoded terminal message carries.
fn texts(m: &Message) -> Vec<&str> {
    let strings: Vec<&String> = match m {
        Message::T2(d) => vec![&d.version, &d.vendor, &d.device_type, &d.device_id],
        Message::S2(r) => vec![
            &r.card_token,
            &r.mid,
            &r.tid,
            &r.transaction_id,
            &r.payment_method,
            &r.message,
        ],
        Message::I1(p) => vec![&p.message],
        Message::D6 { lines } => lines.iter().collect(),
        Message::L1 { message } => vec![message],
        _ => Vec::new(),
    };
    strings.into_iter().map(String::as_str).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let whole = run(&[rest]);
    let cut = usize::from(first) % (rest.len() + 1);
    assert_eq!(run(&[&rest[..cut], &rest[cut..]]), whole);
    let size = usize::from(first % 13) + 1;
    let chunks: Vec<&[u8]> = rest.chunks(size).collect();
    assert_eq!(run(&chunks), whole);

    for item in &whole {
        let Item::Frame { frame, lrc_ok } = item else {
            continue;
        };
        if *lrc_ok && let Ok(bytes) = frame.encode() {
            assert_eq!(
                run(&[&bytes]),
                vec![Item::Frame {
                    frame: frame.clone(),
                    lrc_ok: true
                }]
            );
        }
        let Ok(m) = Message::decode(frame) else {
            continue;
        };
        if ecr_eft::layout::layout(&frame.kind).is_some_and(|l| l.from_terminal) {
            // Masked text may hold a new window across the stars; unmasked text none.
            for text in texts(&m) {
                assert!(!clear_card_number(text) || text.contains('*'), "{text}");
            }
        }
        if let Ok(again) = m.to_frame(frame.token) {
            let back = Message::decode(&again);
            // Masking may mask a little more the second time (a new window across the
            // stars), so only a message without masked text must come back equal.
            if !format!("{m:?}").contains('*') {
                assert_eq!(back.as_ref(), Ok(&m));
            }
        }
    }
});
