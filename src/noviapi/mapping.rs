//! NoviAPI request bodies → the native API's bodies, then validated by
//! [`crate::document`] with the same rules (and messages) as the native API. A native
//! field name in a message is renamed to the NoviAPI field it came from.
//!
//! Money in NoviAPI is a decimal string with at most 2 places (`"12.50"`); it becomes
//! integer grosze here, parsed from its text, never through a float.

use super::NoviError;
use crate::document::{self, Invalid, PrinterLimits};
use crate::job::records::JobRequest;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};

pub use super::commands::{EFT_COMMUNICATION_TEST, daily_report, eft, nf_printout, status};

/// What a facade endpoint is, and the JSON root key of its body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Receipt,
    Invoice,
    NfPrintout,
    DailyReport,
    Eft,
    Status,
}

/// The endpoints the facade answers with "not supported".
pub const UNSUPPORTED: &[&str] = &["direct_io", "graphic", "configuration", "lock"];

impl Endpoint {
    pub fn parse(s: &str) -> Option<Endpoint> {
        Some(match s {
            "receipt" => Endpoint::Receipt,
            "invoice" => Endpoint::Invoice,
            "nf_printout" => Endpoint::NfPrintout,
            "daily_report" => Endpoint::DailyReport,
            "eft" => Endpoint::Eft,
            "status" => Endpoint::Status,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::Receipt => "receipt",
            Endpoint::Invoice => "invoice",
            Endpoint::NfPrintout => "nf_printout",
            Endpoint::DailyReport => "daily_report",
            Endpoint::Eft => "eft",
            Endpoint::Status => "status",
        }
    }
    /// The body's root key.
    pub fn root(self) -> &'static str {
        match self {
            Endpoint::NfPrintout => "printout",
            other => other.as_str(),
        }
    }
    /// The native route whose access rule applies (method, route).
    pub fn native_rule(self) -> (&'static str, &'static str) {
        match self {
            Endpoint::Receipt => ("POST", "/v1/receipts"),
            Endpoint::Invoice => ("POST", "/v1/invoices"),
            Endpoint::NfPrintout => ("POST", "/v1/printouts"),
            Endpoint::DailyReport => ("POST", "/v1/reports/daily"),
            Endpoint::Eft => ("POST", "/v1/payments"),
            Endpoint::Status => ("GET", "/v1/devices"),
        }
    }
}

/// A validation failure at `field` (a NoviAPI path).
pub(super) fn invalid(field: &str, message: impl std::fmt::Display) -> NoviError {
    NoviError::validation(format!("{field}: {message}"))
}

/// A native validation failure, with the field renamed to the NoviAPI path under `root`.
pub(super) fn renamed(root: &str, i: Invalid) -> NoviError {
    // The native API counts money in grosze; its messages say so by the numbers alone.
    let money = [
        "total",
        "payments",
        "unit_price",
        "discount",
        "amount",
        "lines",
    ]
    .iter()
    .any(|k| i.field.contains(k))
        && !["quantity", "vat", "name", "unit"]
            .iter()
            .any(|k| i.field.ends_with(k))
        && i.message.bytes().any(|b| b.is_ascii_digit());
    let note = if money {
        " (amounts in grosze: 1250 is 12.50)"
    } else {
        ""
    };
    invalid(
        &format!("{root}.{}", native_to_novi(&i.field)),
        format!("{}{note}", i.message),
    )
}

/// `lines[2].unit_price` → `items[2].article.price`, and so on.
fn native_to_novi(field: &str) -> String {
    let mut out = Vec::new();
    for part in field.split('.') {
        let p = if let Some(rest) = part.strip_prefix("lines") {
            format!("items{rest}.article")
        } else if let Some(rest) = part.strip_prefix("discounts") {
            let _ = rest;
            "summary.discount_markup".to_string()
        } else {
            match part {
                "unit_price" => "price".into(),
                "vat" => "ptu".into(),
                "discount" => "discount_markup".into(),
                "total" if out.is_empty() => "summary.total".into(),
                "buyer_nip" => "buyer.nip".into(),
                "footer" => "system_info".into(),
                "amount" => "value".into(),
                "method" => "(payment kind)".into(),
                p => p.into(),
            }
        };
        out.push(p);
    }
    out.join(".")
}

