//! Card numbers: only a masked form (at most the first 6 and the last 4 digits) ever
//! leaves the codec.

/// Mask a PAN given as digits (and mask characters): keep at most the first 6 and the
/// last 4 digits, replace the rest with `*`. Digits the terminal already masked stay masked.
///
/// Every character counts as one position; anything that is not an ASCII digit becomes `*`.
/// Numbers of more than 10 positions keep the first 6 and the last 4; shorter ones keep
/// only the last 4, and never more than half of their positions (an 8-digit number shows
/// its last 4, a 6-digit one its last 3).
pub fn mask(pan: &str) -> String {
    let n = pan.chars().count();
    let (head, tail) = if n > 10 { (6, 4) } else { (0, 4.min(n / 2)) };
    pan.chars()
        .enumerate()
        .map(|(i, c)| {
            let shown = i < head || i >= n - tail;
            if shown && c.is_ascii_digit() { c } else { '*' }
        })
        .collect()
}

/// Decode a BMP 22 value (BCD nibbles, `E` = masked digit, `F` = padding) to a masked string.
///
/// Decoding stops at the first `F` nibble; nibbles `A`–`E` become `*`. The result always
/// goes through [`mask`], so a PAN the terminal sent in clear is masked here.
pub fn from_bcd(bytes: &[u8]) -> String {
    let mut digits = String::with_capacity(bytes.len() * 2);
    for nibble in bytes.iter().flat_map(|b| [b >> 4, b & 0x0F]) {
        match nibble {
            0..=9 => digits.push(char::from(b'0' + nibble)),
            0x0F => break,
            _ => digits.push('*'),
        }
    }
    mask(&digits)
}

/// Encode a masked PAN for BMP 22 (without the LLVAR prefix): digits as BCD, any other
/// character as the mask nibble `E`, an odd count padded with `F`. Used by emulators.
pub fn to_bcd(pan: &str) -> Vec<u8> {
    let nibbles: Vec<u8> = pan
        .chars()
        .map(|c| {
            c.to_digit(10)
                .and_then(|d| u8::try_from(d).ok())
                .unwrap_or(0x0E)
        })
        .collect();
    nibbles
        .chunks(2)
        .map(|pair| match *pair {
            [hi, lo] => hi << 4 | lo,
            [hi] => hi << 4 | 0x0F,
            _ => 0xFF,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks() {
        assert_eq!(mask("5598830000008074"), "559883******8074");
        assert_eq!(mask("4711008005757038004"), "471100*********8004");
        assert_eq!(mask("12345678901"), "123456*8901");
        assert_eq!(mask("1234567890"), "******7890");
        assert_eq!(mask("12345678"), "****5678");
        assert_eq!(mask("123456"), "***456");
        assert_eq!(mask("1234"), "**34");
        assert_eq!(mask("1"), "*");
        assert_eq!(mask(""), "");
        assert_eq!(mask("5598 83"), "*****83");
        assert_eq!(mask("559883******8074"), "559883******8074");
    }

    #[test]
    fn bcd() {
        let v = [0x55, 0x98, 0x83, 0xEE, 0xEE, 0xEE, 0x80, 0x74];
        assert_eq!(from_bcd(&v), "559883******8074");
        assert_eq!(to_bcd("559883******8074"), v);
        let giro = [0x47, 0x11, 0x00, 0x80, 0x05, 0x75, 0x70, 0x38, 0x00, 0x4F];
        assert_eq!(from_bcd(&giro), "471100*********8004");
        assert_eq!(to_bcd("123"), [0x12, 0x3F]);
        assert_eq!(from_bcd(&[0xF1, 0x23]), "");
        assert_eq!(
            from_bcd(&[0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0xEE, 0x57, 0x26]),
            "************5726"
        );
    }
}

/// Mask every card number inside free text (receipt lines, display texts, card names).
///
/// The digits of the text are read as one sequence per stretch of text without letters:
/// digits separated only by characters that are not alphanumeric (spaces, dots, dashes,
/// underscores, slashes, line breaks, mask characters, ...) belong to the same sequence.
/// Every window of 13 to 19 consecutive digits of a sequence that passes the Luhn check is
/// a card number: its digits after the first 6 and before the last 4 become `*`. A card
/// number is found inside a longer run of digits too (`A 5454545454545454 1228`). Only
/// digits are replaced, so separators and the text's length in characters are kept.
///
/// This masks more than card numbers (any Luhn-valid window of a long digit sequence),
/// on purpose: a reference number losing some digits is harmless, a full PAN is not.
pub fn mask_in_text(text: &str) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // One sequence: digits joined across non-alphanumeric characters.
        let mut positions = Vec::new();
        while i < chars.len() && (chars[i].is_ascii_digit() || !chars[i].is_alphanumeric()) {
            if chars[i].is_ascii_digit() {
                positions.push(i);
            }
            i += 1;
        }
        let digits: Vec<u8> = positions.iter().map(|&p| chars[p] as u8 - b'0').collect();
        let mut hide = vec![false; digits.len()];
        for start in 0..digits.len() {
            for len in 13..=19 {
                let Some(window) = digits.get(start..start + len) else {
                    break;
                };
                if luhn_digits(window) {
                    hide[start + 6..start + len - 4].fill(true);
                }
            }
        }
        for (&p, _) in positions.iter().zip(&hide).filter(|(_, h)| **h) {
            chars[p] = '*';
        }
    }
    chars.into_iter().collect()
}

