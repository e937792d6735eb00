//! Running one packet's commands on the model.

use super::{
    CashOperation, DailyReport, LastTransaction, Line, LineDiscount, MAX_LINES, MAX_NAME, NO_PAPER,
    OpenReceipt, Printer, Printout, Rate, Receipt, ReceiptPayment, VERSION, nip_ok,
};
use crate::command::amount;
use crate::reply::{Element, parse, write};
use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use std::str::FromStr;

/// Error codes the model sets (litex's table of the device's codes).
mod code {
    pub const BAD_PARAMETER: u32 = 4;
    pub const BAD_DATE: u32 = 7;
    pub const BAD_NAME: u32 = 16;
    pub const BAD_QUANTITY: u32 = 17;
    pub const BAD_PTU: u32 = 18;
    pub const BAD_PRICE: u32 = 19;
    pub const BAD_VALUE: u32 = 20;
    pub const NOT_BEGUN: u32 = 21;
    pub const STORNO: u32 = 22;
    pub const TOO_MANY_LINES: u32 = 23;
    pub const BAD_PAYMENT: u32 = 26;
    pub const BAD_TOTAL: u32 = 27;
    pub const BAD_AMOUNT: u32 = 51;
    pub const ALREADY_BEGUN: u32 = 1002;
    pub const BAD_DISCOUNT: u32 = 1004;
    pub const UNKNOWN_COMMAND: u32 = 1022;
    pub const WRONG_MODE: u32 = 1031;
    pub const NO_ITEMS: u32 = 1092;
    pub const BAD_NIP: u32 = 1098;
}

/// What a packet did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The reply packet's body, when the packet held a query.
    pub reply: Option<Vec<u8>>,
    /// Fiscal memory changed: persist it.
    pub fiscal_event: bool,
    /// The code of the command that failed, if one did.
    pub error: Option<u32>,
}