/// An object's member, checked to be an object.
pub(super) fn object<'a>(v: &'a Value, field: &str) -> Result<&'a Map<String, Value>, NoviError> {
    v.as_object()
        .ok_or_else(|| invalid(field, "must be a JSON object"))
}

/// Keys of `o` must be in `known` (NoviAPI's model); `unsupported` ones are refused by name.
pub(super) fn check_keys(
    o: &Map<String, Value>,
    field: &str,
    known: &[&str],
    unsupported: &[&str],
) -> Result<(), NoviError> {
    for k in o.keys() {
        if unsupported.contains(&k.as_str()) {
            return Err(invalid(
                &format!("{field}.{k}"),
                "is not supported by fiscald's NoviAPI facade",
            ));
        }
        if !known.contains(&k.as_str()) {
            return Err(invalid(
                &format!("{field}.{k}"),
                format!("unknown field; expected one of: {}", known.join(", ")),
            ));
        }
    }
    Ok(())
}

/// NoviAPI money (a decimal string with at most 2 places, or a JSON number) → grosze.
pub fn money(v: &Value, field: &str) -> Result<u64, NoviError> {
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err(invalid(field, "must be an amount such as \"12.50\"")),
    };
    let bad = || {
        invalid(
            field,
            format!(
                "must be an amount with at most 2 decimal places, such as \"12.50\" (got {text:?})"
            ),
        )
    };
    let (int, frac) = text.split_once('.').unwrap_or((&text, ""));
    if int.is_empty()
        || int.len() > 12
        || frac.len() > 2
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let d: Decimal = text.parse().map_err(|_| bad())?;
    u64::try_from((d * Decimal::ONE_HUNDRED).trunc()).map_err(|_| bad())
}

/// Grosze → NoviAPI money (`"12.50"`).
pub fn money_text(grosze: u64) -> String {
    format!("{}.{:02}", grosze / 100, grosze % 100)
}

/// A NoviAPI quantity (up to 6 places) as the native API's decimal string.
fn quantity(v: &Value, field: &str) -> Result<Value, NoviError> {
    let text = match v {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        _ => return Err(invalid(field, "must be a quantity such as \"1.5\"")),
    };
    let t = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    Ok(Value::String(t))
}

pub(super) fn text<'a>(
    o: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a str>, NoviError> {
    match o.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(&format!("{field}.{key}"), "must be a string")),
    }
}

/// A NoviAPI `discount_markup` → a native adjustment.
fn discount(v: &Value, field: &str) -> Result<Value, NoviError> {
    let o = object(v, field)?;
    check_keys(o, field, &["type", "name", "value"], &[])?;
    let kind = text(o, "type", field)?.unwrap_or("");
    let value = o
        .get("value")
        .ok_or_else(|| invalid(&format!("{field}.value"), "is required"))?;
    let (native_kind, percent) = match kind {
        "percent_discount" => ("discount", true),
        "percent_markup" => ("surcharge", true),
        "value_discount" => ("discount", false),
        "value_markup" => ("surcharge", false),
        other => {
            return Err(invalid(
                &format!("{field}.type"),
                format!(
                    "must be percent_discount, percent_markup, value_discount or value_markup (got {other:?})"
                ),
            ));
        }
    };
    let mut d = json!({"kind": native_kind});
    if percent {
        let g = money(value, &format!("{field}.value"))?;
        d["percent"] = json!(money_text(g));
    } else {
        d["amount"] = json!(money(value, &format!("{field}.value"))?);
    }
    if let Some(n) = text(o, "name", field)? {
        d["name"] = json!(n);
    }
    Ok(d)
}

