//! The Novitus XML driver: a [`FiscalPrinter`] over `protocols/novitus_xml`, for
//! `protocol = "novitus-xml"`.
//!
//! Errors are silent (`<error action="set" value="silent"/>` at connect) and never come
//! inline: every packet of commands ends with `<enq/>` and `<error action="get"/>`, so one
//! round trip tells whether the commands ran (`lastcommanderror`) and, when not, the code.
//! Identity from `<info action="version"/>`, the VAT table from `<taxrates action="get"/>`
//! (exempt is `free`), the counters and the serial number from `<info action="checkout"/>`.
//!
//! A whole document goes in one packet when it fits the printer's 5000-byte buffer (the
//! specification's own examples send a receipt so); a longer one is split, the close in the
//! last packet. Everything goes after `DocumentSteps::closing` returned, so the journal knows
//! the close may have been sent before its first byte.
//!
//! Exactly once: every receipt is closed with `systemno` = the job's tag. Afterwards (and
//! after a crash) `<info action="lasttransaction"/>` says whether the last receipt is ours
//! and closed, with its number; the task's tagged verdict wants the receipt counter to
//! agree. Cash operations, printouts and the daily report move `lastprintout` by one.
//!
//! No paper (error 1037) fails a command and does nothing: the driver waits for paper as the
//! task's policy allows, cancels what is open and sends the document again from its start.

pub mod link;
mod request;

pub use request::{FAMILY, NO_PAPER, check_request, error_info};

use crate::device::printer::{
    Abort, Activity, Document, DocumentSteps, FiscalPrinter, Hold, Mechanism, PrinterError,
    PrinterIdentity, PrinterLink, TaggedReceipt, VatRate, VatSlot,
};
use crate::device::{DeviceError, DocumentCounters};
use crate::document::DocumentSupport;
use link::Link;
use novitus_xml::reply::{self, Enq, LastTransaction};
use novitus_xml::{Checkout, Command, Decoded, Dle, Element, TaxRate};
use std::time::Duration;
use tokio::time::Instant;

/// How often `<dle/>` is asked while the paper is out.
const HOLD_POLL: Duration = Duration::from_millis(300);
/// The bytes of a packet's commands, leaving room in the printer's buffer for the tags and
/// the two status queries.
const PACKET_BUDGET: usize = novitus_xml::packet::MAX_PACKET - 200;
/// How often a document is sent again after "no paper" before the refusal stands (a
/// printer that says 1037 while `<dle/>` shows paper would otherwise be asked forever).
const MAX_RESTARTS: u32 = 20;
/// How long the line must stay quiet at connect (a late reply from before is dropped).
const QUIET: Duration = Duration::from_millis(150);
/// The VAT letters in slot order.
const LETTERS: [char; 7] = ['A', 'B', 'C', 'D', 'E', 'F', 'G'];

/// What a Novitus XML printer prints: receipts (without the extras), cash in/out,
/// non-fiscal printouts and the daily report. No invoices, periodic reports or copies.
pub const SUPPORT: DocumentSupport = DocumentSupport {
    protocol: FAMILY,
    invoices: false,
    invoice_subtotal_adjustments: false,
    periodic_reports: false,
    copies: false,
};

/// The job error for the printer's refusal of `command` with `code`: the neutral category,
/// the device, the code, what it means.
pub fn refusal(device: &str, command: &str, code: u32) -> DeviceError {
    let (category, meaning) = error_info(code);
    DeviceError::new(
        category,
        format!("printer {device} ({FAMILY}) refused {command} with error {code}: {meaning}"),
        Some(code),
    )
}

fn mechanism_of(d: Dle) -> Mechanism {
    Mechanism {
        paper_out: d.paper_error,
        cover_open: d.printer_error,
    }
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Dle => "<dle>",
        Command::Enq => "<enq>",
        Command::ErrorSilent | Command::ErrorGet => "<error>",
        Command::Version | Command::Checkout | Command::LastTransaction => "<info>",
        Command::TaxRates => "<taxrates>",
        Command::ReceiptBegin => "the receipt's begin",
        Command::Item(_) => "an <item>",
        Command::Payment(_) => "a <payment>",
        Command::ReceiptClose { .. } => "the receipt's close",
        Command::ReceiptCancel => "the receipt's cancel",
        Command::Cash { .. } => "<cash>",
        Command::Printout { .. } => "<nonfiscalprintout>",
        Command::DailyReport { .. } => "the daily report",
    }
}

