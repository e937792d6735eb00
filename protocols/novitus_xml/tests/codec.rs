//! Properties of the Novitus XML codec: packets round-trip through the decoder, the decoder
//! gives the same items however the bytes are split, and arbitrary bytes never panic it or
//! the reply reader.

use novitus_xml::command::{Command, Item, Payment, PaymentType};
use novitus_xml::{Decoded, PacketDecoder, reply};
use proptest::prelude::*;

fn name() -> impl Strategy<Value = String> {
    // Polish letters and the characters XML must escape.
    proptest::collection::vec(
        prop_oneof![
            proptest::char::range('a', 'z'),
            Just('ą'),
            Just('Ł'),
            Just('ż'),
            Just('"'),
            Just('<'),
            Just('&'),
            Just('\''),
            Just(' ')
        ],
        1..30,
    )
    .prop_map(|c| c.into_iter().collect())
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Enq),
        Just(Command::Dle),
        Just(Command::ReceiptBegin),
        (name(), 1u64..100_000, 0usize..7).prop_map(|(name, price, vat)| Command::Item(Item {
            name,
            quantity: "1".into(),
            unit: None,
            ptu: (b'A' + vat as u8) as char,
            price,
            total: price,
            discount: None,
        })),
        (1u64..1_000_000).prop_map(|value| Command::Payment(Payment {
            kind: PaymentType::Card,
            value,
            change: false
        })),
        (name(), 1u64..1_000_000).prop_map(|(systemno, total)| Command::ReceiptClose {
            systemno,
            total,
            nip: None
        }),
    ]
}

proptest! {
    #[test]
    fn packets_round_trip_and_names_read_back_as_typed(commands in proptest::collection::vec(command(), 1..6)) {
        let bytes = Command::packet(&commands).unwrap();
        let items = PacketDecoder::new().feed(&bytes);
        let [Decoded::Packet(p)] = items.as_slice() else { panic!("{items:?}") };
        let elements = reply::parse(&p.body).unwrap();
        prop_assert_eq!(elements.len(), commands.len());
        for (e, c) in elements.iter().zip(&commands) {
            if let Command::Item(i) = c {
                prop_assert_eq!(e.attr("name"), Some(i.name.as_str()));
            }
            if let Command::ReceiptClose { systemno, .. } = c {
                prop_assert_eq!(e.attr("systemno"), Some(systemno.as_str()));
            }
        }
    }

    #[test]
    fn the_same_items_however_the_bytes_are_split(
        commands in proptest::collection::vec(command(), 1..4),
        garbage in proptest::collection::vec(any::<u8>(), 0..40),
        cuts in proptest::collection::vec(1usize..50, 1..20),
    ) {
        let mut stream = garbage.clone();
        stream.extend(Command::packet(&commands).unwrap());
        stream.extend(garbage);
        stream.extend(Command::packet(&[Command::Enq]).unwrap());
        let whole = PacketDecoder::new().feed(&stream);
        let mut d = PacketDecoder::new();
        let mut pieces = Vec::new();
        let mut at = 0;
        for c in cuts.iter().cycle() {
            if at >= stream.len() { break; }
            let end = (at + c).min(stream.len());
            pieces.extend(d.feed(&stream[at..end]));
            at = end;
        }
        // Garbage may come in more pieces; packets must be the same.
        let packets = |items: &[Decoded]| items.iter().filter_map(|i| match i {
            Decoded::Packet(p) => Some(p.clone()),
            _ => None,
        }).collect::<Vec<_>>();
        prop_assert_eq!(packets(&whole), packets(&pieces));
        prop_assert!(!packets(&whole).is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut d = PacketDecoder::new();
        for item in d.feed(&bytes) {
            if let Decoded::Packet(p) = item {
                let _ = reply::parse(&p.body);
            }
        }
        let _ = reply::parse(&bytes);
    }
}
