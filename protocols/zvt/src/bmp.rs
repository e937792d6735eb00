//! BMP fields, BCD numbers and the TLV container (BMP 06).
//!
//! A BMP is a one-byte field number followed by its value. Most BMPs have a fixed length;
//! others carry an LLVAR (`Fx Fy`, decimal 0..=99) or LLLVAR (`Fx Fy Fz`, 0..=999) length
//! prefix, and BMP 06 (the TLV container) a BER length (`nn`, `81 nn`, `82 hh ll`). The
//! length of a BMP that is not in the table cannot be known, so such a field ends parsing.

/// Why a field list could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BmpError {
    #[error("BMP {bmp:02X} is truncated")]
    Truncated { bmp: u8 },
    #[error("unknown BMP {0:02X}: its length cannot be known")]
    Unknown(u8),
    #[error("bad LLVAR length prefix in BMP {0:02X}")]
    BadLength(u8),
    #[error("bad TLV: {0}")]
    Tlv(&'static str),
}

/// The largest amount BMP 04 can carry (12 BCD digits).
pub const MAX_AMOUNT: u64 = 999_999_999_999;

/// How the length of a BMP's value is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BmpFormat {
    /// Always this many bytes.
    Fixed(usize),
    /// `Fx Fy` prefix, 0..=99 bytes.
    LlVar,
    /// `Fx Fy Fz` prefix, 0..=999 bytes.
    LllVar,
    /// BER length (`nn`, `81 nn`, `82 hh ll`): BMP 06.
    Tlv,
}

/// The format of a BMP, or `None` for a BMP this codec does not know.
pub fn format(bmp: u8) -> Option<BmpFormat> {
    use BmpFormat::*;
    Some(match bmp {
        0x01 | 0x02 | 0x03 | 0x05 => Fixed(1),
        0x04 => Fixed(6),
        0x06 => Tlv,
        0x0B | 0x0C => Fixed(3),
        0x0D | 0x0E | 0x17 => Fixed(2),
        0x19 | 0x27 => Fixed(1),
        0x22 | 0x23 | 0x2D => LlVar,
        0x24 => LllVar,
        0x29 => Fixed(4),
        0x2A => Fixed(15),
        0x37 => Fixed(3),
        0x3A => Fixed(2),
        0x3B => Fixed(8),
        0x3C => LllVar,
        0x3D => Fixed(3),
        0x49 => Fixed(2),
        0x60 => LllVar,
        0x87 => Fixed(2),
        0x88 => Fixed(3),
        0x8A | 0x8C => Fixed(1),
        0x8B => LlVar,
        0x92 | 0x9A => LllVar,
        0xA0 => Fixed(1),
        0xA7 => LlVar,
        0xAA => Fixed(3),
        0xAF => LllVar,
        0xBA => Fixed(5),
        0xD0 => Fixed(1),
        0xD1 => LlVar,
        0xD2 | 0xD3 | 0xE0 => Fixed(1),
        0xE1..=0xE8 => LlVar,
        0xE9 | 0xEA => Fixed(1),
        0xEB => Fixed(8),
        0xF0 => Fixed(1),
        0xF1..=0xF8 => LlVar,
        0xF9..=0xFC => Fixed(1),
        _ => return None,
    })
}

/// One BMP field: its number and raw value (length prefix removed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub bmp: u8,
    pub value: Vec<u8>,
}

impl Field {
    pub fn new(bmp: u8, value: Vec<u8>) -> Self {
        Field { bmp, value }
    }
}

/// Read an `Fx Fy [Fz]` length prefix.
fn read_var_len(prefix: &[u8], bmp: u8) -> Result<usize, BmpError> {
    prefix.iter().try_fold(0usize, |acc, &b| {
        if b & 0xF0 == 0xF0 && b & 0x0F <= 9 {
            Ok(acc * 10 + usize::from(b & 0x0F))
        } else {
            Err(BmpError::BadLength(bmp))
        }
    })
}

