//! Text on the wire: Windows-1250, no escaping, no control characters inside values.
//!
//! The mapping is the WHATWG `windows-1250` one from `encoding_rs`, which assigns a
//! distinct character to every one of the 256 bytes (the five bytes Microsoft leaves
//! undefined map to the C1 controls of the same number). So [`decode`] is total and
//! lossless and [`encode_lossless`] is its exact inverse.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Why a piece of text cannot be sent to the printer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The character has no Windows-1250 code, so the printer cannot print it.
    #[error("character {ch:?} (U+{code:04X}) at position {position} cannot be printed by the printer (not in Windows-1250)", code = *ch as u32)]
    Unprintable { ch: char, position: usize },
    /// A control character (TAB, STX, ETX, LF where not allowed, ...) would corrupt the frame.
    #[error("control character U+{code:04X} at position {position} is not allowed in printer text", code = *ch as u32)]
    Control { ch: char, position: usize },
    /// A frame's mnemonic or parameter name is malformed (a parameter name must be two
    /// ASCII letters or digits; a mnemonic must be non-empty printable ASCII).
    #[error("invalid field name {name:?} in a printer frame")]
    BadName { name: String },
}

/// The byte → char table and its inverse, built once from `encoding_rs`.
struct Tables {
    to_char: [char; 256],
    to_byte: HashMap<char, u8>,
}

fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut to_char = ['\0'; 256];
        let mut to_byte = HashMap::with_capacity(256);
        for (b, slot) in (0u8..=255).zip(to_char.iter_mut()) {
            let byte = [b];
            let (s, _) = encoding_rs::WINDOWS_1250.decode_without_bom_handling(&byte);
            // WHATWG windows-1250 maps every byte to exactly one char; fall back to
            // U+FFFD defensively (never reached with encoding_rs).
            let ch = s.chars().next().unwrap_or('\u{FFFD}');
            *slot = ch;
            to_byte.entry(ch).or_insert(b);
        }
        Tables { to_char, to_byte }
    })
}

/// The Windows-1250 byte for `ch`, if the code page has one.
pub fn byte_of(ch: char) -> Option<u8> {
    if ch.is_ascii() {
        // ASCII maps to itself; `as u8` is exact here.
        Some(ch as u8)
    } else {
        tables().to_byte.get(&ch).copied()
    }
}

/// True for characters that must never appear inside a frame value: C0 controls,
/// DEL and the C1 range U+0080..=U+009F.
pub fn is_control(ch: char) -> bool {
    let c = ch as u32;
    c < 0x20 || c == 0x7F || (0x80..=0x9F).contains(&c)
}

/// Encode printer text to Windows-1250, refusing control characters and anything the
/// code page lacks. `allow_newline` lets LF through for the few multi-line fields.
/// `position` in errors is the char index (not the byte index) in `text`.
pub fn encode(text: &str, allow_newline: bool) -> Result<Vec<u8>, TextError> {
    let mut out = Vec::with_capacity(text.len());
    for (position, ch) in text.chars().enumerate() {
        if is_control(ch) && !(allow_newline && ch == '\n') {
            return Err(TextError::Control { ch, position });
        }
        match byte_of(ch) {
            Some(b) => out.push(b),
            None => return Err(TextError::Unprintable { ch, position }),
        }
    }
    Ok(out)
}

/// Encode without checks: every char is assumed to come from [`decode`]. Used for
/// re-encoding received frames byte-for-byte. A char outside Windows-1250 (which
/// [`decode`] never produces) becomes `?`.
pub fn encode_lossless(text: &str) -> Vec<u8> {
    text.chars().map(|ch| byte_of(ch).unwrap_or(b'?')).collect()
}

/// Decode Windows-1250 bytes. Total and lossless: every byte maps to one distinct char.
pub fn decode(bytes: &[u8]) -> String {
    let t = tables();
    bytes.iter().map(|&b| t.to_char[usize::from(b)]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polish_round_trip() {
        let s = "Żółć gęślą jaźń ŻÓŁĆ GĘŚLĄ JAŹŃ";
        let bytes = encode(s, false).unwrap();
        assert_eq!(bytes.len(), s.chars().count());
        assert_eq!(decode(&bytes), s);
        assert_eq!(encode_lossless(s), bytes);
        // A few known cp1250 codes.
        assert_eq!(encode("ł", false).unwrap(), vec![0xB3]);
        assert_eq!(encode("ó", false).unwrap(), vec![0xF3]);
        assert_eq!(encode("Ż", false).unwrap(), vec![0xAF]);
    }

    #[test]
    fn euro_sign() {
        assert_eq!(encode("€", false).unwrap(), vec![0x80]);
        assert_eq!(decode(&[0x80]), "€");
    }

    #[test]
    fn chinese_refused() {
        assert_eq!(
            encode("ab中", false),
            Err(TextError::Unprintable {
                ch: '中',
                position: 2
            })
        );
        // Position is a char index even after multi-byte UTF-8 chars.
        assert_eq!(
            encode("żż中", false),
            Err(TextError::Unprintable {
                ch: '中',
                position: 2
            })
        );
    }

    #[test]
    fn controls_refused() {
        for ch in [
            '\t', '\u{2}', '\u{3}', '\r', '\u{7F}', '\u{85}', '\u{9F}', '\u{81}',
        ] {
            let s = format!("a{ch}b");
            assert_eq!(
                encode(&s, false),
                Err(TextError::Control { ch, position: 1 }),
                "{ch:?}"
            );
            assert_eq!(
                encode(&s, true),
                Err(TextError::Control { ch, position: 1 }),
                "{ch:?}"
            );
        }
    }

    #[test]
    fn newline_only_when_allowed() {
        assert_eq!(
            encode("a\nb", false),
            Err(TextError::Control {
                ch: '\n',
                position: 1
            })
        );
        assert_eq!(encode("a\nb", true).unwrap(), b"a\nb".to_vec());
    }

    #[test]
    fn decode_is_total_and_lossless() {
        let all: Vec<u8> = (0u8..=255).collect();
        let s = decode(&all);
        assert_eq!(s.chars().count(), 256);
        let mut seen = std::collections::HashSet::new();
        assert!(s.chars().all(|c| seen.insert(c)), "chars are distinct");
        assert_eq!(encode_lossless(&s), all);
    }

    #[test]
    fn printable_upper_half_encodes() {
        // Every non-control char of the code page passes the strict check.
        for b in 0x20u8..=0xFF {
            let s = decode(&[b]);
            let ch = s.chars().next().unwrap();
            if !is_control(ch) {
                assert_eq!(encode(&s, false).unwrap(), vec![b]);
            }
        }
    }
}