/// NoviAPI payment kinds → native methods.
fn payment_method(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "cash" => "cash",
        "card" => "card",
        "cheque" => "cheque",
        "coupon" | "voucher" => "voucher",
        "other" => "other",
        "credit" => "credit",
        "account" | "transfer" => "transfer",
        "mobile" => "mobile",
        _ => return None,
    })
}

/// The parts a receipt and an invoice share: items → lines, payments, summary. Returns
/// the native body (lines, payments, total, discounts) and the values the POS stated.
fn sale_body(
    o: &Map<String, Value>,
    root: &str,
) -> Result<(Map<String, Value>, Checks), NoviError> {
    let items = o
        .get("items")
        .and_then(Value::as_array)
        .ok_or_else(|| invalid(&format!("{root}.items"), "is required: an array of items"))?;
    let mut lines = Vec::new();
    let mut deposits = Vec::new();
    let mut stated = Vec::new();
    let mut places = ItemPlaces::default();
    for (i, item) in items.iter().enumerate() {
        let f = format!("{root}.items[{i}]");
        let io = object(item, &f)?;
        check_keys(
            io,
            &f,
            &["article", "container", "container_return"],
            &["advance", "advance_return"],
        )?;
        if io.len() != 1 {
            return Err(invalid(
                &f,
                "must hold exactly one of article, container, container_return",
            ));
        }
        if let Some((kind, c)) = io.iter().find(|(k, _)| k.starts_with("container")) {
            let kind = if kind == "container" {
                "container"
            } else {
                "container_return"
            };
            deposits.push(container(c, &format!("{f}.{kind}"), kind != "container")?);
            places.deposits.push((i, kind));
            continue;
        }
        let f = format!("{f}.article");
        let a = object(
            io.get("article")
                .ok_or_else(|| invalid(&f, "is required"))?,
            &f,
        )?;
        check_keys(
            a,
            &f,
            &[
                "name",
                "ptu",
                "quantity",
                "price",
                "value",
                "unit",
                "discount_markup",
                "code",
                "description",
            ],
            &[],
        )?;
        let req = |k: &str| {
            a.get(k)
                .ok_or_else(|| invalid(&format!("{f}.{k}"), "is required"))
        };
        let mut line = json!({
            "name": req("name")?,
            "vat": req("ptu")?,
            "quantity": quantity(req("quantity")?, &format!("{f}.quantity"))?,
            "unit_price": money(req("price")?, &format!("{f}.price"))?,
        });
        if let Some(u) = a.get("unit") {
            line["unit"] = u.clone();
        }
        if let Some(d) = a.get("discount_markup") {
            line["discount"] = discount(d, &format!("{f}.discount_markup"))?;
        }
        stated.push(money(req("value")?, &format!("{f}.value"))?);
        places.lines.push(i);
        lines.push(line);
    }
    let summary_f = format!("{root}.summary");
    let summary = object(
        o.get("summary")
            .ok_or_else(|| invalid(&summary_f, "is required"))?,
        &summary_f,
    )?;
    check_keys(
        summary,
        &summary_f,
        &["discount_markup", "total", "pay_in", "change"],
        &[],
    )?;
    let total = money(
        summary
            .get("total")
            .ok_or_else(|| invalid(&format!("{summary_f}.total"), "is required"))?,
        &format!("{summary_f}.total"),
    )?;
    let pay_in = money(
        summary
            .get("pay_in")
            .ok_or_else(|| invalid(&format!("{summary_f}.pay_in"), "is required"))?,
        &format!("{summary_f}.pay_in"),
    )?;
    let change = summary
        .get("change")
        .map(|c| money(c, &format!("{summary_f}.change")))
        .transpose()?;
    let mut body = Map::new();
    body.insert("lines".into(), Value::Array(lines));
    if !deposits.is_empty() {
        body.insert("deposits".into(), Value::Array(deposits));
    }
    body.insert("total".into(), json!(total));
    if let Some(d) = summary.get("discount_markup") {
        body.insert(
            "discounts".into(),
            json!([discount(d, &format!("{summary_f}.discount_markup"))?]),
        );
    }
    let payments = match o.get("payments") {
        None | Some(Value::Null) => vec![json!({"method": "cash", "amount": pay_in})],
        Some(Value::Array(ps)) => {
            let mut out = Vec::new();
            for (i, p) in ps.iter().enumerate() {
                let f = format!("{root}.payments[{i}]");
                let po = object(p, &f)?;
                if po.len() != 1 {
                    return Err(invalid(&f, "must hold exactly one payment kind"));
                }
                let (kind, v) = po.iter().next().expect("one member");
                let method = payment_method(kind).ok_or_else(|| {
                    if kind == "currency" {
                        invalid(&format!("{f}.currency"), "foreign-currency payments are not supported by fiscald's NoviAPI facade")
                    } else {
                        invalid(&format!("{f}.{kind}"), "unknown payment kind")
                    }
                })?;
                let vo = object(v, &format!("{f}.{kind}"))?;
                check_keys(vo, &format!("{f}.{kind}"), &["name", "value"], &[])?;
                let value = money(
                    vo.get("value")
                        .ok_or_else(|| invalid(&format!("{f}.{kind}.value"), "is required"))?,
                    &format!("{f}.{kind}.value"),
                )?;
                out.push(json!({"method": method, "amount": value}));
            }
            let sum: u64 = out.iter().filter_map(|p| p["amount"].as_u64()).sum();
            if sum != pay_in {
                return Err(invalid(
                    &format!("{summary_f}.pay_in"),
                    format!(
                        "is {} but the payments add up to {}",
                        money_text(pay_in),
                        money_text(sum)
                    ),
                ));
            }
            out
        }
        Some(_) => return Err(invalid(&format!("{root}.payments"), "must be an array")),
    };
    body.insert("payments".into(), Value::Array(payments));
    Ok((
        body,
        Checks {
            stated,
            change,
            root: root.to_string(),
            places,
        },
    ))
}

