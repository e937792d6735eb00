//! VAT invoices, periodic reports and copies, as the API accepts them.
//!
//! An invoice is a receipt's lines and payments with a buyer and the shop's own invoice
//! number; its total is computed exactly as a receipt's. Deposits, footer lines and codes
//! are receipt-only (a POSNET invoice cannot carry them).

use super::extras;
use super::{
    Adjustment, Due, Invalid, Line, LineFields, Obj, Payment, PrinterLimits, Result, grosze, lines,
    normalise_nip, payments, printer_text, totalled,
};
use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Most lines on one invoice.
pub const MAX_INVOICE_LINES: usize = 120;
/// Longest invoice number.
pub const MAX_INVOICE_NUMBER_LEN: usize = 40;
/// Most copies printed with an invoice.
pub const MAX_COPIES: u8 = 9;
/// Longest buyer name and address.
pub const MAX_BUYER_TEXT_LEN: usize = 256;

/// An invoice's buyer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceBuyer {
    pub name: String,
    /// The buyer's NIP, 10 digits.
    pub nip: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// A validated VAT invoice, as journaled.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    /// The shop's invoice number (`FV 12/11/2026`).
    pub number: String,
    pub buyer: InvoiceBuyer,
    pub lines: Vec<Line>,
    pub payments: Vec<Payment>,
    /// The fiscal total after every discount and surcharge.
    pub total: u64,
    /// Copies printed after the original.
    pub copies: u8,
    /// Discounts and surcharges on the subtotal, where the printer allows them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub discounts: Vec<Adjustment>,
}

impl Invoice {
    /// Sum of payments.
    pub fn paid(&self) -> u64 {
        self.payments.iter().map(|p| p.amount).sum()
    }
    /// Gross sales per VAT letter, as the printer splits the total.
    pub fn vat_totals(&self) -> std::collections::BTreeMap<String, u64> {
        extras::vat_totals(&self.lines, &self.discounts)
    }
}

