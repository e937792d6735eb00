//! Properties: frame and message round trips, split invariance of the decoder, no panic
//! on arbitrary bytes, and no full card number out of a decoded terminal message.

use ecr_eft::frame::{Decoder, ETX, FS, Frame, Item, STX, Token};
use ecr_eft::link::{Link, LinkConfig, Role};
use ecr_eft::message::{
    DeviceInfo, Message, Progress, Transaction, TransactionResult, TransactionType,
};
use proptest::prelude::*;
use std::time::{Duration, Instant};

fn token() -> impl Strategy<Value = Token> {
    (1usize..=6, any::<u32>()).prop_map(|(d, v)| Token::new(v, d))
}

fn frame() -> impl Strategy<Value = Frame> {
    let kind = proptest::array::uniform2(prop_oneof![b'A'..=b'Z', b'0'..=b'9']);
    let field = proptest::collection::vec(
        any::<u8>().prop_filter("framing", |b| ![STX, ETX, FS].contains(b)),
        0..12,
    );
    (token(), kind, proptest::collection::vec(field, 0..6)).prop_map(|(t, k, mut f)| {
        // An empty last field is indistinguishable from none; keep fields non-trivial.
        if f.last().is_some_and(Vec::is_empty) {
            f.pop();
        }
        Frame::new(t, k, f)
    })
}

fn decode_all(chunks: &[&[u8]]) -> Vec<Item> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for c in chunks {
        d.push(c, &mut out);
    }
    out
}

fn word() -> impl Strategy<Value = String> {
    "[A-Za-z ąęłńóśźżĄĘŁŃÓŚŹŻ./-]{0,20}"
}

fn amount() -> impl Strategy<Value = Option<u64>> {
    proptest::option::of(0u64..999_999_999_999)
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        Just(Message::T1),
        Just(Message::P1),
        Just(Message::D2),
        Just(Message::D3),
        any::<bool>().prop_map(|ok| Message::D0 { ok }),
        (word(), word(), word()).prop_map(|(a, b, c)| Message::T2(DeviceInfo {
            version: "170".into(),
            vendor: a,
            device_type: b,
            device_id: c,
        })),
        (
            any::<bool>(),
            word(),
            word(),
            1u64..999_999_999_999,
            amount(),
            amount(),
            amount()
        )
            .prop_map(
                |(void, e, p, gross, net, vat, cb)| Message::S1(Transaction {
                    kind: if void {
                        TransactionType::Void
                    } else {
                        TransactionType::Sale
                    },
                    ecr_id: e,
                    payment_id: p,
                    gross,
                    net,
                    vat,
                    currency: "PLN".into(),
                    cashback: cb,
                    max_cashback: None,
                })
            ),
        (
            0u32..1000,
            "[0-9A-F]{0,64}",
            word(),
            word(),
            amount(),
            word()
        )
            .prop_map(|(error, card_token, mid, tx, amount, message)| Message::S2(
                TransactionResult {
                    error,
                    card_token,
                    mid,
                    tid: "T1".into(),
                    transaction_id: tx,
                    amount,
                    cashback: None,
                    payment_method: "CARD".into(),
                    message,
                }
            )),
        (0u32..9999, word())
            .prop_map(|(status, message)| Message::I1(Progress { status, message })),
        proptest::collection::vec(word(), 1..5).prop_map(|lines| Message::D6 { lines }),
        word().prop_map(|message| Message::L1 { message }),
    ]
}

/// A Luhn-valid run of 13..=19 digits in `s` (ignoring separators like the masker).
fn has_card_number(s: &str) -> bool {
    let digits: Vec<char> = s.chars().filter(char::is_ascii_digit).collect();
    (0..digits.len()).any(|i| {
        (13..=19).any(|n| {
            digits.get(i..i + n).is_some_and(|w| {
                let w: String = w.iter().collect();
                zvt::pan::luhn_valid(&w)
            })
        })
    })
}

proptest! {
    #[test]
    fn frame_round_trip(f in frame()) {
        let bytes = f.encode().unwrap();
        let items = decode_all(&[&bytes]);
        prop_assert_eq!(items, vec![Item::Frame { frame: f, lrc_ok: true }]);
    }

    #[test]
    fn split_invariance(frames in proptest::collection::vec(frame(), 0..4),
                        noise in proptest::collection::vec(any::<u8>(), 0..40),
                        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8)) {
        let mut stream = noise;
        for f in &frames {
            stream.extend(f.encode().unwrap());
            stream.push(0x00);
        }
        let whole = decode_all(&[&stream]);
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(stream.len() + 1)).collect();
        points.sort();
        let mut chunks = Vec::new();
        let mut last = 0;
        for p in points {
            chunks.push(&stream[last..p]);
            last = p;
        }
        chunks.push(&stream[last..]);
        prop_assert_eq!(decode_all(&chunks), whole.clone());
        let bytewise: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(decode_all(&bytewise), whole.clone());
        // Every frame after the noise is found intact (the noise may swallow none of them
        // once an STX after it restarts the reader).
        let good = whole.iter().filter(|i| matches!(i, Item::Frame { lrc_ok: true, .. })).count();
        prop_assert!(good >= frames.len().saturating_sub(1));
    }

    #[test]
    fn message_round_trip(m in message(), t in token()) {
        let frame = m.to_frame(t).unwrap();
        let bytes = frame.encode().unwrap();
        let items = decode_all(&[&bytes]);
        let [Item::Frame { frame: got, lrc_ok: true }] = items.as_slice() else {
            return Err(TestCaseError::fail(format!("{items:?}")));
        };
        prop_assert_eq!(Message::decode(got).unwrap(), m);
    }

    #[test]
    fn no_panic_and_no_card_number(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut link = Link::new(LinkConfig::new(Role::Ecr));
        let t0 = Instant::now();
        link.handle_input(&bytes, t0);
        link.handle_timeout(t0 + Duration::from_secs(5));
        while link.poll_transmit().is_some() {}
        while link.poll_event().is_some() {}
        for item in decode_all(&[&bytes]) {
            if let Item::Frame { frame, .. } = item {
                let _ = frame.encode();
                if let Ok(m) = Message::decode(&frame) {
                    let text = format!("{m:?}");
                    if !matches!(m, Message::S1(_)) {
                        prop_assert!(!has_card_number(&text) || text.contains('*'), "{}", text);
                    }
                }
            }
        }
    }

    #[test]
    fn clear_card_numbers_never_survive(prefix in "[A-Z ]{0,5}", body in proptest::collection::vec(0u8..10, 12..18)) {
        // Complete `body` to a Luhn-valid number.
        let mut pan: String = body.iter().map(|d| char::from(b'0' + d)).collect();
        for c in '0'..='9' {
            let candidate = format!("{pan}{c}");
            if zvt::pan::luhn_valid(&candidate) {
                pan = candidate;
                break;
            }
        }
        let fields: Vec<Vec<u8>> = vec![
            b"000".to_vec(), pan.clone().into_bytes(), b"M".to_vec(), b"T".to_vec(), b"X".to_vec(),
            b"1".to_vec(), b"".to_vec(), b"CARD".to_vec(), format!("{prefix}{pan}").into_bytes(),
        ];
        let m = Message::decode(&Frame::new(Token::new(1, 6), *b"S2", fields)).unwrap();
        let text = format!("{m:?}");
        prop_assert!(!text.contains(&pan), "{}", text);
    }
}
