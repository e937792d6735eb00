//! Printer text: UTF-8 in the daemon, Windows-1250 on the wire.

use encoding_rs::WINDOWS_1250;

/// Text the printer's code page cannot hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{character:?} cannot be printed in Windows-1250")]
pub struct TextError {
    pub character: char,
}

/// Encode `text` to Windows-1250; the first character it cannot hold is an error.
pub fn encode(text: &str) -> Result<Vec<u8>, TextError> {
    let (bytes, _, had_errors) = WINDOWS_1250.encode(text);
    if had_errors {
        let character = text
            .chars()
            .find(|c| WINDOWS_1250.encode(c.encode_utf8(&mut [0; 4])).2)
            .unwrap_or('\u{fffd}');
        return Err(TextError { character });
    }
    Ok(bytes.into_owned())
}

/// Decode Windows-1250 bytes (every byte maps to a character, so nothing is lost).
pub fn decode(bytes: &[u8]) -> String {
    WINDOWS_1250
        .decode_without_bom_handling(bytes)
        .0
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polish_letters_round_trip_and_other_scripts_are_refused() {
        let s = "Zażółć gęślą jaźń ŁÓDŹ";
        let b = encode(s).unwrap();
        assert_eq!(b.len(), s.chars().count());
        assert_eq!(decode(&b), s);
        assert_eq!(encode("漢").unwrap_err().character, '漢');
    }
}
