//! The emulator side of a pseudo-terminal's input: wait for the client's bytes and hand
//! them over as they come. `sim posnet`, `sim zvt` (serial) and `replay` all read their
//! PTY through [`Pump`].

use super::pty::Pty;
use std::os::fd::AsFd;
use std::time::Duration;

/// Reads a PTY's master side with one buffer.
pub struct Pump {
    buf: Box<[u8]>,
}

impl Default for Pump {
    fn default() -> Self {
        Pump::new()
    }
}

impl Pump {
    /// A pump with a 4 KiB buffer.
    pub fn new() -> Pump {
        Pump {
            buf: vec![0u8; 4096].into_boxed_slice(),
        }
    }

    /// Wait at most `wait` for input on `pty`, then pass every chunk that is ready to
    /// `on_bytes`, in order, until nothing more is there (`EAGAIN`) or no client has the
    /// device open (`EIO`). Returns how many bytes were read.
    pub fn input(&mut self, pty: &Pty, wait: Duration, mut on_bytes: impl FnMut(&[u8])) -> usize {
        let ms = u16::try_from(wait.as_millis()).unwrap_or(u16::MAX);
        let mut fds = [nix::poll::PollFd::new(
            pty.master.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(ms));
        let mut total = 0;
        loop {
            match nix::unistd::read(&pty.master, &mut self.buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n;
                    on_bytes(&self.buf[..n]);
                }
            }
        }
        total
    }
}
