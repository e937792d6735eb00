//! The serial link to one POSNET printer: opens the port (with an exclusive lock),
//! sends command frames and reads the matching reply through the sans-IO decoder.

use crate::device::LinkStats;
use posnet::{Command, Decoded, Frame, FrameDecoder};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// Why an exchange with the printer did not produce a reply.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    #[error("the device went away ({0})")]
    Closed(String),
    #[error("cannot open {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("text cannot be sent to the printer: {0}")]
    Text(#[from] posnet::TextError),
}

/// An open serial connection to a printer.
pub struct Link {
    port: tokio_serial::SerialStream,
    decoder: FrameDecoder,
    buf: Vec<u8>,
    /// The token the next command carries (`@NNNN`, 0..=9999).
    next_token: u16,
    /// Shared counters, readable by the API.
    pub stats: std::sync::Arc<std::sync::Mutex<LinkStats>>,
    /// The wire trace, when this port is recorded (`crate::trace`).
    trace: Option<crate::trace::Recorder>,
}

impl Link {
    /// Open `path` at `baud`, 8N1, and take an exclusive advisory lock on it so that a
    /// second daemon cannot drive the same printer.
    pub fn open(
        path: &str,
        baud: u32,
        stats: std::sync::Arc<std::sync::Mutex<LinkStats>>,
    ) -> Result<Link, LinkError> {
        let err = |reason: String| LinkError::Open {
            path: path.to_string(),
            reason,
        };
        let port =
            crate::port::open_exclusive(path, baud, crate::port::StopBits::One).map_err(err)?;
        // Start tokens somewhere new on every connection, so that a late reply to a command
        // sent on an earlier connection (or by an earlier daemon) never matches.
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_micros());
        Ok(Link {
            port,
            decoder: FrameDecoder::new(),
            buf: vec![0; 1024],
            next_token: (seed % 10_000) as u16,
            stats,
            trace: crate::trace::for_port(path),
        })
    }

    fn stat(&self, f: impl FnOnce(&mut LinkStats)) {
        let mut s = self.stats.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut s);
    }

    /// Write a frame's bytes.
    pub async fn send(&mut self, frame: &Frame) -> Result<(), LinkError> {
        let bytes = frame.encode()?;
        tracing::debug!(target: "fiscald::wire", dir = "out", hex = %hex::encode(&bytes), "frame");
        self.port
            .write_all(&bytes)
            .await
            .map_err(|e| LinkError::Closed(e.to_string()))?;
        if let Some(t) = &self.trace {
            t.bytes(crate::trace::Dir::Out, &bytes);
        }
        self.stat(|s| {
            s.bytes_out += bytes.len() as u64;
            s.frames_out += 1;
        });
        Ok(())
    }

    /// Read until the reply to `mnemonic` carrying `token` arrives or `deadline` passes.
    /// Other replies (late answers to an earlier, timed-out command) are discarded. A reply
    /// without a token is accepted by mnemonic, for printers that do not echo tokens.
    pub async fn receive(
        &mut self,
        mnemonic: &str,
        token: Option<u16>,
        deadline: Instant,
    ) -> Result<Frame, LinkError> {
        let want = mnemonic.trim_start_matches('!');
        loop {
            while let Some(item) = self.decoder.next_item() {
                match item {
                    Decoded::Frame(f) => {
                        self.stat(|s| s.frames_in += 1);
                        tracing::debug!(target: "fiscald::wire", dir = "in", frame = %crate::trace::describe_frame(&f), "frame");
                        let got = f.mnemonic.trim_start_matches('!');
                        let token_ok = f.token.is_none() || f.token == token;
                        if token_ok && (got == want || f.is_frame_error()) {
                            return Ok(f);
                        }
                        tracing::warn!(expected = want, got, ?token, reply_token = ?f.token, "discarding a reply to another command");
                    }
                    Decoded::Invalid { error, raw } => {
                        self.stat(|s| s.frame_errors += 1);
                        tracing::warn!(%error, hex = %hex::encode(&raw), "invalid frame from printer");
                    }
                    Decoded::Garbage(g) => {
                        self.stat(|s| s.garbage_bytes += g.len() as u64);
                        tracing::debug!(hex = %hex::encode(&g), "garbage on the line");
                    }
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(LinkError::Timeout(Duration::ZERO));
            }
            let read = tokio::time::timeout(deadline - now, self.port.read(&mut self.buf)).await;
            match read {
                Err(_) => return Err(LinkError::Timeout(Duration::ZERO)),
                Ok(Ok(0)) => return Err(LinkError::Closed("end of file".into())),
                Ok(Ok(n)) => {
                    tracing::trace!(target: "fiscald::wire", dir = "in", hex = %hex::encode(&self.buf[..n]), "bytes");
                    let chunk = self.buf[..n].to_vec();
                    if let Some(t) = &self.trace {
                        t.bytes(crate::trace::Dir::In, &chunk);
                    }
                    self.stat(|s| s.bytes_in += n as u64);
                    self.decoder.push(&chunk);
                }
                Ok(Err(e)) => return Err(LinkError::Closed(e.to_string())),
            }
        }
    }

    /// Send `command` with a fresh token and wait up to `timeout` for its reply.
    /// Returns the reply, or the error with the token the command carried.
    pub async fn exchange(
        &mut self,
        command: &Command,
        timeout: Duration,
    ) -> Result<Frame, (LinkError, u16)> {
        let token = self.next_token;
        self.next_token = (self.next_token + 1) % 10_000;
        let frame = command.to_frame().with_token(token);
        self.send(&frame).await.map_err(|e| (e, token))?;
        self.receive(&frame.mnemonic, Some(token), Instant::now() + timeout)
            .await
            .map_err(|e| match e {
                LinkError::Timeout(_) => (LinkError::Timeout(timeout), token),
                e => (e, token),
            })
    }

    /// Ask the printer to repeat its answer to the command that carried `token` (`rpt`).
    /// `Ok(None)` means the printer does not know the token: it never ran that command.
    pub async fn repeat(
        &mut self,
        mnemonic: &str,
        token: u16,
        timeout: Duration,
    ) -> Result<Option<Frame>, LinkError> {
        self.send(&Command::rpt_frame(token)).await?;
        let reply = self
            .receive(mnemonic, Some(token), Instant::now() + timeout)
            .await?;
        if reply.is_frame_error() && reply.error_code == Some(13) {
            return Ok(None);
        }
        Ok(Some(reply))
    }

    /// Forget any partial input (after a timeout the line may hold half a frame).
    pub fn reset_input(&mut self) {
        self.decoder.clear();
    }
}
