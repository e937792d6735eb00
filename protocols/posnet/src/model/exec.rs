//! Command dispatch, holding, tokens and the command handlers.

use super::fields::{self, Fail, MAX_AMOUNT, MAX_PRICE, Res, required};
use super::{
    Adjustment, AdjustmentKind, CashOperation, DailyReport, FIRMWARE_VERSION, MAX_HELD, MAX_LINES,
    MODEL_NAME, OpenForm, OpenLine, OpenReceipt, Outcome, Printer, Printout, Receipt, ReceiptLine,
    ReceiptPayment, TOKEN_BUFFER,
};
use crate::frame::Frame;
use crate::reply::{SLOT_LETTERS, VatRate, VatTable};
use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// How a command relates to printing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Answered at once, never held.
    Status,
    /// Prints: held while the paper is out or the cover open.
    Printing,
    /// `prncancel`/`trcancel`: prints only when something is open.
    Cancel,
    /// Neither (`trnipset`).
    Other,
    /// `rpt`.
    Repeat,
}

fn kind(mnemonic: &str) -> Option<Kind> {
    Some(match mnemonic {
        "sdev" | "sprn" | "scomm" | "scnt" | "sid" | "vatget" | "rtcget" => Kind::Status,
        "trinit" | "trline" | "trdiscntbill" | "trpayment" | "trend" | "dailyrep" | "cash"
        | "formstart" | "formline" | "formend" => Kind::Printing,
        "prncancel" | "trcancel" => Kind::Cancel,
        "trnipset" => Kind::Other,
        "rpt" => Kind::Repeat,
        _ => return None,
    })
}

/// A frame-level error reply (`ERR ?code cm.. fd..`).
fn frame_error(code: u32, command: &str, field: Option<&str>) -> Frame {
    let mut f = Frame::error_reply("ERR", code).with("cm", command);
    if let Some(field) = field {
        f = f.with("fd", field);
    }
    f
}

/// Rate-lock order: exempt lowest, then percentages ascending; inactive has none.
fn rank(rate: VatRate) -> Option<u32> {
    match rate {
        VatRate::Exempt => Some(0),
        VatRate::Percent(p) => Some(p.saturating_add(1)),
        VatRate::Inactive => None,
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "T" } else { "N" }
}

fn timestamp(now: NaiveDateTime) -> String {
    now.format("%Y-%m-%dT%H:%M:%S").to_string()
}

fn payment_method(ty: u32) -> Option<&'static str> {
    Some(match ty {
        0 => "cash",
        2 => "card",
        3 => "cheque",
        4 | 7 => "voucher",
        5 => "credit",
        6 => "other",
        8 => "transfer",
        _ => return None,
    })
}

/// A discount/surcharge request (`rd`, `rp`, `rw` and a name field), not yet resolved.
struct AdjustmentRequest {
    surcharge: bool,
    percent: Option<Decimal>,
    value: Option<u64>,
    name: Option<String>,
}

impl AdjustmentRequest {
    /// Parse the fields; `None` when neither `rp` nor `rw` is present.
    fn parse(f: &Frame, name_field: &'static str) -> Res<Option<Self>> {
        let surcharge = !fields::boolean(f, "rd")?.unwrap_or(true);
        let percent = fields::percent(f, "rp")?;
        let value = fields::amount(f, "rw", MAX_AMOUNT)?;
        let name = fields::text(f, name_field, 25)?.map(str::to_string);
        if percent.is_none() && value.is_none() {
            return Ok(None);
        }
        Ok(Some(AdjustmentRequest {
            surcharge,
            percent,
            value,
            name,
        }))
    }

    /// Resolve against `base` (grosze): `rp` wins, `rw` then only verifies it.
    fn resolve(self, base: u64) -> Res<Adjustment> {
        let amount = match (self.percent, self.value) {
            (Some(p), rw) => {
                if p <= Decimal::ZERO || p >= Decimal::ONE_HUNDRED {
                    return Err(Fail::Cmd(2601));
                }
                let computed = fields::percent_of(base, p).ok_or(Fail::Cmd(1950))?;
                if rw.is_some_and(|rw| rw != computed) {
                    return Err(Fail::Cmd(2801));
                }
                computed
            }
            (None, Some(rw)) => rw,
            (None, None) => 0,
        };
        if amount == 0 {
            return Err(Fail::Cmd(2601));
        }
        if !self.surcharge && amount >= base {
            return Err(Fail::Cmd(1981));
        }
        let kind = if self.surcharge {
            AdjustmentKind::Surcharge
        } else {
            AdjustmentKind::Discount
        };
        Ok(Adjustment {
            kind,
            amount,
            name: self.name,
        })
    }
}

