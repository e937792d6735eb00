//! The day at a glance (`GET /v1/today` and the status page's "today" panel): documents
//! printed, totals by VAT letter, card takings, cash in and out, and each printer's daily
//! report. Pure functions over the journal's typed records; money is integer grosze.
//!
//! "Today" is the daemon's local day: the jobs that ended since local midnight, by the
//! journal's clock. A document's own time (`printed_at`) is the printer's clock.

use crate::journal::{Job, JobRequest, JobResult, JobState};
use chrono::{DateTime, Local, NaiveDate, Timelike};
use serde::Serialize;
use std::collections::BTreeMap;

/// Fiscal documents of one kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Documents {
    pub count: u64,
    /// Fiscal totals, in grosze.
    pub total: u64,
    /// Totals by VAT letter.
    pub vat_totals: BTreeMap<String, u64>,
}

impl Documents {
    fn add(&mut self, total: u64, vat: &BTreeMap<String, u64>) {
        self.count += 1;
        self.total += total;
        for (letter, amount) in vat {
            *self.vat_totals.entry(letter.clone()).or_default() += amount;
        }
    }
}

/// Card takings of one terminal (or of all).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Card {
    /// Approved sales, and their sum.
    pub sales: u64,
    pub sales_total: u64,
    /// Approved refunds and reversals, and their sum.
    pub refunds: u64,
    pub refunds_total: u64,
    /// `sales_total − refunds_total` (negative when more was given back).
    pub net: i64,
}

impl Card {
    fn sale(&mut self, amount: u64) {
        self.sales += 1;
        self.sales_total += amount;
        self.net += i64::try_from(amount).unwrap_or(i64::MAX);
    }
    fn refund(&mut self, amount: u64) {
        self.refunds += 1;
        self.refunds_total += amount;
        self.net -= i64::try_from(amount).unwrap_or(i64::MAX);
    }
}

/// Cash operations (in grosze).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Cash {
    pub cash_in: u64,
    pub cash_out: u64,
    pub operations: u64,
}

/// One printer's daily (Z) report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DailyReport {
    pub printer: String,
    /// The last one printed: its number, fiscal day and time (the printer's clock).
    pub last_report_number: Option<u64>,
    pub last_date: Option<String>,
    pub last_printed_at: Option<String>,
    /// Receipts or invoices were printed since the last one: today's report is still to do.
    pub due: bool,
    /// Documents of an earlier day are not closed by a report: the printer refuses sales
    /// until it is printed.
    pub overdue: bool,
}

/// The day at a glance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Today {
    /// The local date, `YYYY-MM-DD`.
    pub date: String,
    pub receipts: Documents,
    pub invoices: Documents,
    /// Receipts and invoices together, by VAT letter.
    pub vat_totals: BTreeMap<String, u64>,
    pub deposits_issued: u64,
    pub deposits_returned: u64,
    pub card: Card,
    pub card_by_terminal: BTreeMap<String, Card>,
    pub cash: Cash,
    /// Documents that failed or need attention today.
    pub failed: u64,
    pub needs_attention: u64,
    /// Receipts and invoices printed in each local hour, 0 to 23.
    pub documents_per_hour: Vec<u64>,
    pub daily_reports: Vec<DailyReport>,
}

/// The local hour of a journal time (RFC 3339 UTC), if it reads.
fn local_hour(at: &str) -> Option<usize> {
    let t = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Local);
    usize::try_from(t.hour()).ok()
}

/// Add one ended job to the day.
fn add(today: &mut Today, job: &Job) {
    match job.state {
        JobState::Failed => today.failed += 1,
        JobState::NeedsAttention => today.needs_attention += 1,
        _ => {}
    }
    let document = match (&job.state, &job.request, &job.result) {
        (JobState::Done, JobRequest::Receipt(r), _) => {
            today.receipts.add(r.total, &r.vat_totals());
            today.deposits_issued += r.deposits_issued();
            today.deposits_returned += r.deposits_returned();
            Some(r.vat_totals())
        }
        (JobState::Done, JobRequest::Invoice(i), _) => {
            today.invoices.add(i.total, &i.vat_totals());
            Some(i.vat_totals())
        }
        (JobState::Done, JobRequest::Cash(c), _) => {
            today.cash.operations += 1;
            if c.deposit {
                today.cash.cash_in += c.amount;
            } else {
                today.cash.cash_out += c.amount;
            }
            None
        }
        (_, JobRequest::Payment(p), Some(result)) => {
            card(today, result, p.kind == "sale");
            None
        }
        // A sale charges the card whatever became of its receipt (which is its own job).
        (_, JobRequest::Sale(_), Some(result)) => {
            card(today, result, true);
            None
        }
        _ => None,
    };
    if let Some(vat) = document {
        for (letter, amount) in vat {
            *today.vat_totals.entry(letter).or_default() += amount;
        }
        if let Some(hour) = local_hour(&job.updated_at) {
            today.documents_per_hour[hour] += 1;
        }
    }
}