/// Split `commands` into packets that fit the printer's buffer, in order.
fn packets(commands: Vec<Command>) -> Result<Vec<Vec<Command>>, novitus_xml::text::TextError> {
    let mut out: Vec<Vec<Command>> = Vec::new();
    let mut size = 0;
    for c in commands {
        let len = Command::body(std::slice::from_ref(&c))?.len();
        match out.last_mut() {
            Some(p) if size + len <= PACKET_BUDGET => {
                p.push(c);
                size += len;
            }
            _ => {
                out.push(vec![c]);
                size = len;
            }
        }
    }
    Ok(out)
}

/// The `systemno` of the receipt's close in `packet`, if it holds one.
fn closing_tag(packet: &[Command]) -> Option<&str> {
    packet.iter().find_map(|c| match c {
        Command::ReceiptClose { systemno, .. } if !systemno.is_empty() => Some(systemno.as_str()),
        _ => None,
    })
}

fn counters_of(c: &Checkout) -> DocumentCounters {
    DocumentCounters {
        last_receipt: c.last_receipt,
        // Every document but a cancelled receipt takes the next printout number.
        daily_reports: c.last_printout,
        next_printout: c.last_printout + 1,
        invoices: c.last_invoice,
    }
}

/// The printer's clock as `checkout` writes it (`dd-mm-yyyy hh:mm:ss`, not confirmed on a
/// device).
fn clock_of(c: &Checkout) -> Option<chrono::NaiveDateTime> {
    let d = c.date.as_deref()?;
    chrono::NaiveDateTime::parse_from_str(d.trim(), "%d-%m-%Y %H:%M:%S").ok()
}

fn tagged(t: &LastTransaction) -> TaggedReceipt {
    TaggedReceipt {
        closed: t.state == "close",
        number: t.number,
        tag: t.systemno.clone().unwrap_or_default(),
    }
}

/// One open connection to a Novitus XML printer.
pub struct NovitusXmlPrinter {
    link: Link,
    config: PrinterLink,
    /// The counters read behind the last document.
    after: Option<DocumentCounters>,
    /// The last transaction read behind the last receipt.
    after_receipt: Option<TaggedReceipt>,
    /// The printer's clock read behind the last document (its time on the job's result).
    after_clock: Option<chrono::NaiveDateTime>,
}

impl NovitusXmlPrinter {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn protocol_error(&self, e: impl std::fmt::Display) -> PrinterError {
        PrinterError::Protocol(format!("printer {} ({FAMILY}): {e}", self.config.id))
    }

    /// The time `bytes` take on the line at the configured speed.
    fn wire(&self, bytes: usize) -> Duration {
        Duration::from_secs_f64(bytes as f64 * 10.0 / f64::from(self.config.baud.max(1)))
    }

    /// Send one packet of `commands` and wait for the reply holding an element called
    /// `expect` (and `<error>` when the packet asks for it); a reply without them is a late
    /// answer to an earlier exchange and is dropped.
    async fn exchange(
        &mut self,
        commands: &[Command],
        expect: &str,
        timeout: Duration,
    ) -> Result<Vec<Element>, PrinterError> {
        let packet = Command::packet(commands)
            .map_err(|e| PrinterError::Unsupported(format!("printer {}: {e}", self.config.id)))?;
        let budget = timeout + self.wire(packet.len() + 1024);
        self.link.reset_input();
        self.link.send(packet);
        let deadline = Instant::now() + budget;
        loop {
            match self.link.next(deadline).await.map_err(PrinterError::Link)? {
                Some(Decoded::Packet(p)) => {
                    let els = reply::parse(&p.body).map_err(|e| self.protocol_error(e))?;
                    let wants_error = commands.last() == Some(&Command::ErrorGet);
                    if els.iter().any(|e| e.name == expect)
                        && (!wants_error || els.iter().any(|e| e.name == "error"))
                    {
                        return Ok(els);
                    }
                    tracing::debug!(printer = self.id(), "dropping a late reply");
                }
                Some(Decoded::Invalid { error, .. }) => {
                    return Err(self.protocol_error(format!("a damaged reply ({error})")));
                }
                Some(Decoded::Garbage(_)) => {}
                None => {
                    return Err(PrinterError::Link(format!(
                        "printer {} did not answer {} within {:.1} s",
                        self.config.id,
                        command_name(&commands[0]),
                        budget.as_secs_f64()
                    )));
                }
            }
        }
    }

