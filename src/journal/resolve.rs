//! A person's decision on a card payment whose outcome the terminal could not tell
//! (`POST /v1/payments/{id}/resolve`): recorded as a typed `resolved` event and ending the
//! job, in one transaction.

use super::{Job, JobId, JobKind, JobState, Journal, JournalError, log_event, now, to_text};
use crate::device::{DeviceError, ErrorCategory};
use crate::job::records::{CardOutcome, JobResult, PaymentResult, SaleResult};
use rusqlite::params;
use serde::{Deserialize, Serialize};

/// What the person read on the terminal's own printout or journal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Decision {
    /// The terminal charged the card, with this transaction id.
    Approved { transaction_id: String },
    /// The terminal did not charge the card.
    NotCharged,
}

/// The `resolved` event's record (its `detail` in `job_events`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolution {
    #[serde(flatten)]
    pub decision: Decision,
    /// Who decided (the caller's name).
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why a job cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotResolvable(pub String);

/// Whether `job` is a card payment waiting for a person: `needs_attention`, a payment or
/// sale. That includes a payment whose outcome was journaled but whose job a crash left
/// unconcluded on a terminal that cannot be asked afterwards (ECR-EFT): a person confirms it
/// from the terminal's printout.
pub fn resolvable(job: &Job) -> Result<(), NotResolvable> {
    if !matches!(job.kind, JobKind::Payment | JobKind::Sale) {
        return Err(NotResolvable(format!(
            "job {} is a {}, not a card payment",
            job.id,
            job.kind.as_str()
        )));
    }
    if job.state != JobState::NeedsAttention {
        return Err(NotResolvable(format!(
            "job {} is {}; only a payment in needs_attention whose outcome is unknown can be resolved",
            job.id,
            job.state.as_str()
        )));
    }
    Ok(())
}

impl Journal {
    /// Record `resolution` for job `id` and end it: approved → `done` with the payment
    /// (amount and terminal from the request, the transaction id given), not charged →
    /// `failed` with `not_charged`. `Ok(Err(..))` when the job cannot be resolved.
    pub fn resolve_payment(
        &self,
        id: JobId,
        resolution: &Resolution,
    ) -> Result<Result<Job, NotResolvable>, JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let job = Self::get_in(&tx, id)?.ok_or(JournalError::NotFound(id))?;
        if let Err(e) = resolvable(&job) {
            return Ok(Err(e));
        }
        let p = job.request.card_payment();
        let t = now();
        let (state, result, error) = match &resolution.decision {
            Decision::Approved { transaction_id } => {
                // What the terminal reported, if it was journaled, confirmed by the person.
                let recorded = job
                    .result
                    .as_ref()
                    .and_then(JobResult::card_outcome)
                    .cloned();
                let payment = CardOutcome {
                    approved: true,
                    amount: p.as_ref().map(|p| p.amount),
                    currency: p
                        .as_ref()
                        .map(|p| crate::device::terminal::currency_name(p.currency).to_string()),
                    terminal: job.device.clone(),
                    transaction_id: Some(transaction_id.clone()),
                    resolved_by: Some(resolution.by.clone()),
                    ..recorded.unwrap_or_default()
                };
                let result = match job.kind {
                    JobKind::Sale => JobResult::Sale(SaleResult {
                        payment: Some(payment),
                        ..SaleResult::default()
                    }),
                    _ => JobResult::Payment(PaymentResult::Completed(payment)),
                };
                (JobState::Done, Some(result), None)
            }
            Decision::NotCharged => (
                JobState::Failed,
                None,
                Some(DeviceError::new(
                    ErrorCategory::NotCharged,
                    format!(
                        "{} recorded that terminal {} did not charge job {id}; nothing was charged",
                        resolution.by, job.device
                    ),
                    None,
                )),
            ),
        };
        tx.execute(
            "UPDATE jobs SET state = ?2, step = NULL, result = ?3, error = ?4, updated_at = ?5
             WHERE id = ?1 AND state = ?6",
            params![
                id,
                state.as_str(),
                result.map(|r| r.to_json().to_string()),
                error.as_ref().map(to_text),
                t,
                JobState::NeedsAttention.as_str()
            ],
        )?;
        log_event(&tx, id, &t, "resolved", Some(&to_text(resolution)))?;
        log_event(&tx, id, &t, state.as_str(), None)?;
        let job = Self::get_in(&tx, id)?.ok_or(JournalError::NotFound(id))?;
        tx.commit()?;
        Ok(Ok(job))
    }
}
