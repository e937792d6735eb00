//! One printer job through its journal steps: start, record the counters, print through
//! the driver (journaling `closing` before the closing command), check the counters, and
//! reconcile a job that was interrupted. Protocol-neutral.

use super::PrinterTask;
use super::verdict::{Verdict, completion_checked, counter, tagged_verdict, verdict};
use crate::device::printer::{Abort, Document, DocumentSteps, FiscalPrinter, PrinterError};
use crate::device::{DeviceError, DocumentCounters, ErrorCategory};
use crate::journal::{
    CopyPrinted, DailyReportPrinted, InvoicePrinted, Job, JobId, JobRequest, JobResult, JobState,
    Journal, JournalError, PeriodicReportPrinted, PrintoutPrinted, ReceiptPrinted, Step,
};
use std::time::Duration;

/// Attempts before a job whose document was never printed is given up as failed.
const MAX_ATTEMPTS: i64 = 5;

/// The document of a printer job, or why it cannot be printed.
fn document_of(request: &JobRequest) -> Result<Document<'_>, String> {
    Ok(match request {
        JobRequest::Receipt(r) => Document::Receipt(r),
        JobRequest::DailyReport => Document::DailyReport,
        JobRequest::Cash(c) => Document::Cash(c),
        JobRequest::Printout(p) => Document::Printout(p),
        JobRequest::Invoice(i) => Document::Invoice(i),
        JobRequest::PeriodicReport(r) => Document::PeriodicReport(r),
        JobRequest::Copy(c) => Document::Copy(c),
        JobRequest::Payment(_) | JobRequest::EndOfDay | JobRequest::Sale(_) => {
            return Err(format!(
                "a {} job cannot run on a printer",
                request.kind().as_str()
            ));
        }
    })
}

/// The last step the journal recorded for `job` (`prepare` when none).
fn step_of(job: &Job) -> Step {
    job.step.unwrap_or(Step::Prepare)
}

/// What to do after an attempt.
enum Next {
    Finished,
    Retry(String),
}

/// The steps of one document: the counters before it are journaled with `printing`, and
/// `closing` before the closing command.
struct Steps<'a> {
    journal: &'a Journal,
    shutdown: &'a tokio_util::sync::CancellationToken,
    job: JobId,
    /// The counters before the document, once journaled.
    before: Option<DocumentCounters>,
    /// Set once `closing` is committed: the closing command may have been sent.
    closing: bool,
    /// The job's tag ([`job_tag`]).
    tag: String,
}

/// A tag unique to a job, for printers that store one on the receipt (`DocumentSteps::tag`):
/// its id and the digits of its creation time, so that a new journal's job 1 differs from an
/// old one's.
pub(super) fn job_tag(job: &Job) -> String {
    let created: String = job
        .created_at
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    format!("fd{}-{created}", job.id)
}

impl DocumentSteps for Steps<'_> {
    async fn printing(&mut self, before: DocumentCounters) -> Result<(), Abort> {
        set_step(
            self.journal,
            self.shutdown,
            self.job,
            Step::Printing,
            Some(before),
        )
        .await?;
        self.before = Some(before);
        Ok(())
    }

    async fn closing(&mut self) -> Result<(), Abort> {
        if self.before.is_none() {
            // A driver that breaks the contract must not make a document fiscal unjournaled.
            return Err(Abort::Journal(
                "the driver asked to close a document before reporting its counters".into(),
            ));
        }
        set_step(self.journal, self.shutdown, self.job, Step::Closing, None).await?;
        self.closing = true;
        Ok(())
    }

    fn tag(&self) -> String {
        self.tag.clone()
    }
}

/// Commit `f` to the journal, trying again while the journal fails: a journal failure
/// never becomes a device error, and the device is not touched until the step is recorded.
async fn commit<T: Send + 'static>(
    journal: &Journal,
    shutdown: &tokio_util::sync::CancellationToken,
    what: &'static str,
    f: impl Fn(&Journal) -> Result<T, JournalError> + Send + Sync + 'static,
) -> Result<T, Abort> {
    journal
        .run_until_committed(shutdown, what, f)
        .await
        .map_err(|e| {
            if shutdown.is_cancelled() {
                Abort::Shutdown
            } else {
                Abort::Journal(e.to_string())
            }
        })
}

