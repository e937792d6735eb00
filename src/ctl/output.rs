//! What `fiscald ctl` shows people: tables of devices and jobs, a job's outcome in a few
//! words, its details, and a progress line on a terminal. All of it reads the API's
//! shared types ([`crate::api::types`]).

use super::{EXIT_JOB_FAILED, EXIT_OK, EXIT_PENDING, format_grosze};
use crate::api::types::{DeviceView, JobView, to_json};
use crate::journal::{CardOutcome, JobResult, JobState};
use std::io::Write;

/// The exit code for a job in `state`; `waited`: the caller waited for it to end.
pub(super) fn job_exit(state: JobState, waited: bool) -> u8 {
    match state {
        JobState::Done => EXIT_OK,
        JobState::Queued | JobState::Running if waited => EXIT_PENDING,
        JobState::Queued | JobState::Running => EXIT_OK,
        _ => EXIT_JOB_FAILED,
    }
}

/// A text cell: `-` for nothing.
pub(super) fn cell(s: Option<&str>) -> String {
    match s {
        None | Some("") => "-".into(),
        Some(s) => s.to_string(),
    }
}

/// A card payment in a few words: `approved 39.90, terminal receipt no. 12`.
fn card_words(p: &CardOutcome) -> String {
    let mut s = String::from(if p.approved { "approved" } else { "declined" });
    if let Some(a) = p.amount {
        s.push_str(&format!(" {}", format_grosze(a)));
    }
    if let Some(n) = p.terminal_receipt_number {
        s.push_str(&format!(", terminal receipt no. {n}"));
    }
    s
}

/// The parts of a result worth a word, in the order they are shown.
fn result_words(r: &JobResult) -> Vec<String> {
    match r {
        JobResult::Receipt(p) => vec![
            format!("receipt no. {}", p.receipt_number),
            format!("total {}", format_grosze(p.total)),
        ],
        JobResult::DailyReport(p) => vec![
            format!("report no. {}", p.report_number),
            format!("date {}", p.date),
        ],
        JobResult::Printout(p) => vec![format!("printout no. {}", p.printout_number)],
        JobResult::Payment(p) => vec![card_words(p.outcome())],
        JobResult::EndOfDay(e) => e
            .total
            .map(|t| format!("total {}", format_grosze(t)))
            .into_iter()
            .collect(),
        JobResult::Sale(s) => s
            .payment
            .as_ref()
            .map(card_words)
            .into_iter()
            .chain(s.receipt_job.map(|j| format!("receipt job {j}")))
            .collect(),
        JobResult::Invoice(i) => vec![
            format!("invoice {}", i.invoice_number),
            format!("printer's invoice no. {}", i.document_number),
            format!("total {}", format_grosze(i.total)),
        ],
        JobResult::PeriodicReport(p) => vec![
            format!("periodic report {} to {}", p.from, p.to),
            format!("printout no. {}", p.printout_number),
        ],
        JobResult::Copy(c) => vec![
            format!("copy of {} no. {}", c.document, c.document_number),
            format!("printout no. {}", c.printout_number),
        ],
    }
}

/// A job's outcome in a few words.
pub(super) fn outcome(job: &JobView) -> String {
    if let Some(e) = &job.error {
        let mut s = format!("{}: {}", e.category, e.message);
        if let Some(d) = e.device_code {
            s.push_str(&format!(" (device code {d})"));
        }
        return s;
    }
    let Some(r) = &job.result else {
        return "-".into();
    };
    let parts = result_words(r);
    if !parts.is_empty() {
        return parts.join(", ");
    }
    let s = to_json(r).to_string();
    if s.chars().count() > 80 {
        format!("{}…", s.chars().take(79).collect::<String>())
    } else {
        s
    }
}

/// Left-aligned columns; the last column is not padded.
pub(super) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                let pad = widths[i] - c.chars().count() + 2;
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(header.to_vec())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

/// The devices: id, kind, state, model (a terminal's id for terminals), queue, last error.
pub(super) fn devices_table(devices: &[DeviceView]) -> String {
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            let model = match d {
                DeviceView::FiscalPrinter(p) => cell(p.model.as_deref()),
                DeviceView::PaymentTerminal(t) => t
                    .terminal_id
                    .as_ref()
                    .map_or_else(|| "-".into(), |tid| format!("TID {tid}")),
            };
            vec![
                cell(Some(d.id())),
                d.kind().to_string(),
                d.state().as_str().to_string(),
                model,
                d.queue_depth().to_string(),
                cell(d.last_error()),
            ]
        })
        .collect();
    table(
        &["ID", "KIND", "STATE", "MODEL", "QUEUE", "LAST_ERROR"],
        &rows,
    )
}

