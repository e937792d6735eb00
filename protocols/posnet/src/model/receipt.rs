//! The receipt's commands: lines with their discounts, bill discounts, returnable packaging,
//! payments, the closing `trend` with its verification values, and the footer.

use super::exec::{payment_method, rank, timestamp};
use super::fields::{self, Fail, MAX_AMOUNT, MAX_PRICE, Res, required};
use super::{
    Adjustment, AdjustmentKind, Deposit, MAX_FOOTER_LINES, MAX_INVOICE_LINES, MAX_LINES, OpenLine,
    OpenReceipt, Printer, Receipt, ReceiptLine, ReceiptPayment,
};
use crate::frame::Frame;
use crate::reply::{SLOT_LETTERS, VatRate};
use chrono::NaiveDateTime;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// The error for a command the open transaction does not take (packaging, payments or a
/// bill discount on an invoice).
pub(super) const BAD_TRANSACTION_STATE: u32 = 2060;

/// A discount/surcharge request (`rd`, `rp`, `rw` and a name field), not yet resolved.
pub(super) struct AdjustmentRequest {
    surcharge: bool,
    percent: Option<Decimal>,
    value: Option<u64>,
    name: Option<String>,
}

impl AdjustmentRequest {
    /// Parse the fields; `None` when neither `rp` nor `rw` is present.
    pub(super) fn parse(f: &Frame, name_field: &'static str) -> Res<Option<Self>> {
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

    /// Resolve against `base` (grosze): `rp` wins, `rw` then only verifies it (2801).
    ///
    /// A percentage discount rounds as `discounttypeset` says: with `discount_first` the
    /// discount itself is rounded half up (`dt1`); otherwise the value after the discount
    /// is (`dt0`). A surcharge comes out the same either way.
    fn resolve(self, base: u64, discount_first: bool) -> Res<Adjustment> {
        let amount = match (self.percent, self.value) {
            (Some(p), rw) => {
                if p <= Decimal::ZERO || p >= Decimal::ONE_HUNDRED {
                    return Err(Fail::Cmd(2601));
                }
                let computed = if self.surcharge || discount_first {
                    fields::percent_of(base, p).ok_or(Fail::Cmd(1950))?
                } else {
                    let after = fields::percent_of(base, Decimal::ONE_HUNDRED - p)
                        .ok_or(Fail::Cmd(1950))?;
                    base.saturating_sub(after)
                };
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
    i128::from(line.amount) + line.discount.as_ref().map_or(0, Adjustment::signed)
}

/// Spread a change of the total over the VAT letters (POT-I-DEV-37, the calculation annex):
/// in letter order each rate gets `floor(value × after / before)`; the remainders are summed,
/// and whenever the sum reaches `before` the current rate gets one grosz more.
pub(super) fn spread(per: &mut BTreeMap<String, i128>, after: i128) {
    let before: i128 = per.values().sum();
    if before <= 0 || after < 0 {
        return;
    }
    let mut carried = 0;
    for v in per.values_mut() {
        let product = *v * after;
        *v = product / before;
        carried += product % before;
        if carried >= before {
            *v += 1;
            carried -= before;
        }
    }
}

impl OpenReceipt {
    /// The fiscal total: lines after line adjustments, then bill adjustments.
    pub(super) fn total(&self) -> i128 {
        let lines: i128 = self.lines.iter().map(|l| line_value(&l.line)).sum();
        lines + self.discounts.iter().map(Adjustment::signed).sum::<i128>()
    }

    /// The closing checks every document shares: some lines (1992), the host's total equal
    /// to the printer's (2805), and a positive total (2041).
    pub(super) fn check_total(&self, to: u64) -> Res<()> {
        if self.lines.is_empty() {
            return Err(Fail::Cmd(1992));
        }
        let total = self.total();
        if total != i128::from(to) {
            return Err(Fail::Cmd(2805));
        }
        if total <= 0 {
            return Err(Fail::Cmd(2041));
        }
        Ok(())
    }

    fn paid(&self) -> u64 {
        self.payments
            .iter()
            .fold(0, |sum, p| sum.saturating_add(p.amount))
    }

    /// Deposits issued and returned.
    fn deposit_sums(&self) -> (u64, u64) {
        self.deposits.iter().fold((0, 0), |(i, r), d| {
            if d.returned {
                (i, r.saturating_add(d.amount))
            } else {
                (i.saturating_add(d.amount), r)
            }
        })
    }

    /// Gross sales per VAT letter: the lines after their own adjustments, then each bill
    /// adjustment in turn spread over the letters by [`spread`].
    pub(super) fn rate_totals(&self) -> BTreeMap<String, u64> {
        let mut per: BTreeMap<String, i128> = BTreeMap::new();
        for l in &self.lines {
            *per.entry(l.line.vat.clone()).or_default() += line_value(&l.line);
        }
        for adjustment in &self.discounts {
            let after: i128 = per.values().sum::<i128>() + adjustment.signed();
            spread(&mut per, after);
        }
        per.into_iter()
            .map(|(k, v)| (k, u64::try_from(v).unwrap_or(0)))
            .collect()
    }
}

impl Printer {
    pub(super) fn trinit(&mut self, f: &Frame, now: NaiveDateTime) -> Res<Frame> {
        let block_mode = fields::boolean(f, "bm")?.unwrap_or(false);
        self.open_transaction(now, block_mode)?;
        Ok(Frame::new(&f.mnemonic))
    }

    /// Open a receipt (or, for `trfvinit`, the transaction an invoice then marks).
    pub(super) fn open_transaction(&mut self, now: NaiveDateTime, block_mode: bool) -> Res<()> {
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
        Ok(())
    }

    pub(super) fn trline(&mut self, f: &Frame) -> Res<Frame> {
        let name = required(fields::text(f, "na", 80)?, "na")?;
        let slot = required(fields::number(f, "vt", 99)?, "vt")?;
        let price = required(fields::amount(f, "pr", MAX_PRICE)?, "pr")?;
        let quantity = fields::num(f, "il")?.unwrap_or(Decimal::ONE);
        let declared = fields::amount(f, "wa", MAX_PRICE)?;
        let storno = fields::boolean(f, "st")?.unwrap_or(false);
        fields::text(f, "jm", 4)?;
        fields::text(f, "op", 50)?;
        let pkwiu = fields::text(f, "np", 49)?.map(str::to_string);
        let code = fields::text(f, "nc", 51)?.map(str::to_string);
        let request = AdjustmentRequest::parse(f, "rn")?;
        let discount_first = self.memory.discount_first;
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
            if !tr.discounts.is_empty() || !tr.payments.is_empty() {
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
        let most = if tr.invoice.is_some() {
            MAX_INVOICE_LINES
        } else {
            MAX_LINES
        };
        if tr.lines.len() >= most {
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
        let discount = match request {
            Some(r) => Some(r.resolve(value, discount_first)?),
            None => None,
        };
        let line = ReceiptLine {
            name: name.to_string(),
            vat: letter,
            quantity: quantity_text,
            unit_price: price,
            amount: value,
            discount,
            pkwiu,
            code,
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

    pub(super) fn trnipset(&mut self, f: &Frame) -> Res<Frame> {
        let nip = required(fields::text(f, "ni", 30)?, "ni")?;
        fields::boolean(f, "dw")?;
        fields::text(f, "ds", 56)?;
        self.receipt_only()?;
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

    /// The open transaction, which must be a receipt (not an invoice).
    fn receipt_only(&self) -> Res<&OpenReceipt> {
        let tr = self.open_receipt_ref()?;
        if tr.invoice.is_some() {
            return Err(Fail::Cmd(BAD_TRANSACTION_STATE));
        }
        Ok(tr)
    }

    pub(super) fn trdiscntbill(&mut self, f: &Frame) -> Res<Frame> {
        let request = required(AdjustmentRequest::parse(f, "na")?, "rw")?;
        let discount_first = self.memory.discount_first;
        let tr = self.receipt_only()?;
        let base = tr.total();
        if tr.lines.is_empty() || base <= 0 {
            return Err(Fail::Cmd(1980));
        }
        let base = u64::try_from(base).map_err(|_| Fail::Cmd(1950))?;
        let adj = request.resolve(base, discount_first)?;
        if i128::from(base) + adj.signed() > i128::from(MAX_AMOUNT) {
            return Err(Fail::Cmd(1950));
        }
        self.print_lines(0)?;
        self.open_receipt_mut()?.discounts.push(adj);
        Ok(Frame::new(&f.mnemonic))
    }

    /// `trpack na pr il wa [ne] [st] [de]`: a returnable-packaging line.
    pub(super) fn trpack(&mut self, f: &Frame) -> Res<Frame> {
        let code = required(fields::text(f, "na", 11)?, "na")?;
        let price = required(fields::amount(f, "pr", MAX_AMOUNT)?, "pr")?;
        let quantity = fields::amount(f, "il", 99_999)?.unwrap_or(1);
        let declared = fields::amount(f, "wa", MAX_AMOUNT)?;
        let returned = fields::boolean(f, "ne")?.unwrap_or(false);
        let storno = fields::boolean(f, "st")?.unwrap_or(false);
        let name = fields::text(f, "de", 50)?.map(str::to_string);
        if code.is_empty() || !code.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Fail::Frame(3, Some("na")));
        }
        let tr = self.receipt_only()?;
        if price == 0 || quantity == 0 {
            return Err(Fail::Cmd(2810));
        }
        let amount = price.checked_mul(quantity).ok_or(Fail::Cmd(1950))?;
        if amount > MAX_AMOUNT {
            return Err(Fail::Cmd(1950));
        }
        if declared.is_some_and(|wa| wa != amount) {
            return Err(Fail::Cmd(2803));
        }
        let deposit = Deposit {
            code: code.to_string(),
            name,
            unit_price: price,
            quantity,
            amount,
            returned,
        };
        if storno {
            let found = tr.deposits.iter().rposition(|d| {
                d.code == deposit.code
                    && d.unit_price == price
                    && d.quantity == quantity
                    && d.returned == returned
            });
            let Some(index) = found else {
                return Err(Fail::Cmd(2853));
            };
            self.print_lines(1)?;
            self.open_receipt_mut()?.deposits.remove(index);
            return Ok(Frame::new(&f.mnemonic));
        }
        self.print_lines(1)?;
        self.open_receipt_mut()?.deposits.push(deposit);
        Ok(Frame::new(&f.mnemonic))
    }

    pub(super) fn trpayment(&mut self, f: &Frame) -> Res<Frame> {
        let ty = required(fields::number(f, "ty", 99)?, "ty")?;
        let amount = required(fields::amount(f, "wa", MAX_AMOUNT)?, "wa")?;
        let change = fields::boolean(f, "re")?.unwrap_or(false);
        fields::text(f, "na", 25)?;
        let tr = self.receipt_only()?;
        let method = payment_method(ty).ok_or(Fail::Cmd(2705))?;
        if amount == 0 {
            return Err(Fail::Cmd(1962));
        }
        if change {
            if tr.change + amount > MAX_AMOUNT {
                return Err(Fail::Cmd(1950));
            }
        } else {
            let (issued, returned) = tr.deposit_sums();
            let due = tr.total() + i128::from(issued) - i128::from(returned);
            let paid = tr.paid();
            if due > 0 && i128::from(paid) >= due {
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

    /// `trend to [fp] [re] [op] [om] [fe]`: the printer checks every value the host sends
    /// against its own (2805 total, 2806/2807 packaging, 2808 payments, 2809 change).
    pub(super) fn trend(&mut self, f: &Frame, now: NaiveDateTime) -> Res<Frame> {
        let to = required(fields::amount(f, "to", MAX_AMOUNT)?, "to")?;
        let fp = fields::amount(f, "fp", MAX_AMOUNT)?;
        let re = fields::amount(f, "re", MAX_AMOUNT)?;
        let op = fields::amount(f, "op", MAX_AMOUNT)?.unwrap_or(0);
        let om = fields::amount(f, "om", MAX_AMOUNT)?.unwrap_or(0);
        let footer = !fields::boolean(f, "fe")?.unwrap_or(true);
        let tr = self.open_receipt_ref()?;
        if tr.invoice.is_some() {
            if fp.is_some() || re.is_some() || op > 0 || om > 0 || footer {
                return Err(Fail::Cmd(BAD_TRANSACTION_STATE));
            }
            return self.close_invoice(f, to, now);
        }
        tr.check_total(to)?;
        let (issued, returned) = tr.deposit_sums();
        if op != issued {
            return Err(Fail::Cmd(2806));
        }
        if om != returned {
            return Err(Fail::Cmd(2807));
        }
        // Deposits are outside the fiscal total: the customer pays `to + op − om`.
        let due = u64::try_from(i128::from(to) + i128::from(op) - i128::from(om))
            .map_err(|_| Fail::Cmd(2054))?;
        let paid = tr.paid();
        if fp.is_some_and(|fp| fp != paid) {
            return Err(Fail::Cmd(2808));
        }
        if paid < due {
            return Err(Fail::Cmd(2054));
        }
        let change = if tr.change > 0 {
            if paid.checked_sub(tr.change) != Some(due) {
                return Err(Fail::Cmd(2054));
            }
            tr.change
        } else {
            paid - due
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
        let vat_totals = tr.rate_totals();
        let m = &mut self.memory;
        m.open_receipt = false;
        m.footer_open = footer;
        m.counters.last_receipt += 1;
        m.counters.receipts_total += 1;
        m.counters.next_printout += 1;
        m.add_to_day(&vat_totals, now);
        m.day.receipts += 1;
        m.lock_products(&tr.lines);
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
            discounts: tr.discounts,
            deposits: tr.deposits,
            deposits_issued: issued,
            deposits_returned: returned,
            amount_due: due,
            vat_totals,
            footer: Vec::new(),
            barcode: m.next_barcode.take(),
            qr: m.next_qr.take(),
        });
        Ok(Frame::new(&f.mnemonic))
    }

    /// `trftrln id na [sw] [sh]`: a footer line after `trend fe0`.
    pub(super) fn trftrln(&mut self, f: &Frame) -> Res<Frame> {
        let id = fields::number(f, "id", 99)?.unwrap_or(25);
        let text = fields::text(f, "na", 56)?.unwrap_or_default().to_string();
        fields::boolean(f, "sw")?;
        fields::boolean(f, "sh")?;
        if !self.memory.footer_open {
            return Err(Fail::Cmd(2066));
        }
        if id > 42 {
            return Err(Fail::Cmd(2702));
        }
        let lines = self.memory.receipts.last().map_or(0, |r| r.footer.len());
        if lines >= MAX_FOOTER_LINES {
            return Err(Fail::Cmd(2703));
        }
        self.print_lines(1)?;
        if let Some(r) = self.memory.receipts.last_mut() {
            r.footer.push(text);
            self.changed = true;
        }
        Ok(Frame::new(&f.mnemonic))
    }

    /// `trftrend`: close the footer.
    pub(super) fn trftrend(&mut self, f: &Frame) -> Res<Frame> {
        if !self.memory.footer_open {
            return Err(Fail::Cmd(2066));
        }
        self.print_lines(0)?;
        self.memory.footer_open = false;
        self.changed = true;
        Ok(Frame::new(&f.mnemonic))
    }

    /// `ftrcfg bc [bb]`: the barcode for the next receipt's footer.
    pub(super) fn ftrcfg(&mut self, f: &Frame) -> Res<Frame> {
        let barcode = fields::text(f, "bc", 30)?;
        fields::number(f, "bb", 2)?;
        if self.memory.footer_open {
            return Err(Fail::Cmd(2038));
        }
        self.memory.next_barcode = barcode.filter(|b| !b.is_empty()).map(str::to_string);
        self.changed = true;
        Ok(Frame::new(&f.mnemonic))
    }

    /// `qrcode [px] [el] [hx] tx`: the QR code for the next receipt's footer.
    pub(super) fn qrcode(&mut self, f: &Frame) -> Res<Frame> {
        let text = required(fields::text(f, "tx", 2000)?, "tx")?;
        let px = fields::number(f, "px", 99)?;
        fields::number(f, "el", 3)?;
        fields::boolean(f, "hx")?;
        if px.is_some_and(|px| px < 2) || text.is_empty() {
            return Err(Fail::Cmd(3200));
        }
        if self.memory.footer_open {
            return Err(Fail::Cmd(2038));
        }
        self.memory.next_qr = Some(text.to_string());
        self.changed = true;
        Ok(Frame::new(&f.mnemonic))
    }

    /// `discounttypeset dt`: how percentage discounts round.
    pub(super) fn discounttypeset(&mut self, f: &Frame) -> Res<Frame> {
        let discount_first = required(fields::boolean(f, "dt")?, "dt")?;
        if self.busy() {
            return Err(Fail::Cmd(2038));
        }
        self.memory.discount_first = discount_first;
        self.changed = true;
        Ok(Frame::new(&f.mnemonic))
    }
}

impl super::FiscalMemory {
    /// Add a document's per-letter sales to the day (and start the fiscal day).
    pub(super) fn add_to_day(&mut self, totals: &BTreeMap<String, u64>, now: NaiveDateTime) {
        for (letter, amount) in totals {
            let entry = self.day.totals.entry(letter.clone()).or_default();
            *entry = entry.saturating_add(*amount);
        }
        self.day.first_sale.get_or_insert(now.date());
    }

    /// Lock the names of sold lines to the lowest rate they were sold at.
    pub(super) fn lock_products(&mut self, lines: &[OpenLine]) {
        for l in lines {
            let keep = self
                .products
                .get(&l.key)
                .and_then(|r| rank(*r))
                .is_some_and(|old| rank(l.rate) >= Some(old));
            if !keep {
                self.products.insert(l.key.clone(), l.rate);
            }
        }
    }
}
