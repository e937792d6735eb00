//! ZVT in wire traces: the serial link layer cut into items (frames, ACK, NAK, stray
//! bytes) by the protocol crate's passive [`LinkSplitter`], and the one masking every ZVT
//! trace line goes through, so the recorder and `fiscald replay` see the same bytes for
//! the same input.

use zvt::Apdu;

pub use zvt::link::{ACK, LinkItem, LinkSplitter, NAK};

/// An APDU as every ZVT trace writes it: [`zvt::message::masked_apdu`] (card fields, the
/// password and card numbers in text masked, lengths kept), then a second net over the
/// bytes that read as text, for a card number in a field the first walk did not reach.
pub fn masked_apdu(apdu: &Apdu) -> Apdu {
    let mut m = zvt::message::masked_apdu(apdu);
    mask_text_bytes(&mut m.data);
    m
}

/// Replace the hidden digits of a card number in the printable runs of `bytes` by `*`.
fn mask_text_bytes(bytes: &mut [u8]) {
    let text: String = bytes
        .iter()
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b)
            } else {
                'x'
            }
        })
        .collect();
    let masked = zvt::pan::mask_in_text(&text);
    for (b, (was, is)) in bytes.iter_mut().zip(text.chars().zip(masked.chars())) {
        if was != is {
            *b = zvt::message::MASK_TEXT;
        }
    }
}

/// The wire bytes of an item as a trace writes them: a frame's APDU masked and framed
/// again (DLE stuffing redone, the CRC recomputed; a frame that arrived with a bad CRC is
/// written with a bad one), a frame that is not an APDU hidden byte for byte, a frame that
/// never ended hidden but for its `DLE STX` and DLE bytes, stray bytes with card numbers in
/// text masked.
pub fn masked_item_bytes(item: &LinkItem) -> Vec<u8> {
    masked_item(item).to_wire()
}

/// An item as a trace writes it (see [`masked_item_bytes`]).
pub fn masked_item(item: &LinkItem) -> LinkItem {
    match item {
        LinkItem::Frame { apdu, crc_ok } => LinkItem::Frame {
            apdu: match Apdu::decode(apdu) {
                Ok(a) => masked_apdu(&a).encode(),
                Err(_) => vec![zvt::message::MASK_BCD; apdu.len()],
            },
            crc_ok: *crc_ok,
        },
        // A frame that never ended may hold card data that no field reading reaches: every
        // byte after its `DLE STX` is hidden but the DLEs, so it stays as broken as it was.
        LinkItem::Broken(bytes) => LinkItem::Broken(
            bytes
                .iter()
                .enumerate()
                .map(|(i, &b)| {
                    if i < 2 || b == zvt::link::DLE {
                        b
                    } else {
                        zvt::message::MASK_BCD
                    }
                })
                .collect(),
        ),
        LinkItem::Other(bytes) => {
            let mut b = bytes.clone();
            mask_text_bytes(&mut b);
            LinkItem::Other(b)
        }
        other => other.clone(),
    }
}

/// An item for people (the trace's summary).
pub fn describe_item(item: &LinkItem) -> String {
    match item {
        LinkItem::Ack => "link ACK".into(),
        LinkItem::Nak => "link NAK".into(),
        LinkItem::Frame { apdu, crc_ok } => {
            let what = match Apdu::decode(apdu) {
                Ok(a) => super::zvt_name(&a),
                Err(e) => format!("not an APDU ({e})"),
            };
            if *crc_ok {
                format!("frame: {what}")
            } else {
                format!("frame with a bad CRC: {what}")
            }
        }
        LinkItem::Broken(b) => format!("a frame that never ended ({} bytes, hidden)", b.len()),
        LinkItem::Other(b) => format!("{} stray bytes", b.len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_masked_frame_is_framed_again_and_still_decodes() {
        // Registration: the password is zeroed, the CRC recomputed.
        let reg = zvt::EcrCommand::Registration {
            password: 123_456,
            config: 0x8E,
            currency: Some(985),
        }
        .to_apdu();
        let item = LinkItem::Frame {
            apdu: reg.encode(),
            crc_ok: true,
        };
        let wire = masked_item_bytes(&item);
        let mut s = LinkSplitter::default();
        let back = s.push(&wire);
        let [LinkItem::Frame { apdu, crc_ok: true }] = &back[..] else {
            panic!("{back:?}");
        };
        assert_eq!(apdu[3..6], [0, 0, 0]);
        assert!(!hex::encode(&wire).contains("123456"));
    }

    #[test]
    fn a_frame_that_never_ended_is_hidden_and_stays_broken() {
        // A Status-Information with a card number, cut short by a new frame.
        let mut wire = vec![0x10, 0x02, 0x04, 0x0F, 0x0A, 0x22, 0xF0, 0xF8];
        wire.extend(hex::decode("5454545454545454").unwrap());
        wire.extend(zvt::link::encode_frame(&[0x80, 0x00, 0x00]));
        let items = LinkSplitter::default().push(&wire);
        assert!(matches!(items[0], LinkItem::Broken(_)), "{items:?}");
        let masked = masked_item_bytes(&items[0]);
        assert_eq!(masked.len(), 16);
        assert!(!hex::encode(&masked).contains("5454"), "{masked:02x?}");
        assert_eq!(LinkSplitter::default().push(&masked), vec![]);
        assert!(describe_item(&items[0]).contains("never ended"));
    }
}
