//! The ECR-EFT link on a serial port or a TCP connection: the sans-IO [`ecr_eft::Link`]
//! driven through the one [`crate::port::Pump`]. Both transports carry the same frames with
//! ACK/NAK (that TCP does is an assumption, as in the emulator: the specification was not
//! available).

use crate::port::{Pump, PumpError, SansIo};
use ecr_eft::frame::Token;
use ecr_eft::link::{Link, LinkConfig, LinkEvent};
use ecr_eft::message::Message;
use std::time::{Duration, Instant};

/// Stop bits on a serial line (ours: the sources do not say; 8N1 is the common setting).
pub const SERIAL_STOP_BITS: crate::port::StopBits = crate::port::StopBits::One;

/// Why the transport failed. Any of these leaves what was in flight unknown.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("cannot connect to {target}: {reason}")]
    Connect { target: String, reason: String },
    #[error("no message from the terminal within {0:?}")]
    Timeout(Duration),
    #[error("the connection to the terminal was lost ({0})")]
    Closed(String),
    #[error("the terminal did not answer the link's keep-alive pings")]
    PeerLost,
    #[error("a message could not be encoded: {0}")]
    Encode(String),
}

impl SansIo for Link {
    fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        Link::handle_input(self, bytes, now);
    }
    fn handle_timeout(&mut self, now: Instant) {
        Link::handle_timeout(self, now);
    }
    fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        Link::poll_transmit(self)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        Link::poll_timeout(self)
    }
}

/// A byte stream to a terminal (a serial port or a TCP connection).
pub trait ByteStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + Sync> ByteStream for T {}

/// An open connection to a terminal.
pub struct Transport {
    pump: Pump<Box<dyn ByteStream>>,
    link: Link,
}

fn closed(e: PumpError) -> TransportError {
    let PumpError::Closed(why) = e;
    if why == "end of file" {
        TransportError::Closed("the terminal closed the connection".into())
    } else {
        TransportError::Closed(why)
    }
}

impl Transport {
    /// Open `target`: `tcp://IP:PORT` or a serial device path (exclusive).
    pub async fn open(
        target: &str,
        baud: u32,
        connect_timeout: Duration,
        config: LinkConfig,
    ) -> Result<Transport, TransportError> {
        let err = |reason: String| TransportError::Connect {
            target: target.to_string(),
            reason,
        };
        let stream: Box<dyn ByteStream> = if let Some(addr) = target.strip_prefix("tcp://") {
            let s = tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr))
                .await
                .map_err(|_| err(format!("no answer within {connect_timeout:?}")))?
                .map_err(|e| err(e.to_string()))?;
            let _ = s.set_nodelay(true);
            Box::new(s)
        } else {
            let port = crate::port::open_exclusive(target, baud, SERIAL_STOP_BITS).map_err(err)?;
            // Half a frame of an abandoned flow is thrown away.
            if let Err(e) = tokio_serial::SerialPort::clear(&port, tokio_serial::ClearBuffer::Input)
            {
                tracing::debug!(error = %e, "cannot flush the terminal's input");
            }
            Box::new(port)
        };
        Ok(Transport::over_stream(stream, config))
    }

    /// The link over `stream` (tests use an in-memory pipe).
    pub fn over_stream(stream: Box<dyn ByteStream>, config: LinkConfig) -> Transport {
        let mut link = Link::new(config);
        // Commit before acknowledge: S2's ACK waits for the journal (see the driver).
        link.hold_acks(&[*b"S2"]);
        Transport {
            pump: Pump::new(stream),
            link,
        }
    }

    /// Bytes written to the terminal on this connection.
    pub fn bytes_out(&self) -> u64 {
        self.pump.bytes_out
    }

    /// Bytes read from the terminal on this connection.
    pub fn bytes_in(&self) -> u64 {
        self.pump.bytes_in
    }

    /// Queue a request with a fresh token (returned).
    pub fn request(&mut self, m: &Message) -> Result<Token, TransportError> {
        let fields = m
            .to_fields()
            .map_err(|e| TransportError::Encode(e.to_string()))?;
        let token = self
            .link
            .request(m.kind(), fields, Instant::now())
            .map_err(|e| TransportError::Encode(e.to_string()))?;
        tracing::debug!(target: "fiscald::wire", dir = "out", kind = %ecr_eft::frame::kind_str(&m.kind()), %token, "ecr-eft");
        Ok(token)
    }

    /// Queue a reply echoing `token`.
    pub fn reply(&mut self, token: Token, m: &Message) -> Result<(), TransportError> {
        let fields = m
            .to_fields()
            .map_err(|e| TransportError::Encode(e.to_string()))?;
        tracing::debug!(target: "fiscald::wire", dir = "out", kind = %ecr_eft::frame::kind_str(&m.kind()), %token, "ecr-eft");
        self.link
            .reply(token, m.kind(), fields, Instant::now())
            .map_err(|e| TransportError::Encode(e.to_string()))
    }

    /// ACK the held S2 and write it out.
    pub async fn acknowledge(&mut self) -> Result<(), TransportError> {
        self.link.acknowledge();
        self.pump.flush(&mut self.link).await.map_err(closed)
    }

    /// Read whatever already waits on the line, for at most `within`, without waiting for
    /// anything: `Err` when the terminal closed the connection while we were idle (e.g.
    /// right after its last result). What was read stays queued for [`Self::next`].
    pub async fn check_open(&mut self, within: Duration) -> Result<(), TransportError> {
        let until = tokio::time::Instant::now() + within;
        while self
            .pump
            .turn(&mut self.link, Some(until))
            .await
            .map_err(closed)?
        {
            if tokio::time::Instant::now() >= until {
                break;
            }
        }
        Ok(())
    }

    /// Stop waiting for the reply to `token`.
    pub fn close(&mut self, token: Token) {
        self.link.close(token);
    }

    /// The next link event, by `deadline`.
    pub async fn next(
        &mut self,
        deadline: tokio::time::Instant,
        waited: Duration,
    ) -> Result<LinkEvent, TransportError> {
        loop {
            if let Some(ev) = self.link.poll_event() {
                if ev == LinkEvent::PeerLost {
                    return Err(TransportError::PeerLost);
                }
                if let LinkEvent::Received { frame, repeat, .. } = &ev {
                    tracing::debug!(target: "fiscald::wire", dir = "in", kind = %ecr_eft::frame::kind_str(&frame.kind), token = %frame.token, repeat, "ecr-eft");
                }
                return Ok(ev);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TransportError::Timeout(waited));
            }
            self.pump
                .turn(&mut self.link, Some(deadline))
                .await
                .map_err(closed)?;
        }
    }
}
