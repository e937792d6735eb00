//! Log forms of APDUs: sensitive fields, card numbers in text and the terminal password
//! hidden, one token per wire byte.

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

fn hex_into(out: &mut Vec<String>, bytes: &[u8]) {
    out.extend(bytes.iter().map(|b| format!("{b:02X}")));
}

/// Hex of a text value with the hidden digits of a card number as `**` (one per byte).
fn text_hex_into(out: &mut Vec<String>, bytes: &[u8]) {
    let text = text_from_cp437(bytes);
    let masked = pan::mask_in_text(&text);
    out.extend(
        bytes
            .iter()
            .zip(text.chars().zip(masked.chars()))
            .map(|(b, (was, is))| {
                if was == is {
                    format!("{b:02X}")
                } else {
                    "**".to_string()
                }
            }),
    );
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

fn redact_tlv(out: &mut Vec<String>, data: &[u8]) {
    let Ok(items) = bmp::parse_tlv_spans(data) else {
        out.push(format!("** ({} bytes)", data.len()));
        return;
    };
    let mut at = 0;
    for (item, head) in &items {
        hex_into(out, &data[at..at + head]);
        at += head + item.value.len();
        if matches!(item.tag, 0x1F08..=0x1F0A) {
            out.push("**".into());
        } else if item.is_constructed() {
            redact_tlv(out, &item.value);
        } else {
            // Any primitive value may be text (07 lines, 1F17 error text, vendor tags).
            text_hex_into(out, &item.value);
        }
    }
}

/// Render the BMP list at the start of `d`; returns the bytes it could read.
fn redact_fields(out: &mut Vec<String>, d: &[u8]) -> usize {
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
        if sensitive {
            out.push("**".into());
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
fn prefix_hex_into(out: &mut Vec<String>, control: u16, head: &[u8]) {
    if carries_password(control) {
        let pw = head.len().min(3);
        out.extend(std::iter::repeat_n("**".to_string(), pw));
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
    let wire = apdu.encode();
    let d = &apdu.data[..apdu.data.len().min(crate::apdu::MAX_DATA)];
    let mut out = Vec::new();
    hex_into(&mut out, &wire[..wire.len() - d.len()]);
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
        return out.join(" ");
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
        out.push(format!("** ({} bytes)", d.len() - used));
    }
    out.join(" ")
}
