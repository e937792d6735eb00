//! Picking up a terminal that is still busy with a flow the driver abandoned (a daemon
//! restart, a lost link): a ZVT terminal on RS-232 cannot see the register go away, so it
//! keeps repeating its unacknowledged message (a slip line, a Status-Information, a
//! completion) and refuses commands with `84 83` until that flow has ended.
//!
//! Before it registers, the driver therefore **drains** the line: it reads and answers
//! whatever the terminal still sends, until the line has been quiet for longer than the
//! terminal's repeat timer ([`Transport::drain_quiet`]). A Status-Information caught by the
//! drain is the commit point of the interrupted payment: it goes to the task's
//! `interrupted` observer, and is acknowledged only once that journaled it. A busy answer
//! (`84 83`) to the registration keeps the connection: drain again, then retry.

use super::transport::{Transport, TransportError};
use super::{Exchange, Zvt, link, outcome};
use crate::device::terminal::{FlowError, FlowObserver};
use crate::device::{DeviceError, ErrorCategory};
use std::time::Duration;
use zvt::{EcrCommand, PtMessage};

/// How many messages of another flow may come before a command's answer.
pub(super) const MAX_FOREIGN: usize = 64;
/// The longest drain: a terminal still sending after this is reported busy.
const DRAIN_LIMIT: Duration = Duration::from_secs(90);
/// How many times a registration answered with `84 83` is drained and sent again.
const REGISTER_TRIES: usize = 4;
/// The ZVT result code of a busy terminal.
const BUSY: u8 = 0x83;

/// A short name of a terminal message for the log (no card data).
pub(super) fn kind_of(m: &PtMessage) -> &'static str {
    match m {
        PtMessage::Ack => "80 00 00",
        PtMessage::Nack(_) => "84 xx",
        PtMessage::IntermediateStatus { .. } => "intermediate status",
        PtMessage::StatusInformation(_) => "status information",
        PtMessage::PrintLine { .. } => "print line",
        PtMessage::PrintTextBlock { .. } => "print text block",
        PtMessage::Completion { .. } => "completion",
        PtMessage::Abort { .. } => "abort",
    }
}

/// Answer one message of a flow that is not the current exchange's. Slip lines, display
/// texts, completions and aborts are acknowledged (the slip lines and texts go to
/// `observer`, if any). A Status-Information is acknowledged only after `observer`
/// committed it; without an observer it is left unacknowledged, so that the terminal
/// repeats it to a drain that has one (or recovery asks for it).
pub(super) async fn answer_foreign<O: FlowObserver>(
    t: &mut Transport,
    msg: PtMessage,
    mut observer: Option<&mut O>,
) -> Result<(), FlowError<O::Error>> {
    match msg {
        PtMessage::Ack | PtMessage::Nack(_) => return Ok(()),
        PtMessage::StatusInformation(r) => {
            let Some(o) = observer.as_deref_mut() else {
                tracing::warn!(
                    "the outcome of an earlier flow, with nobody to journal it: not acknowledged"
                );
                return Ok(());
            };
            let outcome = outcome(&r);
            tracing::info!(trace = ?outcome.trace_number, approved = outcome.approved, "the outcome of an interrupted flow");
            let committed = o.outcome(&outcome).await.map_err(FlowError::Observer)?;
            return super::ack(t, committed).await.map_err(FlowError::Device);
        }
        PtMessage::PrintLine { text, .. } => {
            if let Some(o) = observer.as_deref_mut() {
                o.slip_line(&zvt::pan::mask_in_text(&text));
            }
        }
        PtMessage::PrintTextBlock { lines, .. } => {
            if let Some(o) = observer.as_deref_mut() {
                for l in &lines {
                    o.slip_line(&zvt::pan::mask_in_text(l));
                }
            }
        }
        PtMessage::IntermediateStatus { text, .. } => {
            if let (Some(o), Some(text)) = (observer, text) {
                o.display(&zvt::pan::mask_in_text(&text));
            }
        }
        PtMessage::Completion { .. } | PtMessage::Abort { .. } => {}
    }
    t.send(&EcrCommand::Ack.to_apdu()).await.map_err(link)?;
    Ok(())
}

/// Read and answer what the terminal still sends until the line has been quiet for
/// [`Transport::drain_quiet`]; returns how many messages were drained.
pub(super) async fn drain<O: FlowObserver>(
    t: &mut Transport,
    mut observer: Option<&mut O>,
) -> Result<usize, FlowError<O::Error>> {
    let quiet = t.drain_quiet();
    let limit = tokio::time::Instant::now() + DRAIN_LIMIT;
    let mut drained = 0;
    loop {
        let apdu = match t.recv(quiet).await {
            Ok(apdu) => apdu,
            Err(TransportError::Timeout(_)) => return Ok(drained),
            Err(e) => return Err(link(e).into()),
        };
        drained += 1;
        match PtMessage::from_apdu(&apdu) {
            Ok(msg) => {
                tracing::info!(
                    message = kind_of(&msg),
                    "drained a message of an abandoned flow"
                );
                answer_foreign(t, msg, observer.as_deref_mut()).await?;
            }
            Err(e) => tracing::warn!(error = %e, "drained an unreadable message"),
        }
        if tokio::time::Instant::now() >= limit {
            return Err(DeviceError::new(
                ErrorCategory::TerminalBusy,
                format!(
                    "the terminal kept sending messages of an earlier flow for {}s",
                    DRAIN_LIMIT.as_secs()
                ),
                Some(u32::from(BUSY)),
            )
            .into());
        }
    }
}

impl Zvt {
    /// Drain the line if the terminal may be unsettled, then register; a busy answer
    /// (`84 83`) is drained and the registration sent again, on the same connection.
    pub(super) async fn register_after_drain<O: FlowObserver>(
        &mut self,
        registration: &EcrCommand,
        interrupted: &mut O,
    ) -> Result<Exchange, FlowError<O::Error>> {
        let mut tries = 0;
        loop {
            tries += 1;
            if !self.settled {
                let t = self.conn()?;
                let n = drain(t, Some(&mut *interrupted)).await?;
                tracing::info!(drained = n, "the line is quiet; registering");
            }
            match self
                .exchange(registration, Some(&mut *interrupted), true)
                .await
            {
                Err(FlowError::Device(e))
                    if e.is_refusal()
                        && e.device_code == Some(u32::from(BUSY))
                        && tries < REGISTER_TRIES =>
                {
                    tracing::info!(
                        tries,
                        "the terminal is busy with an earlier flow; draining before registering again"
                    );
                    self.settled = false;
                }
                other => return other,
            }
        }
    }
}
