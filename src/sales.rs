//! The rules of a sale (a card payment and its fiscal receipt together), in one place:
//! what a sale becomes when its receipt ends, which of its jobs a missed print deadline
//! may cancel, when its payment may be reversed, and the words that tell a person what to
//! do about it.
//!
//! These are pure functions over the journal's typed records. The journal performs the
//! writes they decide, in its own transactions ([`crate::journal`]); the API asks them
//! before it queues a reversal. Nothing here reverses a payment on its own: fiscald never
//! does.

use crate::device::{DeviceError, ErrorCategory};
use crate::document::{CardPayment, MAX_PRINTOUT_LINE_LEN, Printout};
use crate::job::records::{CardOutcome, JobResult, SaleResult, Step};
use crate::job::{Job, JobId, JobKind, JobState};

/// What a sale becomes when its receipt ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// `done`, or `needs_attention` when the receipt was not printed.
    pub state: JobState,
    /// The sale's result with the receipt's part added.
    pub result: SaleResult,
    /// Why the sale needs attention, and what to do.
    pub error: Option<DeviceError>,
}

/// A sale's receipt ended: the sale is done with both parts, or needs attention with the
/// approved payment in its result (the payment is never reversed on its own). None when
/// the sale is no longer running (it was settled already).
pub fn settle(sale: &Job, receipt: &Job) -> Option<Settlement> {
    if sale.state != JobState::Running {
        return None;
    }
    let mut result = sale
        .result
        .as_ref()
        .and_then(JobResult::as_sale)
        .cloned()
        .unwrap_or_default();
    result.receipt = Some(
        receipt
            .result
            .as_ref()
            .and_then(JobResult::as_receipt)
            .cloned(),
    );
    result.receipt_job = Some(receipt.id);
    if receipt.state == JobState::Done {
        return Some(Settlement {
            state: JobState::Done,
            result,
            error: None,
        });
    }
    let why = receipt
        .error
        .as_ref()
        .map_or("the receipt was not printed", |e| e.message.as_str());
    let message = format!(
        "the card payment was approved but the fiscal receipt (job {}) ended {}: {why}. \
         Print the receipt again or reverse the payment with POST /v1/sales/{}/reverse.",
        receipt.id,
        receipt.state.as_str(),
        sale.id
    );
    let device_code = receipt.error.as_ref().and_then(|e| e.device_code);
    Some(Settlement {
        state: JobState::NeedsAttention,
        result,
        error: Some(DeviceError::new(
            ErrorCategory::ReceiptNotPrinted,
            message,
            device_code,
        )),
    })
}

/// An approved sale's result once its receipt (and slip) are queued.
pub fn receipt_queued(
    payment: CardOutcome,
    receipt_job: JobId,
    slip_job: Option<JobId>,
) -> SaleResult {
    SaleResult {
        payment: Some(payment),
        receipt_job: Some(receipt_job),
        slip_job,
        ..SaleResult::default()
    }
}

/// The card slip as a non-fiscal printout, when it goes to the printer and has lines;
/// lines longer than a printout line are cut.
pub fn slip_printout(payment: &CardOutcome, to_printer: bool) -> Option<Printout> {
    let lines: Vec<String> = payment
        .slip
        .iter()
        .map(|l| l.chars().take(MAX_PRINTOUT_LINE_LEN).collect())
        .collect();
    (to_printer && !lines.is_empty()).then_some(Printout { lines })
}

/// Whether a missed print deadline may cancel this job of a sale: only one that has not
/// started printing (queued, or running but still at `prepare`). The check and the cancel
/// happen in one journal transaction, so a printer task cannot start it in between.
pub fn may_cancel_unprinted(job: &Job) -> bool {
    match job.state {
        JobState::Queued => true,
        JobState::Running => job.step == Some(Step::Prepare),
        _ => false,
    }
}

/// The error of a sale's receipt cancelled by the print deadline.
pub fn deadline_missed() -> DeviceError {
    DeviceError::new(
        ErrorCategory::PrinterUnavailable,
        "the printer did not start the receipt before the sale's print deadline; the receipt was cancelled",
        None,
    )
}

/// A sale's result with its reversal job noted.
pub fn with_reversal(result: Option<&JobResult>, reversal_job: JobId) -> SaleResult {
    let mut sale = result
        .and_then(JobResult::as_sale)
        .cloned()
        .unwrap_or_default();
    sale.reversal_job = Some(reversal_job);
    sale
}

