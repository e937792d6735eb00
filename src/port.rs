//! Serial ports as the daemon opens them: one exclusive-open helper for every device, so a
//! second daemon (or any other program) can never drive the same printer or terminal.

use std::os::fd::AsRawFd;
use tokio_serial::SerialPortBuilderExt;

/// What a busy port is reported as, whoever holds it.
pub const IN_USE: &str = "the port is in use by another process (is a second fiscald running?)";

/// Stop bits of a serial line (POSNET uses 8N1, ZVT 8N2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopBits {
    One,
    Two,
}

/// Open `path` at `baud`, 8 data bits, no parity, no flow control, with `TIOCEXCL` and an
/// exclusive `flock`, so that no second process can open or drive it.
///
/// The error is the reason in plain words, without the path (callers add their context).
pub fn open_exclusive(
    path: &str,
    baud: u32,
    stop_bits: StopBits,
) -> Result<tokio_serial::SerialStream, String> {
    let port = tokio_serial::new(path, baud)
        .data_bits(tokio_serial::DataBits::Eight)
        .parity(tokio_serial::Parity::None)
        .stop_bits(match stop_bits {
            StopBits::One => tokio_serial::StopBits::One,
            StopBits::Two => tokio_serial::StopBits::Two,
        })
        .flow_control(tokio_serial::FlowControl::None)
        .open_native_async()
        .map_err(|e| {
            let text = e.to_string();
            if text.contains("exclusive") || text.contains("Device or resource busy") {
                IN_USE.to_string()
            } else {
                text
            }
        })?;
    // SAFETY: flock on a file descriptor owned by `port` for its whole life.
    let rc = unsafe { libc::flock(port.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let e = std::io::Error::last_os_error();
        return Err(if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            IN_USE.to_string()
        } else {
            format!("cannot lock: {e}")
        });
    }
    Ok(port)
}
