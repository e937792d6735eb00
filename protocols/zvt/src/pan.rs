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

/// Mask every card number inside free text (receipt lines, display texts): a run of
/// 13–19 digits, single spaces or dashes allowed between them, that passes the Luhn check
/// keeps its first 6 and last 4 digits; the others become `*`. Other text is unchanged.
pub fn mask_in_text(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = chars.clone();
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        // Collect a run of digits with single separators between them.
        let start = i;
        let mut positions = Vec::new();
        while i < chars.len() {
            if chars[i].is_ascii_digit() {
                positions.push(i);
                i += 1;
            } else if (chars[i] == ' ' || chars[i] == '-')
                && chars.get(i + 1).is_some_and(char::is_ascii_digit)
            {
                i += 1;
            } else {
                break;
            }
        }
        let _ = start;
        let digits: String = positions.iter().map(|&p| chars[p]).collect();
        if (13..=19).contains(&digits.len()) && luhn_valid(&digits) {
            let n = positions.len();
            for (k, &p) in positions.iter().enumerate() {
                if k >= 6 && k < n - 4 {
                    out[p] = '*';
                }
            }
        }
    }
    out.into_iter().collect()
}

/// The Luhn check over a digit string (real card numbers pass it).
pub fn luhn_valid(digits: &str) -> bool {
    let sum: u32 = digits
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
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