/// Record a recovery step; `Cancelled` when the job is no longer running.
async fn set_step(
    journal: &Journal,
    shutdown: &tokio_util::sync::CancellationToken,
    id: JobId,
    step: Step,
    counters: Option<DocumentCounters>,
) -> Result<(), Abort> {
    let running = commit(journal, shutdown, step.as_str(), move |j| {
        j.set_step(id, step, counters.as_ref(), None)
    })
    .await?;
    if running {
        Ok(())
    } else {
        Err(Abort::Cancelled)
    }
}

impl<D: FiscalPrinter> PrinterTask<D> {
    async fn finish(
        &self,
        id: JobId,
        state: JobState,
        result: Option<JobResult>,
        error: Option<DeviceError>,
    ) -> Result<(), PrinterError> {
        let settled = commit(&self.journal, &self.shutdown, "finish", move |j| {
            j.finish(id, state, result.as_ref(), error.as_ref())
        })
        .await
        .map_err(PrinterError::Aborted)?;
        tracing::info!(
            printer = self.id(),
            job = id,
            state = state.as_str(),
            "job finished"
        );
        let _ = self.events.send(id);
        if let Some(sale) = settled {
            let _ = self.events.send(sale);
        }
        Ok(())
    }

    fn fail(&self, category: ErrorCategory, message: String) -> DeviceError {
        DeviceError::new(category, message, None)
    }

