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

/// A sans-IO protocol state machine the [`Pump`] can drive: the shape of `zvt::link` and
/// `posnet::session` (quinn-proto's connection is the model). Time is passed in.
pub trait SansIo {
    /// Bytes arrived from the device at `now`.
    fn handle_input(&mut self, bytes: &[u8], now: std::time::Instant);
    /// The machine's timer (from [`SansIo::poll_timeout`]) expired at `now`.
    fn handle_timeout(&mut self, now: std::time::Instant);
    /// The next bytes to write to the device, if any.
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    /// When the machine wants [`SansIo::handle_timeout`] called, if at all.
    fn poll_timeout(&self) -> Option<std::time::Instant>;
}

/// Why the pump stopped: the device's line or connection failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PumpError {
    #[error("the device went away ({0})")]
    Closed(String),
}

/// Which way bytes went, for taps (wire traces, debug logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the daemon to the device.
    Out,
    /// From the device to the daemon.
    In,
}

/// Something that sees every byte the pump moves (a wire trace).
pub type Tap = Box<dyn Fn(Direction, &[u8]) + Send + Sync>;

/// The daemon's one piece of port code: it moves bytes between an async byte stream (a
/// serial port, a TCP connection) and a sans-IO state machine, and tells the machine about
/// time. Everything a protocol decides happens in the machine.
pub struct Pump<Io> {
    io: Io,
    buf: Vec<u8>,
    /// Bytes written to the device.
    pub bytes_out: u64,
    /// Bytes read from the device.
    pub bytes_in: u64,
    tap: Option<Tap>,
}

impl<Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> Pump<Io> {
    /// A pump over `io`.
    pub fn new(io: Io) -> Self {
        Pump {
            io,
            buf: vec![0; 2048],
            bytes_out: 0,
            bytes_in: 0,
            tap: None,
        }
    }

    /// Show every byte to `tap` (e.g. a wire trace recorder).
    pub fn with_tap(mut self, tap: Option<Tap>) -> Self {
        self.tap = tap;
        self
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &Io {
        &self.io
    }

    /// Write everything the machine wants to send.
    pub async fn flush<M: SansIo>(&mut self, machine: &mut M) -> Result<(), PumpError> {
        use tokio::io::AsyncWriteExt;
        while let Some(out) = machine.poll_transmit() {
            self.io
                .write_all(&out)
                .await
                .map_err(|e| PumpError::Closed(e.to_string()))?;
            self.bytes_out += out.len() as u64;
            if let Some(tap) = &self.tap {
                tap(Direction::Out, &out);
            }
        }
        Ok(())
    }

    /// One turn: flush, then wait for input, the machine's timer or `deadline`, whichever
    /// comes first, feed it to the machine, and flush again. Returns `false` when `deadline`
    /// passed with nothing else happening.
    pub async fn turn<M: SansIo>(
        &mut self,
        machine: &mut M,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<bool, PumpError> {
        use tokio::io::AsyncReadExt;
        self.flush(machine).await?;
        let timer = machine.poll_timeout().map(tokio::time::Instant::from_std);
        let far = || tokio::time::Instant::now() + std::time::Duration::from_secs(3600);
        let (wake, is_deadline) = match (timer, deadline) {
            (Some(t), Some(d)) if d < t => (d, true),
            (Some(t), _) => (t, false),
            (None, Some(d)) => (d, true),
            (None, None) => (far(), false),
        };
        let progressed = tokio::select! {
            r = self.io.read(&mut self.buf) => {
                let n = r.map_err(|e| PumpError::Closed(e.to_string()))?;
                if n == 0 {
                    return Err(PumpError::Closed("end of file".into()));
                }
                self.bytes_in += n as u64;
                if let Some(tap) = &self.tap {
                    tap(Direction::In, &self.buf[..n]);
                }
                machine.handle_input(&self.buf[..n], std::time::Instant::now());
                true
            }
            _ = tokio::time::sleep_until(wake) => {
                if is_deadline {
                    false
                } else {
                    machine.handle_timeout(std::time::Instant::now());
                    true
                }
            }
        };
        self.flush(machine).await?;
        Ok(progressed)
    }
}

impl SansIo for zvt::link::SerialLink {
    fn handle_input(&mut self, bytes: &[u8], now: std::time::Instant) {
        zvt::link::SerialLink::handle_input(self, bytes, now);
    }
    fn handle_timeout(&mut self, now: std::time::Instant) {
        zvt::link::SerialLink::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        zvt::link::SerialLink::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<std::time::Instant> {
        zvt::link::SerialLink::poll_timeout(self)
    }
}
