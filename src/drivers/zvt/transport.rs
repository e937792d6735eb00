//! The APDU transport to a ZVT terminal: a serial port driven through the sans-IO
//! [`zvt::link::SerialLink`] (DLE framing, CRC, ACK/NAK, T1/T2), or a TCP connection
//! carrying bare APDUs through [`TcpApdus`]. Both go through the one [`crate::port::Pump`].

use crate::port::{Pump, PumpError, SansIo};
use std::collections::VecDeque;
use std::time::Duration;
use zvt::link::{LinkConfig, LinkEvent, SerialLink};
use zvt::{Apdu, ApduDecoder};

/// Why the transport failed. Any of these leaves the transaction's outcome unknown.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("no message from the terminal within {0:?}")]
    Timeout(Duration),
    #[error("the terminal did not acknowledge a frame after all repetitions")]
    NotAcknowledged,
    #[error("the connection to the terminal was lost ({0})")]
    Closed(String),
    #[error("the terminal sent an unreadable message: {0}")]
    Garbled(String),
}

/// Bare APDUs on a TCP stream as a sans-IO machine: input is framed by [`ApduDecoder`],
/// output is queued until the pump writes it. There are no timers.
#[derive(Default)]
pub struct TcpApdus {
    decoder: ApduDecoder,
    outgoing: VecDeque<Vec<u8>>,
}

impl TcpApdus {
    /// Queue one APDU's bytes for sending.
    pub fn send(&mut self, bytes: Vec<u8>) {
        self.outgoing.push_back(bytes);
    }

    /// The next complete APDU received, if any.
    pub fn next_apdu(&mut self) -> Option<Apdu> {
        self.decoder.next_apdu()
    }
}

impl SansIo for TcpApdus {
    fn handle_input(&mut self, bytes: &[u8], _now: std::time::Instant) {
        self.decoder.push(bytes);
    }
    fn handle_timeout(&mut self, _now: std::time::Instant) {}
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.outgoing.pop_front()
    }
    fn poll_timeout(&self) -> Option<std::time::Instant> {
        None
    }
}

/// A byte stream that carries bare APDUs (a TCP connection, or an in-memory pipe in tests).
pub trait ApduStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync> ApduStream for T {}

enum Kind {
    Serial {
        pump: Pump<tokio_serial::SerialStream>,
        link: Box<SerialLink>,
    },
    Tcp {
        pump: Pump<Box<dyn ApduStream>>,
        machine: TcpApdus,
    },
}

/// How long the line must stay quiet before a drain ends on a serial line: longer than the
/// terminal's repeat timer (T2 and its message repetition, 5 s), so a terminal still
/// repeating a message of an abandoned flow is heard before the register sends anything.
pub const SERIAL_DRAIN_QUIET: Duration = Duration::from_millis(6500);
/// The same on TCP: a new connection carries nothing of an abandoned one (the terminal
/// drops a flow with its connection), so only messages already in flight are waited for.
pub const TCP_DRAIN_QUIET: Duration = Duration::from_millis(300);

/// An open connection to a terminal.
pub struct Transport {
    kind: Kind,
    /// How long a drain waits for the line to be quiet ([`SERIAL_DRAIN_QUIET`]).
    drain_quiet: Duration,
    received: VecDeque<Apdu>,
    /// The wire trace, when this terminal is recorded (`crate::trace`). On TCP the
    /// transport records each APDU; on a serial line the pump's tap records the link layer.
    trace: Option<crate::trace::Recorder>,
}

fn closed(e: PumpError) -> TransportError {
    let PumpError::Closed(why) = e;
    TransportError::Closed(why)
}

fn tcp_closed(e: PumpError) -> TransportError {
    match e {
        PumpError::Closed(why) if why == "end of file" => {
            TransportError::Closed("the terminal closed the connection".into())
        }
        other => closed(other),
    }
}