/// A NoviAPI `container` or `container_return` item → a native deposit line (outside the
/// fiscal total). `value` is read as the line's value (like an article's `value`), so the
/// unit price is `value / quantity` and must come out in whole grosze; `number` is the
/// packaging's id in the printer and is required (fiscald does not guess one).
fn container(v: &Value, field: &str, returned: bool) -> Result<Value, NoviError> {
    let o = object(v, field)?;
    check_keys(o, field, &["name", "number", "quantity", "value"], &[])?;
    let number = match o.get("number") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n <= 9999) => n.to_string(),
        Some(other) => {
            return Err(invalid(
                &format!("{field}.number"),
                format!("must be the packaging's id, 0 to 9999 (got {other})"),
            ));
        }
        None => {
            return Err(invalid(
                &format!("{field}.number"),
                "is required by fiscald: the packaging's id in the printer's deposit table",
            ));
        }
    };
    let value = money(
        o.get("value")
            .ok_or_else(|| invalid(&format!("{field}.value"), "is required"))?,
        &format!("{field}.value"),
    )?;
    let pieces = match o.get("quantity") {
        None | Some(Value::Null) => 1,
        Some(q) => {
            let hundredths = money(q, &format!("{field}.quantity"))?;
            if hundredths % 100 != 0 || !(100..=999_900).contains(&hundredths) {
                return Err(invalid(
                    &format!("{field}.quantity"),
                    "must be a whole number of pieces, 1 to 9999",
                ));
            }
            hundredths / 100
        }
    };
    if value % pieces != 0 {
        return Err(invalid(
            &format!("{field}.value"),
            format!(
                "is {} for {pieces} pieces, which is not a whole number of grosze per piece",
                money_text(value)
            ),
        ));
    }
    let mut d = json!({
        "code": number,
        "unit_price": value / pieces,
        "quantity": pieces,
        "returned": returned,
    });
    if let Some(n) = text(o, "name", field)? {
        d["name"] = json!(n);
    }
    Ok(d)
}

