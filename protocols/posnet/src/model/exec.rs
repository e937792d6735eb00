//! Command dispatch, holding, tokens and the command handlers.

use super::fields::{self, Fail, MAX_AMOUNT, Res, required};
use super::{
    CashOperation, DailyReport, FIRMWARE_VERSION, MAX_HELD, MODEL_NAME, OpenForm, OpenReceipt,
    Outcome, Printer, Printout, TOKEN_BUFFER,
};
use crate::frame::Frame;
use crate::reply::{VatRate, VatTable};
use chrono::NaiveDateTime;

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
        "trinit" | "trline" | "trdiscntbill" | "trpack" | "trpayment" | "trend" | "trftrln"
        | "trftrend" | "dailyrep" | "cash" | "formstart" | "formline" | "formend" | "trfvinit"
        | "trfvbuyer" | "trfvnumber" | "trfvfreedata" | "periodicrepbydates" | "ecprndoc" => {
            Kind::Printing
        }
        "prncancel" | "trcancel" => Kind::Cancel,
        "trnipset" | "ftrcfg" | "qrcode" | "discounttypeset" => Kind::Other,
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
pub(super) fn rank(rate: VatRate) -> Option<u32> {
    match rate {
        VatRate::Exempt => Some(0),
        VatRate::Percent(p) => Some(p.saturating_add(1)),
        VatRate::Inactive => None,
    }
}

fn yes_no(b: bool) -> &'static str {
    if b { "T" } else { "N" }
}

pub(super) fn timestamp(now: NaiveDateTime) -> String {
    now.format("%Y-%m-%dT%H:%M:%S").to_string()
}

pub(super) fn payment_method(ty: u32) -> Option<&'static str> {
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
            // A status query without `!` is queued like any command: behind commands the
            // printer holds for paper, it is answered after they ran (only `!sdev` and
            // `!sprn` jump the queue).
            Some(Kind::Status) if !self.held.is_empty() => {
                if self.held.len() >= MAX_HELD {
                    return self.answer(command, frame_error(14, name, None), false);
                }
                self.held.push_back(command.clone());
                Outcome {
                    reply: None,
                    fiscal_event: false,
                }
            }
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
        if let Some(tr) = m.transaction.take() {
            if tr.invoice.is_some() {
                m.counters.cancelled_invoices += 1;
            } else {
                m.counters.cancelled += 1;
                m.counters.receipts_total += 1;
                m.day.cancelled += 1;
            }
            m.counters.next_printout += 1;
            self.changed = true;
        }
        if m.footer_open {
            m.footer_open = false;
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
            "trline"
                | "trnipset"
                | "trdiscntbill"
                | "trpack"
                | "trpayment"
                | "trftrln"
                | "trfvbuyer"
                | "trfvnumber"
                | "trfvfreedata"
                | "formline"
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
            "trpack" => self.trpack(f),
            "trpayment" => self.trpayment(f),
            "trend" => self.trend(f, now),
            "trftrln" => self.trftrln(f),
            "trftrend" => self.trftrend(f),
            "ftrcfg" => self.ftrcfg(f),
            "qrcode" => self.qrcode(f),
            "discounttypeset" => self.discounttypeset(f),
            "trfvinit" => self.trfvinit(f, now),
            "trfvbuyer" => self.trfvbuyer(f),
            "trfvnumber" => self.trfvnumber(f),
            "trfvfreedata" => self.trfvfreedata(f),
            "periodicrepbydates" => self.periodicrep(f, now),
            "ecprndoc" => self.ecprndoc(f),
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
    pub(super) fn print_lines(&mut self, n: u32) -> Res<()> {
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

    pub(super) fn open_receipt_ref(&self) -> Res<&OpenReceipt> {
        self.memory.transaction.as_ref().ok_or(Fail::Cmd(2005))
    }

    pub(super) fn open_receipt_mut(&mut self) -> Res<&mut OpenReceipt> {
        self.changed = true;
        self.memory.transaction.as_mut().ok_or(Fail::Cmd(2005))
    }

    pub(super) fn busy(&self) -> bool {
        self.memory.transaction.is_some() || self.memory.form.is_some() || self.memory.footer_open
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
        let zero = self.memory.day.receipts == 0 && self.memory.day.invoices == 0;
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
                    (Some(tr), _) if tr.invoice.is_some() => "33",
                    (Some(tr), _) if tr.block_mode => "17",
                    (Some(_), _) => "16",
                    (None, Some(_)) => "1",
                    (None, None) if m.footer_open => "16",
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
                    .with("fn", c.invoices.to_string())
                    .with("nu", m.unique_number.as_str())
                    .with("bc", c.cancelled.to_string())
                    .with("bt", c.receipts_total.to_string())
                    .with("fc", c.cancelled_invoices.to_string())
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