    /// Run `commands` in one packet; the `<enq/>` behind them says whether they all ran,
    /// `<error action="get"/>` the code when not.
    async fn run(&mut self, commands: &[Command], timeout: Duration) -> Result<(), PrinterError> {
        let mut packet = commands.to_vec();
        packet.extend([Command::Enq, Command::ErrorGet]);
        let els = self.exchange(&packet, "enq", timeout).await?;
        let enq = Enq::from_elements(&els).map_err(|e| self.protocol_error(e))?;
        if !enq.last_command_error {
            return Ok(());
        }
        let code = reply::error_code(&els).map_err(|e| self.protocol_error(e))?;
        let what = match commands {
            [one] => command_name(one),
            _ => "a command of the document",
        };
        Err(PrinterError::Refused(refusal(&self.config.id, what, code)))
    }

    async fn query(&mut self, c: Command, expect: &str) -> Result<Vec<Element>, PrinterError> {
        let t = self.config.command_timeout;
        self.exchange(&[c], expect, t).await
    }

    async fn enq(&mut self) -> Result<Enq, PrinterError> {
        let els = self.query(Command::Enq, "enq").await?;
        Enq::from_elements(&els).map_err(|e| self.protocol_error(e))
    }

    async fn dle(&mut self) -> Result<Dle, PrinterError> {
        let els = self.query(Command::Dle, "dle").await?;
        Dle::from_elements(&els).map_err(|e| self.protocol_error(e))
    }

    async fn checkout(&mut self) -> Result<Checkout, PrinterError> {
        let els = self.query(Command::Checkout, "info").await?;
        Checkout::from_elements(&els).map_err(|e| self.protocol_error(e))
    }

    /// The counters, the last transaction and the clock, in one round trip.
    async fn read_after(&mut self) -> Result<(DocumentCounters, TaggedReceipt), PrinterError> {
        let t = self.config.command_timeout;
        let els = self
            .exchange(&[Command::Checkout, Command::LastTransaction], "info", t)
            .await?;
        let c = Checkout::from_elements(&els).map_err(|e| self.protocol_error(e))?;
        let l = LastTransaction::from_elements(&els).map_err(|e| self.protocol_error(e))?;
        self.after_clock = clock_of(&c);
        Ok((counters_of(&c), tagged(&l)))
    }

    /// Whether the last receipt is closed with `tag` as its `systemno`.
    async fn closed_with(&mut self, tag: &str) -> Result<bool, PrinterError> {
        let els = self.query(Command::LastTransaction, "info").await?;
        let l = LastTransaction::from_elements(&els).map_err(|e| self.protocol_error(e))?;
        Ok(l.state == "close" && l.systemno.as_deref() == Some(tag))
    }

    /// Cancel the receipt open on the printer, if one is.
    async fn cancel_if_open(&mut self) -> Result<(), PrinterError> {
        if self.enq().await?.in_transaction {
            let t = self.config.command_timeout;
            self.run(&[Command::ReceiptCancel], t).await?;
        }
        Ok(())
    }

    /// Wait, as the task's paper policy allows, until the paper is back and the cover
    /// closed. Giving up is a refusal: the command that failed did nothing.
    async fn wait_for_paper(&mut self, since: Instant) -> Result<(), PrinterError> {
        loop {
            let m = mechanism_of(self.dle().await?);
            self.config.observer.mechanism(m);
            if !m.holds() {
                return Ok(());
            }
            match self.config.observer.hold(since) {
                Hold::Wait => tokio::time::sleep(HOLD_POLL).await,
                Hold::GiveUp => {
                    return Err(PrinterError::Refused(DeviceError::new(
                        crate::device::ErrorCategory::PaperOut,
                        format!(
                            "printer {} ({FAMILY}) had no paper (or an open cover) for too long; \
                             nothing of the document was printed. Put in paper, close the cover and resend",
                            self.config.id
                        ),
                        Some(NO_PAPER),
                    )));
                }
                Hold::Stop => return Err(PrinterError::Aborted(Abort::Shutdown)),
            }
        }
    }