fn line_value(line: &ReceiptLine) -> i128 {
    i128::from(line.amount) + line.adjustment.as_ref().map_or(0, Adjustment::signed)
}

impl OpenReceipt {
    /// The receipt total: lines after line adjustments, then bill adjustments.
    fn total(&self) -> i128 {
        let lines: i128 = self.lines.iter().map(|l| line_value(&l.line)).sum();
        lines
            + self
                .adjustments
                .iter()
                .map(Adjustment::signed)
                .sum::<i128>()
    }

    fn paid(&self) -> u64 {
        self.payments
            .iter()
            .fold(0, |sum, p| sum.saturating_add(p.amount))
    }

    /// Gross sales per VAT letter; bill adjustments are spread in proportion to each
    /// letter's value, the rounding remainder going to the largest letter.
    fn rate_totals(&self) -> BTreeMap<String, u64> {
        let mut per: BTreeMap<String, i128> = BTreeMap::new();
        for l in &self.lines {
            *per.entry(l.line.vat.clone()).or_default() += line_value(&l.line);
        }
        let gross: i128 = per.values().sum();
        let adjust: i128 = self.adjustments.iter().map(Adjustment::signed).sum();
        if adjust != 0 && gross > 0 {
            let mut given = 0;
            for v in per.values_mut() {
                let share = adjust * *v / gross;
                *v += share;
                given += share;
            }
            if let Some(largest) = per.values_mut().max_by_key(|v| **v) {
                *largest += adjust - given;
            }
        }
        per.into_iter()
            .map(|(k, v)| (k, u64::try_from(v).unwrap_or(0)))
            .collect()
    }
}

impl Printer {
    pub(super) fn handle_frame(&mut self, command: &Frame, now: NaiveDateTime) -> Outcome {
        let name = command.mnemonic.as_str();
        if let Some(base) = name.strip_prefix('!') {
            if base == "sdev" || base == "sprn" {
                return self.run(command, now);
            }
            return self.answer(command, frame_error(12, name, None), false);
        }
        match kind(name) {
            None => self.answer(command, frame_error(1, name, None), false),
            Some(Kind::Status) => self.run(command, now),
            Some(Kind::Repeat) => {
                if command.token.is_some() && self.held.iter().any(|h| h.token == command.token) {
                    // The command that carried this token has not run yet: answer after it.
                    self.held.push_back(command.clone());
                    return Outcome {
                        reply: None,
                        fiscal_event: false,
                    };
                }
                self.repeat(command)
            }
            Some(k) => {
                let prints = match k {
                    Kind::Printing => true,
                    Kind::Cancel => self.memory.transaction.is_some() || self.memory.form.is_some(),
                    _ => false,
                };
                if !self.held.is_empty() || (prints && self.blocked()) {
                    if self.held.len() >= MAX_HELD {
                        return self.answer(command, frame_error(14, name, None), false);
                    }
                    self.held.push_back(command.clone());
                    return Outcome {
                        reply: None,
                        fiscal_event: false,
                    };
                }
                self.run(command, now)
            }
        }
    }

    pub(super) fn resume_held(&mut self, now: NaiveDateTime) -> Option<Outcome> {
        if self.blocked() {
            return None;
        }
        let command = self.held.pop_front()?;
        if command.mnemonic == "rpt" {
            return Some(self.repeat(&command));
        }
        let outcome = self.run(&command, now);
        outcome.reply.is_some().then_some(outcome)
    }

    /// Cancel an open receipt (counted as cancelled) or form. Sets `changed`.
    pub(super) fn cancel_open_documents(&mut self) {
        let m = &mut self.memory;
        if m.transaction.take().is_some() {
            m.counters.cancelled += 1;
            m.counters.receipts_total += 1;
            m.counters.next_printout += 1;
            m.day.cancelled += 1;
            self.changed = true;
        }
        if m.open_receipt {
            m.open_receipt = false;
            self.changed = true;
        }
        if m.form.take().is_some() {
            self.changed = true;
        }
    }