/// Why a sale's payment cannot be reversed, in words that say what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotReversible(pub String);

impl std::fmt::Display for NotReversible {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// What a request to reverse a sale's payment leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reversal {
    /// A reversal was asked for before: that job is the answer.
    AlreadyQueued(JobId),
    /// The payment may be reversed, once its receipt is known not to be printed.
    Allowed(ReversalPlan),
}

/// The approved payment of a sale that may be reversed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReversalPlan {
    /// The sale.
    pub sale: JobId,
    /// The terminal that charged the card.
    pub terminal: String,
    /// In grosze.
    pub amount: u64,
    /// The terminal's receipt number of the payment.
    pub terminal_receipt_number: u32,
    /// The sale's receipt job, if one was queued: it must not have been printed.
    pub receipt_job: Option<JobId>,
}

impl ReversalPlan {
    /// Refuse when the sale's receipt was printed after all (`receipt` is its job).
    pub fn check_receipt(&self, receipt: Option<&Job>) -> Result<(), NotReversible> {
        if receipt.is_some_and(|r| r.state == JobState::Done) {
            return Err(NotReversible(format!(
                "the receipt of sale {} was printed; refund the customer instead",
                self.sale
            )));
        }
        Ok(())
    }

    /// The card payment request that reverses it, in the terminal's `currency`.
    pub fn request(&self, currency: u16) -> CardPayment {
        CardPayment {
            kind: "reversal".into(),
            amount: self.amount,
            currency,
            reference: Some(format!("sale {}", self.sale)),
            original_receipt_number: Some(self.terminal_receipt_number),
        }
    }

    /// The refusal when the sale's terminal is no longer configured.
    pub fn terminal_gone(&self) -> NotReversible {
        NotReversible(format!(
            "the terminal of sale {} is no longer configured",
            self.sale
        ))
    }

    /// The idempotency key that makes a repeated reversal request return the same job. It is
    /// internal, so no client's `Idempotency-Key` can collide with it.
    pub fn idempotency_key(&self) -> crate::journal::IdempotencyKey {
        crate::journal::IdempotencyKey::Internal(format!("reverse-sale:{}", self.sale))
    }
}

