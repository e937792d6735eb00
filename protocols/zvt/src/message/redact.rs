//! Log and trace forms of APDUs: sensitive fields, card numbers in text and the terminal
//! password hidden. [`redacted_hex`] writes one token per wire byte with `**` for what is
//! hidden (logs); [`masked_apdu`] writes the same walk as bytes, every hidden byte replaced
//! by a fixed mask byte of the same kind, so the APDU keeps its length, every BMP keeps its
//! length and the result still decodes (wire traces that can be replayed).

use super::{is_var_digit, text_from_cp437};
use crate::apdu::Apdu;
use crate::bmp::{self, parse_fields};
use crate::pan;

/// Where the BMP list starts in a command's data (after a password etc.).
fn bmp_offsets(control: u16, data: &[u8]) -> Vec<usize> {
    match control {
        0x0630 | 0x0631 | 0x0620 | 0x0650 | 0x0501 | 0x0693 | 0x0814 => vec![3],
        0x0600 => vec![6.min(data.len())],
        0x061E | 0x06C0 => vec![1],
        0x04FF => vec![2, 1],
        0x060F => {
            let sw = match data {
                [a, b, c, ..] if is_var_digit(*a) && is_var_digit(*b) && is_var_digit(*c) => {
                    3 + usize::from(a & 0x0F) * 100
                        + usize::from(b & 0x0F) * 10
                        + usize::from(c & 0x0F)
                }
                _ => 0,
            };
            vec![0, sw + 1]
        }
        _ => vec![0],
    }
}

/// Both forms built side by side: the log tokens and the masked bytes.
#[derive(Default)]
struct Out {
    hex: Vec<String>,
    bytes: Vec<u8>,
}

/// The mask byte of a hidden BCD or binary value: both nibbles `E`, the ZVT "masked digit".
pub const MASK_BCD: u8 = 0xEE;
/// The mask byte of a hidden text character: `*`.
pub const MASK_TEXT: u8 = b'*';

impl Out {
    /// A hidden value of `len` bytes, masked with `mask`, shown as `tok`.
    fn hide(&mut self, tok: &str, len: usize, mask: u8) {
        self.hex.push(tok.to_string());
        self.bytes.extend(std::iter::repeat_n(mask, len));
    }
}

fn hex_into(out: &mut Out, bytes: &[u8]) {
    out.hex.extend(bytes.iter().map(|b| format!("{b:02X}")));
    out.bytes.extend_from_slice(bytes);
}

/// Hex of a text value with the hidden digits of a card number as `**` (one per byte).
fn text_hex_into(out: &mut Out, bytes: &[u8]) {
    let text = text_from_cp437(bytes);
    let masked = pan::mask_in_text(&text);
    for (b, (was, is)) in bytes.iter().zip(text.chars().zip(masked.chars())) {
        if was == is {
            out.hex.push(format!("{b:02X}"));
            out.bytes.push(*b);
        } else {
            out.hex.push("**".to_string());
            out.bytes.push(MASK_TEXT);
        }
    }
}

/// ECR commands whose data starts with the 3-byte terminal password.
fn carries_password(control: u16) -> bool {
    matches!(
        control,
        0x0600 | 0x0501 | 0x0630 | 0x0631 | 0x0620 | 0x0650 | 0x0693 | 0x0814
    )
}

/// A BMP 22 value is shown only when masking would not change it.
fn pan_is_masked(v: &[u8]) -> bool {
    let mut raw = String::new();
    for n in v.iter().flat_map(|b| [b >> 4, b & 0x0F]) {
        match n {
            0..=9 => raw.push(char::from(b'0' + n)),
            0x0F => break,
            _ => raw.push('*'),
        }
    }
    pan::mask(&raw) == raw
}