    fn blocked(&self) -> bool {
        self.paper_out || self.cover_open
    }

    /// Echo the token, remember tokened answers for `rpt`.
    fn answer(&mut self, command: &Frame, mut reply: Frame, fiscal_event: bool) -> Outcome {
        reply.token = command.token;
        if let Some(token) = command.token {
            self.answers.retain(|(t, _)| *t != token);
            if self.answers.len() >= TOKEN_BUFFER {
                self.answers.pop_front();
            }
            self.answers.push_back((token, reply.clone()));
        }
        Outcome {
            reply: Some(reply),
            fiscal_event,
        }
    }

    fn repeat(&self, command: &Frame) -> Outcome {
        let stored = command
            .token
            .and_then(|t| self.answers.iter().find(|(tok, _)| *tok == t));
        let reply = match (command.token, stored) {
            (_, Some((_, frame))) => frame.clone(),
            (None, None) => frame_error(4, "rpt", None),
            (Some(t), None) => {
                let mut f = frame_error(13, "rpt", None);
                f.token = Some(t);
                f
            }
        };
        Outcome {
            reply: Some(reply),
            fiscal_event: false,
        }
    }

    /// Execute a command now (hold it again if the paper runs out while printing).
    fn run(&mut self, command: &Frame, now: NaiveDateTime) -> Outcome {
        self.changed = false;
        let result = self.execute(command, now);
        let changed = std::mem::take(&mut self.changed);
        let name = command.mnemonic.as_str();
        let reply = match result {
            Ok(reply) => reply,
            Err(Fail::Held) => {
                self.held.push_front(command.clone());
                return Outcome {
                    reply: None,
                    fiscal_event: changed,
                };
            }
            Err(Fail::Cmd(code)) => Frame::error_reply(name, code),
            Err(Fail::Frame(code, field)) => frame_error(code, name, field),
        };
        // Progress inside an open document is not a fiscal event: a real printer cancels
        // an open document when it loses power, so only opening, closing and cancelling
        // documents (and reports, cash, counters) need to reach non-volatile memory.
        let in_document = matches!(
            name,
            "trline" | "trnipset" | "trdiscntbill" | "trpayment" | "formline"
        );
        self.answer(command, reply, changed && !in_document)
    }

    fn execute(&mut self, f: &Frame, now: NaiveDateTime) -> Res<Frame> {
        let name = f.mnemonic.trim_start_matches('!');
        match name {
            "trinit" => self.trinit(f, now),
            "trline" => self.trline(f),
            "trnipset" => self.trnipset(f),
            "trdiscntbill" => self.trdiscntbill(f),
            "trpayment" => self.trpayment(f),
            "trend" => self.trend(f, now),
            "prncancel" | "trcancel" => self.prncancel(f),
            "dailyrep" => self.dailyrep(f, now),
            "cash" => self.cash(f),
            "formstart" => self.formstart(f),
            "formline" => self.formline(f),
            "formend" => self.formend(f),
            _ => Ok(self.status(f, name, now)),
        }
    }

    /// Use `n` printed lines of paper; if they are not there the paper is out now.
    fn print_lines(&mut self, n: u32) -> Res<()> {
        if self.paper_out {
            return Err(Fail::Held);
        }
        match self.lines_left {
            Some(left) if left < n => {
                self.paper_out = true;
                self.lines_left = None;
                Err(Fail::Held)
            }
            Some(left) => {
                self.lines_left = Some(left - n);
                Ok(())
            }
            None => Ok(()),
        }
    }

    fn open_receipt_ref(&self) -> Res<&OpenReceipt> {
        self.memory.transaction.as_ref().ok_or(Fail::Cmd(2005))
    }

    fn open_receipt_mut(&mut self) -> Res<&mut OpenReceipt> {
        self.changed = true;
        self.memory.transaction.as_mut().ok_or(Fail::Cmd(2005))
    }

    fn busy(&self) -> bool {
        self.memory.transaction.is_some() || self.memory.form.is_some()
    }

