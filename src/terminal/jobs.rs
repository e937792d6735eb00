//! Card jobs as they run the first time: payments (and the payment part of sales), their
//! verdicts, the sale's receipt, and the end of day.

use super::{
    Ctx, Observer, PaymentRecord, TaskError, command_for, end_of_day_result, payment_request,
    restate, sale_receipt,
};
use crate::config::SlipTarget;
use crate::device::terminal::{CardCommand, CardOutcome, PaymentTerminal, TerminalCode};
use crate::device::{DeviceError, ErrorCategory};
use crate::document::CardPayment;
use crate::journal::{Job, JobKind, JobResult, JobState, PaymentResult, Step};

impl Ctx {
    /// Work on one job: start it, or reconcile it if it was interrupted.
    pub(super) async fn work<D: PaymentTerminal>(
        &self,
        d: &mut D,
        mut job: Job,
    ) -> Result<(), TaskError> {
        let id = job.id;
        if job.state == JobState::Queued {
            if !self
                .journal
                .run(move |j| j.start(id))
                .await
                .unwrap_or(false)
            {
                return Ok(());
            }
            let _ = self.events.send(id);
            job.step = Some(Step::Prepare);
        }
        let step = job.step.unwrap_or(Step::Prepare);
        let outcome = match (job.kind, step) {
            (JobKind::EndOfDay, _) => self.end_of_day(d, &job).await,
            (JobKind::Payment | JobKind::Sale, Step::Prepare) => self.pay(d, &job).await,
            (JobKind::Payment | JobKind::Sale, Step::Printing) => {
                // The sale's receipt is queued; the printer settles the sale.
                return Ok(());
            }
            (JobKind::Payment | JobKind::Sale, _) => self.reconcile(d, &job).await,
            (kind, _) => Err(TaskError::BadJob(format!(
                "a {} job cannot run on a terminal",
                kind.as_str()
            ))),
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(TaskError::BadJob(why)) => {
                self.fail(
                    id,
                    None,
                    DeviceError::new(ErrorCategory::InvalidJob, why, None),
                )
                .await;
                Ok(())
            }
            Err(TaskError::Device(e))
                if e.is_refusal() && (step == Step::Prepare || job.kind == JobKind::EndOfDay) =>
            {
                let message = format!("terminal {} refused the command: {}", self.id(), e.message);
                self.fail(id, None, restate(&e, message)).await;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// A fresh payment: journal `authorizing`, run the flow (its outcome is journaled
    /// before the driver acknowledges it), then settle it.
    async fn pay<D: PaymentTerminal>(&self, d: &mut D, job: &Job) -> Result<(), TaskError> {
        let p = payment_request(job)?;
        let command = command_for(&p)?;
        self.set_step(job.id, Step::Authorizing).await?;
        let mut observer = Observer::new(self, Some(job));
        let end = match d.run(&job.id.to_string(), &command, &mut observer).await {
            Ok(end) => end,
            Err(e) => match TaskError::from(e) {
                TaskError::Device(e) if e.is_refusal() => {
                    // The terminal refused the command itself: nothing was charged.
                    let mut message =
                        format!("terminal {} refused the payment: {}", self.id(), e.message);
                    if !e.message.contains("nothing was charged") {
                        message.push_str("; nothing was charged");
                    }
                    self.fail(job.id, None, restate(&e, message)).await;
                    return Ok(());
                }
                e => return Err(e),
            },
        };
        let slip = observer.slip;
        self.conclude(d, job, &p, end.outcome, slip, end.aborted)
            .await
    }

    /// Settle a payment from its outcome (or its absence).
    pub(super) async fn conclude<D: PaymentTerminal>(
        &self,
        d: &D,
        job: &Job,
        p: &CardPayment,
        outcome: Option<CardOutcome>,
        slip: Vec<String>,
        aborted: Option<TerminalCode>,
    ) -> Result<(), TaskError> {
        match outcome {
            Some(o) if o.approved => {
                let payment = self.payment_record(&o, &slip);
                if job.kind == JobKind::Sale {
                    self.queue_receipt(job, payment).await
                } else {
                    let done = JobResult::Payment(PaymentResult::Completed(payment));
                    self.finish(job.id, JobState::Done, Some(done), None).await;
                    Ok(())
                }
            }
            Some(o) => {
                let code = d.explain(o.result_code);
                let err = DeviceError::new(
                    ErrorCategory::CardDeclined,
                    format!(
                        "terminal {} declined the {}: {} (result code {})",
                        self.id(),
                        p.kind,
                        code.message,
                        code.shown
                    ),
                    Some(code.code),
                );
                let result = JobResult::recorded_payment(job.kind, self.payment_record(&o, &slip));
                self.fail(job.id, Some(result), err).await;
                Ok(())
            }
            None => {
                let code = aborted.unwrap_or_else(|| d.explain(0));
                let err = DeviceError::new(
                    code.category,
                    format!(
                        "terminal {} ended the {} without payment: {} (code {}); nothing was charged",
                        self.id(),
                        p.kind,
                        code.message,
                        code.shown
                    ),
                    Some(code.code),
                );
                self.fail(job.id, None, err).await;
                Ok(())
            }
        }
    }

    /// An approved sale: queue its fiscal receipt (with the card payment) and the slip.
    async fn queue_receipt(&self, job: &Job, payment: PaymentRecord) -> Result<(), TaskError> {
        let (printer, receipt) = sale_receipt(job)?;
        let slip =
            crate::sales::slip_printout(&payment, self.handle.config.slip == SlipTarget::Printer);
        let (id, p) = (job.id, printer.clone());
        self.journal
            .run(move |j| j.queue_sale_receipt(id, &p, &receipt, slip.as_ref(), &payment))
            .await
            .map_err(|e| TaskError::Journal(e.to_string()))?;
        tracing::info!(terminal = self.id(), sale = job.id, printer = %printer, "card approved; the sale's receipt is queued");
        let _ = self.events.send(job.id);
        (self.wake_printer)(&printer);
        Ok(())
    }

    /// Close the terminal's day.
    async fn end_of_day<D: PaymentTerminal>(&self, d: &mut D, job: &Job) -> Result<(), TaskError> {
        self.set_step(job.id, Step::Closing).await?;
        // The end of day's outcome is not a card transaction: the job's end records it.
        let mut observer = Observer::new(self, None);
        let end = d
            .run(&job.id.to_string(), &CardCommand::EndOfDay, &mut observer)
            .await?;
        let slip = observer.slip;
        match (end.outcome, end.aborted) {
            (Some(o), None) if o.approved => {
                let currency = o.currency.unwrap_or(self.handle.config.currency_code());
                let result = end_of_day_result(o.amount, currency, self.id(), &slip);
                self.finish(job.id, JobState::Done, Some(result), None)
                    .await;
            }
            (o, aborted) => {
                let code = aborted
                    .or_else(|| o.map(|o| d.explain(o.result_code)))
                    .unwrap_or_else(|| d.explain(0));
                let err = DeviceError::new(
                    code.category,
                    format!(
                        "terminal {} could not close the day: {} (code {})",
                        self.id(),
                        code.message,
                        code.shown
                    ),
                    Some(code.code),
                );
                self.finish(job.id, JobState::Failed, None, Some(err)).await;
            }
        }
        Ok(())
    }
}
