//! VAT invoices (`trfvinit`, `trfvbuyer`, `trfvnumber`, `trfvfreedata`, then lines and
//! `trend`), periodic reports and copies from protected memory.

use super::exec::timestamp;
use super::fields::{self, Fail, Res, required};
use super::receipt::BAD_TRANSACTION_STATE;
use super::{DocumentCopy, Invoice, InvoiceBuyer, OpenInvoice, PeriodicReport, Printer};
use crate::frame::Frame;
use chrono::NaiveDateTime;
use std::collections::BTreeMap;

/// Most free lines on one invoice.
const MAX_FREE_DATA: usize = 100;
pub use crate::error::DOCUMENT_NOT_FOUND;

impl Printer {
    fn open_invoice_mut(&mut self) -> Res<&mut OpenInvoice> {
        self.changed = true;
        self.memory
            .transaction
            .as_mut()
            .ok_or(Fail::Cmd(2005))?
            .invoice
            .as_mut()
            .ok_or(Fail::Cmd(BAD_TRANSACTION_STATE))
    }

    /// `trfvinit [cc]`: open a VAT invoice.
    pub(super) fn trfvinit(&mut self, f: &Frame, now: NaiveDateTime) -> Res<Frame> {
        let copies = fields::number(f, "cc", 99)?.unwrap_or(1);
        fields::text(f, "nm", 40)?;
        fields::boolean(f, "co")?;
        let copies = u8::try_from(copies)
            .ok()
            .filter(|c| *c <= 9)
            .ok_or(Fail::Cmd(2532))?;
        self.open_transaction(now, false)?;
        if let Some(tr) = self.memory.transaction.as_mut() {
            tr.invoice = Some(OpenInvoice {
                copies,
                ..OpenInvoice::default()
            });
        }
        Ok(Frame::new(&f.mnemonic))
    }

    /// `trfvbuyer na ni [ad] sc`: the buyer.
    pub(super) fn trfvbuyer(&mut self, f: &Frame) -> Res<Frame> {
        let name = fields::text(f, "na", 256)?.unwrap_or_default();
        let nip = required(fields::text(f, "ni", 20)?, "ni")?;
        let address = fields::text(f, "ad", 256)?.map(str::to_string);
        fields::number(f, "sc", 2)?;
        fields::number(f, "at", 255)?;
        if name.trim().is_empty() {
            return Err(Fail::Cmd(2535));
        }
        let buyer = InvoiceBuyer {
            name: name.to_string(),
            nip: nip.to_string(),
            address,
        };
        self.print_lines(0)?;
        self.open_invoice_mut()?.buyer = Some(buyer);
        Ok(Frame::new(&f.mnemonic))
    }

    /// `trfvnumber nb sc`: the invoice's number.
    pub(super) fn trfvnumber(&mut self, f: &Frame) -> Res<Frame> {
        let number = fields::text(f, "nb", 40)?.unwrap_or_default();
        fields::number(f, "sc", 2)?;
        if number.trim().is_empty() {
            return Err(Fail::Cmd(2533));
        }
        self.print_lines(0)?;
        self.open_invoice_mut()?.number = Some(number.to_string());
        Ok(Frame::new(&f.mnemonic))
    }

    /// `trfvfreedata tx sc`: a free line.
    pub(super) fn trfvfreedata(&mut self, f: &Frame) -> Res<Frame> {
        let text = required(fields::text(f, "tx", 56)?, "tx")?.to_string();
        fields::number(f, "sc", 2)?;
        let lines = self
            .open_receipt_ref()?
            .invoice
            .as_ref()
            .ok_or(Fail::Cmd(BAD_TRANSACTION_STATE))?
            .free_data
            .len();
        if lines >= MAX_FREE_DATA {
            return Err(Fail::Cmd(2058));
        }
        self.print_lines(1)?;
        self.open_invoice_mut()?.free_data.push(text);
        Ok(Frame::new(&f.mnemonic))
    }

