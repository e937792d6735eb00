//! Text on the wire in one of two code pages, chosen per device ([`Encoding`]).
//!
//! The evidence on which code page a Thermal device uses conflicts (Posnet's Thermal mode
//! forces Mazovia; Novitus devices are seen with both), so it is a setting.
//!
//! - **cp1250**: the WHATWG `windows-1250` mapping from `encoding_rs`.
//! - **Mazovia**: no maintained crate implements it, so this module holds the one part of it
//!   that prints: ASCII and the 18 Polish letters. On Posnet devices in Mazovia "only Polish
//!   letters and box-drawing characters above 0x7F print; everything else becomes a space",
//!   so refusing everything else (box drawing included) loses nothing a receipt needs.

use serde::{Deserialize, Serialize};

/// A device's code page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// The Polish DOS code page (Posnet Thermal's forced default).
    #[default]
    Mazovia,
    /// Windows-1250 (litex-novitus 1.0.0's default for Novitus devices).
    Cp1250,
}

impl Encoding {
    /// The setting's name (`mazovia`, `cp1250`).
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Mazovia => "mazovia",
            Encoding::Cp1250 => "cp1250",
        }
    }

    /// The setting by name.
    pub fn from_name(s: &str) -> Option<Encoding> {
        match s {
            "mazovia" => Some(Encoding::Mazovia),
            "cp1250" => Some(Encoding::Cp1250),
            _ => None,
        }
    }
}

/// The Polish letters in Mazovia (a one-line table per letter; positions as published for
/// code page 620 / "Mazovia").
pub const MAZOVIA_POLISH: [(char, u8); 18] = [
    ('ą', 0x86),
    ('ć', 0x8D),
    ('Ą', 0x8F),
    ('Ę', 0x90),
    ('ę', 0x91),
    ('ł', 0x92),
    ('Ć', 0x95),
    ('Ś', 0x98),
    ('Ł', 0x9C),
    ('ś', 0x9E),
    ('Ź', 0xA0),
    ('Ż', 0xA1),
    ('ó', 0xA2),
    ('Ó', 0xA3),
    ('ń', 0xA4),
    ('Ń', 0xA5),
    ('ź', 0xA6),
    ('ż', 0xA7),
];

/// Why a piece of text cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TextError {
    /// The code page has no byte for the character.
    #[error("character {ch:?} (U+{code:04X}) at position {position} cannot be printed in the {encoding} code page the printer is set to", code = *ch as u32, encoding = encoding.as_str())]
    Unprintable {
        ch: char,
        position: usize,
        encoding: Encoding,
    },
    /// A control character (CR, ESC, ...) would end or corrupt the frame.
    #[error("control character U+{code:04X} at position {position} is not allowed in printer text", code = *ch as u32)]
    Control { ch: char, position: usize },
}

fn is_control(ch: char) -> bool {
    let c = ch as u32;
    c < 0x20 || c == 0x7F || (0x80..=0x9F).contains(&c)
}

/// The byte for `ch` in `encoding`, if it has one.
pub fn byte_of(ch: char, encoding: Encoding) -> Option<u8> {
    if ch.is_ascii() {
        return Some(ch as u8);
    }
    match encoding {
        Encoding::Mazovia => MAZOVIA_POLISH
            .iter()
            .find(|(c, _)| *c == ch)
            .map(|(_, b)| *b),
        Encoding::Cp1250 => {
            let mut buf = [0u8; 4];
            let s = ch.encode_utf8(&mut buf);
            let (bytes, _, unmappable) = encoding_rs::WINDOWS_1250.encode(s);
            if unmappable || bytes.len() != 1 {
                None
            } else {
                Some(bytes[0])
            }
        }
    }
}

/// The character for byte `b` in `encoding` (U+FFFD for a Mazovia byte this module does
/// not map).
pub fn char_of(b: u8, encoding: Encoding) -> char {
    if b.is_ascii() {
        return char::from(b);
    }
    match encoding {
        Encoding::Mazovia => MAZOVIA_POLISH
            .iter()
            .find(|(_, x)| *x == b)
            .map_or('\u{FFFD}', |(c, _)| *c),
        Encoding::Cp1250 => {
            let byte = [b];
            let (s, _) = encoding_rs::WINDOWS_1250.decode_without_bom_handling(&byte);
            s.chars().next().unwrap_or('\u{FFFD}')
        }
    }
}

/// Encode printer text, refusing control characters and anything the code page lacks.
pub fn encode(text: &str, encoding: Encoding) -> Result<Vec<u8>, TextError> {
    let mut out = Vec::with_capacity(text.len());
    for (position, ch) in text.chars().enumerate() {
        if is_control(ch) {
            return Err(TextError::Control { ch, position });
        }
        match byte_of(ch, encoding) {
            Some(b) => out.push(b),
            None => {
                return Err(TextError::Unprintable {
                    ch,
                    position,
                    encoding,
                });
            }
        }
    }
    Ok(out)
}

/// Check that `text` can be sent in `encoding` (what validation asks before queuing).
pub fn check(text: &str, encoding: Encoding) -> Result<(), TextError> {
    encode(text, encoding).map(|_| ())
}

/// Decode bytes from the device.
pub fn decode(bytes: &[u8], encoding: Encoding) -> String {
    bytes.iter().map(|b| char_of(*b, encoding)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLISH: &str = "ĄĆĘŁŃÓŚŹŻąćęłńóśźż";

    #[test]
    fn polish_letters_round_trip_in_both_code_pages() {
        for e in [Encoding::Mazovia, Encoding::Cp1250] {
            let bytes = encode(POLISH, e).unwrap();
            assert_eq!(bytes.len(), 18);
            assert_eq!(decode(&bytes, e), POLISH);
        }
    }

    #[test]
    fn the_mazovia_table_is_a_bijection_above_ascii() {
        let mut bytes: Vec<u8> = MAZOVIA_POLISH.iter().map(|(_, b)| *b).collect();
        bytes.sort_unstable();
        bytes.dedup();
        assert_eq!(bytes.len(), 18);
        assert!(bytes.iter().all(|b| *b >= 0x80));
        assert_eq!(
            encode("Żółć", Encoding::Mazovia).unwrap(),
            [0xA1, 0xA2, 0x92, 0x8D]
        );
    }

    #[test]
    fn cp1250_bytes_are_the_windows_ones() {
        assert_eq!(
            encode("Żółć", Encoding::Cp1250).unwrap(),
            [0xAF, 0xF3, 0xB3, 0xE6]
        );
    }

    #[test]
    fn text_a_code_page_lacks_is_refused_with_the_character() {
        // In Windows-1250 but not in Mazovia's printable set.
        let e = encode("Číslo", Encoding::Mazovia).unwrap_err();
        assert!(matches!(
            e,
            TextError::Unprintable {
                ch: 'Č',
                position: 0,
                ..
            }
        ));
        assert!(encode("Číslo", Encoding::Cp1250).is_ok());
        assert!(encode("€ 5", Encoding::Mazovia).is_err());
        assert!(encode("☃", Encoding::Cp1250).is_err());
        assert!(matches!(
            encode("a\rb", Encoding::Cp1250),
            Err(TextError::Control { position: 1, .. })
        ));
    }
}
