//! The byte transport to a ZVT terminal: a serial port driven through the sans-IO
//! [`zvt::link::SerialLink`] (DLE framing, CRC, ACK/NAK, T1/T2), or a TCP connection
//! carrying bare APDUs.

use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
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

enum Kind {
    Serial {
        port: tokio_serial::SerialStream,
        link: Box<SerialLink>,
    },
    Tcp {
        stream: tokio::net::TcpStream,
        decoder: ApduDecoder,
    },
}

/// An open connection to a terminal.
pub struct Transport {
    kind: Kind,
    received: VecDeque<Apdu>,
    buf: Vec<u8>,
    /// Bytes written and read, for the API's device statistics.
    pub bytes_out: u64,
    pub bytes_in: u64,
    /// The wire trace, when this terminal is recorded (`crate::trace`; APDUs, masked).
    trace: Option<crate::trace::Recorder>,
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
        let kind = if let Some(addr) = target.strip_prefix("tcp://") {
            let stream =
                tokio::time::timeout(connect_timeout, tokio::net::TcpStream::connect(addr))
                    .await
                    .map_err(|_| err(format!("no answer within {connect_timeout:?}")))?
                    .map_err(|e| err(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            Kind::Tcp {
                stream,
                decoder: ApduDecoder::new(),
            }
        } else {
            let port = crate::port::open_exclusive(target, baud, crate::port::StopBits::Two)
                .map_err(err)?;
            Kind::Serial {
                port,
                link: Box::new(SerialLink::new(LinkConfig::default())),
            }
        };
        Ok(Transport {
            kind,
            received: VecDeque::new(),
            buf: vec![0; 2048],
            bytes_out: 0,
            bytes_in: 0,
            trace: crate::trace::for_port(target),
        })
    }

    /// Send one APDU; on serial, returns once the terminal ACKed the frame.
    pub async fn send(&mut self, apdu: &Apdu) -> Result<(), TransportError> {
        tracing::debug!(target: "fiscald::wire", dir = "out", apdu = %crate::trace::masked_apdu_hex(apdu), "zvt");
        if let Some(t) = &self.trace {
            t.apdu(crate::trace::Dir::Out, apdu);
        }
        let bytes = apdu.encode();
        match &mut self.kind {
            Kind::Tcp { stream, .. } => {
                stream
                    .write_all(&bytes)
                    .await
                    .map_err(|e| TransportError::Closed(e.to_string()))?;
                self.bytes_out += bytes.len() as u64;
                Ok(())
            }
            Kind::Serial { link, .. } => {
                link.send(&bytes, std::time::Instant::now()).map_err(|_| {
                    TransportError::Garbled("a frame is still unacknowledged".into())
                })?;
                loop {
                    match self.drive(None).await? {
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
                if let Some(t) = &self.trace {
                    t.apdu(crate::trace::Dir::In, &apdu);
                }
                return Ok(apdu);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(TransportError::Timeout(timeout));
            }
            self.drive(Some(deadline)).await?;
        }
    }

    /// One round of I/O: flush what the link wants to send, then wait for input, a link
    /// timer or `deadline`. Returns a send-side link event if one happened.
    async fn drive(
        &mut self,
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Option<LinkEvent>, TransportError> {
        match &mut self.kind {
            Kind::Tcp { stream, decoder } => {
                let deadline = deadline
                    .unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
                let n = tokio::select! {
                    r = stream.read(&mut self.buf) => r.map_err(|e| TransportError::Closed(e.to_string()))?,
                    _ = tokio::time::sleep_until(deadline) => return Ok(None),
                };
                if n == 0 {
                    return Err(TransportError::Closed(
                        "the terminal closed the connection".into(),
                    ));
                }
                self.bytes_in += n as u64;
                decoder.push(&self.buf[..n]);
                while let Some(apdu) = decoder.next_apdu() {
                    self.received.push_back(apdu);
                }
                Ok(None)
            }
            Kind::Serial { port, link } => {
                while let Some(out) = link.poll_transmit() {
                    port.write_all(&out)
                        .await
                        .map_err(|e| TransportError::Closed(e.to_string()))?;
                    self.bytes_out += out.len() as u64;
                }
                let link_timer = link.poll_timeout().map(tokio::time::Instant::from_std);
                let wake = match (link_timer, deadline) {
                    (Some(a), Some(b)) => a.min(b),
                    (Some(a), None) => a,
                    (None, Some(b)) => b,
                    (None, None) => tokio::time::Instant::now() + Duration::from_secs(3600),
                };
                tokio::select! {
                    r = port.read(&mut self.buf) => {
                        let n = r.map_err(|e| TransportError::Closed(e.to_string()))?;
                        if n == 0 {
                            return Err(TransportError::Closed("end of file".into()));
                        }
                        self.bytes_in += n as u64;
                        link.handle_input(&self.buf[..n], std::time::Instant::now());
                    }
                    _ = tokio::time::sleep_until(wake) => link.handle_timeout(std::time::Instant::now()),
                }
                while let Some(out) = link.poll_transmit() {
                    port.write_all(&out)
                        .await
                        .map_err(|e| TransportError::Closed(e.to_string()))?;
                    self.bytes_out += out.len() as u64;
                }
                let mut send_event = None;
                while let Some(ev) = link.poll_event() {
                    match ev {
                        LinkEvent::Received(bytes) => match Apdu::decode(&bytes) {
                            Ok(apdu) => self.received.push_back(apdu),
                            Err(e) => tracing::warn!(error = %e, "terminal frame is not an APDU"),
                        },
                        other => send_event = Some(other),
                    }
                }
                Ok(send_event)
            }
        }
    }
}