/// A BMP 22 value with the digits [`pan::mask`] hides written as the mask nibble `E`;
/// padding (`F` and what follows it) and the length stay as they were.
fn mask_pan_bcd(v: &[u8]) -> Vec<u8> {
    let shown: Vec<bool> = {
        let mut raw = String::new();
        for n in v.iter().flat_map(|b| [b >> 4, b & 0x0F]) {
            match n {
                0..=9 => raw.push(char::from(b'0' + n)),
                0x0F => break,
                _ => raw.push('*'),
            }
        }
        pan::mask(&raw).chars().map(|c| c != '*').collect()
    };
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    let mut padded = false;
    for b in v {
        let mut nib = [b >> 4, b & 0x0F];
        for n in &mut nib {
            if *n == 0x0F {
                padded = true;
            }
            if !padded {
                if !shown.get(i).copied().unwrap_or(false) {
                    *n = 0x0E;
                }
                i += 1;
            }
        }
        out.push(nib[0] << 4 | nib[1]);
    }
    out
}

fn redact_tlv(out: &mut Out, data: &[u8]) {
    let Ok(items) = bmp::parse_tlv_spans(data) else {
        out.hide(&format!("** ({} bytes)", data.len()), data.len(), MASK_BCD);
        return;
    };
    let mut at = 0;
    for (item, head) in &items {
        hex_into(out, &data[at..at + head]);
        at += head + item.value.len();
        if matches!(item.tag, 0x1F08..=0x1F0A) {
            out.hide("**", item.value.len(), MASK_BCD);
        } else if item.is_constructed() {
            redact_tlv(out, &item.value);
        } else {
            // Any primitive value may be text (07 lines, 1F17 error text, vendor tags).
            text_hex_into(out, &item.value);
        }
    }
}

/// Render the BMP list at the start of `d`; returns the bytes it could read.
fn redact_fields(out: &mut Out, d: &[u8]) -> usize {
    let mut at = 0;
    while at < d.len() {
        let Ok((f, used)) = bmp::parse_field(&d[at..]) else {
            break;
        };
        let head = used - f.value.len();
        hex_into(out, &d[at..at + head]);
        at += used;
        let sensitive = match f.bmp {
            0x23 | 0x24 | 0x2D | 0x3A | 0x0E => true,
            0x22 => !pan_is_masked(&f.value),
            _ => false,
        };
        if f.bmp == 0x22 && sensitive {
            out.hex.push("**".into());
            out.bytes.extend(mask_pan_bcd(&f.value));
        } else if sensitive {
            out.hide("**", f.value.len(), MASK_BCD);
        } else if f.bmp == 0x06 {
            redact_tlv(out, &f.value);
        } else if matches!(f.bmp, 0x8B | 0x3C | 0x2A | 0x3B) {
            text_hex_into(out, &f.value);
        } else {
            hex_into(out, &f.value);
        }
    }
    at
}

/// The bytes before a command's BMP list: a password is hidden, a completion's software
/// version is text.
fn prefix_hex_into(out: &mut Out, control: u16, head: &[u8]) {
    if carries_password(control) {
        let pw = head.len().min(3);
        for _ in 0..pw {
            out.hide("**", 1, 0x00);
        }
        hex_into(out, &head[pw..]);
        return;
    }
    match head {
        [a, b, c, rest @ ..]
            if control == 0x060F && [a, b, c].iter().all(|x| is_var_digit(**x)) =>
        {
            let n =
                (usize::from(a & 0x0F) * 100 + usize::from(b & 0x0F) * 10 + usize::from(c & 0x0F))
                    .min(rest.len());
            hex_into(out, &[*a, *b, *c]);
            text_hex_into(out, &rest[..n]);
            hex_into(out, &rest[n..]);
        }
        _ => hex_into(out, head),
    }
}

/// Hex of an APDU for logs with sensitive BMPs (22 except masked, 23, 24, 2D, 3A, 0E and
/// TLV 1F08–1F0A) replaced by `**`.
///
/// The data is read as a BMP list at the offset the command uses. The terminal password
/// (the first 3 data bytes of `06 00`, `05 01`, `06 20`, `06 30`, `06 31`, `06 50`, ...)
/// is written as `** ** **`, and in text values (print lines, TLV texts, BMPs 8B, 3C, 2A,
/// 3B) the hidden digits of a card number are `**`, one per byte, so the hex keeps one
/// token per wire byte and the length bytes stay true. Acknowledgements are shown as
/// they are. When the data does not read as a BMP list,
/// what could not be read is hidden as `** (N bytes)`: a log line loses detail rather than
/// risk card data.
pub fn redacted_hex(apdu: &Apdu) -> String {
    redact(apdu).hex.join(" ")
}

