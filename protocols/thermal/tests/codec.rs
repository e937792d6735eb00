//! Property tests of the ESC P codec: round trips, split invariance, no panic on garbage.

use proptest::prelude::*;
use rust_decimal::Decimal;
use thermal::command::{Command, Line, PaymentType};
use thermal::{Decoder, Dialect, Encoding, Frame, Item};

fn decode_all(chunks: &[&[u8]]) -> Vec<Item> {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    for c in chunks {
        d.push(c);
        while let Some(i) = d.next_item() {
            out.push(i);
        }
    }
    out
}

fn text() -> impl Strategy<Value = String> {
    proptest::string::string_regex("[A-Za-z0-9 ąćęłńóśźżĄĆĘŁŃÓŚŹŻ.,%-]{1,40}").unwrap()
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        (
            1u16..500,
            text(),
            1u32..100_000,
            0u32..3,
            0usize..7,
            0u64..1_000_000
        )
            .prop_map(|(number, name, q, scale, vat, price)| {
                let quantity = Decimal::new(i64::from(q), scale);
                let exact = quantity * Decimal::from(price);
                let gross = exact.round_dp_with_strategy(
                    0,
                    rust_decimal::RoundingStrategy::MidpointAwayFromZero,
                );
                Command::Line(Line {
                    number,
                    name: name.trim().to_string().replace(' ', "x"),
                    quantity: quantity.normalize(),
                    unit: None,
                    vat: thermal::reply::LETTERS[vat],
                    price,
                    gross: u64::try_from(gross).unwrap(),
                })
            }),
        (0u64..10_000_000).prop_map(Command::CashIn),
        (0u64..10_000_000).prop_map(Command::CashOut),
        (0u64..10_000_000, 0usize..7).prop_map(|(amount, k)| Command::Payment {
            kind: [
                PaymentType::Cash,
                PaymentType::Card,
                PaymentType::Cheque,
                PaymentType::Bon,
                PaymentType::Other,
                PaymentType::Credit,
                PaymentType::Voucher
            ][k],
            amount
        }),
        (text(), 0u64..10_000_000, 0u64..10_000_000).prop_map(|(cashier, paid, total)| {
            Command::Close {
                cashier,
                paid,
                total,
            }
        }),
        Just(Command::Cancel),
        Just(Command::ErrorQuery),
        Just(Command::Identity),
        (0u32..60).prop_map(|mode| Command::Status { mode }),
        Just(Command::Begin { buyer_nip: None }),
    ]
}

proptest! {
    #[test]
    fn commands_round_trip_in_every_dialect_and_code_page(c in command(), novitus in any::<bool>(), cp in any::<bool>()) {
        let d = if novitus { Dialect::Novitus } else { Dialect::Posnet };
        let e = if cp { Encoding::Cp1250 } else { Encoding::Mazovia };
        let f = c.to_frame(d, e).unwrap();
        let items = decode_all(&[&f.encode()]);
        prop_assert_eq!(items.len(), 1);
        let Item::Frame(back) = &items[0] else { panic!("{:?}", items) };
        prop_assert_eq!(back, &f);
        prop_assert_eq!(Command::from_frame(back, d, e).unwrap(), c);
    }

    #[test]
    fn decoding_does_not_depend_on_how_bytes_are_split(
        cs in proptest::collection::vec(command(), 1..6),
        garbage in proptest::collection::vec(any::<u8>(), 0..40),
        cuts in proptest::collection::vec(any::<usize>(), 0..10),
    ) {
        let mut stream = garbage.clone();
        for c in &cs {
            stream.extend(c.to_frame(Dialect::Posnet, Encoding::Cp1250).unwrap().encode());
        }
        stream.extend(&garbage);
        let whole = decode_all(&[&stream]);
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        points.sort_unstable();
        let mut chunks = Vec::new();
        let mut at = 0;
        for p in points {
            chunks.push(&stream[at..p]);
            at = p;
        }
        chunks.push(&stream[at..]);
        prop_assert_eq!(&decode_all(&chunks), &whole);
        let one_by_one: Vec<&[u8]> = stream.chunks(1).collect();
        prop_assert_eq!(&decode_all(&one_by_one), &whole);
    }

    #[test]
    fn the_decoder_resynchronises_after_garbage(garbage in proptest::collection::vec(any::<u8>(), 0..200), c in command()) {
        let f = c.to_frame(Dialect::Novitus, Encoding::Mazovia).unwrap();
        let mut stream = garbage;
        stream.extend(f.encode());
        let items = decode_all(&[&stream]);
        prop_assert_eq!(items.last(), Some(&Item::Frame(f)));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for item in decode_all(&[&bytes]) {
            if let Item::Frame(f) = item {
                let _ = Command::from_frame(&f, Dialect::Posnet, Encoding::Mazovia);
                let _ = thermal::reply::Status::from_frame(&f, Encoding::Cp1250);
                let _ = thermal::reply::parse_error(&f);
                let _ = thermal::reply::Identity::from_frame(&f);
                let _ = f.encode();
            }
        }
    }

    #[test]
    fn a_corrupted_checksum_is_refused(c in command(), flip in 0usize..1000, bit in 0u8..8) {
        let f = c.to_frame(Dialect::Posnet, Encoding::Cp1250).unwrap();
        let mut bytes = f.encode();
        // Flip one bit of the content (not ESC P, not ESC \).
        let i = 2 + flip % (bytes.len() - 4);
        bytes[i] ^= 1 << bit;
        if bytes[i] == 0x1B { return Ok(()); }
        for item in decode_all(&[&bytes]) {
            if let Item::Frame(g) = item {
                // Only a change of case in the checksum's hex digits is no damage.
                let case_only = i >= bytes.len() - 4 && g.data.eq_ignore_ascii_case(&f.data);
                prop_assert!(!g.has_valid_checksum() || g == f || case_only, "a damaged frame passed its checksum");
            }
        }
    }
}

#[test]
fn published_vectors_decode() {
    let items = decode_all(&[b"\x1bP1#e88\x1b\\", b"\x1bP0#i100/9B\x1b\\"]);
    assert_eq!(items.len(), 2);
    for i in &items {
        let Item::Frame(f) = i else { panic!() };
        assert!(f.has_valid_checksum());
    }
    // The reference's `#v` / `1#R` real-device pair (base64 G1Ajdhtc / G1AxI1JQT0lOVC8xLjAxG1w=).
    let q = decode_all(&[b"\x1bP#v\x1b\\"]);
    assert_eq!(q, vec![Item::Frame(Frame::parse(b"#v").unwrap())]);
    let r = decode_all(&[b"\x1bP1#RPOINT/1.01\x1b\\"]);
    let Item::Frame(f) = &r[0] else { panic!() };
    assert_eq!(
        thermal::reply::Identity::from_frame(f).unwrap().model,
        "POINT"
    );
}
