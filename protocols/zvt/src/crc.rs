//! CRC-16/KERMIT as the ZVT serial transport uses it.

const KERMIT: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_KERMIT);

/// The checksum of an un-stuffed APDU followed by the ETX byte (0x03).
pub fn frame_checksum(apdu: &[u8]) -> u16 {
    let mut d = KERMIT.digest();
    d.update(apdu);
    d.update(&[0x03]);
    d.finalize()
}

/// Plain CRC-16/KERMIT.
pub fn checksum(bytes: &[u8]) -> u16 {
    KERMIT.checksum(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value() {
        assert_eq!(checksum(b"123456789"), 0x2189);
        assert_eq!(checksum(b""), 0);
    }

    /// APDUs of the reference's serial vectors (§1.3.1) with the CRC bytes as sent.
    #[test]
    fn reference_frames() {
        let cases: &[(&[u8], [u8; 2])] = &[
            (
                &[0x06, 0x00, 0x06, 0x12, 0x34, 0x56, 0xBA, 0x09, 0x78],
                [0x24, 0xC3],
            ),
            (&[0x06, 0x93, 0x03, 0x12, 0x34, 0x56], [0xCA, 0xA4]),
            (
                &[
                    0x06, 0x01, 0x0A, 0x04, 0, 0, 0, 0x01, 0x10, 0x00, 0x49, 0x09, 0x78,
                ],
                [0xF2, 0xFF],
            ),
            (&[0x06, 0x70, 0x00], [0xD9, 0xF9]),
            (&[0x80, 0x00, 0x00], [0xF5, 0x1F]),
            (&[0x84, 0x9C, 0x00], [0xC3, 0x41]),
            (&[0x06, 0x18, 0x00], [0x56, 0x3A]),
            (&[0x05, 0x01, 0x03, 0x12, 0x34, 0x56], [0xE0, 0x43]),
            (&[0x05, 0x01, 0x00], [0x10, 0x06]),
            (&[0x06, 0x1E, 0x01, 0x6C], [0xC9, 0xF2]),
        ];
        for (apdu, crc) in cases {
            assert_eq!(frame_checksum(apdu).to_le_bytes(), *crc, "{apdu:02X?}");
            let mut with_etx = apdu.to_vec();
            with_etx.push(0x03);
            assert_eq!(checksum(&with_etx), frame_checksum(apdu));
        }
    }
}
