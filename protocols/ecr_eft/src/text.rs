//! Text encoding of fields. The specification's character set is unknown (our choice:
//! Windows-1250, the usual single-byte Polish code page; ASCII is the same in all
//! candidates). Changing it is this file only.

use encoding_rs::WINDOWS_1250;

/// The code page of text fields.
pub const ENCODING: &encoding_rs::Encoding = WINDOWS_1250;

/// Bytes to text (a byte the code page does not define becomes U+FFFD).
pub fn decode(bytes: &[u8]) -> String {
    if bytes.is_ascii() {
        // Fast path, and exact for every ASCII byte.
        return bytes.iter().map(|&b| char::from(b)).collect();
    }
    ENCODING.decode_without_bom_handling(bytes).0.into_owned()
}

/// Text to bytes; `None` if a character is not in the code page.
pub fn encode(text: &str) -> Option<Vec<u8>> {
    let (bytes, _, unmappable) = ENCODING.encode(text);
    (!unmappable).then(|| bytes.into_owned())
}

#[cfg(test)]
mod tests {
    #[test]
    fn polish_letters_round_trip() {
        let s = "Zażółć gęślą jaźń";
        let b = super::encode(s).unwrap();
        assert_eq!(b.len(), s.chars().count());
        assert_eq!(super::decode(&b), s);
        assert!(super::encode("€ ok").is_some());
        assert!(super::encode("日本").is_none());
    }
}
