//! Fuzz the Novitus XML packet decoder and the reply reader: the packets must not depend on
//! how the input is split, a decoded packet
//! survives encode → decode unchanged, and nothing panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use novitus_xml::{Decoded, Packet, PacketDecoder, reply};

fn packets(items: &[Decoded]) -> Vec<Packet> {
    items
        .iter()
        .filter_map(|i| match i {
            Decoded::Packet(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let mut whole_decoder = PacketDecoder::new();
    let whole = whole_decoder.feed(rest);
    let chunk = usize::from(first % 17) + 1;
    let mut d = PacketDecoder::new();
    let chunked: Vec<Decoded> = rest.chunks(chunk).flat_map(|c| d.feed(c)).collect();
    assert_eq!(packets(&chunked), packets(&whole));
    assert_eq!(d.pending(), whole_decoder.pending());
    for p in packets(&whole) {
        let again = PacketDecoder::new().feed(&p.encode(true));
        assert_eq!(packets(&again).first().map(|q| &q.body), Some(&p.body));
        let _ = reply::parse(&p.body);
    }
});