/// Which NoviAPI item each native line and deposit came from, so that a native message
/// names the item the POS sent.
#[derive(Default)]
struct ItemPlaces {
    /// Item index of each native line.
    lines: Vec<usize>,
    /// Item index and kind (`container` or `container_return`) of each native deposit.
    deposits: Vec<(usize, &'static str)>,
}

/// Values the POS stated that fiscald computes itself; they must agree.
struct Checks {
    stated: Vec<u64>,
    change: Option<u64>,
    root: String,
    places: ItemPlaces,
}

impl Checks {
    /// A native validation failure renamed to the NoviAPI item it came from.
    fn renamed(&self, i: Invalid) -> NoviError {
        let index = |rest: &str| -> Option<(usize, String)> {
            let (n, tail) = rest.strip_prefix('[')?.split_once(']')?;
            Some((n.parse().ok()?, tail.to_string()))
        };
        if let Some((n, tail)) = i.field.strip_prefix("deposits").and_then(index)
            && let Some((item, kind)) = self.places.deposits.get(n)
        {
            let tail = tail
                .replace(".unit_price", ".value")
                .replace(".code", ".number");
            return invalid(
                &format!("{}.items[{item}].{kind}{tail}", self.root),
                i.message,
            );
        }
        if i.field == "deposits"
            && let Some((item, kind)) = self.places.deposits.first()
        {
            return invalid(&format!("{}.items[{item}].{kind}", self.root), i.message);
        }
        let field = match i.field.strip_prefix("lines").and_then(index) {
            Some((n, tail)) => match self.places.lines.get(n) {
                Some(item) => format!("lines[{item}]{tail}"),
                None => i.field.clone(),
            },
            None => i.field.clone(),
        };
        renamed(
            &self.root,
            Invalid {
                field,
                message: i.message,
            },
        )
    }

