//! Card transactions and the journal writes of a sale's life: its payment's outcome, its
//! receipt (and slip) queued on the printer, its settlement, its print deadline and its
//! reversal. What is written is decided by [`crate::sales`]; here it is written, each in
//! one transaction.

use super::{Job, JobId, JobKind, JobState, Journal, JournalError, log_event, now, request_hash};
use crate::document::{Printout, Receipt};
use crate::job::records::{CardOutcome, JobRequest, JobResult, Step};
use crate::sales;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::Value;

/// A card transaction outcome as a terminal reported it (masked card data only), kept in
/// `card_transactions` by terminal and trace number.
pub struct CardRecord {
    /// The terminal's id.
    pub terminal: String,
    pub trace_number: u32,
    pub receipt_number: Option<u32>,
    /// The terminal's whole transaction result, as its driver serialises it.
    pub result: Value,
}

impl Journal {
    /// Store a card job's partial result (e.g. an approved payment) and step (`approved`
    /// or `declined`), in one transaction with the card transaction record: this is
    /// committed before the terminal is told the register accepted the result.
    pub fn record_card_result(
        &self,
        job_id: JobId,
        card: &CardRecord,
        step: Step,
        partial_result: &JobResult,
    ) -> Result<(), JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let t = now();
        tx.execute(
            "INSERT OR REPLACE INTO card_transactions (terminal, trace_number, receipt_number, job_id, result, at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![card.terminal, card.trace_number, card.receipt_number, job_id, card.result.to_string(), t],
        )?;
        tx.execute(
            "UPDATE jobs SET step = ?2, result = ?3, updated_at = ?4 WHERE id = ?1",
            params![
                job_id,
                step.as_str(),
                partial_result.to_json().to_string(),
                t
            ],
        )?;
        log_event(&tx, job_id, &t, step.as_str(), None)?;
        tx.commit()?;
        Ok(())
    }

    /// The job a terminal's trace number belongs to, if any.
    pub fn job_for_trace(
        &self,
        terminal: &str,
        trace_number: u32,
    ) -> Result<Option<JobId>, JournalError> {
        Ok(self
            .lock()
            .query_row(
                "SELECT job_id FROM card_transactions WHERE terminal = ?1 AND trace_number = ?2",
                params![terminal, trace_number],
                |r| r.get(0),
            )
            .optional()?
            .flatten())
    }

    /// An approved sale moves on to printing: record the payment in the sale and queue its
    /// receipt (and slip) on the printer, in one transaction. Returns the receipt job's id.
    pub fn queue_sale_receipt(
        &self,
        sale_id: JobId,
        printer: &str,
        receipt: &Receipt,
        slip: Option<&Printout>,
        payment: &CardOutcome,
    ) -> Result<JobId, JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let t = now();
        let insert = |request: JobRequest| -> Result<JobId, JournalError> {
            let kind = request.kind();
            let text = request.to_json().to_string();
            let hash = request_hash(kind, printer, &text);
            tx.execute(
                "INSERT INTO jobs (kind, device, state, request, request_hash, parent_id, created_at, updated_at, owner)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, (SELECT owner FROM jobs WHERE id = ?6))",
                params![kind.as_str(), printer, JobState::Queued.as_str(), text, hash, sale_id, t],
            )?;
            let id = tx.last_insert_rowid();
            log_event(
                &tx,
                id,
                &t,
                JobState::Queued.as_str(),
                Some(&format!("for sale {sale_id}")),
            )?;
            Ok(id)
        };
        let receipt_id = insert(JobRequest::Receipt(receipt.clone()))?;
        let slip_id = slip
            .map(|s| insert(JobRequest::Printout(s.clone())))
            .transpose()?;
        let result = JobResult::Sale(sales::receipt_queued(payment.clone(), receipt_id, slip_id));
        tx.execute(
            "UPDATE jobs SET step = ?2, result = ?3, updated_at = ?4 WHERE id = ?1",
            params![
                sale_id,
                Step::Printing.as_str(),
                result.to_json().to_string(),
                t
            ],
        )?;
        log_event(
            &tx,
            sale_id,
            &t,
            Step::Printing.as_str(),
            Some(&format!("receipt job {receipt_id}")),
        )?;
        tx.commit()?;
        Ok(receipt_id)
    }

    /// Sales still waiting for their receipt since before `older_than` (an RFC 3339 time):
    /// cancel the receipts (and slips) that have not started and put the sales in
    /// `needs_attention` (see [`sales::may_cancel_unprinted`]). Returns the sales settled.
    pub fn expire_sales(&self, older_than: &str) -> Result<Vec<JobId>, JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let mut stmt = tx.prepare(
            "SELECT s.id, r.id FROM jobs s JOIN jobs r ON r.parent_id = s.id AND r.kind = ?1
             WHERE s.kind = ?2 AND s.state = ?3 AND s.step = ?4 AND s.updated_at < ?5",
        )?;
        let pairs: Vec<(JobId, JobId)> = stmt
            .query_map(
                params![
                    JobKind::Receipt.as_str(),
                    JobKind::Sale.as_str(),
                    JobState::Running.as_str(),
                    Step::Printing.as_str(),
                    older_than
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .collect::<Result<_, _>>()?;
        drop(stmt);
        let mut settled = Vec::new();
        for (sale, receipt) in pairs {
            let Some(receipt_job) = Self::get_in(&tx, receipt)? else {
                continue;
            };
            if !sales::may_cancel_unprinted(&receipt_job) {
                continue;
            }
            let error = sales::deadline_missed();
            Self::finish_in(&tx, receipt, JobState::Cancelled, None, Some(&error))?;
            for child in Self::children_in(&tx, sale)? {
                if sales::may_cancel_unprinted(&child) {
                    let t = now();
                    tx.execute(
                        "UPDATE jobs SET state = ?2, updated_at = ?3 WHERE id = ?1",
                        params![child.id, JobState::Cancelled.as_str(), t],
                    )?;
                    log_event(
                        &tx,
                        child.id,
                        &t,
                        JobState::Cancelled.as_str(),
                        Some("the sale's print deadline passed"),
                    )?;
                }
            }
            if let Some(job) = Self::get_in(&tx, receipt)? {
                Self::settle_sale_in(&tx, sale, &job)?;
            }
            settled.push(sale);
        }
        tx.commit()?;
        Ok(settled)
    }

    /// The jobs (receipt, slip) queued for a sale.
    fn children_in(conn: &Connection, sale: JobId) -> Result<Vec<Job>, JournalError> {
        let mut stmt = conn.prepare("SELECT id FROM jobs WHERE parent_id = ?1 ORDER BY id")?;
        let ids: Vec<JobId> = stmt
            .query_map([sale], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        ids.into_iter()
            .filter_map(|id| Self::get_in(conn, id).transpose())
            .collect()
    }

    /// Record that a sale's payment is being reversed by `reversal_job`.
    pub fn note_sale_reversal(
        &self,
        sale_id: JobId,
        reversal_job: JobId,
    ) -> Result<(), JournalError> {
        let mut conn = self.lock();
        let tx = conn.transaction()?;
        let sale = Self::get_in(&tx, sale_id)?.ok_or(JournalError::NotFound(sale_id))?;
        let result = JobResult::Sale(sales::with_reversal(sale.result.as_ref(), reversal_job));
        let t = now();
        tx.execute(
            "UPDATE jobs SET result = ?2, updated_at = ?3 WHERE id = ?1",
            params![sale_id, result.to_json().to_string(), t],
        )?;
        log_event(
            &tx,
            sale_id,
            &t,
            "reversal",
            Some(&format!("reversal job {reversal_job}")),
        )?;
        tx.commit()?;
        Ok(())
    }

    /// A sale's receipt ended: settle the sale as [`sales::settle`] decides.
    pub(super) fn settle_sale_in(
        tx: &Connection,
        sale_id: JobId,
        receipt: &Job,
    ) -> Result<(), JournalError> {
        let Some(sale) = Self::get_in(tx, sale_id)? else {
            return Ok(());
        };
        let Some(s) = sales::settle(&sale, receipt) else {
            return Ok(());
        };
        Self::finish_in(
            tx,
            sale_id,
            s.state,
            Some(&JobResult::Sale(s.result)),
            s.error.as_ref(),
        )
    }
}
