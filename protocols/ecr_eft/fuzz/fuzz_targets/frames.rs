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

fn clear_card_number(s: &str) -> bool {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_digit).collect();
    (0..digits.len()).any(|i| {
        (13..=19).any(|n| {
            digits.get(i..i + n).is_some_and(|w| {
                let w = String::from_utf8_lossy(w);
                zvt_luhn(&w)
            })
        })
    })
}

fn zvt_luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                if d > 4 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
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
            // Per text field: the masker joins digits across separators like this check.
            let fields = format!("{m:?}");
            for part in fields.split(['"']) {
                assert!(!clear_card_number(part) || part.contains('*'), "{part}");
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