/// Validate an invoice body (`POST /v1/invoices`). `allowed_extra` lists keys handled by the
/// caller (e.g. `printer`).
pub fn invoice(
    body: &Value,
    limits: &PrinterLimits<'_>,
    allowed_extra: &[&str],
) -> Result<Invoice> {
    let support = limits.support;
    let mut allowed = vec![
        "number",
        "buyer",
        "lines",
        "payments",
        "discounts",
        "total",
        "copies",
    ];
    allowed.extend_from_slice(allowed_extra);
    for receipt_only in ["deposits", "footer", "barcode", "qr", "buyer_nip"] {
        if body.get(receipt_only).is_some() {
            return Err(Invalid::new(
                receipt_only,
                format!(
                    "is for receipts only: a {} invoice cannot carry it{}",
                    support.protocol,
                    if receipt_only == "buyer_nip" {
                        " (give the buyer as buyer.nip)"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    let obj = Obj::new(body, "", &allowed)?;
    if !support.invoices {
        return Err(Invalid::new(
            "",
            format!("a {} printer cannot print VAT invoices", support.protocol),
        ));
    }
    let number = obj
        .string("number")?
        .ok_or_else(|| Invalid::new("number", "is required (the shop's invoice number)"))?;
    let number = printer_text(number, "number", MAX_INVOICE_NUMBER_LEN, true)?;
    let buyer = buyer(obj.required("buyer")?)?;
    let lines = lines(&obj, limits, MAX_INVOICE_LINES, LineFields::Invoice)?;
    let refused = obj
        .get("discounts")
        .and_then(Value::as_array)
        .is_some_and(|d| !d.is_empty());
    if refused && !support.invoice_subtotal_adjustments {
        return Err(Invalid::new(
            "discounts",
            format!(
                "a {} printer takes no discount or surcharge on an invoice's subtotal; \
                 give them on the lines (lines[].discount)",
                support.protocol
            ),
        ));
    }
    let (total, discounts) = totalled(&obj, &lines, "invoice")?;
    let payments = payments(
        &obj,
        Due {
            total,
            issued: 0,
            returned: 0,
        },
    )?;
    let copies = match obj.get("copies") {
        None => 1,
        Some(v) => grosze(v, "copies", 0)
            .ok()
            .and_then(|c| u8::try_from(c).ok())
            .filter(|c| *c <= MAX_COPIES)
            .ok_or_else(|| {
                Invalid::new(
                    "copies",
                    format!("must be a whole number of copies from 0 to {MAX_COPIES}"),
                )
            })?,
    };
    Ok(Invoice {
        number,
        buyer,
        lines,
        payments,
        total,
        copies,
        discounts,
    })
}

/// The `buyer` object: name, NIP (checked) and an optional address.
fn buyer(v: &Value) -> Result<InvoiceBuyer> {
    let o = Obj::new(v, "buyer", &["name", "nip", "address"])?;
    let name = o
        .string("name")?
        .ok_or_else(|| Invalid::new(o.field("name"), "is required"))?;
    let name = printer_text(name, &o.field("name"), MAX_BUYER_TEXT_LEN, true)?;
    let nip = o
        .string("nip")?
        .ok_or_else(|| Invalid::new(o.field("nip"), "is required"))?;
    let nip = normalise_nip(nip).ok_or_else(|| {
        Invalid::new(
            o.field("nip"),
            "must be a Polish NIP: 10 digits with a valid check digit",
        )
    })?;
    let address = match o.string("address")? {
        Some(a) if !a.trim().is_empty() => Some(printer_text(
            a,
            &o.field("address"),
            MAX_BUYER_TEXT_LEN,
            false,
        )?),
        _ => None,
    };
    Ok(InvoiceBuyer { name, nip, address })
}

/// A validated periodic report request: sales over a range of days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodicReport {
    pub from: NaiveDate,
    pub to: NaiveDate,
    /// A summary report instead of the full one.
    #[serde(default)]
    pub summary: bool,
}

/// A date `YYYY-MM-DD`, exactly.
fn date(v: &Value, field: &str) -> Result<NaiveDate> {
    let s = v
        .as_str()
        .ok_or_else(|| Invalid::new(field, "must be a date string YYYY-MM-DD"))?;
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .filter(|_| s.len() == 10)
        .filter(|d| d.year() >= 2000)
        .ok_or_else(|| {
            Invalid::new(
                field,
                format!("must be a date YYYY-MM-DD from 2000 on (got {s:?})"),
            )
        })
}

/// The first and last day of a month `YYYY-MM`.
fn month(v: &Value) -> Result<(NaiveDate, NaiveDate)> {
    let bad = || Invalid::new("monthly", "must be a month YYYY-MM, e.g. \"2026-11\"");
    let s = v.as_str().ok_or_else(bad)?;
    let (y, m) = s.split_once('-').ok_or_else(bad)?;
    if y.len() != 4 || m.len() != 2 {
        return Err(bad());
    }
    let (y, m): (i32, u32) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let first = NaiveDate::from_ymd_opt(y, m, 1)
        .filter(|d| d.year() >= 2000)
        .ok_or_else(bad)?;
    let next = if m == 12 {
        NaiveDate::from_ymd_opt(y + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(y, m + 1, 1)
    };
    let last = next.and_then(|d| d.pred_opt()).ok_or_else(bad)?;
    Ok((first, last))
}

/// Validate a periodic report body (`POST /v1/reports/periodic`): `from` and `to`, or
/// `monthly` for a whole month; `summary` for the summary report.
pub fn periodic_report(
    body: &Value,
    allowed_extra: &[&str],
    support: &super::DocumentSupport,
) -> Result<PeriodicReport> {
    let mut allowed = vec!["from", "to", "summary", "monthly"];
    allowed.extend_from_slice(allowed_extra);
    let obj = Obj::new(body, "", &allowed)?;
    if !support.periodic_reports {
        return Err(Invalid::new(
            "",
            format!(
                "a {} printer cannot print periodic reports",
                support.protocol
            ),
        ));
    }
    let summary = match obj.get("summary") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(Invalid::new("summary", "must be true or false")),
    };
    let (from, to) = match (obj.get("monthly"), obj.get("from"), obj.get("to")) {
        (Some(m), None, None) => month(m)?,
        (Some(_), _, _) => {
            return Err(Invalid::new(
                "monthly",
                "give either monthly or from and to, not both",
            ));
        }
        (None, Some(f), Some(t)) => (date(f, "from")?, date(t, "to")?),
        (None, None, _) => return Err(Invalid::new("from", "is required (or give monthly)")),
        (None, Some(_), None) => return Err(Invalid::new("to", "is required")),
    };
    if from > to {
        return Err(Invalid::new("to", format!("is {to}, before from ({from})")));
    }
    Ok(PeriodicReport { from, to, summary })
}

/// Which kind of document a copy reprints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopiedDocument {
    Receipt,
    Invoice,
}

impl CopiedDocument {
    /// The API name (`receipt`, `invoice`).
    pub fn as_str(self) -> &'static str {
        match self {
            CopiedDocument::Receipt => "receipt",
            CopiedDocument::Invoice => "invoice",
        }
    }
}

/// A non-fiscal copy of a printed receipt or invoice, from the printer's protected memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DocumentCopy {
    /// The job that printed the original.
    pub of_job: i64,
    pub document: CopiedDocument,
    /// The printer's number of the original (receipt number, or its invoice counter).
    pub number: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::DocumentSupport;
    use serde_json::json;

    const POSNET: DocumentSupport = crate::drivers::posnet::SUPPORT;

    fn limits() -> PrinterLimits<'static> {
        PrinterLimits {
            max_name_length: 40,
            active_vat: Some(&['A', 'B']),
            support: POSNET,
        }
    }

    fn body() -> Value {
        json!({"number": "FV 12/11/2026",
               "buyer": {"name": "Firma Sp. z o.o.", "nip": "526-000-12-46", "address": "ul. Długa 1"},
               "lines": [{"name": "Papier", "quantity": 2, "unit_price": 1250, "vat": "A",
                          "pkwiu": "17.12.14.0", "discount": {"kind": "discount", "percent": "10"}}],
               "payments": [{"method": "transfer", "amount": 2250}]})
    }

    fn field_of(b: Value) -> String {
        invoice(&b, &limits(), &[]).unwrap_err().field
    }

    #[test]
    fn an_invoice_is_checked_and_totalled_like_a_receipt() {
        let i = invoice(&body(), &limits(), &[]).unwrap();
        assert_eq!(i.total, 2250);
        assert_eq!(i.buyer.nip, "5260001246");
        assert_eq!(i.copies, 1);
        assert_eq!(i.lines[0].pkwiu.as_deref(), Some("17.12.14.0"));
    }

    #[test]
    fn each_refusal_names_its_field() {
        let mut b = body();
        b["discounts"] = json!([{"kind": "surcharge", "amount": 100}]);
        assert_eq!(field_of(b), "discounts");
        let mut b = body();
        b["number"] = json!("");
        assert_eq!(field_of(b), "number");
        let mut b = body();
        b["number"] = json!("x".repeat(41));
        assert_eq!(field_of(b), "number");
        let mut b = body();
        b["buyer"]["nip"] = json!("1234567890");
        assert_eq!(field_of(b), "buyer.nip");
        let mut b = body();
        b["buyer"]["name"] = json!(" ");
        assert_eq!(field_of(b), "buyer.name");
        let mut b = body();
        b["copies"] = json!(10);
        assert_eq!(field_of(b), "copies");
        let mut b = body();
        b["deposits"] = json!([]);
        assert_eq!(field_of(b), "deposits");
        let mut b = body();
        let line = b["lines"][0].clone();
        b["lines"] = json!(vec![line; 121]);
        assert_eq!(field_of(b), "lines");
        let mut b = body();
        b["total"] = json!(2500);
        assert_eq!(field_of(b), "total");
        let mut b = body();
        b["lines"][0]["discount"] = json!({"kind": "discount", "amount": 2501});
        assert_eq!(field_of(b), "lines[0].discount");
    }

    #[test]
    fn periodic_reports_by_dates_or_month() {
        let r = periodic_report(&json!({"monthly": "2024-02"}), &[], &POSNET).unwrap();
        assert_eq!(
            (r.from.to_string(), r.to.to_string()),
            ("2024-02-01".into(), "2024-02-29".into())
        );
        let r = periodic_report(
            &json!({"from": "2026-11-01", "to": "2026-11-30", "summary": true}),
            &[],
            &POSNET,
        )
        .unwrap();
        assert!(r.summary);
        for (b, field) in [
            (json!({"from": "2026-11-30", "to": "2026-11-01"}), "to"),
            (json!({"from": "2026-11-1", "to": "2026-11-30"}), "from"),
            (json!({"to": "2026-11-30"}), "from"),
            (json!({"from": "2026-11-01"}), "to"),
            (json!({"monthly": "2026-13"}), "monthly"),
            (
                json!({"monthly": "2026-11", "from": "2026-11-01"}),
                "monthly",
            ),
            (
                json!({"from": "2026-11-01", "to": "2026-11-30", "summary": "yes"}),
                "summary",
            ),
        ] {
            assert_eq!(
                periodic_report(&b, &[], &POSNET).unwrap_err().field,
                field,
                "{b}"
            );
        }
    }
}
