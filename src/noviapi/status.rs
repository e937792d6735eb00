//! The `status` endpoint's answers (`response.status.{device | fiscal_memory |
//! protected_memory}`), built when the request is confirmed from the printer's status (model,
//! firmware, unique number, VAT table) and fiscald's journal (documents since the last daily
//! report, the last report and the last document number). What neither knows is given as 0
//! or an empty string, never invented.

use super::Facade;
use super::mapping::money_text;
use crate::job::records::JobResult;
use crate::journal::{Job, JobState, Journal, JournalError};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What the journal knows for the status answers.
struct Known {
    /// Receipts' and invoices' gross sales per VAT letter since the last daily report.
    receipts: BTreeMap<String, u64>,
    invoices: BTreeMap<String, u64>,
    last_report: Option<(u64, String)>,
    last_document: u64,
}

fn known(j: &Journal, printer: &str) -> Result<Known, JournalError> {
    let last = j.last_daily_report(printer)?;
    let since = last
        .as_ref()
        .map(|r| r.updated_at.clone())
        .unwrap_or_else(|| "0000".into());
    let jobs: Vec<Job> = j
        .ended_since(&since, None)?
        .into_iter()
        .filter(|job| job.device == printer && job.state == JobState::Done)
        .collect();
    let mut k = Known {
        receipts: BTreeMap::new(),
        invoices: BTreeMap::new(),
        last_report: None,
        last_document: 0,
    };
    for job in &jobs {
        match &job.result {
            Some(JobResult::Receipt(r)) => {
                for (letter, v) in r.vat_totals.iter() {
                    *k.receipts.entry(letter.clone()).or_default() += v;
                }
            }
            Some(JobResult::Invoice(i)) => {
                for (letter, v) in &i.vat_totals {
                    *k.invoices.entry(letter.clone()).or_default() += v;
                }
            }
            _ => {}
        }
    }
    if let Some(Job {
        result: Some(JobResult::DailyReport(d)),
        ..
    }) = &last
    {
        k.last_report = Some((d.report_number, d.printed_at.clone()));
    }
    // The last receipt's number: the newest done receipt on this printer.
    k.last_document = j
        .list(Some(JobState::Done), 200, None)?
        .iter()
        .filter(|job| job.device == printer)
        .find_map(|job| match &job.result {
            Some(JobResult::Receipt(r)) => Some(r.receipt_number),
            _ => None,
        })
        .unwrap_or(0);
    Ok(k)
}

/// A printer clock value (`YYYY-MM-DDTHH:MM:SS`, local) as a timezone-qualified date.
fn local_datetime(s: &str) -> String {
    use chrono::TimeZone;
    chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S")
        .ok()
        .and_then(|n| chrono::Local.from_local_datetime(&n).single())
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, false))
        .unwrap_or_else(|| "1970-01-01T00:00:00+00:00".into())
}

/// The answer to a confirmed `status` of `kind`.
pub(super) async fn answer(f: &Facade, kind: &str) -> Result<Value, JournalError> {
    let printer = f.printer.clone();
    let k = f.app.journal.run(move |j| known(j, &printer)).await?;
    let s = f
        .app
        .printers
        .get(&f.printer)
        .map(|p| p.status())
        .ok_or_else(|| JournalError::Commit(format!("no printer {}", f.printer)))?;
    let status = match kind {
        "device" => {
            let vat = s.vat.unwrap_or_default();
            let tax_rates: Vec<Value> = vat
                .iter()
                .filter(|v| v.active)
                .map(|v| {
                    json!({"name": v.letter.to_string(),
                           "value": if v.exempt { "zw".to_string() } else { v.rate.clone().unwrap_or_default() }})
                })
                .collect();
            let totals: Vec<Value> = vat
                .iter()
                .filter(|v| v.active)
                .map(|v| {
                    let l = v.letter.to_string();
                    json!({"tax_rate": l,
                           "receipt": money_text(k.receipts.get(&l).copied().unwrap_or(0)),
                           "invoice": money_text(k.invoices.get(&l).copied().unwrap_or(0))})
                })
                .collect();
            json!({"device": {
                "name": s.model.unwrap_or_else(|| "fiscald".into()),
                "version": s.firmware.unwrap_or_default(),
                "characters_per_line": 40,
                "tax_rates": tax_rates,
                "totals": totals,
            }})
        }
        "fiscal_memory" => {
            let (count, last) = k.last_report.unwrap_or((0, String::new()));
            json!({"fiscal_memory": {
                "unique_number": unique_number(s.serial_number.as_deref()),
                "tax_id": "",
                "size": 0,
                "max_daily_reports": 0,
                "daily_reports_count": count,
                "last_daily_report_date": local_datetime(&last),
                "start_fiscal_date": local_datetime(""),
            }})
        }
        _ => json!({"protected_memory": {
            "number": k.last_document,
            "label": "",
            "last_jpkid": k.last_document.to_string(),
            "size": 0,
            "free": 0,
        }}),
    };
    Ok(json!({ "status": status }))
}

/// NoviAPI's unique number is 13 characters: the printer's, padded with spaces on the
/// right or cut.
fn unique_number(serial: Option<&str>) -> String {
    let s: String = serial.unwrap_or("").chars().take(13).collect();
    format!("{s:<13}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_unique_number_has_13_characters() {
        assert_eq!(super::unique_number(Some("ABC 12345678")), "ABC 12345678 ");
        assert_eq!(super::unique_number(None).len(), 13);
        assert!(super::local_datetime("2026-12-02T10:11:12").starts_with("2026-12-02T10:11:12"));
    }
}