    /// Print one document: its commands, the closing one last. A receipt left open before
    /// it is not ours and is cancelled; the counters before it are reported first.
    async fn document(
        &mut self,
        commands: Vec<Command>,
        closing_timeout: Duration,
        steps: &mut impl DocumentSteps,
    ) -> Result<(), PrinterError> {
        self.after = None;
        self.after_receipt = None;
        self.after_clock = None;
        let packets = packets(commands)
            .map_err(|e| PrinterError::Unsupported(format!("printer {}: {e}", self.config.id)))?;
        let mut before = self.checkout().await?;
        if before.receipt_open {
            tracing::warn!(
                printer = self.id(),
                "a receipt was left open on the printer; cancelling it"
            );
            self.cancel_if_open().await?;
            before = self.checkout().await?;
            if before.receipt_open {
                return Err(self.protocol_error("a receipt is still open after cancelling it"));
            }
        }
        steps
            .printing(counters_of(&before))
            .await
            .map_err(PrinterError::Aborted)?;
        steps.closing().await.map_err(PrinterError::Aborted)?;
        let t = self.config.command_timeout;
        let mut paper_since: Option<Instant> = None;
        let mut restarts = 0;
        'attempt: loop {
            for (i, p) in packets.iter().enumerate() {
                let last = i + 1 == packets.len();
                let mut ran = self.run(p, if last { closing_timeout } else { t }).await;
                if let (Err(PrinterError::Refused(_)), Some(tag)) = (&ran, closing_tag(p))
                    && self.closed_with(tag).await?
                {
                    // A printer that went on with the packet after a failed command closed
                    // the receipt all the same: it is printed.
                    tracing::warn!(
                        printer = self.id(),
                        "a command failed, yet the receipt was closed with our systemno"
                    );
                    ran = Ok(());
                }
                match ran {
                    Ok(()) => {}
                    Err(PrinterError::Refused(e))
                        if e.device_code == Some(NO_PAPER) && restarts < MAX_RESTARTS =>
                    {
                        restarts += 1;
                        let since = *paper_since.get_or_insert_with(Instant::now);
                        tracing::info!(
                            printer = self.id(),
                            "no paper: waiting to print the document again from its start"
                        );
                        self.wait_for_paper(since).await?;
                        self.cancel_if_open().await?;
                        continue 'attempt;
                    }
                    Err(e) => return Err(e),
                }
            }
            break;
        }
        let (after, last) = self.read_after().await?;
        self.after = Some(after);
        self.after_receipt = Some(last);
        Ok(())
    }
}

impl FiscalPrinter for NovitusXmlPrinter {
    const SUPPORT: DocumentSupport = SUPPORT;

    async fn open(config: PrinterLink) -> Result<Self, PrinterError> {
        let link = Link::open(&config.path, config.baud, config.stats.clone())
            .map_err(PrinterError::Link)?;
        Ok(NovitusXmlPrinter {
            link,
            config,
            after: None,
            after_receipt: None,
            after_clock: None,
        })
    }

    async fn identify(&mut self) -> Result<PrinterIdentity, PrinterError> {
        // A reply still on its way from before this connection is not for us.
        let quiet = Instant::now() + QUIET;
        while self
            .link
            .next(quiet)
            .await
            .map_err(PrinterError::Link)?
            .is_some()
        {}
        self.link.reset_input();
        let t = self.config.command_timeout;
        self.run(&[Command::ErrorSilent], t).await?;
        let els = self
            .exchange(
                &[Command::Version, Command::TaxRates, Command::Checkout],
                "taxrates",
                t,
            )
            .await?;
        let version = reply::version(&els).map_err(|e| self.protocol_error(e))?;
        let rates = reply::tax_rates(&els).map_err(|e| self.protocol_error(e))?;
        let checkout = Checkout::from_elements(&els).map_err(|e| self.protocol_error(e))?;
        let (model, firmware) = match version.trim().rsplit_once(' ') {
            Some((m, f)) => (m.to_string(), f.to_string()),
            None => (version.trim().to_string(), String::new()),
        };
        let vat = LETTERS
            .iter()
            .map(|&letter| VatSlot {
                letter,
                rate: match rates.iter().find(|(l, _)| *l == letter) {
                    Some((_, TaxRate::BasisPoints(bp))) => VatRate::BasisPoints(*bp),
                    Some((_, TaxRate::Exempt)) => VatRate::Exempt,
                    None => VatRate::Inactive,
                },
            })
            .collect();
        Ok(PrinterIdentity {
            model: if model.is_empty() {
                FAMILY.to_string()
            } else {
                model
            },
            firmware,
            serial_number: checkout.unique_number,
            vat,
            read_only: false,
        })
    }

    async fn mechanism(&mut self) -> Result<Mechanism, PrinterError> {
        Ok(mechanism_of(self.dle().await?))
    }