/// Read a BER length at the start of `data`: (header bytes, length).
pub fn read_ber_len(data: &[u8]) -> Result<(usize, usize), BmpError> {
    match *data {
        [n, ..] if n < 0x80 => Ok((1, usize::from(n))),
        [0x81, n, ..] => Ok((2, usize::from(n))),
        [0x82, hi, lo, ..] => Ok((3, usize::from(u16::from_be_bytes([hi, lo])))),
        [0x81] | [0x82] | [0x82, _] | [] => Err(BmpError::Tlv("truncated length")),
        _ => Err(BmpError::Tlv("unsupported length form")),
    }
}

/// Write a BER length (minimal form; longer than 65535 is written as 65535).
pub fn write_ber_len(out: &mut Vec<u8>, len: usize) {
    match len {
        0..=0x7F => out.push(len as u8),
        0x80..=0xFF => out.extend_from_slice(&[0x81, len as u8]),
        _ => {
            out.push(0x82);
            out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_be_bytes());
        }
    }
}

/// Parse one field at the start of `data`: the field and the bytes it used.
pub fn parse_field(data: &[u8]) -> Result<(Field, usize), BmpError> {
    let Some((&bmp, rest)) = data.split_first() else {
        return Err(BmpError::Tlv("no field"));
    };
    let truncated = BmpError::Truncated { bmp };
    let (head, len) = match format(bmp).ok_or(BmpError::Unknown(bmp))? {
        BmpFormat::Fixed(n) => (0, n),
        BmpFormat::LlVar => (
            2,
            read_var_len(rest.get(..2).ok_or(truncated.clone())?, bmp)?,
        ),
        BmpFormat::LllVar => (
            3,
            read_var_len(rest.get(..3).ok_or(truncated.clone())?, bmp)?,
        ),
        BmpFormat::Tlv => read_ber_len(rest).map_err(|e| match e {
            BmpError::Tlv("truncated length") => truncated.clone(),
            _ => BmpError::BadLength(bmp),
        })?,
    };
    let value = rest.get(head..head + len).ok_or(truncated)?;
    Ok((Field::new(bmp, value.to_vec()), 1 + head + len))
}

/// Parse a sequence of BMP fields (fixed lengths, LLVAR, LLLVAR, and 06 with BER length).
pub fn parse_fields(data: &[u8]) -> Result<Vec<Field>, BmpError> {
    match parse_fields_partial(data) {
        (fields, None) => Ok(fields),
        (_, Some(e)) => Err(e),
    }
}

/// Like [`parse_fields`], but keeps the fields read before an error and returns the error
/// beside them.
pub fn parse_fields_partial(data: &[u8]) -> (Vec<Field>, Option<BmpError>) {
    let mut fields = Vec::new();
    let mut at = 0;
    while at < data.len() {
        match parse_field(&data[at..]) {
            Ok((field, used)) => {
                fields.push(field);
                at += used;
            }
            Err(e) => return (fields, Some(e)),
        }
    }
    (fields, None)
}

/// Append one field's wire bytes. A value too long for its prefix is cut to fit
/// (99 bytes for LLVAR, 999 for LLLVAR, 65535 for BMP 06); a fixed-length value is written
/// as given.
pub fn encode_field(out: &mut Vec<u8>, field: &Field) {
    out.push(field.bmp);
    let v = &field.value;
    match format(field.bmp) {
        Some(BmpFormat::LlVar) => {
            let n = v.len().min(99);
            out.extend_from_slice(&[0xF0 | (n / 10) as u8, 0xF0 | (n % 10) as u8]);
            out.extend_from_slice(&v[..n]);
        }
        Some(BmpFormat::LllVar) => {
            let n = v.len().min(999);
            let digits = [n / 100, n / 10 % 10, n % 10];
            out.extend(digits.iter().map(|&d| 0xF0 | d as u8));
            out.extend_from_slice(&v[..n]);
        }
        Some(BmpFormat::Tlv) => {
            let n = v.len().min(0xFFFF);
            write_ber_len(out, n);
            out.extend_from_slice(&v[..n]);
        }
        Some(BmpFormat::Fixed(_)) | None => out.extend_from_slice(v),
    }
}

