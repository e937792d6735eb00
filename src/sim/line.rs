//! Serial-line helpers shared by the emulators: line timing and writes to a PTY.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Time `bytes` take on a line of `baud` (10 bit times per byte); zero without a speed.
pub fn wire_time(baud: Option<u32>, bytes: usize) -> Duration {
    match baud {
        Some(b) if b > 0 => Duration::from_nanos(bytes as u64 * 10 * 1_000_000_000 / u64::from(b)),
        _ => Duration::ZERO,
    }
}

pub fn sleep_until(t: Instant) {
    let now = Instant::now();
    if t > now {
        std::thread::sleep(t - now);
    }
}

/// Write all of `bytes` to a non-blocking descriptor, giving up after 2 s or on an error.
pub fn write_all(fd: impl AsFd, mut bytes: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !bytes.is_empty() && Instant::now() < deadline {
        match nix::unistd::write(fd.as_fd(), bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EAGAIN) => std::thread::sleep(Duration::from_millis(1)),
            Err(_) => return,
        }
    }
}