/// Grosze from a decimal string with at most two places (`"12.3"`, `"12.34"`, `"12"`).
pub fn parse_amount(s: &str) -> Option<u64> {
    let d = Decimal::from_str(s.trim()).ok()?;
    if d.is_sign_negative() || d.scale() > 2 {
        return None;
    }
    u64::try_from((d * Decimal::from(100)).trunc()).ok()
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

fn rate_text(r: Rate) -> Option<String> {
    match r {
        Rate::BasisPoints(bp) => Some(format!("{}.{:02}", bp / 100, bp % 100)),
        Rate::Exempt => Some("free".into()),
        Rate::Inactive => None,
    }
}

const LETTERS: [char; 7] = ['A', 'B', 'C', 'D', 'E', 'F', 'G'];

impl Printer {
    /// Run the commands of one packet body at local time `now`.
    pub fn handle(&mut self, body: &[u8], now: NaiveDateTime) -> Outcome {
        let mut out = Outcome::default();
        let mut answers = Vec::new();
        let elements = match parse(body) {
            Ok(e) => e,
            Err(_) => {
                self.memory.last_error = code::UNKNOWN_COMMAND;
                out.error = Some(code::UNKNOWN_COMMAND);
                return out;
            }
        };
        let mut failed = false;
        for e in &elements {
            if let Some(answer) = self.query(e, now) {
                answers.push(answer);
                continue;
            }
            if failed {
                continue;
            }
            match self.command(e, now) {
                Ok(fiscal) => {
                    self.memory.last_error = 0;
                    out.fiscal_event |= fiscal;
                }
                Err(c) => {
                    self.memory.last_error = c;
                    out.error = Some(c);
                    failed = true;
                }
            }
        }
        if !answers.is_empty() {
            out.reply = write(&answers).ok();
        }
        out
    }

    /// The answer to a query, or `None` when `e` is not one.
    fn query(&self, e: &Element, now: NaiveDateTime) -> Option<Element> {
        let m = &self.memory;
        let action = e.attr("action").unwrap_or("");
        Some(match (e.name.as_str(), action) {
            ("enq", _) => Element::new(
                "enq",
                &[
                    ("fiscal", "yes"),
                    ("lastcommanderror", yes(m.last_error != 0)),
                    ("intransaction", yes(m.open_receipt)),
                    (
                        "lasttransactioncorrect",
                        yes(m
                            .last_transaction
                            .as_ref()
                            .is_some_and(|t| t.state == "close")),
                    ),
                ],
            ),
            ("dle", _) => Element::new(
                "dle",
                &[
                    ("online", "yes"),
                    ("papererror", yes(self.paper_out)),
                    ("printererror", yes(self.cover_open)),
                ],
            ),
            ("error", "get") => Element::new(
                "error",
                &[("action", "get"), ("value", &m.last_error.to_string())],
            ),
            ("info", "version") => {
                Element::new("info", &[("action", "version"), ("version", VERSION)])
            }
            ("info", "checkout") => self.checkout(e, now),
            ("info", "lasttransaction") => self.last_transaction(),
            ("taxrates", "get") => {
                let mut t = Element::new("taxrates", &[("action", "get")]);
                for (letter, r) in LETTERS.iter().zip(m.vat_rates) {
                    if let Some(text) = rate_text(r) {
                        t.children.push(
                            Element::new("ptu", &[("name", &letter.to_string())]).with_text(text),
                        );
                    }
                }
                t
            }
            _ => return None,
        })
    }

    fn checkout(&self, asked: &Element, now: NaiveDateTime) -> Element {
        let m = &self.memory;
        let c = &m.counters;
        let mut e = Element::new("info", &[("action", "checkout")]);
        let value = |name: &str| -> String {
            match name {
                "type" => asked.attr("type").unwrap_or("receipt").to_string(),
                "lasterror" => m.last_error.to_string(),
                "isfiscal" => "yes".into(),
                "receiptopen" => yes(m.open_receipt).into(),
                "lastreceipterror" => "0".into(),
                "resetcount" => c.reset_count.to_string(),
                "date" => now.format("%d-%m-%Y %H:%M:%S").to_string(),
                "receiptcount" => c.receipt_count.to_string(),
                "cash" => amount(m.cash_in_drawer),
                "uniqueno" => m.unique_number.clone(),
                "lastreceipt" => c.last_receipt.to_string(),
                "lastinvoice" => "0".into(),
                "lastprintout" => c.last_printout.to_string(),
                _ => String::new(),
            }
        };
        for (k, _) in &asked.attributes {
            if k != "action" {
                e.set(k, value(k));
            }
        }
        for (letter, total) in &m.day_totals {
            e.children
                .push(Element::new("ptu", &[("name", letter)]).with_text(amount(*total)));
        }
        e
    }

    fn last_transaction(&self) -> Element {
        let mut e = Element::new("info", &[("action", "lasttransaction")]);
        if let Some(t) = &self.memory.last_transaction {
            e.set("state", t.state.clone());
            e.set("number", t.number.to_string());
            e.set("systemno", t.systemno.clone());
            e.set("total", amount(t.total));
            e.set("date", t.date.clone());
        } else {
            e.set("state", "none");
        }
        if let Some(open) = &self.memory.transaction {
            e.set("state", "open");
            for l in &open.lines {
                e.children.push(Element::new(
                    "item",
                    &[("name", &l.name), ("total", &amount(l.amount))],
                ));
            }
        }
        e
    }

    /// Run one command: `Ok(true)` when fiscal memory changed, `Err(code)` when it failed
    /// (and did nothing).
    fn command(&mut self, e: &Element, now: NaiveDateTime) -> Result<bool, u32> {
        let action = e.attr("action").unwrap_or("");
        match (e.name.as_str(), action) {
            ("error", "set") => {
                self.memory.silent = e.attr("value") == Some("silent");
                Ok(true)
            }
            ("receipt", "begin") => self.begin(),
            ("item", a) if a.is_empty() || a == "sale" => self.item(e),
            ("item", "storno") => Err(code::STORNO),
            ("payment", "add") => self.payment(e),
            ("receipt", "close") => self.close(e, now),
            ("receipt", "cancel") => self.cancel(),
            ("cash", "payin" | "payout") => self.cash(e, action == "payin"),
            ("report", _) if e.attr("type") == Some("daily") => self.daily(e, now),
            ("nonfiscalprintout", _) => self.printout(e),
            _ => Err(code::UNKNOWN_COMMAND),
        }
    }

    fn open_mut(&mut self) -> Result<&mut OpenReceipt, u32> {
        self.memory.transaction.as_mut().ok_or(code::NOT_BEGUN)
    }

    fn begin(&mut self) -> Result<bool, u32> {
        if self.memory.transaction.is_some() {
            return Err(code::ALREADY_BEGUN);
        }
        if !self.print_lines(1) {
            return Err(NO_PAPER);
        }
        self.memory.transaction = Some(OpenReceipt::default());
        self.memory.open_receipt = true;
        Ok(true)
    }

    fn item(&mut self, e: &Element) -> Result<bool, u32> {
        let open = self.open_mut()?;
        if open.lines.len() >= MAX_LINES {
            return Err(code::TOO_MANY_LINES);
        }
        if e.children.len() > 1 || e.children.iter().any(|c| c.name != "discount") {
            return Err(code::BAD_DISCOUNT);
        }
        let name = e.attr("name").unwrap_or("").to_string();
        if name.trim().is_empty() || name.chars().count() > MAX_NAME {
            return Err(code::BAD_NAME);
        }
        let quantity = e.attr("quantity").unwrap_or("");
        let q = Decimal::from_str(quantity.trim()).map_err(|_| code::BAD_QUANTITY)?;
        if q <= Decimal::ZERO {
            return Err(code::BAD_QUANTITY);
        }
        let ptu = e.attr("ptu").unwrap_or("");
        let slot = LETTERS
            .iter()
            .position(|l| ptu.len() == 1 && ptu.starts_with(*l))
            .ok_or(code::BAD_PTU)?;
        if self.memory.vat_rates[slot] == Rate::Inactive {
            return Err(code::BAD_PTU);
        }
        let price = e
            .attr("price")
            .and_then(parse_amount)
            .ok_or(code::BAD_PRICE)?;
        let value = (Decimal::from(price) * q)
            .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
        let value = u64::try_from(value).map_err(|_| code::BAD_VALUE)?;
        if e.attr("total")
            .is_some_and(|t| parse_amount(t) != Some(value))
        {
            return Err(code::BAD_VALUE);
        }
        let discount = match e.children.first() {
            Some(d) => Some(line_discount(d, value)?),
            None => None,
        };
        let value = match &discount {
            Some(d) if d.markup => value + d.value,
            Some(d) => value - d.value,
            None => value,
        };
        if !self.print_lines(1 + u32::from(discount.is_some())) {
            return Err(NO_PAPER);
        }
        let open = self.open_mut()?;
        open.lines.push(Line {
            name,
            vat: ptu.to_string(),
            quantity: quantity.trim().to_string(),
            unit: e
                .attr("quantityunit")
                .filter(|u| !u.is_empty())
                .map(str::to_string),
            unit_price: price,
            amount: value,
            discount,
        });
        Ok(true)
    }

    fn payment(&mut self, e: &Element) -> Result<bool, u32> {
        self.open_mut()?;
        const TYPES: [&str; 10] = [
            "cash", "card", "cheque", "voucher", "credit", "transfer", "account", "foreign",
            "mobile", "bon",
        ];
        let kind = e.attr("type").unwrap_or("");
        if !TYPES.contains(&kind) {
            return Err(code::BAD_PARAMETER);
        }
        let value = e
            .attr("value")
            .and_then(parse_amount)
            .ok_or(code::BAD_PAYMENT)?;
        if value == 0 {
            return Err(code::BAD_PAYMENT);
        }
        let rest = e.attr("mode") == Some("rest");
        let open = self.open_mut()?;
        if rest {
            open.change += value;
        } else {
            open.payments.push(ReceiptPayment {
                method: kind.to_string(),
                amount: value,
            });
        }
        Ok(true)
    }

    fn close(&mut self, e: &Element, now: NaiveDateTime) -> Result<bool, u32> {
        let open = self.memory.transaction.as_ref().ok_or(code::NOT_BEGUN)?;
        if open.lines.is_empty() {
            return Err(code::NO_ITEMS);
        }
        let sum: u64 = open.lines.iter().map(|l| l.amount).sum();
        let total = e
            .attr("total")
            .and_then(parse_amount)
            .ok_or(code::BAD_TOTAL)?;
        if total != sum {
            return Err(code::BAD_TOTAL);
        }
        let paid: u64 = open.payments.iter().map(|p| p.amount).sum();
        if !open.payments.is_empty() && paid < total {
            return Err(code::BAD_PAYMENT);
        }
        if open.change > paid.saturating_sub(total) {
            return Err(code::BAD_PAYMENT);
        }
        let nip = e.attr("nip").filter(|n| !n.is_empty());
        if nip.is_some_and(|n| !nip_ok(n)) {
            return Err(code::BAD_NIP);
        }
        if !self.print_lines(2) {
            return Err(NO_PAPER);
        }
        let open = self.memory.transaction.take().unwrap_or_default();
        let m = &mut self.memory;
        m.open_receipt = false;
        m.counters.last_receipt += 1;
        m.counters.receipt_count += 1;
        m.counters.last_printout += 1;
        m.day_receipts += 1;
        for l in &open.lines {
            *m.day_totals.entry(l.vat.clone()).or_default() += l.amount;
        }
        let cash: u64 = open
            .payments
            .iter()
            .filter(|p| p.method == "cash")
            .map(|p| p.amount)
            .sum();
        let cash = if open.payments.is_empty() {
            total
        } else {
            cash
        };
        m.cash_in_drawer = (m.cash_in_drawer + cash).saturating_sub(open.change);
        let systemno = e.attr("systemno").unwrap_or("").to_string();
        let printed_at = now.format("%Y-%m-%dT%H:%M:%S").to_string();
        m.last_transaction = Some(LastTransaction {
            state: "close".into(),
            number: m.counters.last_receipt,
            systemno: systemno.clone(),
            total,
            date: printed_at.clone(),
        });
        m.receipts.push(Receipt {
            number: m.counters.last_receipt,
            lines: open.lines,
            payments: open.payments,
            total,
            buyer_nip: nip.map(str::to_string),
            systemno,
            printed_at,
            change: open.change,
        });
        Ok(true)
    }

    fn cancel(&mut self) -> Result<bool, u32> {
        let Some(open) = self.memory.transaction.take() else {
            return Ok(false);
        };
        let m = &mut self.memory;
        m.open_receipt = false;
        m.last_transaction = Some(LastTransaction {
            state: "canceled".into(),
            number: m.counters.last_receipt,
            systemno: String::new(),
            total: open.lines.iter().map(|l| l.amount).sum(),
            date: String::new(),
        });
        Ok(true)
    }

    fn not_in_receipt(&self) -> Result<(), u32> {
        if self.memory.transaction.is_some() {
            Err(code::WRONG_MODE)
        } else {
            Ok(())
        }
    }

    fn cash(&mut self, e: &Element, payin: bool) -> Result<bool, u32> {
        self.not_in_receipt()?;
        let value = e
            .attr("value")
            .and_then(parse_amount)
            .ok_or(code::BAD_AMOUNT)?;
        if value == 0 || (!payin && value > self.memory.cash_in_drawer) {
            return Err(code::BAD_AMOUNT);
        }
        if !self.print_lines(2) {
            return Err(NO_PAPER);
        }
        let m = &mut self.memory;
        m.cash_in_drawer = if payin {
            m.cash_in_drawer + value
        } else {
            m.cash_in_drawer - value
        };
        m.counters.last_printout += 1;
        m.cash_operations.push(CashOperation {
            direction: if payin { "in" } else { "out" }.into(),
            amount: value,
            number: m.counters.last_printout,
        });
        Ok(true)
    }

    fn daily(&mut self, e: &Element, now: NaiveDateTime) -> Result<bool, u32> {
        self.not_in_receipt()?;
        let date = e.attr("date").unwrap_or("");
        let day =
            chrono::NaiveDate::parse_from_str(date, "%d-%m-%Y").map_err(|_| code::BAD_DATE)?;
        if day != now.date() {
            return Err(code::BAD_DATE);
        }
        if !self.print_lines(5) {
            return Err(NO_PAPER);
        }
        let m = &mut self.memory;
        m.counters.last_printout += 1;
        m.daily_reports.push(DailyReport {
            number: m.counters.last_printout,
            date: day.format("%Y-%m-%d").to_string(),
            totals: std::mem::take(&mut m.day_totals),
            receipts: std::mem::take(&mut m.day_receipts),
        });
        m.counters.receipt_count = 0;
        Ok(true)
    }

    fn printout(&mut self, e: &Element) -> Result<bool, u32> {
        self.not_in_receipt()?;
        let lines: Vec<String> = e
            .children
            .iter()
            .filter(|c| c.name == "line")
            .map(|c| c.text.clone())
            .collect();
        if lines.is_empty() {
            return Err(code::BAD_PARAMETER);
        }
        if !self.print_lines(lines.len() as u32 + 2) {
            return Err(NO_PAPER);
        }
        let m = &mut self.memory;
        m.counters.last_printout += 1;
        m.printouts.push(Printout {
            number: m.counters.last_printout,
            lines,
        });
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::command::{Command, Item, Payment, PaymentType};

    fn now() -> NaiveDateTime {
        chrono::NaiveDate::from_ymd_opt(2026, 12, 2)
            .unwrap()
            .and_hms_opt(10, 0, 0)
            .unwrap()
    }

    fn run(p: &mut Printer, commands: &[Command]) -> Outcome {
        p.handle(&Command::body(commands).unwrap(), now())
    }

    fn item(total: u64) -> Command {
        Command::Item(Item {
            name: "Chleb \"<&>\" żytni".into(),
            quantity: "2".into(),
            unit: Some("szt".into()),
            ptu: 'A',
            price: 350,
            total,
            discount: None,
        })
    }

    #[test]
    fn a_receipt_with_a_checked_total_and_its_last_transaction() {
        let mut p = Printer::new();
        assert!(
            run(
                &mut p,
                &[Command::ErrorSilent, Command::ReceiptBegin, item(700)]
            )
            .error
            .is_none()
        );
        let wrong = run(
            &mut p,
            &[Command::ReceiptClose {
                systemno: "fd1".into(),
                total: 701,
                nip: None,
            }],
        );
        assert_eq!(wrong.error, Some(code::BAD_TOTAL));
        let pay = Command::Payment(Payment {
            kind: PaymentType::Card,
            value: 700,
            change: false,
        });
        let close = Command::ReceiptClose {
            systemno: "fd1".into(),
            total: 700,
            nip: Some("5260250274".into()),
        };
        let out = run(
            &mut p,
            &[pay, close, Command::Enq, Command::LastTransaction],
        );
        assert!(out.error.is_none() && out.fiscal_event);
        let els = parse(&out.reply.unwrap()).unwrap();
        let t = crate::reply::LastTransaction::from_elements(&els).unwrap();
        assert_eq!(
            (t.state.as_str(), t.number, t.systemno.as_deref()),
            ("close", Some(1), Some("fd1"))
        );
        let r = &p.memory().receipts[0];
        assert_eq!(r.lines[0].name, "Chleb \"<&>\" żytni");
        assert_eq!(r.buyer_nip.as_deref(), Some("5260250274"));
    }

    #[test]
    fn without_paper_a_line_fails_and_prints_nothing() {
        let mut p = Printer::new();
        run(&mut p, &[Command::ReceiptBegin]);
        p.paper_out(None);
        assert_eq!(run(&mut p, &[item(700)]).error, Some(NO_PAPER));
        p.paper_back();
        assert_eq!(run(&mut p, &[item(700)]).error, None);
        assert_eq!(p.memory().transaction.as_ref().unwrap().lines.len(), 1);
    }

    #[test]
    fn taxrates_show_exempt_as_free() {
        let mut p = Printer::new();
        let out = run(&mut p, &[Command::TaxRates]);
        let els = parse(&out.reply.unwrap()).unwrap();
        let texts: Vec<_> = els[0].children.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(texts, ["23.00", "8.00", "5.00", "0.00", "free"]);
    }
}

/// A line's `<discount value="1.00"|"10%" name action="discount|markup"/>` on a line worth
/// `value` grosze. A percentage is rounded half away from zero to the grosz (a guess: the
/// daemon sends amounts only). A discount must leave the line above zero.
fn line_discount(d: &Element, value: u64) -> Result<LineDiscount, u32> {
    let markup = match d.attr("action").unwrap_or("discount") {
        "discount" => false,
        "markup" => true,
        _ => return Err(code::BAD_DISCOUNT),
    };
    let text = d.attr("value").unwrap_or("").trim();
    let amount = match text.strip_suffix('%') {
        Some(p) => {
            let p = Decimal::from_str(p.trim()).map_err(|_| code::BAD_DISCOUNT)?;
            if p <= Decimal::ZERO || p >= Decimal::from(100) {
                return Err(code::BAD_DISCOUNT);
            }
            let a = (Decimal::from(value) * p / Decimal::from(100))
                .round_dp_with_strategy(0, rust_decimal::RoundingStrategy::MidpointAwayFromZero);
            u64::try_from(a).map_err(|_| code::BAD_DISCOUNT)?
        }
        None => parse_amount(text).ok_or(code::BAD_DISCOUNT)?,
    };
    if amount == 0 || (!markup && amount >= value) {
        return Err(code::BAD_DISCOUNT);
    }
    Ok(LineDiscount {
        value: amount,
        markup,
        name: d.attr("name").filter(|n| !n.is_empty()).map(str::to_string),
    })
}

#[cfg(test)]
mod discount_tests {
    use super::*;

    fn run(p: &mut Printer, body: &str) -> Outcome {
        let now = chrono::NaiveDate::from_ymd_opt(2026, 12, 2)
            .and_then(|d| d.and_hms_opt(12, 0, 0))
            .unwrap();
        p.handle(body.as_bytes(), now)
    }

    const BEGIN: &str = r#"<receipt action="begin" mode="online" pharmaceutical="no"/>"#;

    #[test]
    fn a_line_discount_or_markup_changes_the_total_the_close_checks() {
        let mut p = Printer::new();
        let body = format!(
            r#"{BEGIN}<item action="sale" name="Kawa" quantity="3" ptu="A" price="12.99" total="38.97"><discount value="5.85" name="Rabat" action="discount"/></item><item action="sale" name="Ciastko" quantity="1" ptu="B" price="4.50" total="4.50"><discount value="10%" action="markup"/></item><payment type="cash" action="add" value="38.07" mode="payment"/><receipt action="close" systemno="t1" total="38.07"/>"#
        );
        assert_eq!(run(&mut p, &body).error, None);
        let r = p.memory().receipts.last().unwrap();
        assert_eq!(r.lines[0].amount, 3312);
        assert_eq!(r.lines[1].amount, 495);
        assert_eq!(r.total, 3807);
    }

    #[test]
    fn a_discount_that_leaves_nothing_or_a_second_child_is_refused() {
        for item in [
            r#"<item action="sale" name="Sok" quantity="1" ptu="A" price="5.00"><discount value="5.00"/></item>"#,
            r#"<item action="sale" name="Sok" quantity="1" ptu="A" price="5.00"><discount value="100%"/></item>"#,
            r#"<item action="sale" name="Sok" quantity="1" ptu="A" price="5.00"><discount value="1.00" action="rebate"/></item>"#,
            r#"<item action="sale" name="Sok" quantity="1" ptu="A" price="5.00"><discount value="1.00"/><discount value="1.00"/></item>"#,
        ] {
            let mut p = Printer::new();
            assert_eq!(
                run(&mut p, &format!("{BEGIN}{item}")).error,
                Some(code::BAD_DISCOUNT),
                "{item}"
            );
        }
    }
}
