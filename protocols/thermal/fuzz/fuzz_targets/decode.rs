//! Fuzz the ESC P decoder and what reads its frames: the items must not depend on how the
//! input is split, every frame must survive encode → decode unchanged, and neither the typed
//! readers nor the printer model may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use thermal::{Decoder, Dialect, Encoding, Item};

fn decode(chunks: &[&[u8]]) -> Vec<Item> {
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

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let whole = decode(&[rest]);
    let cut = usize::from(first) % (rest.len() + 1);
    assert_eq!(decode(&[&rest[..cut], &rest[cut..]]), whole);
    let size = usize::from(first).max(1);
    let chunks: Vec<&[u8]> = rest.chunks(size).collect();
    assert_eq!(decode(&chunks), whole);
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
    let dialect = if first & 1 == 0 { Dialect::Posnet } else { Dialect::Novitus };
    let encoding = if first & 2 == 0 { Encoding::Mazovia } else { Encoding::Cp1250 };
    let mut printer = thermal::model::Printer::new(Default::default(), dialect, encoding);
    for item in whole {
        if let Item::Frame(f) = &item {
            assert_eq!(decode(&[&f.encode()]), vec![item.clone()]);
            let _ = thermal::reply::Status::from_frame(f, encoding);
            let _ = thermal::reply::parse_error(f);
            let _ = thermal::reply::parse_last_document(f);
        }
        let _ = printer.input(item, today);
    }
});