    fn trinit(&mut self, f: &Frame, now: NaiveDateTime) -> Res<Frame> {
        let block_mode = fields::boolean(f, "bm")?.unwrap_or(false);
        if self.busy() {
            return Err(Fail::Cmd(2038));
        }
        if self.memory.day.first_sale.is_some_and(|d| now.date() > d) {
            return Err(Fail::Cmd(383));
        }
        self.print_lines(0)?;
        self.memory.transaction = Some(OpenReceipt {
            block_mode,
            started_at: timestamp(now),
            ..OpenReceipt::default()
        });
        self.memory.open_receipt = true;
        self.changed = true;
        Ok(Frame::new(&f.mnemonic))
    }

    fn trline(&mut self, f: &Frame) -> Res<Frame> {
        let name = required(fields::text(f, "na", 80)?, "na")?;
        let slot = required(fields::number(f, "vt", 99)?, "vt")?;
        let price = required(fields::amount(f, "pr", MAX_PRICE)?, "pr")?;
        let quantity = fields::num(f, "il")?.unwrap_or(Decimal::ONE);
        let declared = fields::amount(f, "wa", MAX_PRICE)?;
        let storno = fields::boolean(f, "st")?.unwrap_or(false);
        fields::text(f, "jm", 4)?;
        fields::text(f, "op", 50)?;
        let request = AdjustmentRequest::parse(f, "rn")?;
        let tr = self.open_receipt_ref()?;
        let rate = usize::try_from(slot)
            .ok()
            .and_then(|i| self.memory.vat_rates.get(i))
            .copied();
        let rate = match rate {
            Some(r) if r != VatRate::Inactive => r,
            _ => return Err(Fail::Cmd(2000)),
        };
        if price == 0 {
            return Err(Fail::Cmd(2006));
        }
        if quantity <= Decimal::ZERO {
            return Err(Fail::Cmd(2007));
        }
        let value = Decimal::from(price)
            .checked_mul(quantity)
            .and_then(fields::round_grosze)
            .ok_or(Fail::Cmd(1950))?;
        if value > MAX_AMOUNT {
            return Err(Fail::Cmd(1950));
        }
        if declared.is_some_and(|wa| wa != value) {
            return Err(Fail::Cmd(2008));
        }
        if value == 0 {
            return Err(Fail::Cmd(2009));
        }
        let key = fields::product_key(name);
        if key.is_empty() {
            return Err(Fail::Cmd(2104));
        }
        let quantity_text = quantity.normalize().to_string();
        let letter = SLOT_LETTERS
            .get(slot as usize)
            .map(char::to_string)
            .unwrap_or_default();
        let online = !tr.block_mode;
        if storno {
            if !tr.adjustments.is_empty() || !tr.payments.is_empty() {
                return Err(Fail::Cmd(1990));
            }
            let found = tr.lines.iter().rposition(|l| {
                l.key == key && usize::from(l.slot) == slot as usize && l.line.unit_price == price
            });
            let Some(index) = found else {
                return Err(Fail::Cmd(2851));
            };
            if tr.lines[index].line.quantity != quantity_text {
                return Err(Fail::Cmd(2851));
            }
            self.print_lines(u32::from(online))?;
            self.open_receipt_mut()?.lines.remove(index);
            return Ok(Frame::new(&f.mnemonic));
        }
        if tr.lines.len() >= MAX_LINES {
            return Err(Fail::Cmd(2052));
        }
        let locked = tr
            .lines
            .iter()
            .filter(|l| l.key == key)
            .map(|l| l.rate)
            .chain(self.memory.products.get(&key).copied())
            .filter_map(rank)
            .min();
        if let (Some(locked), Some(new)) = (locked, rank(rate))
            && new > locked
        {
            return Err(Fail::Cmd(2106));
        }
        let adjustment = match request {
            Some(r) => Some(r.resolve(value)?),
            None => None,
        };
        let line = ReceiptLine {
            name: name.to_string(),
            vat: letter,
            quantity: quantity_text,
            unit_price: price,
            amount: value,
            adjustment,
        };
        if tr.total() + line_value(&line) > i128::from(MAX_AMOUNT) {
            return Err(Fail::Cmd(1950));
        }
        self.print_lines(u32::from(online))?;
        let slot = u8::try_from(slot).unwrap_or_default();
        self.open_receipt_mut()?.lines.push(OpenLine {
            line,
            slot,
            rate,
            key,
        });
        Ok(Frame::new(&f.mnemonic))
    }