/// Encode fields back to bytes (inverse of [`parse_fields`]).
pub fn encode_fields(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    for f in fields {
        encode_field(&mut out, f);
    }
    out
}

/// An amount in minor units as 6 BCD bytes (BMP 04). Amounts above [`MAX_AMOUNT`] are
/// written as [`MAX_AMOUNT`]; callers validate before.
pub fn amount_to_bcd(amount: u64) -> [u8; 6] {
    let mut out = [0u8; 6];
    let mut v = amount.min(MAX_AMOUNT);
    for b in out.iter_mut().rev() {
        let lo = (v % 10) as u8;
        let hi = (v / 10 % 10) as u8;
        *b = hi << 4 | lo;
        v /= 100;
    }
    out
}

/// BCD bytes to a number; `None` if a nibble is not a digit (or the number overflows).
pub fn bcd_to_u64(bytes: &[u8]) -> Option<u64> {
    bytes
        .iter()
        .flat_map(|b| [b >> 4, b & 0x0F])
        .try_fold(0u64, |acc, d| {
            if d > 9 {
                return None;
            }
            acc.checked_mul(10)?.checked_add(u64::from(d))
        })
}

/// A number as `len` BCD bytes (leading zeros); `None` if it does not fit.
pub fn u64_to_bcd(value: u64, len: usize) -> Option<Vec<u8>> {
    let mut out = vec![0u8; len];
    let mut v = value;
    for b in out.iter_mut().rev() {
        let lo = (v % 10) as u8;
        let hi = (v / 10 % 10) as u8;
        *b = hi << 4 | lo;
        v /= 100;
    }
    (v == 0).then_some(out)
}

/// Like [`u64_to_bcd`], but a value that does not fit is written as all nines.
pub fn u64_to_bcd_saturating(value: u64, len: usize) -> Vec<u8> {
    u64_to_bcd(value, len).unwrap_or_else(|| vec![0x99; len])
}

/// Bytes as their hex nibbles (`52 52 35 35` → `"52523535"`), e.g. a terminal ID or time.
pub fn nibbles_to_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// Hex nibbles back to `len` bytes: right-aligned, left-padded with `0`, extra leading
/// nibbles dropped; a character that is not a hex digit counts as `0`.
pub fn string_to_nibbles(s: &str, len: usize) -> Vec<u8> {
    let mut nibbles: Vec<u8> = s
        .chars()
        .map(|c| c.to_digit(16).map_or(0, |d| d as u8))
        .collect();
    let want = len * 2;
    if nibbles.len() > want {
        nibbles.drain(..nibbles.len() - want);
    }
    let mut padded = vec![0u8; want - nibbles.len()];
    padded.extend(nibbles);
    padded.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
}

/// One TLV data object (tag as its full BER bytes combined, e.g. 0x1F07).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tlv {
    pub tag: u32,
    /// Primitive value, or for constructed tags the encoded children.
    pub value: Vec<u8>,
}

impl Tlv {
    pub fn new(tag: u32, value: Vec<u8>) -> Self {
        Tlv { tag, value }
    }
    /// A constructed object holding `children`.
    pub fn constructed(tag: u32, children: &[Tlv]) -> Self {
        Tlv {
            tag,
            value: encode_tlv(children),
        }
    }
    /// The tag's first byte.
    fn first_tag_byte(&self) -> u8 {
        tag_bytes(self.tag).first().copied().unwrap_or(0)
    }
    /// Bit 6 of the first tag byte: the value is a list of TLV objects.
    pub fn is_constructed(&self) -> bool {
        self.first_tag_byte() & 0x20 != 0
    }
    /// The children of a constructed object.
    pub fn children(&self) -> Result<Vec<Tlv>, BmpError> {
        parse_tlv(&self.value)
    }
}

