//! Recovery of an interrupted card job: wait until the terminal is idle, ask it for its last
//! transaction, and match that to the job by trace number and amount. An authorization is
//! never sent again.

use super::{Ctx, Observer, TaskError, payment_request, recorded_payment};
use crate::device::terminal::{CardCommand, CardOutcome, LastTransaction, PaymentTerminal};
use crate::device::{DeviceError, ErrorCategory};
use crate::journal::{Job, JobId, JobKind, JobState};
use std::time::Duration;

/// How many times (a second apart) a busy terminal is asked whether it is idle.
const IDLE_TRIES: u32 = 30;

/// What recovery concludes about an interrupted job.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)]
pub(super) enum Verdict {
    /// The terminal's last transaction is this job's: settle the job from it.
    Ours(CardOutcome),
    /// The job's outcome was journaled, but the terminal's last transaction is another one:
    /// the journaled outcome cannot be confirmed.
    Unconfirmed,
    /// The terminal never processed the job: nothing was charged.
    NotProcessed,
    /// The terminal cannot tell (no last-transaction query): a person must settle it.
    Unknown,
}

/// The match decision, as a pure function.
///
/// - `last`: what the terminal says its last transaction was;
/// - `owner`: the job the journal has for `last`'s trace number, if any;
/// - `recorded_trace`: the trace number this job journaled, if its outcome was seen;
/// - `amount`: this job's amount.
pub(super) fn verdict(
    last: LastTransaction,
    owner: Option<JobId>,
    job: JobId,
    recorded_trace: Option<u32>,
    amount: u64,
) -> Verdict {
    let o = match last {
        LastTransaction::Unsupported => return Verdict::Unknown,
        LastTransaction::Nothing => None,
        LastTransaction::Found(o) => Some(o),
    };
    let ours = o.filter(|o| match (owner, recorded_trace) {
        (Some(owner), _) => owner == job,
        (None, Some(_)) => false,
        (None, None) => o.amount == Some(amount) && o.trace_number.is_some(),
    });
    match (ours, recorded_trace) {
        (Some(o), _) => Verdict::Ours(o),
        (None, Some(_)) => Verdict::Unconfirmed,
        (None, None) => Verdict::NotProcessed,
    }
}

impl Ctx {
    /// An interrupted payment: wait until the terminal is idle, ask it for its last
    /// transaction, and match it to this job by trace number and amount.
    pub(super) async fn reconcile<D: PaymentTerminal>(
        &self,
        d: &mut D,
        job: &Job,
    ) -> Result<(), TaskError> {
        let p = payment_request(job)?;
        tracing::info!(terminal = self.id(), job = job.id, step = ?job.step, "reconciling an interrupted card transaction");
        // 1. Idle?
        let mut idle = false;
        for _ in 0..IDLE_TRIES {
            match d.status().await {
                Ok(info) if info.fault.is_none() => {
                    idle = true;
                    break;
                }
                Ok(_) => tokio::time::sleep(Duration::from_secs(1)).await,
                Err(e) if e.is_refusal() => tokio::time::sleep(Duration::from_secs(1)).await,
                Err(e) => return Err(e.into()),
            }
        }
        if !idle {
            return Err(DeviceError::protocol("the terminal did not become idle").into());
        }
        // 2. The last transaction.
        let last = d.last_transaction().await?;
        // 3. Match it.
        let recorded = recorded_payment(job);
        let owner = match &last {
            LastTransaction::Found(CardOutcome {
                trace_number: Some(trace),
                ..
            }) => {
                let (term, trace) = (self.id().to_string(), *trace);
                self.journal
                    .run(move |j| j.job_for_trace(&term, trace))
                    .await
                    .map_err(|e| TaskError::Journal(e.to_string()))?
            }
            _ => None,
        };
        match verdict(last, owner, job.id, recorded.trace_number, p.amount) {
            Verdict::Ours(o) => {
                crate::metrics::reconciliation(
                    self.id(),
                    if o.approved { "approved" } else { "declined" },
                );
                if job.result.is_none() || recorded.trace_number.is_none() {
                    self.journal_outcome(job, &o, &[]).await?;
                }
                tracing::info!(terminal = self.id(), job = job.id, trace = ?o.trace_number, approved = o.approved, "recovered the transaction's outcome");
                self.conclude(d, job, &p, Some(o), recorded.slip, None)
                    .await
            }
            Verdict::Unconfirmed => {
                // We journaled an approval, but the terminal's last transaction is another
                // one: its commit cannot be confirmed. A sale's receipt was never queued (that
                // happens only after the approval is settled), so it may be reversed if
                // configured.
                if self.reverse_unattached
                    && job.kind == JobKind::Sale
                    && let Some(receipt_number) = recorded.receipt_number
                    && self.reverse(d, job, receipt_number).await
                {
                    crate::metrics::reconciliation(self.id(), "reversed");
                    let err = DeviceError::new(
                        ErrorCategory::PaymentReversed,
                        format!(
                            "terminal {}: the payment of sale {} could not be confirmed and its receipt was not printed, \
                             so it was reversed ([sales] reverse_unattached); nothing was charged",
                            self.id(),
                            job.id
                        ),
                        None,
                    );
                    self.fail(job.id, job.result.clone(), err).await;
                    return Ok(());
                }
                self.needs_attention(
                    job,
                    format!(
                        "terminal {}: the approval of job {} was recorded but the terminal's last transaction is a different one; \
                         check the terminal's journal before charging again or reversing",
                        self.id(),
                        job.id
                    ),
                )
                .await;
                Ok(())
            }
            Verdict::NotProcessed => {
                crate::metrics::reconciliation(self.id(), "not_processed");
                let err = DeviceError::new(
                    ErrorCategory::NotCharged,
                    format!(
                        "terminal {} did not process the {} of job {} (its last transaction is not this one); nothing was charged. Submit it again.",
                        self.id(),
                        p.kind,
                        job.id
                    ),
                    None,
                );
                self.fail(job.id, None, err).await;
                Ok(())
            }
            Verdict::Unknown => {
                self.needs_attention(
                    job,
                    format!(
                        "terminal {}: the outcome of the {} of job {} (amount {}) cannot be learnt from the terminal; \
                         check the terminal's own printout or journal before charging again",
                        self.id(),
                        p.kind,
                        job.id,
                        p.amount
                    ),
                )
                .await;
                Ok(())
            }
        }
    }