    fn trnipset(&mut self, f: &Frame) -> Res<Frame> {
        let nip = required(fields::text(f, "ni", 30)?, "ni")?;
        fields::boolean(f, "dw")?;
        fields::text(f, "ds", 56)?;
        self.open_receipt_ref()?;
        let nip = if nip.trim().is_empty() {
            None
        } else if nip.len() == 10 && nip.bytes().all(|b| b.is_ascii_digit()) {
            Some(nip.to_string())
        } else {
            return Err(Fail::Cmd(2096));
        };
        self.open_receipt_mut()?.buyer_nip = nip;
        Ok(Frame::new(&f.mnemonic))
    }

    fn trdiscntbill(&mut self, f: &Frame) -> Res<Frame> {
        let request = required(AdjustmentRequest::parse(f, "na")?, "rw")?;
        let tr = self.open_receipt_ref()?;
        let base = tr.total();
        if tr.lines.is_empty() || base <= 0 {
            return Err(Fail::Cmd(1980));
        }
        let base = u64::try_from(base).map_err(|_| Fail::Cmd(1950))?;
        let adj = request.resolve(base)?;
        if i128::from(base) + adj.signed() > i128::from(MAX_AMOUNT) {
            return Err(Fail::Cmd(1950));
        }
        self.print_lines(0)?;
        self.open_receipt_mut()?.adjustments.push(adj);
        Ok(Frame::new(&f.mnemonic))
    }

    fn trpayment(&mut self, f: &Frame) -> Res<Frame> {
        let ty = required(fields::number(f, "ty", 99)?, "ty")?;
        let amount = required(fields::amount(f, "wa", MAX_AMOUNT)?, "wa")?;
        let change = fields::boolean(f, "re")?.unwrap_or(false);
        fields::text(f, "na", 25)?;
        let tr = self.open_receipt_ref()?;
        let method = payment_method(ty).ok_or(Fail::Cmd(2705))?;
        if amount == 0 {
            return Err(Fail::Cmd(1962));
        }
        if change {
            if tr.change + amount > MAX_AMOUNT {
                return Err(Fail::Cmd(1950));
            }
        } else {
            let total = tr.total();
            let paid = tr.paid();
            if total > 0 && i128::from(paid) >= total {
                return Err(Fail::Cmd(1953));
            }
            if paid + amount > MAX_AMOUNT {
                return Err(Fail::Cmd(1950));
            }
        }
        self.print_lines(0)?;
        let tr = self.open_receipt_mut()?;
        if change {
            tr.change += amount;
        } else {
            tr.payments.push(ReceiptPayment {
                method: method.to_string(),
                amount,
            });
        }
        Ok(Frame::new(&f.mnemonic))
    }