/// May this job's card payment be reversed? Only a sale that needs attention (its receipt
/// was not printed) with an approved payment; a sale already being reversed answers with
/// that reversal.
pub fn reversal(sale: &Job) -> Result<Reversal, NotReversible> {
    let id = sale.id;
    if sale.kind != JobKind::Sale {
        return Err(NotReversible(format!(
            "job {id} is a {}, not a sale",
            sale.kind.as_str()
        )));
    }
    let result = sale.result.as_ref().and_then(JobResult::as_sale);
    if let Some(existing) = result.and_then(|r| r.reversal_job) {
        return Ok(Reversal::AlreadyQueued(existing));
    }
    if sale.state != JobState::NeedsAttention {
        return Err(NotReversible(format!(
            "sale {id} is {}; only a sale whose receipt was not printed (needs_attention) can be reversed",
            sale.state.as_str()
        )));
    }
    let payment = result.and_then(|r| r.payment.as_ref());
    let Some((payment, terminal_receipt_number, amount)) = payment
        .filter(|p| p.approved)
        .and_then(|p| Some((p, p.terminal_receipt_number?, p.amount?)))
    else {
        return Err(NotReversible(format!(
            "sale {id} has no approved card payment to reverse"
        )));
    };
    Ok(Reversal::Allowed(ReversalPlan {
        sale: id,
        terminal: payment.terminal.clone(),
        amount,
        terminal_receipt_number,
        receipt_job: result.and_then(|r| r.receipt_job),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::records::{JobRequest, ReceiptPrinted};

    fn job(id: JobId, kind: JobKind, state: JobState, result: Option<JobResult>) -> Job {
        Job {
            id,
            kind,
            device: "t1".into(),
            state,
            step: None,
            request: JobRequest::DailyReport,
            result,
            error: None,
            counters_before: None,
            parent_id: None,
            attempts: 1,
            created_at: String::new(),
            updated_at: String::new(),
            owner: None,
        }
    }

    fn approved() -> CardOutcome {
        CardOutcome {
            approved: true,
            amount: Some(3990),
            terminal_receipt_number: Some(12),
            terminal: "t1".into(),
            slip: vec!["x".repeat(80), "ok".into()],
            ..CardOutcome::default()
        }
    }

    fn sale(state: JobState) -> Job {
        let result = receipt_queued(approved(), 8, None);
        job(7, JobKind::Sale, state, Some(JobResult::Sale(result)))
    }

    #[test]
    fn a_printed_receipt_settles_the_sale_done_with_both_parts() {
        let printed = ReceiptPrinted {
            receipt_number: 5,
            total: 3990,
            printed_at: "2026-11-26T10:15:00".into(),
            printer: "fp1".into(),
            printer_serial_number: None,
            ..Default::default()
        };
        let receipt = job(
            8,
            JobKind::Receipt,
            JobState::Done,
            Some(JobResult::Receipt(printed.clone())),
        );
        let s = settle(&sale(JobState::Running), &receipt).unwrap();
        assert_eq!(s.state, JobState::Done);
        assert_eq!(s.error, None);
        assert_eq!(s.result.receipt, Some(Some(printed)));
        assert_eq!(s.result.payment, Some(approved()));
        assert!(settle(&sale(JobState::Done), &receipt).is_none());
    }

    #[test]
    fn an_unprinted_receipt_leaves_the_sale_needing_attention_and_says_what_to_do() {
        let mut receipt = job(8, JobKind::Receipt, JobState::Failed, None);
        receipt.error = Some(DeviceError::new(
            ErrorCategory::PaperOut,
            "no paper",
            Some(3),
        ));
        let s = settle(&sale(JobState::Running), &receipt).unwrap();
        assert_eq!(s.state, JobState::NeedsAttention);
        assert_eq!(s.result.receipt, Some(None));
        let e = s.error.unwrap();
        assert_eq!(e.category, ErrorCategory::ReceiptNotPrinted);
        assert_eq!(e.device_code, Some(3));
        assert!(e.message.contains("job 8) ended failed: no paper"), "{e}");
        assert!(e.message.contains("POST /v1/sales/7/reverse"), "{e}");
    }

    #[test]
    fn only_a_sale_needing_attention_with_an_approved_payment_is_reversible() {
        let Ok(Reversal::Allowed(plan)) = reversal(&sale(JobState::NeedsAttention)) else {
            panic!("reversible");
        };
        assert_eq!(
            (plan.amount, plan.terminal_receipt_number, plan.receipt_job),
            (3990, 12, Some(8))
        );
        let request = plan.request(985);
        assert_eq!(request.kind, "reversal");
        assert_eq!(request.reference.as_deref(), Some("sale 7"));
        assert!(reversal(&sale(JobState::Running)).is_err());
        let receipt = job(8, JobKind::Receipt, JobState::Done, None);
        assert!(plan.check_receipt(Some(&receipt)).is_err());
        assert!(plan.check_receipt(None).is_ok());
        let noted = with_reversal(sale(JobState::NeedsAttention).result.as_ref(), 9);
        let mut reversed = sale(JobState::NeedsAttention);
        reversed.result = Some(JobResult::Sale(noted));
        assert_eq!(reversal(&reversed), Ok(Reversal::AlreadyQueued(9)));
        let receipt_job = job(3, JobKind::Receipt, JobState::NeedsAttention, None);
        assert!(reversal(&receipt_job).unwrap_err().0.contains("not a sale"));
    }

    #[test]
    fn the_deadline_cancels_only_what_has_not_started_printing() {
        let mut j = job(8, JobKind::Receipt, JobState::Queued, None);
        assert!(may_cancel_unprinted(&j));
        j.state = JobState::Running;
        j.step = Some(Step::Prepare);
        assert!(may_cancel_unprinted(&j));
        j.step = Some(Step::Printing);
        assert!(!may_cancel_unprinted(&j));
        j.state = JobState::Done;
        assert!(!may_cancel_unprinted(&j));
    }

    #[test]
    fn the_slip_goes_to_the_printer_in_printout_lines() {
        let slip = slip_printout(&approved(), true).unwrap();
        assert_eq!(slip.lines[0].chars().count(), MAX_PRINTOUT_LINE_LEN);
        assert!(slip_printout(&approved(), false).is_none());
        assert!(slip_printout(&CardOutcome::default(), true).is_none());
    }
}
