//! Fuzz APDU framing and message decoding.
//!
//! Input: a split-selector byte, then a TCP byte stream. Checked: `ApduDecoder` gives the
//! same APDUs and leftover however the stream is cut; each APDU re-encodes to bytes that
//! decode back to it; typed decoding (`PtMessage`, `EcrCommand`) and `redacted_hex` never
//! panic, a decoded message's own encoding decodes too, and a decoded PAN is masked.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zvt::apdu::{Apdu, ApduDecoder};
use zvt::message::{EcrCommand, PtMessage, redacted_hex};
use zvt::pan;

fn run(chunks: &[&[u8]]) -> (Vec<Apdu>, usize) {
    let mut d = ApduDecoder::new();
    let mut out = Vec::new();
    for c in chunks {
        d.push(c);
        while let Some(a) = d.next_apdu() {
            out.push(a);
        }
    }
    (out, d.pending())
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

    let mut apdus = whole.0;
    if let Ok(a) = Apdu::decode(rest) {
        apdus.push(a);
    }
    for a in &apdus {
        assert_eq!(Apdu::decode(&a.encode()).as_ref(), Ok(a));
        let _ = redacted_hex(a);
        let _ = EcrCommand::from_apdu(a).map(|c| EcrCommand::from_apdu(&c.to_apdu()));
        if let Ok(m) = PtMessage::from_apdu(a) {
            if let PtMessage::StatusInformation(r) = &m
                && let Some(p) = &r.masked_pan
            {
                assert_eq!(&pan::mask(p), p);
            }
            let again = m.to_apdu();
            assert_eq!(Apdu::decode(&again.encode()).as_ref(), Ok(&again));
            let _ = PtMessage::from_apdu(&again);
        }
    }
});
