//! A document's commands through the session's window: what the driver sends, and when it
//! reports to the task.
//!
//! A document is a plan: `scomm` and `scnt` (is a document open, the counters before it),
//! the body, the closing command, and `scnt` again behind it. The session keeps up to its
//! window in flight; the printer runs them in order. The rules that keep exactly-once:
//!
//! - `scnt`'s answer is handed to the task ([`DocumentSteps::printing`]) as soon as it
//!   comes, while the body is still going out: it was read before anything of the document
//!   ran, since the printer runs commands in order.
//! - **The closing command waits** until the counters are journaled, every command before it
//!   that it does not verify has been answered (`trinit`, `trnipset`, the codes, an
//!   invoice's buyer and free lines, form lines), and [`DocumentSteps::closing`] has
//!   returned. Lines, discounts, deposits and payments may still be in flight: `trend`
//!   carries the totals the printer checks (`to`, `op`, `om`, `fp`, `re`), so if any of
//!   them failed, `trend` is refused (2805–2809) and nothing becomes fiscal.
//! - **The first failure stops the stream:** nothing more is sent, what is in flight is
//!   still answered (or recovered by the session), and the first failure is returned; the
//!   task then cancels or reconciles the document as without pipelining.
//! - A document found open by `scomm` (an earlier connection's, another program's) stops
//!   the stream before the closing command; the caller cancels it and starts again.

use super::PosnetPrinter;
use super::link::{LinkError, Verdict};
use crate::device::DocumentCounters;
use crate::device::printer::{Abort, DocumentSteps, Hold, PrinterError};
use posnet::reply::{Scnt, Scomm};
use posnet::session::{CommandFailure, SessionEvent};
use posnet::{Command, Frame};
use std::time::Duration;
use tokio::time::Instant;

/// What a command of a plan is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Role {
    /// `scomm` before the document.
    Open,
    /// `scnt` before the document.
    Before,
    /// Part of the document; `verified`: the closing command checks what it did.
    Body { verified: bool },
    /// The command that makes the document fiscal.
    Closing,
    /// `scnt` behind the closing command.
    After,
}

/// One command of a plan.
pub(super) struct Planned {
    pub command: Command,
    pub timeout: Duration,
    pub role: Role,
}

/// How a plan ended.
pub(super) enum Ran {
    /// Every command was answered without an error; the counters after it, if asked for.
    Done(Option<DocumentCounters>),
    /// A document was open before this one: nothing of it was closed.
    FoundOpen,
}

/// Whether the closing command verifies what `command` did.
pub(super) fn verified_by_closing(command: &Command) -> bool {
    matches!(
        command,
        Command::TrLine(_)
            | Command::TrDiscntBill(_)
            | Command::TrPack(_)
            | Command::TrPayment { .. }
    )
}

/// Neutral counters from `scnt`.
pub(super) fn counters_of(f: &Frame) -> Result<DocumentCounters, PrinterError> {
    let c = Scnt::from_frame(f).map_err(super::bad_reply)?;
    Ok(DocumentCounters {
        last_receipt: c.last_receipt,
        daily_reports: c.daily_reports,
        next_printout: c.next_printout,
        invoices: c.invoices,
    })
}

/// What the driver's session events mean to the task: mechanism changes, the paper-wait
/// policy for held commands, and retries for metrics.
pub(super) struct Watch {
    id: String,
    observer: std::sync::Arc<dyn crate::device::printer::PrinterObserver>,
    held_since: Option<Instant>,
    /// The task said stop while a command was held.
    pub stopping: bool,
}

impl Watch {
    pub fn new(printer: &PosnetPrinter) -> Watch {
        Watch {
            id: printer.config.id.clone(),
            observer: printer.config.observer.clone(),
            held_since: None,
            stopping: false,
        }
    }

    pub fn on_event(&mut self, event: &SessionEvent) -> Verdict {
        match event {
            SessionEvent::Held(sprn) => {
                self.observer.mechanism(super::mechanism_of(*sprn));
                let since = *self.held_since.get_or_insert_with(Instant::now);
                match self.observer.hold(since) {
                    Hold::Wait => Verdict::Continue,
                    Hold::GiveUp => Verdict::Abandon,
                    Hold::Stop => {
                        self.stopping = true;
                        Verdict::Abandon
                    }
                }
            }
            SessionEvent::Status(sprn) => {
                self.observer.mechanism(super::mechanism_of(*sprn));
                Verdict::Continue
            }
            SessionEvent::Retried {
                mnemonic,
                token,
                retry,
            } => {
                crate::metrics::retry(&self.id, super::retry_metric(*retry));
                tracing::info!(printer = %self.id, mnemonic, token, retry = retry.as_str(), "recovered from a fault on the line");
                Verdict::Continue
            }
            _ => Verdict::Continue,
        }
    }