fn luhn_digits(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The Luhn check over a digit string (real card numbers pass it); characters that are
/// not ASCII digits are skipped.
pub fn luhn_valid(digits: &str) -> bool {
    let d: Vec<u8> = digits
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    luhn_digits(&d)
}

#[cfg(test)]
mod text_tests {
    use super::mask_in_text;

    #[test]
    fn card_numbers_in_text_are_masked() {
        assert_eq!(mask_in_text("5454 5454 5454 5454"), "5454 54** **** 5454");
        assert_eq!(
            mask_in_text("PAN 5454545454545454 OK"),
            "PAN 545454******5454 OK"
        );
        assert_eq!(
            mask_in_text("TRACE 000001  PARAGON 0001"),
            "TRACE 000001  PARAGON 0001"
        );
        assert_eq!(mask_in_text("545454******5454"), "545454******5454");
        // Not Luhn-valid: left alone (e.g. a long reference number).
        assert_eq!(mask_in_text("1234567890123"), "1234567890123");
    }
}

#[cfg(test)]
mod text_props {
    use super::{luhn_valid, mask_in_text};
    use proptest::prelude::*;

    /// A Luhn-valid number of `len` digits starting with `body`'s digits.
    fn with_check_digit(body: &[u8]) -> String {
        let mut s: String = body.iter().map(|d| char::from(b'0' + d)).collect();
        for c in '0'..='9' {
            s.push(c);
            if luhn_valid(&s) {
                return s;
            }
            s.pop();
        }
        unreachable!("one check digit always fits")
    }

    const SEPARATORS: [&str; 11] = ["", " ", "  ", ".", "-", "_", "/", " - ", "\n", "*", ", "];

    fn pan() -> impl Strategy<Value = String> {
        (12usize..=18)
            .prop_flat_map(|n| proptest::collection::vec(0u8..10, n))
            .prop_map(|b| with_check_digit(&b))
    }

    fn digits(max: usize) -> impl Strategy<Value = String> {
        proptest::collection::vec(0u8..10, 0..=max)
            .prop_map(|v| v.iter().map(|d| char::from(b'0' + d)).collect())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// A card number embedded with any separator style, next to other digits, never
        /// survives: its middle digits are all masked and it is in no form of the output.
        #[test]
        fn an_embedded_card_number_never_survives(
            pan in pan(),
            groups in proptest::collection::vec(1usize..=6, 1..8),
            sep in 0..SEPARATORS.len(),
            outer in 0..SEPARATORS.len(),
            before in digits(8),
            after in digits(8),
            prefix in "[A-Za-z :]{0,6}",
            suffix in "[A-Za-z :]{0,6}",
        ) {
            let sep = SEPARATORS[sep];
            let outer = SEPARATORS[outer];
            // The PAN split into groups joined by `sep`; the positions of its digits.
            let mut text = format!("{prefix}{before}{outer}");
            let mut at = Vec::new();
            let mut rest = pan.as_str();
            let mut g = groups.iter().cycle();
            while !rest.is_empty() {
                let n = (*g.next().unwrap()).min(rest.len());
                if !at.is_empty() {
                    text.push_str(sep);
                }
                for c in rest[..n].chars() {
                    at.push(text.chars().count());
                    text.push(c);
                }
                rest = &rest[n..];
            }
            text.push_str(&format!("{outer}{after}{suffix}"));
            let out = mask_in_text(&text);
            let chars: Vec<char> = out.chars().collect();
            prop_assert_eq!(chars.len(), text.chars().count());
            for &p in &at[6..at.len() - 4] {
                prop_assert_eq!(chars[p], '*', "{} -> {}", text, out);
            }
            let digits_only: String = out.chars().filter(|c| c.is_ascii_digit() || *c == '*').collect();
            prop_assert!(!digits_only.contains(&pan), "{} -> {}", text, out);
            let plain: String = out.chars().filter(char::is_ascii_digit).collect();
            prop_assert!(!plain.contains(&pan), "{} -> {}", text, out);
        }

        /// Text without a Luhn-valid window of 13 to 19 digits is left as it is, and
        /// only digits are ever replaced.
        #[test]
        fn only_digits_change(text in "[ -~]{0,60}") {
            let out = mask_in_text(&text);
            prop_assert_eq!(out.chars().count(), text.chars().count());
            for (a, b) in text.chars().zip(out.chars()) {
                prop_assert!(a == b || (a.is_ascii_digit() && b == '*'));
            }
        }
    }

    #[test]
    fn separator_styles_from_the_review() {
        for text in [
            "A 5454545454545454 1228",
            "5454  5454  5454  5454",
            "5454.5454.5454.5454",
            "5454_5454_5454_5454",
            "5454/5454/5454/5454",
            "PAN 5454545454545454 EXP 12/28",
            "Maestro 5454545454545454",
            "00012 5454545454545454 000123",
            "1228 5454545454545454",
        ] {
            let out = mask_in_text(text);
            let digits: String = out.chars().filter(char::is_ascii_digit).collect();
            assert!(!digits.contains("5454545454545454"), "{text} -> {out}");
        }
        // Next to another number more windows pass the check; more is masked.
        assert_eq!(
            mask_in_text("A 5454545454545454 1228"),
            "A 545454********** 1228"
        );
        assert_eq!(mask_in_text("5454.5454.5454.5454"), "5454.54**.****.5454");
    }
}