/// The BER bytes of a tag number (big-endian, leading zero bytes dropped; tag 0 is `00`).
fn tag_bytes(tag: u32) -> Vec<u8> {
    let bytes = tag.to_be_bytes();
    let skip = bytes.iter().take(3).take_while(|&&b| b == 0).count();
    bytes[skip..].to_vec()
}

/// Read one BER tag: (tag, bytes used).
fn read_tag(data: &[u8]) -> Result<(u32, usize), BmpError> {
    let first = *data.first().ok_or(BmpError::Tlv("truncated tag"))?;
    let mut tag = u32::from(first);
    let mut used = 1;
    if first & 0x1F == 0x1F {
        loop {
            let b = *data.get(used).ok_or(BmpError::Tlv("truncated tag"))?;
            used += 1;
            if used > 4 {
                return Err(BmpError::Tlv("tag longer than 4 bytes"));
            }
            tag = tag << 8 | u32::from(b);
            if b & 0x80 == 0 {
                break;
            }
        }
    }
    Ok((tag, used))
}

/// Parse a TLV container's content (BER tags and lengths: `nn`, `81 nn`, `82 hh ll`).
pub fn parse_tlv(data: &[u8]) -> Result<Vec<Tlv>, BmpError> {
    Ok(parse_tlv_spans(data)?.into_iter().map(|(t, _)| t).collect())
}

/// Like [`parse_tlv`], with the number of tag and length bytes in front of each value
/// as they were on the wire.
pub fn parse_tlv_spans(data: &[u8]) -> Result<Vec<(Tlv, usize)>, BmpError> {
    let mut items = Vec::new();
    let mut at = 0;
    while at < data.len() {
        let start = at;
        let (tag, tag_len) = read_tag(&data[at..])?;
        at += tag_len;
        let (len_len, len) = read_ber_len(&data[at..])?;
        at += len_len;
        let value = data
            .get(at..at + len)
            .ok_or(BmpError::Tlv("truncated value"))?;
        items.push((Tlv::new(tag, value.to_vec()), at - start));
        at += len;
    }
    Ok(items)
}

/// Encode TLV objects (a value longer than 65535 bytes is cut).
pub fn encode_tlv(items: &[Tlv]) -> Vec<u8> {
    let mut out = Vec::new();
    for item in items {
        out.extend(tag_bytes(item.tag));
        let n = item.value.len().min(0xFFFF);
        write_ber_len(&mut out, n);
        out.extend_from_slice(&item.value[..n]);
    }
    out
}