    /// Work on one job: start it, or reconcile it if it was interrupted.
    pub(super) async fn work(&self, printer: &mut D, job: Job) -> Result<(), PrinterError> {
        let id = job.id;
        let mut job = job;
        if job.state == JobState::Queued {
            let started = commit(&self.journal, &self.shutdown, "start", move |j| j.start(id))
                .await
                .map_err(PrinterError::Aborted)?;
            if !started {
                return Ok(());
            }
            let _ = self.events.send(id);
            job.step = Some(Step::Prepare);
            job.attempts += 1;
        }
        let request = job.request.clone();
        let document = match document_of(&request) {
            Ok(d) => d,
            Err(why) => {
                // Nothing can have been printed for a job that could not be read.
                let err = self.fail(
                    ErrorCategory::InvalidJob,
                    format!("printer {}: {why}", self.id()),
                );
                return self.finish(id, JobState::Failed, None, Some(err)).await;
            }
        };
        loop {
            let outcome = if step_of(&job) == Step::Prepare {
                self.execute(printer, &job, document).await
            } else {
                self.reconcile(printer, &job, document).await
            };
            match outcome {
                Ok(Next::Finished) => return Ok(()),
                Ok(Next::Retry(why)) => {
                    if job.attempts >= MAX_ATTEMPTS {
                        let err = self.fail(
                            ErrorCategory::DeviceError,
                            format!(
                                "printer {} did not complete the document in {MAX_ATTEMPTS} attempts; last: {why}",
                                self.id()
                            ),
                        );
                        return self.finish(id, JobState::Failed, None, Some(err)).await;
                    }
                    let w = why.clone();
                    commit(&self.journal, &self.shutdown, "retry", move |j| {
                        j.retry(id, &w)
                    })
                    .await
                    .map_err(PrinterError::Aborted)?;
                    job.step = Some(Step::Prepare);
                    job.counters_before = None;
                    job.attempts += 1;
                    crate::metrics::retry(self.id(), "reprint");
                    tracing::info!(printer = self.id(), job = id, reason = %why, "printing the document again");
                }
                Err(PrinterError::Refused(e)) if step_of(&job) == Step::Prepare => {
                    return self.finish(id, JobState::Failed, None, Some(e)).await;
                }
                Err(PrinterError::Aborted(Abort::Shutdown)) => return Ok(()),
                Err(PrinterError::Aborted(Abort::Cancelled)) => {
                    tracing::info!(
                        printer = self.id(),
                        job = id,
                        "the job was cancelled before printing"
                    );
                    let _ = self.events.send(id);
                    return Ok(());
                }
                Err(PrinterError::Unsupported(why)) if step_of(&job) == Step::Prepare => {
                    let err = self.fail(
                        ErrorCategory::InvalidJob,
                        format!("printer {}: {why}", self.id()),
                    );
                    return self.finish(id, JobState::Failed, None, Some(err)).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// A fresh attempt: the driver prints the document, reporting the counters before it
    /// and the closing step as it goes.
    async fn execute(
        &self,
        printer: &mut D,
        job: &Job,
        document: Document<'_>,
    ) -> Result<Next, PrinterError> {
        let mut steps = Steps {
            journal: &self.journal,
            shutdown: &self.shutdown,
            job: job.id,
            before: None,
            closing: false,
            tag: job_tag(job),
        };
        let printed = printer.print(document, &mut steps).await;
        let (before, closing) = (steps.before, steps.closing);
        match printed {
            Ok(()) => {}
            Err(PrinterError::Refused(e)) => {
                // The printer refused: cancel what is open so nothing half-done remains.
                printer.cancel_document().await?;
                self.finish(job.id, JobState::Failed, None, Some(e)).await?;
                return Ok(Next::Finished);
            }
            Err(PrinterError::Unsupported(why)) if !closing => {
                printer.cancel_document().await?;
                let err = self.fail(
                    ErrorCategory::InvalidJob,
                    format!("printer {}: {why}", self.id()),
                );
                self.finish(job.id, JobState::Failed, None, Some(err))
                    .await?;
                return Ok(Next::Finished);
            }
            Err(PrinterError::PaperTimeout) if closing => {
                // The closing command is held by the printer and runs when paper is put
                // in: the document may still be printed, so it cannot be failed.
                let err = self.fail(
                    ErrorCategory::NeedsAttention,
                    format!(
                        "printer {} holds the closing command of job {} for lack of paper (or an open cover) \
                         for longer than {:?}; it prints when paper is put in. Check the printer, then settle the job by hand.",
                        self.id(),
                        job.id,
                        self.handle.config.paper_wait()
                    ),
                );
                self.finish(job.id, JobState::NeedsAttention, None, Some(err))
                    .await?;
                return Ok(Next::Finished);
            }
            Err(PrinterError::PaperTimeout) => {
                let err = self.fail(
                    ErrorCategory::PaperOut,
                    format!(
                        "printer {} had no paper (or an open cover) for {:?}; the document was not completed. Put in paper and resend",
                        self.id(),
                        self.handle.config.paper_wait()
                    ),
                );
                self.finish(job.id, JobState::Failed, None, Some(err))
                    .await?;
                return Ok(Next::Finished);
            }
            Err(PrinterError::Unsupported(why)) if closing => {
                // The closing step is journaled, so the document may be printed: never a
                // failed job (the caller's local step still says `prepare`). Reconnect and
                // reconcile it from the counters.
                return Err(PrinterError::Link(format!(
                    "after the closing step of job {}: {why}",
                    job.id
                )));
            }
            Err(e) => return Err(e),
        }
        let Some(before) = before else {
            return Err(PrinterError::Protocol(
                "the driver printed a document without reporting the counters before it".into(),
            ));
        };
        self.reconcile_after(printer, job, document, before, Step::Closed)
            .await
    }

    /// An interrupted job: find out from the printer what happened.
    async fn reconcile(
        &self,
        printer: &mut D,
        job: &Job,
        document: Document<'_>,
    ) -> Result<Next, PrinterError> {
        let Some(before) = job.counters_before else {
            return Ok(Next::Retry(
                "no counters were recorded; nothing was sent".into(),
            ));
        };
        tracing::info!(printer = self.id(), job = job.id, step = ?job.step, "reconciling an interrupted job from the printer's counters");
        // Commands sent before the interruption may still wait in the printer's queue (held
        // for paper, say): the counters mean nothing until they have run.
        self.wait_until_idle(printer).await?;
        if printer.document_open().await? {
            printer.cancel_document().await?;
        }
        self.reconcile_after(printer, job, document, before, step_of(job))
            .await
    }

    /// Wait until the printer has carried out every command sent earlier and is not waiting
    /// for its operator, for at most `paper_wait`.
    async fn wait_until_idle(&self, printer: &mut D) -> Result<(), PrinterError> {
        let deadline = tokio::time::Instant::now() + self.handle.config.paper_wait();
        loop {
            let a = printer.activity().await?;
            if a.queue_empty && !a.waiting_for_operator {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(PrinterError::PaperTimeout);
            }
            tracing::info!(
                printer = self.id(),
                queue_empty = a.queue_empty,
                waiting_for_operator = a.waiting_for_operator,
                "waiting for the printer to finish its queued commands"
            );
            self.poll_status(printer).await?;
            if self.pause(Duration::from_millis(500)).await {
                return Err(PrinterError::Aborted(Abort::Shutdown));
            }
        }
    }

    /// Compare the counters with those recorded before the document and decide.
    async fn reconcile_after(
        &self,
        printer: &mut D,
        job: &Job,
        document: Document<'_>,
        before: DocumentCounters,
        step: Step,
    ) -> Result<Next, PrinterError> {
        let after = printer.counters().await?;
        let (Some(b), Some(a)) = (counter(job.kind, &before), counter(job.kind, &after)) else {
            return Err(PrinterError::Unsupported(format!(
                "a {} job cannot run on a printer",
                job.kind.as_str()
            )));
        };
        let mut verdict = verdict(step, b, a);
        if job.kind == crate::journal::JobKind::Receipt
            && let Some(last) = printer.last_receipt().await?
        {
            verdict = tagged_verdict(step, b, a, &last, &job_tag(job));
        }
        if job.kind == crate::journal::JobKind::Receipt {
            verdict = completion_checked(verdict, printer.last_transaction_completed().await?);
        }
        if step != Step::Closed {
            // Not the check after a normal print: an interrupted job's reconciliation.
            let outcome = match verdict {
                Verdict::Printed => "printed",
                Verdict::NotPrinted => "not_printed",
                Verdict::Unknown => "needs_attention",
            };
            crate::metrics::reconciliation(self.id(), outcome);
        }
        match verdict {
            Verdict::Printed => {
                let at = printer.clock().await?;
                let result = self.result(document, &after, at);
                self.finish(job.id, JobState::Done, Some(result), None)
                    .await?;
                Ok(Next::Finished)
            }
            Verdict::NotPrinted => Ok(Next::Retry(format!(
                "the printer's counter did not move (still {a}): the document was not printed"
            ))),
            Verdict::Unknown => {
                let err = self.fail(
                    ErrorCategory::NeedsAttention,
                    format!(
                        "printer {}: cannot tell whether job {} was printed: the document counter went from {b} to {a} at step '{step}'. \
                         Check the printer's last documents and settle the job by hand; it will not be retried.",
                        self.id(),
                        job.id
                    ),
                );
                self.finish(job.id, JobState::NeedsAttention, None, Some(err))
                    .await?;
                Ok(Next::Finished)
            }
        }
    }

    /// A printed job's result.
    fn result(
        &self,
        document: Document<'_>,
        after: &DocumentCounters,
        at: chrono::NaiveDateTime,
    ) -> JobResult {
        let printed_at = at.format("%Y-%m-%dT%H:%M:%S").to_string();
        let printer = self.id().to_string();
        match document {
            Document::Receipt(r) => JobResult::Receipt(ReceiptPrinted::of(
                r,
                after.last_receipt,
                printed_at,
                printer,
                self.handle.status().serial_number,
            )),
            Document::DailyReport => JobResult::DailyReport(DailyReportPrinted {
                report_number: after.daily_reports,
                date: at.date().to_string(),
                printed_at,
                printer,
            }),
            Document::Cash(_) | Document::Printout(_) => JobResult::Printout(PrintoutPrinted {
                printout_number: after.next_printout.saturating_sub(1),
                printed_at,
                printer,
            }),
            Document::Invoice(i) => JobResult::Invoice(InvoicePrinted::of(
                i,
                after.invoices,
                printed_at,
                printer,
                self.handle.status().serial_number,
            )),
            Document::PeriodicReport(r) => JobResult::PeriodicReport(PeriodicReportPrinted {
                printout_number: after.next_printout.saturating_sub(1),
                from: r.from.to_string(),
                to: r.to.to_string(),
                summary: r.summary,
                printed_at,
                printer,
            }),
            Document::Copy(c) => JobResult::Copy(CopyPrinted {
                printout_number: after.next_printout.saturating_sub(1),
                of_job: c.of_job,
                document: c.document.as_str().to_string(),
                document_number: c.number,
                printed_at,
                printer,
            }),
        }
    }
}