    /// The driver's error for a command that failed.
    pub fn failure(&self, failure: CommandFailure) -> PrinterError {
        let id = &self.id;
        match failure {
            CommandFailure::Refused { mnemonic, code } => {
                PrinterError::Refused(super::refusal(id, &mnemonic, code, false))
            }
            CommandFailure::FrameError { mnemonic, code } => {
                PrinterError::Refused(super::refusal(id, &mnemonic, code, true))
            }
            CommandFailure::Silent(d) => PrinterError::Link(format!(
                "the printer does not answer (no reply within {d:?})"
            )),
            CommandFailure::NoReply => PrinterError::NoReply,
            CommandFailure::NotTaken { mnemonic } => PrinterError::Link(format!(
                "the printer did not take `{mnemonic}` while later commands were in flight"
            )),
            CommandFailure::BadStatus(why) => {
                PrinterError::Protocol(format!("status query failed: {why}"))
            }
            CommandFailure::Abandoned if self.stopping => PrinterError::Aborted(Abort::Shutdown),
            CommandFailure::Abandoned => PrinterError::PaperTimeout,
        }
    }
}

/// The driver's error for a line that failed.
pub(super) fn link_failure(e: LinkError) -> PrinterError {
    match e {
        LinkError::Text(why) => PrinterError::Unsupported(why),
        LinkError::Failed(f) => PrinterError::Link(f.to_string()),
        e => PrinterError::Link(e.to_string()),
    }
}

impl PosnetPrinter {
    /// Run `plan` through the session's window (see the module docs).
    pub(super) async fn run_plan(
        &mut self,
        plan: &[Planned],
        steps: &mut impl DocumentSteps,
    ) -> Result<Ran, PrinterError> {
        let mut watch = Watch::new(self);
        // Index of the next command to send, and of the next to complete.
        let (mut next, mut done) = (0, 0);
        let mut first_error: Option<PrinterError> = None;
        let mut found_open = false;
        let mut printing = false;
        let mut unverified = 0usize;
        let mut after = None;
        loop {
            while first_error.is_none() && !found_open && next < plan.len() {
                let p = &plan[next];
                if p.role == Role::Closing {
                    // Journaled once, and only when the command can go out at once: the
                    // task reads `closing` as "the closing command may have been sent".
                    if !printing || unverified > 0 || !self.link.has_room(&p.command) {
                        break;
                    }
                    if let Err(a) = steps.closing().await {
                        first_error = Some(PrinterError::Aborted(a));
                        break;
                    }
                }
                match self.link.start(&p.command, p.timeout) {
                    Ok(true) => {}
                    Ok(false) => break,
                    Err(e) => {
                        first_error = Some(link_failure(e));
                        break;
                    }
                }
                if matches!(p.role, Role::Body { verified: false }) {
                    unverified += 1;
                }
                next += 1;
            }
            if done == next {
                break;
            }
            let completed = self
                .link
                .next_completion(|e| watch.on_event(e))
                .await
                .map_err(link_failure)?;
            let p = &plan[done];
            done += 1;
            if matches!(p.role, Role::Body { verified: false }) {
                unverified -= 1;
            }
            let frame = match completed {
                Ok(frame) => frame,
                Err(failure) => {
                    // Behind a document found open, failures (`trinit` refused, say) are
                    // its consequences: the caller cancels it and starts again.
                    if first_error.is_none() && !found_open {
                        first_error = Some(watch.failure(failure));
                    }
                    continue;
                }
            };
            match p.role {
                Role::Open => {
                    let scomm = Scomm::from_frame(&frame).map_err(super::bad_reply)?;
                    if scomm.transaction != 0 {
                        found_open = true;
                    }
                }
                Role::Before if !found_open && first_error.is_none() => {
                    let before = counters_of(&frame)?;
                    if let Err(a) = steps.printing(before).await {
                        first_error = Some(PrinterError::Aborted(a));
                    } else {
                        printing = true;
                    }
                }
                Role::After => after = Some(counters_of(&frame)?),
                _ => {}
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        if found_open {
            return Ok(Ran::FoundOpen);
        }
        Ok(Ran::Done(after))
    }
}
