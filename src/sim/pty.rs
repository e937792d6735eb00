//! A pseudo-terminal whose device side is published as a symlink (the "cable end"
//! the daemon opens), and atomic file replacement for emulator state.

use nix::pty::{OpenptyResult, openpty};
use nix::sys::termios;
use std::fs::File;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// An open PTY pair; the emulator reads and writes `master`.
pub struct Pty {
    pub master: OwnedFd,
    /// Kept open so the master does not see EIO while no client has the device open
    /// (unless [`Pty::release_slave`] let it go).
    slave: Option<OwnedFd>,
    pub device: PathBuf,
    link: PathBuf,
}

impl Pty {
    /// Create a raw-mode PTY and point `link` at its device, replacing an old symlink.
    /// Anything else at `link` (a regular file, a directory) is refused and left alone.
    pub fn create(link: &Path) -> std::io::Result<Pty> {
        claim_link(link)?;
        let OpenptyResult { master, slave } = openpty(None, None).map_err(std::io::Error::from)?;
        let mut t = termios::tcgetattr(slave.as_fd()).map_err(std::io::Error::from)?;
        termios::cfmakeraw(&mut t);
        termios::tcsetattr(slave.as_fd(), termios::SetArg::TCSANOW, &t)
            .map_err(std::io::Error::from)?;
        let device = nix::unistd::ttyname(slave.as_fd()).map_err(std::io::Error::from)?;
        let flags = nix::fcntl::fcntl(master.as_fd(), nix::fcntl::FcntlArg::F_GETFL)
            .map_err(std::io::Error::from)?;
        let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
        nix::fcntl::fcntl(master.as_fd(), nix::fcntl::FcntlArg::F_SETFL(flags))
            .map_err(std::io::Error::from)?;
        // Created, never renamed over: if anything appeared at `link` since it was claimed,
        // this fails instead of replacing it.
        std::os::unix::fs::symlink(&device, link)?;
        Ok(Pty {
            master,
            slave: Some(slave),
            device,
            link: link.to_path_buf(),
        })
    }

    /// Close the emulator's own handle on the device side, so that [`Pty::client_open`]
    /// tells whether a client has it open (reads then fail while none has).
    pub fn release_slave(&mut self) {
        self.slave = None;
    }

    /// True while some process has the device side open. Only meaningful after
    /// [`Pty::release_slave`]: the master reports a hang-up while nobody has it.
    pub fn client_open(&self) -> bool {
        let mut fds = [nix::poll::PollFd::new(
            self.master.as_fd(),
            nix::poll::PollFlags::empty(),
        )];
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::ZERO) {
            Ok(_) => !fds[0]
                .revents()
                .is_some_and(|r| r.contains(nix::poll::PollFlags::POLLHUP)),
            Err(_) => true,
        }
    }

    /// Remove the published link (the device "goes away").
    pub fn unlink(&self) {
        let _ = claim_link(&self.link);
    }
}

/// Make `link` free for a device symlink: an old symlink is removed, a missing path is
/// fine, and anything else is an error (`--link` must never delete a file).
pub fn claim_link(link: &Path) -> std::io::Result<()> {
    match std::fs::symlink_metadata(link) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
        Ok(m) if m.file_type().is_symlink() => match std::fs::remove_file(link) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            other => other,
        },
        Ok(_) => Err(std::io::Error::new(
            std::io::ErrorKind::AlreadyExists,
            format!(
                "{} exists and is not a symlink; refusing to replace it",
                link.display()
            ),
        )),
    }
}

/// Write `bytes` to `path` atomically and durably: temp file, fsync, rename, fsync dir.
/// New files get mode 0600.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = dir.join(format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    ));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()?;
    Ok(())
}
