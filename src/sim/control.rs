//! The emulators' control socket: a Unix socket taking one command line per connection
//! and answering with one line (`ok ...` or `error ...`).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `<base>.ctl`, the default control socket beside a device link or state file.
pub fn default_path(base: &Path) -> PathBuf {
    let mut p = base.as_os_str().to_owned();
    p.push(".ctl");
    PathBuf::from(p)
}

/// A bound, non-blocking control socket; the socket file is removed on drop.
pub struct ControlSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl ControlSocket {
    /// Bind at `path`, replacing a stale socket file; anything else at `path` is refused.
    pub fn bind(path: &Path) -> anyhow::Result<ControlSocket> {
        use std::os::unix::fs::FileTypeExt;
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_socket() => {
                let _ = std::fs::remove_file(path);
            }
            Ok(_) => anyhow::bail!(
                "{} exists and is not a socket; refusing to replace it",
                path.display()
            ),
            Err(_) => {}
        }
        let listener = UnixListener::bind(path).map_err(|e| {
            anyhow::anyhow!("{}: cannot bind the control socket: {e}", path.display())
        })?;
        listener.set_nonblocking(true)?;
        Ok(ControlSocket {
            listener,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answer one pending connection, if any: `handle` gets the trimmed command line and
    /// returns the answer line and an action for the caller.
    pub fn poll<T>(&self, handle: impl FnOnce(&str) -> (String, Option<T>)) -> Option<T> {
        let Ok((stream, _)) = self.listener.accept() else {
            return None;
        };
        let _ = stream.set_nonblocking(false);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut line = String::new();
        if BufReader::new(&stream).read_line(&mut line).is_err() {
            return None;
        }
        let (answer, action) = handle(line.trim());
        let mut w = &stream;
        let _ = writeln!(w, "{answer}");
        action
    }
}

impl Drop for ControlSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Send one control command to a running emulator and return its answer line.
pub fn send_control(path: &Path, command: &str) -> std::io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    writeln!(s, "{command}")?;
    let mut answer = String::new();
    BufReader::new(&s).read_line(&mut answer)?;
    Ok(answer.trim().to_string())
}