    async fn activity(&mut self) -> Result<Activity, PrinterError> {
        // Commands run before the reply comes: nothing is ever queued on the printer.
        self.dle().await?;
        Ok(Activity {
            paper_low: false,
            queue_empty: true,
            waiting_for_operator: false,
        })
    }

    async fn document_open(&mut self) -> Result<bool, PrinterError> {
        Ok(self.enq().await?.in_transaction)
    }

    async fn cancel_document(&mut self) -> Result<(), PrinterError> {
        self.cancel_if_open().await
    }

    async fn counters(&mut self) -> Result<DocumentCounters, PrinterError> {
        if let Some(after) = self.after.take() {
            return Ok(after);
        }
        self.after_receipt = None;
        self.after_clock = None;
        Ok(counters_of(&self.checkout().await?))
    }

    async fn clock(&mut self) -> Result<chrono::NaiveDateTime, PrinterError> {
        if let Some(at) = self.after_clock.take() {
            return Ok(at);
        }
        let parsed = clock_of(&self.checkout().await?);
        Ok(parsed.unwrap_or_else(|| {
            let now = chrono::Local::now().naive_local();
            chrono::Timelike::with_nanosecond(&now, 0).unwrap_or(now)
        }))
    }

    async fn last_receipt(&mut self) -> Result<Option<TaggedReceipt>, PrinterError> {
        if let Some(last) = self.after_receipt.take() {
            return Ok(Some(last));
        }
        let els = self.query(Command::LastTransaction, "info").await?;
        let l = LastTransaction::from_elements(&els).map_err(|e| self.protocol_error(e))?;
        Ok(Some(tagged(&l)))
    }

    async fn print<S: DocumentSteps>(
        &mut self,
        document: Document<'_>,
        steps: &mut S,
    ) -> Result<(), PrinterError> {
        let (t, report) = (self.config.command_timeout, self.config.report_timeout);
        match document {
            Document::Receipt(r) => {
                let tag = steps.tag();
                let commands = request::receipt(r, &tag).map_err(|e| {
                    PrinterError::Unsupported(format!("printer {}: {e}", self.id()))
                })?;
                self.document(commands, t, steps).await
            }
            Document::DailyReport => {
                let date = chrono::Local::now().date_naive();
                let c = Command::DailyReport {
                    day: chrono::Datelike::day(&date),
                    month: chrono::Datelike::month(&date),
                    year: chrono::Datelike::year(&date),
                };
                self.document(vec![c], report, steps).await
            }
            Document::Cash(c) => {
                let c = Command::Cash {
                    payin: c.deposit,
                    value: c.amount,
                };
                self.document(vec![c], t, steps).await
            }
            Document::Printout(p) => {
                let c = Command::Printout {
                    lines: p.lines.clone(),
                };
                self.document(vec![c], t, steps).await
            }
            Document::Invoice(_) | Document::PeriodicReport(_) | Document::Copy(_) => {
                Err(PrinterError::Unsupported(format!(
                    "printer {} speaks {FAMILY}, which fiscald cannot print this document with",
                    self.id()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_document_is_split_to_fit_the_buffer_with_the_close_last() {
        let item = |i: usize| {
            Command::Item(novitus_xml::Item {
                name: format!("Towar numer {i:03} z długą nazwą"),
                quantity: "1".into(),
                unit: Some("szt".into()),
                ptu: 'A',
                price: 100,
                total: 100,
                discount: None,
            })
        };
        let mut c = vec![Command::ReceiptBegin];
        c.extend((0..100).map(item));
        c.push(Command::ReceiptCancel);
        let p = packets(c).unwrap();
        assert!(p.len() > 1);
        for packet in &p {
            assert!(Command::body(packet).unwrap().len() <= PACKET_BUDGET);
        }
        assert_eq!(p.iter().map(Vec::len).sum::<usize>(), 102);
        assert_eq!(p.last().unwrap().last(), Some(&Command::ReceiptCancel));
        let short = packets(vec![Command::ReceiptBegin, item(1), item(2)]).unwrap();
        assert_eq!(short.len(), 1);
    }

    #[test]
    fn a_refusal_names_the_device_and_keeps_the_code() {
        let e = refusal("fp1", "an <item>", 18);
        assert_eq!(e.device_code, Some(18));
        assert_eq!(e.category, crate::device::ErrorCategory::InvalidVat);
        assert!(e.message.contains("fp1") && e.message.contains("Novitus XML"));
    }
}