/// `2026-11-26T10:15:00.123Z` → `2026-11-26 10:15:00Z`.
fn short_time(s: &str) -> String {
    let s = cell(Some(s));
    match (s.get(..10), s.get(11..19)) {
        (Some(d), Some(t)) if s.len() > 19 => {
            let zone = if s.ends_with('Z') { "Z" } else { "" };
            format!("{d} {t}{zone}")
        }
        _ => s,
    }
}

/// Jobs, one a line.
pub(super) fn jobs_table(jobs: &[JobView]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                j.id.to_string(),
                j.kind.as_str().to_string(),
                cell(Some(&j.device)),
                j.state.as_str().to_string(),
                short_time(&j.updated_at),
                outcome(j),
            ]
        })
        .collect();
    table(
        &["ID", "KIND", "DEVICE", "STATE", "UPDATED", "RESULT/ERROR"],
        &rows,
    )
}

/// One line about a job.
pub(super) fn job_summary(job: &JobView) -> String {
    format!(
        "job {} ({} on {}): {}: {}",
        job.id,
        job.kind.as_str(),
        cell(Some(&job.device)),
        job.state.as_str(),
        outcome(job)
    )
}

/// A job, one field a line.
pub(super) fn job_details(job: &JobView) -> String {
    let mut rows = vec![
        ("job", job.id.to_string()),
        ("kind", job.kind.as_str().to_string()),
        ("device", cell(Some(&job.device))),
        ("state", job.state.as_str().to_string()),
        ("created", short_time(&job.created_at)),
        ("updated", short_time(&job.updated_at)),
        ("attempts", job.attempts.to_string()),
    ];
    if let Some(sale) = job.sale {
        rows.push(("sale", sale.to_string()));
    }
    rows.push(("outcome", outcome(job)));
    if let Some(r) = &job.result {
        rows.push(("result", to_json(r).to_string()));
    }
    if let Some(e) = &job.error {
        rows.push(("error", to_json(e).to_string()));
    }
    rows.iter()
        .map(|(k, v)| format!("{k:<9} {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A progress line on stderr, rewritten in place.
pub(super) struct Progress {
    pub(super) on: bool,
    pub(super) shown: bool,
}

impl Progress {
    /// Show `line` in place of the last one (on a terminal only).
    pub(super) fn show(&mut self, line: &str) {
        if self.on {
            // One screen line, or `\r` would no longer rewrite it in place.
            let width = std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(80)
                .max(20);
            let line: String = line.chars().take(width - 1).collect();
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K{line}");
            let _ = e.flush();
            self.shown = true;
        }
    }

    /// Remove the line.
    pub(super) fn clear(&mut self) {
        if self.shown {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K");
            let _ = e.flush();
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::{DeviceError, ErrorCategory};
    use crate::journal::{JobKind, ReceiptPrinted};

    fn job(state: JobState, result: Option<JobResult>, error: Option<DeviceError>) -> JobView {
        JobView {
            id: 7,
            kind: JobKind::Receipt,
            device: "fp1".into(),
            printer: Some("fp1".into()),
            terminal: None,
            sale: None,
            owner: None,
            state,
            created_at: String::new(),
            updated_at: String::new(),
            attempts: 1,
            result,
            error,
        }
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["ID", "STATE"],
            &[
                vec!["fp1".into(), "ready".into()],
                vec!["ż".into(), "-".into()],
            ],
        );
        assert_eq!(t, "ID   STATE\nfp1  ready\nż    -");
    }

    #[test]
    fn outcomes() {
        let printed = ReceiptPrinted {
            receipt_number: 12,
            total: 675,
            printed_at: "2026-11-26T10:15:00".into(),
            printer: "fp1".into(),
            printer_serial_number: None,
            ..Default::default()
        };
        let done = job(JobState::Done, Some(JobResult::Receipt(printed)), None);
        assert_eq!(outcome(&done), "receipt no. 12, total 6.75");
        let error = DeviceError::new(ErrorCategory::PaperOut, "no paper", Some(3));
        let failed = job(JobState::Failed, None, Some(error));
        assert_eq!(outcome(&failed), "paper_out: no paper (device code 3)");
        assert_eq!(job_exit(failed.state, true), EXIT_JOB_FAILED);
        assert_eq!(job_exit(JobState::Running, true), EXIT_PENDING);
        assert_eq!(job_exit(JobState::Queued, false), EXIT_OK);
    }
}
