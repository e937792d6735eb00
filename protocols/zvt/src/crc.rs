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