    fn trend(&mut self, f: &Frame, now: NaiveDateTime) -> Res<Frame> {
        let to = required(fields::amount(f, "to", MAX_AMOUNT)?, "to")?;
        let fp = fields::amount(f, "fp", MAX_AMOUNT)?;
        let re = fields::amount(f, "re", MAX_AMOUNT)?;
        fields::boolean(f, "fe")?;
        let tr = self.open_receipt_ref()?;
        if tr.lines.is_empty() {
            return Err(Fail::Cmd(1992));
        }
        let total = tr.total();
        if total != i128::from(to) {
            return Err(Fail::Cmd(2805));
        }
        if total <= 0 {
            return Err(Fail::Cmd(2041));
        }
        let paid = tr.paid();
        if fp.is_some_and(|fp| fp != paid) {
            return Err(Fail::Cmd(2808));
        }
        if paid < to {
            return Err(Fail::Cmd(2054));
        }
        let change = if tr.change > 0 {
            if paid.checked_sub(tr.change) != Some(to) {
                return Err(Fail::Cmd(2054));
            }
            tr.change
        } else {
            paid - to
        };
        if re.is_some_and(|re| re != change) {
            return Err(Fail::Cmd(2809));
        }
        let printed = if tr.block_mode {
            u32::try_from(tr.lines.len()).unwrap_or(u32::MAX)
        } else {
            0
        };
        self.print_lines(printed)?;

        let Some(tr) = self.memory.transaction.take() else {
            return Err(Fail::Cmd(2005));
        };
        self.changed = true;
        let m = &mut self.memory;
        m.open_receipt = false;
        m.counters.last_receipt += 1;
        m.counters.receipts_total += 1;
        m.counters.next_printout += 1;
        for (letter, amount) in tr.rate_totals() {
            let entry = m.day.totals.entry(letter).or_default();
            *entry = entry.saturating_add(amount);
        }
        m.day.receipts += 1;
        m.day.first_sale.get_or_insert(now.date());
        for l in &tr.lines {
            let keep = m
                .products
                .get(&l.key)
                .and_then(|r| rank(*r))
                .is_some_and(|old| rank(l.rate) >= Some(old));
            if !keep {
                m.products.insert(l.key.clone(), l.rate);
            }
        }
        let cash: u64 = tr
            .payments
            .iter()
            .filter(|p| p.method == "cash")
            .map(|p| p.amount)
            .sum();
        m.cash_in_drawer = m.cash_in_drawer.saturating_add(cash).saturating_sub(change);
        m.receipts.push(Receipt {
            number: m.counters.last_receipt,
            lines: tr.lines.into_iter().map(|l| l.line).collect(),
            payments: tr.payments,
            total: to,
            buyer_nip: tr.buyer_nip,
            printed_at: timestamp(now),
            change,
            adjustments: tr.adjustments,
        });
        Ok(Frame::new(&f.mnemonic))
    }

    fn prncancel(&mut self, f: &Frame) -> Res<Frame> {
        if self.busy() {
            self.print_lines(0)?;
            self.cancel_open_documents();
        }
        Ok(Frame::new(&f.mnemonic))
    }

    fn dailyrep(&mut self, f: &Frame, now: NaiveDateTime) -> Res<Frame> {
        let date = fields::date(f, "da")?.unwrap_or(now.date());
        if self.busy() {
            return Err(Fail::Cmd(2038));
        }
        if date != now.date() {
            return Err(Fail::Cmd(2023));
        }
        let zero = self.memory.day.receipts == 0;
        if zero && self.memory.last_report_zero {
            return Err(Fail::Cmd(382));
        }
        self.print_lines(0)?;
        self.changed = true;
        let m = &mut self.memory;
        let day = std::mem::take(&mut m.day);
        m.counters.daily_reports += 1;
        m.counters.next_printout += 1;
        m.daily_reports.push(DailyReport {
            number: m.counters.daily_reports,
            date: date.format("%Y-%m-%d").to_string(),
            totals: day.totals,
            receipts: day.receipts,
            cancelled: day.cancelled,
        });
        m.last_report_zero = zero;
        Ok(Frame::new(&f.mnemonic))
    }

    fn cash(&mut self, f: &Frame) -> Res<Frame> {
        let amount = required(fields::amount(f, "kw", MAX_AMOUNT)?, "kw")?;
        let deposit = required(fields::boolean(f, "wp")?, "wp")?;
        if self.busy() {
            return Err(Fail::Cmd(2038));
        }
        if amount == 0 {
            return Err(Fail::Cmd(2063));
        }
        let drawer = self.memory.cash_in_drawer;
        let after = if deposit {
            drawer.checked_add(amount).filter(|v| *v <= MAX_AMOUNT)
        } else {
            drawer.checked_sub(amount)
        };
        let Some(after) = after else {
            return Err(Fail::Cmd(if deposit { 502 } else { 503 }));
        };
        self.print_lines(0)?;
        self.changed = true;
        let m = &mut self.memory;
        m.cash_in_drawer = after;
        m.counters.next_printout += 1;
        let direction = if deposit { "in" } else { "out" };
        m.cash_operations.push(CashOperation {
            direction: direction.to_string(),
            amount,
        });
        Ok(Frame::new(&f.mnemonic))
    }