    /// `trend to` of an invoice: buyer and number are required (2535, 2533).
    pub(super) fn close_invoice(&mut self, f: &Frame, to: u64, now: NaiveDateTime) -> Res<Frame> {
        let tr = self.open_receipt_ref()?;
        let Some(invoice) = tr.invoice.as_ref() else {
            return Err(Fail::Cmd(BAD_TRANSACTION_STATE));
        };
        if invoice.buyer.is_none() {
            return Err(Fail::Cmd(2535));
        }
        if invoice.number.is_none() {
            return Err(Fail::Cmd(2533));
        }
        tr.check_total(to)?;
        // The original and each copy.
        self.print_lines(u32::from(invoice.copies) + 1)?;
        let Some(tr) = self.memory.transaction.take() else {
            return Err(Fail::Cmd(2005));
        };
        self.changed = true;
        let vat_totals = tr.rate_totals();
        let invoice = tr.invoice.unwrap_or_default();
        let m = &mut self.memory;
        m.open_receipt = false;
        m.counters.invoices += 1;
        m.counters.next_printout += 1;
        m.add_to_day(&vat_totals, now);
        m.day.invoices += 1;
        m.lock_products(&tr.lines);
        m.invoices.push(Invoice {
            number: m.counters.invoices,
            invoice_number: invoice.number.unwrap_or_default(),
            buyer: invoice.buyer.unwrap_or_default(),
            lines: tr.lines.into_iter().map(|l| l.line).collect(),
            total: to,
            vat_totals,
            copies: invoice.copies,
            free_data: invoice.free_data,
            printed_at: timestamp(now),
        });
        Ok(Frame::new(&f.mnemonic))
    }

    /// `periodicrepbydates fd td [su]`: sales over a range of days, from the daily reports.
    pub(super) fn periodicrep(&mut self, f: &Frame, now: NaiveDateTime) -> Res<Frame> {
        let from = required(fields::date(f, "fd")?, "fd")?;
        let to = required(fields::date(f, "td")?, "td")?;
        let summary = fields::boolean(f, crate::command::PERIODIC_SUMMARY_PARAM)?.unwrap_or(false);
        if self.busy() {
            return Err(Fail::Cmd(2038));
        }
        if from > to || to > now.date() {
            return Err(Fail::Cmd(2063));
        }
        self.print_lines(0)?;
        self.changed = true;
        let m = &mut self.memory;
        let mut totals: BTreeMap<String, u64> = BTreeMap::new();
        let mut reports = 0;
        let range = (
            from.format("%Y-%m-%d").to_string(),
            to.format("%Y-%m-%d").to_string(),
        );
        for r in &m.daily_reports {
            if r.date >= range.0 && r.date <= range.1 {
                reports += 1;
                for (letter, amount) in &r.totals {
                    let entry = totals.entry(letter.clone()).or_default();
                    *entry = entry.saturating_add(*amount);
                }
            }
        }
        m.periodic_reports.push(PeriodicReport {
            number: m.counters.next_printout,
            from: range.0,
            to: range.1,
            summary,
            daily_reports: reports,
            totals,
        });
        m.counters.next_printout += 1;
        Ok(Frame::new(&f.mnemonic))
    }

    /// `ecprndoc ty fn tn`: a non-fiscal copy of receipts (`ty0`) or invoices (`ty1`) from
    /// protected memory, by number.
    pub(super) fn ecprndoc(&mut self, f: &Frame) -> Res<Frame> {
        let ty = required(fields::number(f, "ty", 9)?, "ty")?;
        let from = required(fields::amount(f, "fn", u64::from(u32::MAX))?, "fn")?;
        let to = fields::amount(f, "tn", u64::from(u32::MAX))?.unwrap_or(from);
        fields::date(f, "fd")?;
        fields::date(f, "td")?;
        if self.busy() {
            return Err(Fail::Cmd(2038));
        }
        let m = &self.memory;
        let (of, documents): (&str, Vec<u64>) = match ty {
            0 => (
                "receipt",
                m.receipts
                    .iter()
                    .map(|r| r.number)
                    .filter(|n| (from..=to).contains(n))
                    .collect(),
            ),
            1 => (
                "invoice",
                m.invoices
                    .iter()
                    .map(|i| i.number)
                    .filter(|n| (from..=to).contains(n))
                    .collect(),
            ),
            _ => return Err(Fail::Cmd(2063)),
        };
        if from > to || documents.is_empty() {
            return Err(Fail::Cmd(DOCUMENT_NOT_FOUND));
        }
        self.print_lines(u32::try_from(documents.len()).unwrap_or(u32::MAX))?;
        self.changed = true;
        let m = &mut self.memory;
        m.copies.push(DocumentCopy {
            number: m.counters.next_printout,
            of: of.to_string(),
            documents,
        });
        m.counters.next_printout += 1;
        Ok(Frame::new(&f.mnemonic))
    }
}