    fn against(&self, lines: &[document::Line], change: u64) -> Result<(), NoviError> {
        for (n, (l, v)) in lines.iter().zip(&self.stated).enumerate() {
            let i = self.places.lines.get(n).copied().unwrap_or(n);
            if *v != l.amount && *v != l.value() {
                return Err(invalid(
                    &format!("{}.items[{i}].article.value", self.root),
                    format!(
                        "is {} but quantity × price comes to {}",
                        money_text(*v),
                        money_text(l.amount)
                    ),
                ));
            }
        }
        if let Some(c) = self.change
            && c != change
        {
            return Err(invalid(
                &format!("{}.summary.change", self.root),
                format!(
                    "is {} but the change comes to {}",
                    money_text(c),
                    money_text(change)
                ),
            ));
        }
        Ok(())
    }
}

/// Footer lines from `system_info` and `printout_lines` (text only).
fn footer(
    o: &Map<String, Value>,
    root: &str,
    native: &mut Map<String, Value>,
) -> Result<(), NoviError> {
    let mut footer = Vec::new();
    if let Some(si) = o.get("system_info") {
        let f = format!("{root}.system_info");
        let si = object(si, &f)?;
        check_keys(
            si,
            &f,
            &["cashier_name", "cash_number", "system_number", "qr_code"],
            &["qr_code"],
        )?;
        if let Some(c) = text(si, "cashier_name", &f)? {
            footer.push(json!(format!("Kasjer: {c}")));
        }
        if let Some(c) = text(si, "cash_number", &f)? {
            footer.push(json!(format!("Kasa: {c}")));
        }
        if let Some(sn) = si.get("system_number") {
            let sf = format!("{f}.system_number");
            let sn = object(sn, &sf)?;
            check_keys(sn, &sf, &["print_as", "value"], &[])?;
            let value = text(sn, "value", &sf)?
                .ok_or_else(|| invalid(&format!("{sf}.value"), "is required"))?;
            match text(sn, "print_as", &sf)?.unwrap_or("text") {
                "barcode" => {
                    native.insert("barcode".into(), json!(value));
                }
                "qrcode" => {
                    native.insert("qr".into(), json!(value));
                }
                _ => footer.push(json!(format!("Nr sys.: {value}"))),
            }
        }
    }
    if let Some(Value::Array(lines)) = o.get("printout_lines") {
        for (i, l) in lines.iter().enumerate() {
            if let Some(t) = l.pointer("/textline/text").and_then(Value::as_str) {
                footer.push(json!(t));
            } else {
                return Err(invalid(
                    &format!("{root}.printout_lines[{i}]"),
                    "only textline lines are supported by fiscald's NoviAPI facade",
                ));
            }
        }
    }
    if !footer.is_empty() {
        native.insert("footer".into(), Value::Array(footer));
    }
    Ok(())
}

/// `POST /receipt`'s `receipt` → a receipt job.
pub fn receipt(body: &Value, limits: &PrinterLimits<'_>) -> Result<JobRequest, NoviError> {
    let root = "receipt";
    let o = object(body, root)?;
    check_keys(
        o,
        root,
        &[
            "items",
            "payments",
            "summary",
            "printout_lines",
            "buyer",
            "system_info",
            "device_control",
        ],
        &[],
    )?;
    let (mut native, checks) = sale_body(o, root)?;
    if let Some(b) = o.get("buyer") {
        let bo = object(b, "receipt.buyer")?;
        check_keys(bo, "receipt.buyer", &["nip"], &["e_document"])?;
        if let Some(n) = text(bo, "nip", "receipt.buyer")? {
            native.insert("buyer_nip".into(), json!(n));
        }
    }
    footer(o, root, &mut native)?;
    let r =
        document::receipt(&Value::Object(native), limits, &[]).map_err(|i| checks.renamed(i))?;
    checks.against(&r.lines, r.change())?;
    Ok(JobRequest::Receipt(r))
}

/// `POST /invoice`'s `invoice` → an invoice job.
pub fn invoice(body: &Value, limits: &PrinterLimits<'_>) -> Result<JobRequest, NoviError> {
    let root = "invoice";
    let o = object(body, root)?;
    check_keys(
        o,
        root,
        &[
            "info",
            "buyer",
            "recipient",
            "seller",
            "options",
            "items",
            "payments",
            "summary",
            "printout_lines",
            "additional_info",
            "system_info",
            "device_control",
        ],
        &[],
    )?;
    let (mut native, checks) = sale_body(o, root)?;
    let info = object(
        o.get("info")
            .ok_or_else(|| invalid("invoice.info", "is required"))?,
        "invoice.info",
    )?;
    let number = text(info, "number", "invoice.info")?
        .ok_or_else(|| invalid("invoice.info.number", "is required"))?;
    native.insert("number".into(), json!(number));
    if let Some(c) = info.get("copy_count") {
        native.insert("copies".into(), c.clone());
    }
    let buyer = object(
        o.get("buyer")
            .ok_or_else(|| invalid("invoice.buyer", "is required"))?,
        "invoice.buyer",
    )?;
    let name = text(buyer, "name", "invoice.buyer")?.unwrap_or("");
    let id = text(buyer, "id", "invoice.buyer")?.unwrap_or("");
    if let Some(t) = text(buyer, "id_type", "invoice.buyer")?
        && t != "nip"
    {
        return Err(invalid(
            "invoice.buyer.id_type",
            "only nip is supported by fiscald's NoviAPI facade",
        ));
    }
    let address: Vec<&str> = buyer
        .get("address")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    native.insert(
        "buyer".into(),
        json!({"name": name, "nip": id, "address": address.join(", ")}),
    );
    let inv = document::invoice(&Value::Object(native), limits, &[]).map_err(|i| {
        let i = Invalid {
            field: i
                .field
                .replace("buyer.nip", "buyer.id")
                .replace("number", "info.number")
                .replace("copies", "info.copy_count"),
            message: i.message,
        };
        checks.renamed(i)
    })?;
    checks.against(&inv.lines, inv.paid().saturating_sub(inv.total))?;
    Ok(JobRequest::Invoice(inv))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> PrinterLimits<'static> {
        PrinterLimits {
            max_name_length: 40,
            active_vat: Some(&['A', 'B', 'C', 'D', 'E']),
            support: crate::drivers::posnet::SUPPORT,
        }
    }