    fn formstart(&mut self, f: &Frame) -> Res<Frame> {
        let form = required(fields::number(f, "fn", 9999)?, "fn")?;
        fields::number(f, "fh", 9999)?;
        fields::text(f, "al", 56)?;
        if self.memory.transaction.is_some() {
            return Err(Fail::Cmd(2038));
        }
        if self.memory.form.is_some() {
            return Err(Fail::Cmd(2505));
        }
        if !matches!(form, 2..=43 | 200 | 201) {
            return Err(Fail::Cmd(2501));
        }
        self.print_lines(0)?;
        self.changed = true;
        self.memory.form = Some(OpenForm {
            form,
            lines: Vec::new(),
        });
        Ok(Frame::new(&f.mnemonic))
    }

    fn formline(&mut self, f: &Frame) -> Res<Frame> {
        let form = required(fields::number(f, "fn", 9999)?, "fn")?;
        required(fields::number(f, "fl", 9999)?, "fl")?;
        let text = fields::text(f, "s1", 500)?.unwrap_or_default().to_string();
        fields::boolean(f, "sw")?;
        fields::boolean(f, "sh")?;
        if self
            .memory
            .form
            .as_ref()
            .is_none_or(|open| open.form != form)
        {
            return Err(Fail::Cmd(2504));
        }
        self.print_lines(1)?;
        if let Some(open) = self.memory.form.as_mut() {
            open.lines.push(text);
            self.changed = true;
        }
        Ok(Frame::new(&f.mnemonic))
    }

    fn formend(&mut self, f: &Frame) -> Res<Frame> {
        let form = required(fields::number(f, "fn", 9999)?, "fn")?;
        if self
            .memory
            .form
            .as_ref()
            .is_none_or(|open| open.form != form)
        {
            return Err(Fail::Cmd(2504));
        }
        self.print_lines(0)?;
        let m = &mut self.memory;
        if let Some(open) = m.form.take() {
            m.printouts.push(Printout {
                number: m.counters.next_printout,
                lines: open.lines,
            });
            m.counters.next_printout += 1;
            self.changed = true;
        }
        Ok(Frame::new(&f.mnemonic))
    }

    /// Replies to the status commands (never fail, never change memory).
    fn status(&self, f: &Frame, name: &str, now: NaiveDateTime) -> Frame {
        let m = &self.memory;
        let reply = Frame::new(&f.mnemonic);
        match name {
            "vatget" => {
                let names = ["va", "vb", "vc", "vd", "ve", "vf", "vg"];
                names
                    .iter()
                    .zip(m.vat_rates)
                    .fold(reply, |r, (n, rate)| r.with(n, VatTable::format_rate(rate)))
            }
            "rtcget" => reply.with("da", now.format("%Y-%m-%d;%H:%M").to_string()),
            "scomm" => {
                let ts = match (&m.transaction, &m.form) {
                    (Some(tr), _) if tr.block_mode => "17",
                    (Some(_), _) => "16",
                    (None, Some(_)) => "1",
                    (None, None) => "0",
                };
                reply
                    .with("fs", "T")
                    .with("tz", yes_no(m.day.receipts == 0))
                    .with("ts", ts)
                    .with("hr", "T")
                    .with("nu", m.unique_number.as_str())
                    .with("td", "N")
            }
            "scnt" => {
                let c = &m.counters;
                reply
                    .with("rd", c.daily_reports.to_string())
                    .with("hn", c.next_printout.to_string())
                    .with("bn", c.last_receipt.to_string())
                    .with("fn", "0")
                    .with("nu", m.unique_number.as_str())
                    .with("bc", c.cancelled.to_string())
                    .with("bt", c.receipts_total.to_string())
                    .with("fc", "0")
            }
            "sdev" => reply
                .with("ds", if self.blocked() { "3" } else { "0" })
                .with("cp", "T")
                .with("qe", yes_no(self.held.is_empty()))
                .with("pe", yes_no(self.paper_out || self.lines_left.is_some()))
                .with("tl", if self.busy() { "1" } else { "0" }),
            "sprn" => {
                let code = if self.cover_open {
                    "3"
                } else if self.paper_out {
                    "5"
                } else {
                    "0"
                };
                reply.with("pr", code)
            }
            "sid" => reply.with("nm", MODEL_NAME).with("vr", FIRMWARE_VERSION),
            // Only reachable through `kind`, which lists exactly the names above.
            _ => Frame::error_reply(&f.mnemonic, 2063),
        }
    }
}
