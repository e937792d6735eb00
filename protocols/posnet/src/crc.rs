//! CRC-16/XMODEM as POSNET uses it: over every byte between STX and `#`.

const XMODEM: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// The POSNET checksum of a frame payload (the bytes between STX and `#`).
pub fn checksum(payload: &[u8]) -> u16 {
    XMODEM.checksum(payload)
}