    fn receipt_body() -> Value {
        json!({
            "items": [
                {"article": {"name": "Chleb", "ptu": "A", "quantity": "2", "price": "4.50", "value": "9.00"}},
                {"article": {"name": "Mleko", "ptu": "B", "quantity": "1.500000", "price": "3.49", "value": "5.24",
                             "discount_markup": {"type": "value_discount", "value": "0.24"}}}
            ],
            "payments": [{"card": {"value": "10.00"}}, {"cash": {"value": "5.00"}}],
            "summary": {"total": "14.00", "pay_in": "15.00", "change": "1.00"},
            "buyer": {"nip": "526-000-12-46"},
            "system_info": {"system_number": {"print_as": "text", "value": "POS-1/42"}}
        })
    }

    #[test]
    fn money_is_exact_grosze() {
        assert_eq!(money(&json!("12.50"), "x").unwrap(), 1250);
        assert_eq!(money(&json!("0.1"), "x").unwrap(), 10);
        assert_eq!(money(&json!("7"), "x").unwrap(), 700);
        assert!(money(&json!("1.005"), "x").is_err());
        assert!(money(&json!("-1.00"), "x").is_err());
        assert!(money(&json!("1e3"), "x").is_err());
        assert_eq!(money_text(5), "0.05");
        assert_eq!(money_text(123456), "1234.56");
    }

    #[test]
    fn a_receipt_maps_onto_the_native_one() {
        let JobRequest::Receipt(r) = receipt(&receipt_body(), &limits()).unwrap() else {
            panic!()
        };
        assert_eq!(r.total, 1400);
        assert_eq!(r.lines[1].amount, 524); // 1.5 × 3.49 = 5.235 → 5.24
        assert_eq!(r.lines[1].value(), 500);
        assert_eq!(r.payments.len(), 2);
        assert_eq!(r.change(), 100);
        assert_eq!(r.buyer_nip.as_deref(), Some("5260001246"));
        assert_eq!(r.footer, vec!["Nr sys.: POS-1/42".to_string()]);
    }

    #[test]
    fn percentages_and_payments_without_a_list() {
        let body = json!({
            "items": [{"article": {"name": "Ser", "ptu": "A", "quantity": "0.250", "price": "39.90",
                                   "value": "9.98",
                                   "discount_markup": {"type": "percent_discount", "value": "10.00"}}}],
            "summary": {"total": "9.98", "pay_in": "20.00",
                        "discount_markup": {"type": "value_markup", "value": "1.00", "name": "Opakowanie"}}
        });
        let JobRequest::Receipt(r) = receipt(&body, &limits()).unwrap() else {
            panic!()
        };
        // 0.25 × 39.90 = 9.975 → 9.98; −10 % (the value after, 8.982, rounds to 8.98), then
        // + 1.00 on the subtotal.
        assert_eq!(r.lines[0].amount, 998);
        assert_eq!(r.lines[0].value(), 898);
        assert_eq!(r.total, 998);
        assert_eq!(r.payments.len(), 1, "pay_in in cash");
        assert_eq!(r.payments[0].amount, 2000);
        assert_eq!(r.change(), 1002);
        let mut b = body.clone();
        b["summary"]["total"] = json!("10.98");
        let e = receipt(&b, &limits()).unwrap_err();
        assert!(
            e.description
                .ends_with("(amounts in grosze: 1250 is 12.50)"),
            "{}",
            e.description
        );
        let mut b = body.clone();
        b["items"][0]["article"]["quantity"] = json!("0.2505");
        let e = receipt(&b, &limits()).unwrap_err();
        assert!(
            e.description
                .starts_with("receipt.items[0].article.quantity:"),
            "{}",
            e.description
        );
        let mut b = body;
        b["payments"] = json!([{"currency": {"course": "4.30", "currency_value": "5.00",
                                             "local_value": "21.50", "is_change": false, "name": "EUR"}}]);
        let e = receipt(&b, &limits()).unwrap_err();
        assert!(e.description.contains("not supported"), "{}", e.description);
    }