/// An approved card outcome: a sale adds to the takings, a refund or reversal takes off.
fn card(today: &mut Today, result: &JobResult, sale: bool) {
    let Some(outcome) = result.card_outcome().filter(|o| o.approved) else {
        return;
    };
    let amount = outcome.amount.unwrap_or(0);
    let by = today
        .card_by_terminal
        .entry(outcome.terminal.clone())
        .or_default();
    if sale {
        by.sale(amount);
        today.card.sale(amount);
    } else {
        by.refund(amount);
        today.card.refund(amount);
    }
}

/// The day of `jobs` (the jobs that ended since local midnight) on `date`.
pub fn summarise(date: NaiveDate, jobs: &[Job], daily_reports: Vec<DailyReport>) -> Today {
    let mut today = Today {
        date: date.to_string(),
        documents_per_hour: vec![0; 24],
        daily_reports,
        ..Today::default()
    };
    for job in jobs.iter().filter(|j| j.state.is_terminal()) {
        add(&mut today, job);
    }
    today
}

/// A printer's daily report state, from its last report job and the time of the first
/// document printed after it (`first_after`, the journal's clock), on `date`.
pub fn daily_report(
    printer: &str,
    last: Option<&Job>,
    first_after: Option<&str>,
    date: NaiveDate,
) -> DailyReport {
    let printed = last.and_then(|j| match &j.result {
        Some(JobResult::DailyReport(r)) => Some(r),
        _ => None,
    });
    let first_day = first_after
        .and_then(|at| DateTime::parse_from_rfc3339(at).ok())
        .map(|t| t.with_timezone(&Local).date_naive());
    DailyReport {
        printer: printer.to_string(),
        last_report_number: printed.map(|r| r.report_number),
        last_date: printed.map(|r| r.date.clone()),
        last_printed_at: printed.map(|r| r.printed_at.clone()),
        due: first_day.is_some(),
        overdue: first_day.is_some_and(|d| d < date),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{CardPayment, CashOperation, Line, Method, Payment, Receipt};
    use crate::journal::{CardOutcome, DailyReportPrinted, JobKind, PaymentResult, SaleResult};

    fn job(id: i64, state: JobState, request: JobRequest, result: Option<JobResult>) -> Job {
        Job {
            id,
            kind: request.kind(),
            device: "fp1".into(),
            state,
            step: None,
            request,
            result,
            error: None,
            counters_before: None,
            parent_id: None,
            attempts: 1,
            created_at: "2026-12-02T09:00:00.000Z".into(),
            updated_at: "2026-12-02T09:30:00.000Z".into(),
            owner: None,
        }
    }

    fn receipt(lines: &[(u64, char)]) -> Receipt {
        let lines: Vec<Line> = lines
            .iter()
            .map(|(amount, vat)| Line {
                name: "x".into(),
                quantity: 1.into(),
                unit_price: *amount,
                amount: *amount,
                vat: *vat,
                unit: None,
                discount: None,
                pkwiu: None,
                code: None,
            })
            .collect();
        let total = lines.iter().map(|l| l.amount).sum();
        Receipt {
            lines,
            payments: vec![Payment {
                method: Method::Cash,
                amount: total,
            }],
            total,
            ..Receipt::default()
        }
    }

    fn approved(amount: u64, terminal: &str) -> CardOutcome {
        CardOutcome {
            approved: true,
            amount: Some(amount),
            terminal: terminal.into(),
            ..CardOutcome::default()
        }
    }

    fn payment(kind: &str, amount: u64) -> JobRequest {
        JobRequest::Payment(CardPayment {
            kind: kind.into(),
            amount,
            currency: 985,
            reference: None,
            original_receipt_number: None,
        })
    }

    #[test]
    fn the_day_adds_up_documents_vat_cards_and_cash() {
        let jobs = vec![
            job(
                1,
                JobState::Done,
                JobRequest::Receipt(receipt(&[(1000, 'A'), (500, 'B')])),
                None,
            ),
            job(
                2,
                JobState::Done,
                JobRequest::Receipt(receipt(&[(250, 'A')])),
                None,
            ),
            job(
                3,
                JobState::Failed,
                JobRequest::Receipt(receipt(&[(99, 'A')])),
                None,
            ),
            job(
                4,
                JobState::Done,
                JobRequest::Cash(CashOperation {
                    deposit: true,
                    amount: 10000,
                }),
                None,
            ),
            job(
                5,
                JobState::Done,
                JobRequest::Cash(CashOperation {
                    deposit: false,
                    amount: 2500,
                }),
                None,
            ),
            job(
                6,
                JobState::Done,
                payment("sale", 1999),
                Some(JobResult::Payment(PaymentResult::Completed(approved(
                    1999, "t1",
                )))),
            ),
            job(
                7,
                JobState::Done,
                payment("refund", 500),
                Some(JobResult::Payment(PaymentResult::Completed(approved(
                    500, "t1",
                )))),
            ),
            // Declined: not takings.
            job(
                8,
                JobState::Failed,
                payment("sale", 700),
                Some(JobResult::Payment(PaymentResult::Recorded {
                    payment: CardOutcome {
                        approved: false,
                        ..approved(700, "t1")
                    },
                })),
            ),
        ];
        let mut sale = job(
            9,
            JobState::NeedsAttention,
            payment("sale", 1),
            Some(JobResult::Sale(SaleResult {
                payment: Some(approved(3000, "t2")),
                ..SaleResult::default()
            })),
        );
        sale.request = JobRequest::Sale(crate::journal::SaleRequest {
            receipt: receipt(&[(3000, 'A')]),
            printer: "fp1".into(),
            payment: crate::journal::SalePayment {
                kind: "sale".into(),
                amount: 3000,
                currency: 985,
            },
        });
        sale.kind = JobKind::Sale;
        let mut all = jobs;
        all.push(sale);
        let date = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let t = summarise(date, &all, vec![]);
        assert_eq!((t.receipts.count, t.receipts.total), (2, 1750));
        assert_eq!(
            t.vat_totals,
            BTreeMap::from([("A".into(), 1250), ("B".into(), 500)])
        );
        assert_eq!(
            (t.cash.cash_in, t.cash.cash_out, t.cash.operations),
            (10000, 2500, 2)
        );
        assert_eq!((t.card.sales, t.card.sales_total), (2, 4999));
        assert_eq!(
            (t.card.refunds, t.card.refunds_total, t.card.net),
            (1, 500, 4499)
        );
        assert_eq!(t.card_by_terminal["t2"].net, 3000);
        assert_eq!((t.failed, t.needs_attention), (2, 1));
        assert_eq!(t.documents_per_hour.iter().sum::<u64>(), 2);
        assert_eq!(t.documents_per_hour.len(), 24);
    }

    #[test]
    fn a_daily_report_is_due_after_sales_and_overdue_from_an_earlier_day() {
        let date = NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        let report = job(
            1,
            JobState::Done,
            JobRequest::DailyReport,
            Some(JobResult::DailyReport(DailyReportPrinted {
                report_number: 41,
                date: "2026-12-01".into(),
                printed_at: "2026-12-01T21:00:00".into(),
                printer: "fp1".into(),
            })),
        );
        let none = daily_report("fp1", Some(&report), None, date);
        assert_eq!(
            (none.due, none.overdue, none.last_report_number),
            (false, false, Some(41))
        );
        // Noon UTC is the same local day in any zone from UTC−11 to UTC+11.
        let due = daily_report("fp1", Some(&report), Some("2026-12-02T12:00:00.000Z"), date);
        assert_eq!((due.due, due.overdue), (true, false));
        let overdue = daily_report("fp1", None, Some("2026-11-28T12:00:00.000Z"), date);
        assert_eq!(
            (overdue.due, overdue.overdue, overdue.last_date),
            (true, true, None)
        );
    }
}