/// Depth-first search for the first object with `tag`, descending into constructed objects.
pub fn find_tlv(items: &[Tlv], tag: u32) -> Option<Tlv> {
    for item in items {
        if item.tag == tag {
            return Some(item.clone());
        }
        if item.is_constructed()
            && let Ok(children) = item.children()
            && let Some(found) = find_tlv(&children, tag)
        {
            return Some(found);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        let data = [
            0x27, 0x00, 0x04, 0, 0, 0, 0, 0x25, 0x00, 0x22, 0xF0, 0xF2, 0x55, 0x98, 0x3C, 0xF0,
            0xF0, 0xF1, b'x', 0x06, 0x03, 0x1F, 0x07, 0x00,
        ];
        let f = parse_fields(&data).unwrap();
        assert_eq!(f.len(), 5);
        assert_eq!(f[1], Field::new(0x04, vec![0, 0, 0, 0, 0x25, 0]));
        assert_eq!(f[2].value, [0x55, 0x98]);
        assert_eq!(f[3].value, b"x");
        assert_eq!(f[4].value, [0x1F, 0x07, 0x00]);
        assert_eq!(encode_fields(&f), data);
        assert_eq!(
            parse_fields(&[0x04, 0]),
            Err(BmpError::Truncated { bmp: 4 })
        );
        assert_eq!(
            parse_fields(&[0x22, 0xF0]),
            Err(BmpError::Truncated { bmp: 0x22 })
        );
        assert_eq!(
            parse_fields(&[0x22, 0xF0, 0x0A]),
            Err(BmpError::BadLength(0x22))
        );
        let (kept, err) = parse_fields_partial(&[0x27, 0x00, 0x99, 1, 2]);
        assert_eq!(kept, [Field::new(0x27, vec![0])]);
        assert_eq!(err, Some(BmpError::Unknown(0x99)));
    }

    #[test]
    fn ber_lengths() {
        let long = Field::new(0x06, vec![0; 0x45D]);
        let enc = encode_fields(std::slice::from_ref(&long));
        assert_eq!(enc[..4], [0x06, 0x82, 0x04, 0x5D]);
        assert_eq!(parse_fields(&enc).unwrap(), [long]);
        let mid = Field::new(0x06, vec![0; 0x80]);
        assert_eq!(
            encode_fields(std::slice::from_ref(&mid))[..3],
            [0x06, 0x81, 0x80]
        );
        assert_eq!(
            parse_fields(&[0x06, 0x83, 0, 0, 0]),
            Err(BmpError::BadLength(6))
        );
    }

    #[test]
    fn bcd() {
        assert_eq!(amount_to_bcd(11000), [0, 0, 0, 1, 0x10, 0]);
        assert_eq!(amount_to_bcd(u64::MAX), [0x99; 6]);
        assert_eq!(bcd_to_u64(&[0x09, 0x78]), Some(978));
        assert_eq!(bcd_to_u64(&[0x0A]), None);
        assert_eq!(bcd_to_u64(&[0x99; 12]), None);
        assert_eq!(u64_to_bcd(985, 2), Some(vec![0x09, 0x85]));
        assert_eq!(u64_to_bcd(10000, 2), None);
        assert_eq!(nibbles_to_string(&[0x52, 0x52, 0x35, 0x35]), "52523535");
        assert_eq!(string_to_nibbles("52523535", 4), [0x52, 0x52, 0x35, 0x35]);
        assert_eq!(string_to_nibbles("405", 2), [0x04, 0x05]);
    }

    #[test]
    fn tlv() {
        // 06 D3 style: 1F07 01 02, 25 { 07 00, 07 02 "ab", 09 01 FF }
        let inner = [0x07, 0x00, 0x07, 0x02, b'a', b'b', 0x09, 0x01, 0xFF];
        let mut data = vec![0x1F, 0x07, 0x01, 0x02, 0x25, inner.len() as u8];
        data.extend_from_slice(&inner);
        let items = parse_tlv(&data).unwrap();
        assert_eq!(items[0], Tlv::new(0x1F07, vec![2]));
        assert_eq!(items[1].tag, 0x25);
        assert!(items[1].is_constructed());
        assert!(!items[0].is_constructed());
        let lines = items[1].children().unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(encode_tlv(&items), data);
        assert_eq!(find_tlv(&items, 0x09), Some(Tlv::new(0x09, vec![0xFF])));
        // three-byte tag
        let t = parse_tlv(&[0x1F, 0x81, 0x02, 0x01, 0xAA]).unwrap();
        assert_eq!(t, [Tlv::new(0x1F8102, vec![0xAA])]);
        assert_eq!(encode_tlv(&t), [0x1F, 0x81, 0x02, 0x01, 0xAA]);
        assert!(parse_tlv(&[0x1F]).is_err());
        assert!(parse_tlv(&[0x1F, 0x81]).is_err());
        assert!(parse_tlv(&[0x07, 0x05, 1]).is_err());
        assert!(parse_tlv(&[0x1F, 0x81, 0x81, 0x81, 0x01, 0x00]).is_err());
        assert_eq!(parse_tlv(&[0x00, 0x00]).unwrap(), [Tlv::new(0, vec![])]);
        assert_eq!(encode_tlv(&[Tlv::new(0, vec![])]), [0, 0]);
    }
}