    #[test]
    fn errors_name_the_novi_field() {
        let mut b = receipt_body();
        b["items"][0]["article"]["ptu"] = json!("F");
        let e = receipt(&b, &limits()).unwrap_err();
        assert_eq!(e.code, 8);
        assert!(
            e.description
                .starts_with("receipt.items[0].article.ptu: VAT F is not active"),
            "{}",
            e.description
        );
        let mut b = receipt_body();
        b["summary"]["total"] = json!("14.01");
        let e = receipt(&b, &limits()).unwrap_err();
        assert!(
            e.description.starts_with("receipt.summary.total:"),
            "{}",
            e.description
        );
        let mut b = receipt_body();
        b["items"][0]["article"]["value"] = json!("9.01");
        let e = receipt(&b, &limits()).unwrap_err();
        assert!(
            e.description.starts_with("receipt.items[0].article.value:"),
            "{}",
            e.description
        );
        let mut b = receipt_body();
        b["items"][0] =
            json!({"advance": {"description": "Zaliczka", "ptu": "A", "value": "10.00"}});
        let e = receipt(&b, &limits()).unwrap_err();
        assert!(e.description.contains("not supported"), "{}", e.description);
    }

    #[test]
    fn containers_become_deposits_outside_the_total() {
        let mut b = receipt_body();
        let items = b["items"].as_array_mut().unwrap();
        items.insert(
            0,
            json!({"container": {"name": "Butelka", "number": 3, "quantity": "2.00", "value": "1.00"}}),
        );
        items.push(json!({"container_return": {"number": 3, "value": "0.50"}}));
        let total = b["summary"]["total"].clone();
        let pay_in = money(&b["summary"]["pay_in"], "t").unwrap();
        b["summary"]["pay_in"] = json!(money_text(pay_in + 50));
        b["payments"] = json!([{"cash": {"value": money_text(pay_in + 50)}}]);
        let JobRequest::Receipt(r) = receipt(&b, &limits()).unwrap() else {
            panic!("a receipt")
        };
        assert_eq!(
            json!(money_text(r.total)),
            total,
            "deposits stay outside the total"
        );
        assert_eq!(r.deposits.len(), 2);
        assert_eq!(
            (
                r.deposits[0].code.as_str(),
                r.deposits[0].unit_price,
                r.deposits[0].quantity
            ),
            ("3", 50, 2)
        );
        assert!(!r.deposits[0].returned && r.deposits[1].returned);
        assert_eq!(r.deposits_issued() - r.deposits_returned(), 50);

        // A native message about a deposit names the NoviAPI item it came from.
        let mut bad = b.clone();
        bad["items"][0]["container"]["name"] = json!("x".repeat(100));
        let e = receipt(&bad, &limits()).unwrap_err();
        assert!(
            e.description
                .starts_with("receipt.items[0].container.name:"),
            "{}",
            e.description
        );
        // And an article after a container keeps its own index.
        let mut bad = b.clone();
        bad["items"][1]["article"]["value"] = json!("9.01");
        let e = receipt(&bad, &limits()).unwrap_err();
        assert!(
            e.description.starts_with("receipt.items[1].article.value:"),
            "{}",
            e.description
        );

        for (container, field) in [
            (json!({"value": "0.50"}), "number"),
            (
                json!({"number": 1, "quantity": "1.50", "value": "0.75"}),
                "quantity",
            ),
            (
                json!({"number": 1, "quantity": "3", "value": "1.00"}),
                "value",
            ),
            (json!({"number": 10000, "value": "1.00"}), "number"),
        ] {
            let mut bad = b.clone();
            bad["items"][0] = json!({ "container": container });
            let e = receipt(&bad, &limits()).unwrap_err();
            assert!(
                e.description
                    .starts_with(&format!("receipt.items[0].container.{field}:")),
                "{field}: {}",
                e.description
            );
        }
        let mut bad = b.clone();
        bad["items"][0] = json!({"container": {"number": 1, "value": "0.50"}, "article": {}});
        assert!(receipt(&bad, &limits()).is_err());
    }
}