    /// Reverse an unconfirmed approval; whether the terminal approved the reversal.
    async fn reverse<D: PaymentTerminal>(&self, d: &mut D, job: &Job, receipt_number: u32) -> bool {
        // The reversal's outcome is recorded with the job's end.
        let mut observer = Observer::new(self, None);
        let command = CardCommand::Reversal { receipt_number };
        matches!(
            d.run(&job.id.to_string(), &command, &mut observer).await,
            Ok(end) if end.outcome.as_ref().is_some_and(|o| o.approved)
        )
    }

    async fn needs_attention(&self, job: &Job, message: String) {
        crate::metrics::reconciliation(self.id(), "needs_attention");
        let err = DeviceError::new(ErrorCategory::NeedsAttention, message, None);
        self.finish(
            job.id,
            JobState::NeedsAttention,
            job.result.clone(),
            Some(err),
        )
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(trace: Option<u32>, amount: u64) -> CardOutcome {
        CardOutcome {
            approved: true,
            trace_number: trace,
            amount: Some(amount),
            ..Default::default()
        }
    }

    fn found(trace: Option<u32>, amount: u64) -> LastTransaction {
        LastTransaction::Found(ours(trace, amount))
    }

    #[test]
    fn the_journal_owner_of_the_trace_number_decides() {
        assert_eq!(
            verdict(found(Some(5), 100), Some(7), 7, None, 100),
            Verdict::Ours(ours(Some(5), 100))
        );
        assert_eq!(
            verdict(found(Some(5), 100), Some(8), 7, None, 100),
            Verdict::NotProcessed
        );
        assert_eq!(
            verdict(found(Some(5), 100), Some(8), 7, Some(4), 100),
            Verdict::Unconfirmed
        );
    }

    #[test]
    fn an_unknown_trace_matches_by_amount_only_if_nothing_was_journaled() {
        assert_eq!(
            verdict(found(Some(5), 100), None, 7, None, 100),
            Verdict::Ours(ours(Some(5), 100))
        );
        assert_eq!(
            verdict(found(Some(5), 99), None, 7, None, 100),
            Verdict::NotProcessed
        );
        assert_eq!(
            verdict(found(None, 100), None, 7, None, 100),
            Verdict::NotProcessed
        );
        assert_eq!(
            verdict(found(Some(5), 100), None, 7, Some(4), 100),
            Verdict::Unconfirmed
        );
    }

    #[test]
    fn no_last_transaction_means_not_processed_unless_journaled() {
        let nothing = LastTransaction::Nothing;
        assert_eq!(
            verdict(nothing.clone(), None, 7, None, 100),
            Verdict::NotProcessed
        );
        assert_eq!(
            verdict(nothing.clone(), None, 7, Some(3), 100),
            Verdict::Unconfirmed
        );
    }

    #[test]
    fn a_terminal_that_cannot_tell_never_settles_by_itself() {
        let u = LastTransaction::Unsupported;
        assert_eq!(verdict(u.clone(), None, 7, None, 100), Verdict::Unknown);
        assert_eq!(
            verdict(u.clone(), Some(7), 7, Some(3), 100),
            Verdict::Unknown
        );
    }
}