/// The APDU as a wire trace writes it: [`redacted_hex`]'s walk with every hidden byte
/// replaced, so the same input always gives the same output and every length stays true.
///
/// A card number in BMP 22 keeps at most its first 6 and last 4 digits, the others become
/// the mask nibble `E` (as a terminal masks it); track data, CVV, expiry, TLV 1F08–1F0A and
/// data that does not read as fields become [`MASK_BCD`] bytes; hidden digits in text become
/// [`MASK_TEXT`]; the terminal password becomes `00 00 00`.
pub fn masked_apdu(apdu: &Apdu) -> Apdu {
    Apdu::new(apdu.class, apdu.instr, redact(apdu).bytes)
}

fn redact(apdu: &Apdu) -> Out {
    let wire = apdu.encode();
    let d = &apdu.data[..apdu.data.len().min(crate::apdu::MAX_DATA)];
    let mut head = Out::default();
    hex_into(&mut head, &wire[..wire.len() - d.len()]);
    let mut out = Out {
        hex: head.hex,
        bytes: Vec::new(),
    };
    let plain = matches!(
        (apdu.class, apdu.instr),
        (0x06, 0xD1) | (0x80, 0x00) | (0x84, _)
    ) && parse_fields(d).is_err();
    if plain {
        match (apdu.class, apdu.instr, d.split_first()) {
            (0x06, 0xD1, Some((attr, text))) => {
                hex_into(&mut out, &[*attr]);
                text_hex_into(&mut out, text);
            }
            _ => hex_into(&mut out, d),
        }
        return out;
    }
    let offsets = bmp_offsets(apdu.control(), d);
    // The first offset at which the whole rest reads as fields, else the first offset.
    let off = offsets
        .iter()
        .map(|&o| o.min(d.len()))
        .find(|&o| parse_fields(&d[o..]).is_ok())
        .unwrap_or_else(|| offsets.first().copied().unwrap_or(0).min(d.len()));
    prefix_hex_into(&mut out, apdu.control(), &d[..off]);
    let used = off + redact_fields(&mut out, &d[off..]);
    if used < d.len() {
        let rest = d.len() - used;
        out.hide(&format!("** ({rest} bytes)"), rest, MASK_BCD);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::PtMessage;

    #[test]
    fn masked_apdus_keep_their_lengths_and_decode() {
        // Status information: amount, a clear PAN (BMP 22, LLVAR), expiry (0E), track 2.
        let mut data = vec![0x04, 0x00, 0x00, 0x00, 0x00, 0x12, 0x34];
        data.extend([
            0x22, 0xF0, 0xF8, 0x54, 0x54, 0x54, 0x54, 0x54, 0x54, 0x54, 0x54,
        ]);
        data.extend([0x0E, 0x28, 0x12]);
        data.extend([0x23, 0xF0, 0xF3, 0x54, 0x54, 0xD2]);
        let apdu = Apdu::new(0x04, 0x0F, data.clone());
        let m = masked_apdu(&apdu);
        assert_eq!(m.data.len(), data.len());
        assert_eq!(
            &m.data[7..18],
            &[
                0x22, 0xF0, 0xF8, 0x54, 0x54, 0x54, 0xEE, 0xEE, 0xEE, 0x54, 0x54
            ]
        );
        assert_eq!(&m.data[18..21], &[0x0E, 0xEE, 0xEE]);
        // The same input masks the same way; the masked form is already masked.
        assert_eq!(masked_apdu(&apdu), m);
        assert_eq!(masked_apdu(&m), m);
        let PtMessage::StatusInformation(r) = PtMessage::from_apdu(&m).unwrap() else {
            panic!("not a status information");
        };
        assert_eq!(r.masked_pan.as_deref(), Some("545454******5454"));
        assert_eq!(r.amount, Some(1234));
        // The password of a registration is zeroed, the rest kept.
        let reg = Apdu::new(0x06, 0x00, vec![0x12, 0x34, 0x56, 0x8E, 0x09, 0x85]);
        assert_eq!(masked_apdu(&reg).data, vec![0, 0, 0, 0x8E, 0x09, 0x85]);
    }
}
