//! The facade's other commands: `nf_printout`, `daily_report`, `eft` and `status` bodies →
//! fiscald's requests, with the same validation as the native API.

use super::NoviError;
use super::mapping::{check_keys, invalid, money, object, renamed, text};
use crate::document::{self, Invalid};
use crate::job::records::JobRequest;
use serde_json::{Value, json};

/// `POST /nf_printout`'s `printout` → a printout job.
pub fn nf_printout(body: &Value) -> Result<JobRequest, NoviError> {
    let root = "printout";
    let o = object(body, root)?;
    check_keys(
        o,
        root,
        &[
            "options",
            "lines",
            "e_document",
            "system_info",
            "device_control",
        ],
        &["e_document"],
    )?;
    let lines = o
        .get("lines")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid("printout.lines", "is required: an array of lines"))?;
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let f = format!("printout.lines[{i}]");
        let t = if let Some(t) = l.pointer("/textline/text").and_then(Value::as_str) {
            t.to_string()
        } else if let Some(t) = l.pointer("/ascii_art/text").and_then(Value::as_str) {
            t.to_string()
        } else {
            match l.pointer("/special_line/type").and_then(Value::as_str) {
                Some("emptyline") => String::new(),
                Some("underline") => "-".repeat(40),
                _ => {
                    return Err(invalid(
                        &f,
                        "only textline, ascii_art, emptyline and underline lines are supported by fiscald's NoviAPI facade",
                    ));
                }
            }
        };
        out.push(json!(t));
    }
    let p = document::printout(&json!({"lines": out}), &[]).map_err(|i| renamed(root, i))?;
    Ok(JobRequest::Printout(p))
}

/// `POST /daily_report`'s `daily_report`: its `date` must be today's (`DD/MM/YYYY`, any of
/// `:/-.` as separators).
pub fn daily_report(body: &Value, today: chrono::NaiveDate) -> Result<JobRequest, NoviError> {
    let o = object(body, "daily_report")?;
    check_keys(
        o,
        "daily_report",
        &["date", "system_info", "device_control"],
        &[],
    )?;
    let date = text(o, "date", "daily_report")?
        .ok_or_else(|| invalid("daily_report.date", "is required, e.g. \"29/05/2023\""))?;
    let norm: String = date
        .chars()
        .map(|c| if ":-.".contains(c) { '/' } else { c })
        .collect();
    let parsed = chrono::NaiveDate::parse_from_str(&norm, "%d/%m/%Y").map_err(|_| {
        invalid(
            "daily_report.date",
            format!("must be DD/MM/YYYY (got {date:?})"),
        )
    })?;
    if parsed != today {
        return Err(invalid(
            "daily_report.date",
            format!(
                "is {} but today is {}; a daily report closes today",
                parsed.format("%d/%m/%Y"),
                today.format("%d/%m/%Y")
            ),
        ));
    }
    Ok(JobRequest::DailyReport)
}

/// The `type` of the stored read that an `eft` `communication_test` is.
pub const EFT_COMMUNICATION_TEST: &str = "eft_communication_test";

/// `POST /eft`'s `eft` → a card payment on the terminal (currency `default_currency`), or
/// `None` for a `communication_test` (answered from the terminal's state when confirmed).
pub fn eft(body: &Value, default_currency: u16) -> Result<Option<JobRequest>, NoviError> {
    let root = "eft";
    let o = object(body, root)?;
    check_keys(
        o,
        root,
        &[
            "operation",
            "document_id",
            "brutto",
            "netto",
            "vat",
            "currency",
            "cashback",
            "max_cashback",
            "additional_info",
        ],
        &["cashback", "max_cashback"],
    )?;
    match text(o, "operation", root)? {
        Some("transaction") => {}
        Some("communication_test") => return Ok(None),
        _ => {
            return Err(invalid(
                "eft.operation",
                "must be transaction or communication_test",
            ));
        }
    }
    let amount = money(
        o.get("brutto")
            .ok_or_else(|| invalid("eft.brutto", "is required"))?,
        "eft.brutto",
    )?;
    let mut native = json!({"type": "sale", "amount": amount});
    if let Some(c) = text(o, "currency", root)? {
        native["currency"] = json!(c);
    }
    if let Some(r) = text(o, "document_id", root)? {
        native["reference"] = json!(r);
    }
    let p = document::card_payment(&native, default_currency, &[]).map_err(|i| {
        renamed(
            root,
            Invalid {
                field: i
                    .field
                    .replace("amount", "brutto")
                    .replace("reference", "document_id"),
                message: i.message,
            },
        )
    })?;
    Ok(Some(JobRequest::Payment(p)))
}

/// `POST /status`'s `status`: its `type`.
pub fn status(body: &Value) -> Result<Value, NoviError> {
    let o = object(body, "status")?;
    check_keys(o, "status", &["type"], &[])?;
    match text(o, "type", "status")? {
        Some(t @ ("fiscal_memory" | "device" | "protected_memory")) => Ok(json!({"type": t})),
        _ => Err(invalid(
            "status.type",
            "must be fiscal_memory, device or protected_memory",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daily_report_is_for_today() {
        let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        assert!(daily_report(&json!({"date": "02/12/2026"}), today).is_ok());
        assert!(daily_report(&json!({"date": "02-12-2026"}), today).is_ok());
        assert!(daily_report(&json!({"date": "01/12/2026"}), today).is_err());
    }
}