impl Transport {
    /// Open `target`: `tcp://IP:PORT` or a serial device path (8N2, exclusive).
    pub async fn open(
        target: &str,
        baud: u32,
        connect_timeout: Duration,
    ) -> Result<Transport, TransportError> {
        let err = |reason: String| TransportError::Connect {
            target: target.to_string(),
            reason,
        };
        let trace = crate::trace::for_port(target);
        let kind = if let Some(addr) = target.strip_prefix("tcp://") {
            let stream =
                tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| err(format!("no answer within {connect_timeout:?}")))?
                    .map_err(|e| err(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            let stream: Box<dyn ApduStream> = Box::new(stream);
            (
                Kind::Tcp {
                    pump: Pump::new(stream),
                    machine: TcpApdus::default(),
                },
                TCP_DRAIN_QUIET,
            )
        } else {
            let port = crate::port::open_exclusive(target, baud, crate::port::StopBits::Two)
                .map_err(err)?;
            // Stale input (half a frame of an abandoned flow) is thrown away; what the
            // terminal still sends after this is drained by the driver.
            if let Err(e) = tokio_serial::SerialPort::clear(&port, tokio_serial::ClearBuffer::Input)
            {
                tracing::debug!(error = %e, "cannot flush the terminal's input");
            }
            // The serial trace keeps the link layer: every byte, cut into frames, ACKs
            // and NAKs by the recorder (which masks them).
            let tap: Option<crate::port::Tap> = trace.clone().map(|t| {
                Box::new(move |d: crate::port::Direction, b: &[u8]| {
                    let dir = match d {
                        crate::port::Direction::Out => crate::trace::Dir::Out,
                        crate::port::Direction::In => crate::trace::Dir::In,
                    };
                    t.link_bytes(dir, b);
                }) as crate::port::Tap
            });
            (
                Kind::Serial {
                    pump: Pump::new(port).with_tap(tap),
                    link: Box::new(SerialLink::new(LinkConfig::default())),
                },
                SERIAL_DRAIN_QUIET,
            )
        };
        let (kind, drain_quiet) = kind;
        Ok(Transport {
            kind,
            drain_quiet,
            received: VecDeque::new(),
            trace,
        })
    }

    /// Bare APDUs over `stream` (tests use an in-memory pipe), draining for `drain_quiet`.
    pub fn over_stream(stream: Box<dyn ApduStream>, drain_quiet: Duration) -> Transport {
        Transport {
            kind: Kind::Tcp {
                pump: Pump::new(stream),
                machine: TcpApdus::default(),
            },
            drain_quiet,
            received: VecDeque::new(),
            trace: None,
        }
    }

    /// How long the line must be quiet before a drain ends.
    pub fn drain_quiet(&self) -> Duration {
        self.drain_quiet
    }

    /// Bytes written to the terminal on this connection.
    pub fn bytes_out(&self) -> u64 {
        match &self.kind {
            Kind::Serial { pump, .. } => pump.bytes_out,
            Kind::Tcp { pump, .. } => pump.bytes_out,
        }
    }

    /// Bytes read from the terminal on this connection.
    pub fn bytes_in(&self) -> u64 {
        match &self.kind {
            Kind::Serial { pump, .. } => pump.bytes_in,
            Kind::Tcp { pump, .. } => pump.bytes_in,
        }
    }

    /// Send one APDU; on serial, returns once the terminal ACKed the frame.
    pub async fn send(&mut self, apdu: &Apdu) -> Result<(), TransportError> {
        tracing::debug!(target: "fiscald::wire", dir = "out", apdu = %crate::trace::masked_apdu_hex(apdu), "zvt");
        if let (Some(t), Kind::Tcp { .. }) = (&self.trace, &self.kind) {
            t.apdu(crate::trace::Dir::Out, apdu);
        }
        let bytes = apdu.encode();
        match &mut self.kind {
            Kind::Tcp { pump, machine } => {
                machine.send(bytes);
                pump.flush(machine).await.map_err(tcp_closed)
            }
            Kind::Serial { pump, link } => {
                link.send(&bytes, std::time::Instant::now()).map_err(|_| {
                    TransportError::Garbled("a frame is still unacknowledged".into())
                })?;
                loop {
                    pump.turn(link.as_mut(), None).await.map_err(closed)?;
                    match Self::take_events(link, &mut self.received) {
                        Some(LinkEvent::Delivered) => return Ok(()),
                        Some(LinkEvent::Failed) => return Err(TransportError::NotAcknowledged),
                        _ => {}
                    }
                }
            }
        }
    }

    /// Receive the next APDU within `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Result<Apdu, TransportError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(apdu) = self.received.pop_front() {
                tracing::debug!(target: "fiscald::wire", dir = "in", apdu = %crate::trace::masked_apdu_hex(&apdu), "zvt");
                if let (Some(t), Kind::Tcp { .. }) = (&self.trace, &self.kind) {
                    t.apdu(crate::trace::Dir::In, &apdu);
                }
                return Ok(apdu);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TransportError::Timeout(timeout));
            }
            match &mut self.kind {
                Kind::Tcp { pump, machine } => {
                    pump.turn(machine, Some(deadline))
                        .await
                        .map_err(tcp_closed)?;
                    while let Some(apdu) = machine.next_apdu() {
                        self.received.push_back(apdu);
                    }
                }
                Kind::Serial { pump, link } => {
                    pump.turn(link.as_mut(), Some(deadline))
                        .await
                        .map_err(closed)?;
                    Self::take_events(link, &mut self.received);
                }
            }
        }
    }

    /// Move received frames to `received`; returns the last send-side event, if any.
    fn take_events(link: &mut SerialLink, received: &mut VecDeque<Apdu>) -> Option<LinkEvent> {
        let mut send_event = None;
        while let Some(ev) = link.poll_event() {
            match ev {
                LinkEvent::Received(bytes) => match Apdu::decode(&bytes) {
                    Ok(apdu) => received.push_back(apdu),
                    Err(e) => tracing::warn!(error = %e, "terminal frame is not an APDU"),
                },
                other => send_event = Some(other),
            }
        }
        send_event
    }
}
