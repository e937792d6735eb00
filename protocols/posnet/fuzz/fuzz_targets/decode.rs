//! Fuzz the POSNET frame decoder: the items must not depend on how the input is split,
//! and every decoded frame must survive decode → encode_raw → decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posnet::frame::{Decoded, FrameDecoder, decode_frame};

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };

    let whole = FrameDecoder::new().feed(rest);

    // Split at a point chosen by the first byte, and also into chunks of that size.
    let cut = usize::from(first) % (rest.len() + 1);
    let mut d = FrameDecoder::new();
    let mut split = d.feed(&rest[..cut]);
    split.extend(d.feed(&rest[cut..]));
    assert_eq!(split, whole);

    let chunk = usize::from(first % 17) + 1;
    let mut d = FrameDecoder::new();
    let chunked: Vec<Decoded> = rest.chunks(chunk).flat_map(|c| d.feed(c)).collect();
    assert_eq!(chunked, whole);

    for item in &whole {
        if let Decoded::Frame(frame) = item {
            assert_eq!(decode_frame(&frame.encode_raw()).as_ref(), Ok(frame));
        }
    }
    let _ = decode_frame(rest);
});
