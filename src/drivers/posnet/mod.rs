//! The POSNET driver: a [`FiscalPrinter`] over `protocols/posnet`.
//!
//! It turns documents into POSNET commands (`trinit`, `trline`, `trpayment`, `trend`,
//! `dailyrep`, `cash`, `formstart`/`formline`/`formend`), reads identity, status and
//! counters (`sid`, `vatget`, `scomm`, `sprn`, `sdev`, `scnt`, `rtcget`), and maps POSNET
//! error codes onto the neutral [`DeviceError`].

pub mod link;
mod pipeline;
mod receipt;

use crate::device::printer::{
    Abort, Activity, Document, DocumentSteps, FiscalPrinter, Mechanism, PrinterError,
    PrinterIdentity, PrinterLink, VatRate, VatSlot,
};
use crate::device::{DeviceError, DocumentCounters, ErrorCategory};
use crate::document::{CopiedDocument, DocumentSupport, Method};
use chrono::Timelike;
use link::{Link, LinkError};
use pipeline::{Planned, Ran, Role};
use posnet::error::DOCUMENT_NOT_FOUND;
use posnet::reply::{Rtc, SLOT_LETTERS, Scomm, Sdev, Sid, Sprn, VatTable};
use posnet::session::{Retry, SessionConfig};
use posnet::{Command, Frame};
use std::time::Duration;
use tokio::time::Instant;

/// The POSNET error "a receipt is already open" (at `trinit`).
const RECEIPT_ALREADY_OPEN: u32 = 2038;
/// The form number of non-fiscal printouts.
const PRINTOUT_FORM: u16 = 200;

/// One open connection to a POSNET printer.
pub struct PosnetPrinter {
    link: Link,
    config: PrinterLink,
    /// The counters read behind the last document's closing command, for the task's check.
    after: Option<DocumentCounters>,
    /// The printer's clock minus ours, and when it was read.
    clock_offset: Option<(chrono::Duration, Instant)>,
}

/// How long the printer's clock offset is trusted for a document's time before it is read
/// again (`rtcget`).
const CLOCK_REREAD: Duration = Duration::from_secs(600);

/// The neutral category of a POSNET error code.
pub fn category(c: posnet::error::Category) -> ErrorCategory {
    use posnet::error::Category as C;
    match c {
        C::PaperOut => ErrorCategory::PaperOut,
        C::CoverOpen => ErrorCategory::CoverOpen,
        C::DailyReportRequired => ErrorCategory::DailyReportRequired,
        C::ItemLocked => ErrorCategory::ItemLocked,
        C::TotalMismatch => ErrorCategory::TotalMismatch,
        C::InvalidVat => ErrorCategory::InvalidVat,
        C::MemoryFull => ErrorCategory::MemoryFull,
        C::TransactionState => ErrorCategory::TransactionState,
        C::InvalidField => ErrorCategory::InvalidField,
        C::DeviceBusy => ErrorCategory::DeviceBusy,
        C::DeviceFault => ErrorCategory::DeviceFault,
        C::Clock => ErrorCategory::Clock,
        C::Blocked => ErrorCategory::Blocked,
        C::Transport => ErrorCategory::Transport,
        C::Protocol => ErrorCategory::Protocol,
        C::Unknown => ErrorCategory::Unknown,
    }
}

/// The job error for a printer's refusal of `mnemonic` with `code` (`frame` for a frame
/// error: the command was not taken intact).
pub fn refusal(device: &str, mnemonic: &str, code: u32, frame: bool) -> DeviceError {
    let info = if frame {
        posnet::error::frame_error(code)
    } else {
        posnet::error::command_error(code)
    };
    let category = if frame {
        ErrorCategory::Protocol
    } else {
        category(info.category)
    };
    DeviceError::new(
        category,
        format!(
            "printer {device} refused `{mnemonic}` with error {code}: {}",
            info.message
        ),
        Some(code),
    )
}

/// The POSNET payment form of a neutral payment method.
pub fn payment_kind(method: Method) -> posnet::PaymentKind {
    use posnet::PaymentKind as K;
    match method {
        Method::Cash => K::Cash,
        Method::Card => K::Card,
        Method::Cheque => K::Cheque,
        Method::Voucher => K::Voucher,
        Method::Credit => K::Credit,
        Method::Transfer => K::Transfer,
        Method::Mobile => K::Mobile,
        Method::Other => K::Other,
    }
}

/// The `discounttypeset` value that makes the printer round percentages as the daemon does.
fn discount_type() -> Command {
    Command::DiscountTypeSet {
        discount_first: crate::document::PERCENT_ROUNDING
            == crate::document::PercentRounding::Discount,
    }
}

/// The metric label of a recovery.
fn retry_metric(r: Retry) -> &'static str {
    match r {
        Retry::Rpt => "rpt",
        Retry::Resend => "resend",
        Retry::FrameError => "frame_error",
    }
}

fn bad_reply(e: posnet::reply::ReplyError) -> PrinterError {
    PrinterError::Protocol(e.to_string())
}

impl PosnetPrinter {
    fn id(&self) -> &str {
        &self.config.id
    }

    /// One command through the session, with nothing else in flight: it recovers lost
    /// replies (`rpt`), resends what the printer never got or took damaged, and waits while
    /// the printer holds the command for lack of paper (or an open cover) for as long as the
    /// task's policy says.
    async fn cmd(&mut self, command: &Command, timeout: Duration) -> Result<Frame, PrinterError> {
        let mut watch = pipeline::Watch::new(self);
        match self.link.run(command, timeout, |e| watch.on_event(e)).await {
            Ok(frame) => Ok(frame),
            Err(LinkError::Failed(failure)) => Err(watch.failure(failure)),
            Err(e) => Err(pipeline::link_failure(e)),
        }
    }

    async fn query(&mut self, command: &Command) -> Result<Frame, PrinterError> {
        let t = self.config.command_timeout;
        self.cmd(command, t).await
    }

    /// The plan of a document: `scomm` and `scnt`, the `body`, the `closing` command (with
    /// its `timeout`) and `scnt` behind it.
    fn plan(&self, body: Vec<Command>, closing: Command, timeout: Duration) -> Vec<Planned> {
        let t = self.config.command_timeout;
        let planned = |command, role| Planned {
            command,
            timeout: t,
            role,
        };
        let mut plan = vec![
            planned(Command::SComm, Role::Open),
            planned(Command::SCnt, Role::Before),
        ];
        plan.extend(body.into_iter().map(|c| {
            let verified = pipeline::verified_by_closing(&c);
            planned(c, Role::Body { verified })
        }));
        plan.push(Planned {
            command: closing,
            timeout,
            role: Role::Closing,
        });
        plan.push(planned(Command::SCnt, Role::After));
        plan
    }

    /// Print one document by its plan. A document found open before it (left by an earlier
    /// connection, or opened by another program) is not ours: it is cancelled and the plan
    /// starts again. The counters after it are kept for the task's check.
    async fn document(
        &mut self,
        body: Vec<Command>,
        closing: Command,
        timeout: Duration,
        steps: &mut impl DocumentSteps,
    ) -> Result<(), PrinterError> {
        self.after = None;
        let plan = self.plan(body, closing, timeout);
        for _ in 0..2 {
            match self.run_plan(&plan, steps).await {
                Ok(Ran::Done(after)) => {
                    self.after = after;
                    return Ok(());
                }
                Ok(Ran::FoundOpen) => {
                    tracing::warn!(
                        printer = self.id(),
                        "a document was left open on the printer; cancelling it"
                    );
                }
                // Opened after our `scomm` (a command held from an earlier connection, or
                // another program): not ours. The closing command waits for `trinit`, so it
                // was not sent.
                Err(PrinterError::Refused(DeviceError {
                    device_code: Some(RECEIPT_ALREADY_OPEN),
                    ..
                })) => {
                    tracing::warn!(
                        printer = self.id(),
                        "a document was opened on the printer meanwhile; cancelling it"
                    );
                }
                // Stopped by the task before the closing command (a sale past its print
                // deadline, a journal that cannot record the counters): nothing of the
                // document may stay open on the printer.
                Err(e @ PrinterError::Aborted(Abort::Cancelled | Abort::Journal(_))) => {
                    if let Err(c) = self.query(&Command::PrnCancel).await {
                        tracing::warn!(printer = self.id(), error = %c, "could not cancel the stopped document; it is cancelled before the next one");
                    }
                    return Err(e);
                }
                Err(e) => return Err(e),
            }
            self.query(&Command::PrnCancel).await?;
        }
        Err(PrinterError::Protocol(
            "a document is still open on the printer after cancelling it twice".into(),
        ))
    }

    async fn receipt(
        &mut self,
        r: &crate::document::Receipt,
        steps: &mut impl DocumentSteps,
    ) -> Result<(), PrinterError> {
        let body = receipt::setup(r)
            .into_iter()
            .chain(std::iter::once(Command::TrInit { block_mode: false }))
            .chain(receipt::body(r))
            .collect();
        let t = self.config.command_timeout;
        self.document(body, receipt::closing(r), t, steps).await?;
        if !r.footer.is_empty() {
            self.footer(&r.footer).await?;
        }
        Ok(())
    }

    async fn invoice(
        &mut self,
        i: &crate::document::Invoice,
        steps: &mut impl DocumentSteps,
    ) -> Result<(), PrinterError> {
        let body = receipt::invoice_opening(i)
            .into_iter()
            .chain(receipt::invoice_body(i))
            .collect();
        let t = self.config.command_timeout;
        self.document(body, receipt::invoice_closing(i), t, steps)
            .await
    }

    /// A copy from protected memory; a document the printer no longer holds is refused with
    /// the neutral `document_not_found`.
    async fn copy(
        &mut self,
        c: &crate::document::DocumentCopy,
        steps: &mut impl DocumentSteps,
    ) -> Result<(), PrinterError> {
        let of = match c.document {
            CopiedDocument::Receipt => posnet::CopyOf::Receipts,
            CopiedDocument::Invoice => posnet::CopyOf::Invoices,
        };
        let command = Command::EcPrnDoc {
            of,
            from: c.number,
            to: c.number,
        };
        let t = self.config.command_timeout;
        match self.document(Vec::new(), command, t, steps).await {
            Err(PrinterError::Refused(e)) if e.device_code == Some(DOCUMENT_NOT_FOUND) => {
                Err(PrinterError::Refused(DeviceError::new(
                    ErrorCategory::DocumentNotFound,
                    format!(
                        "printer {} no longer holds {} {} in its protected memory (error {DOCUMENT_NOT_FOUND}); \
                         a copy cannot be printed. Check the number, or read it from the printer's electronic copy",
                        self.id(),
                        c.document.as_str(),
                        c.number
                    ),
                    Some(DOCUMENT_NOT_FOUND),
                )))
            }
            r => r,
        }
    }

    /// The footer lines after `trend fe0`. The receipt is fiscal already: a refusal here is
    /// logged and the footer closed, and the receipt still counts as printed. A lost link is
    /// returned, so the task reconciles the receipt from the counters.
    async fn footer(&mut self, lines: &[String]) -> Result<(), PrinterError> {
        let mut sent = Ok(());
        for text in lines {
            let text = if text.is_empty() { " " } else { text };
            let line = Command::TrFtrLn {
                text: text.to_string(),
            };
            sent = self.query(&line).await.map(|_| ());
            if sent.is_err() {
                break;
            }
        }
        let closed = match sent {
            Ok(()) => self.query(&Command::TrFtrEnd).await.map(|_| ()),
            Err(e) => Err(e),
        };
        match closed {
            Err(PrinterError::Refused(e)) => {
                tracing::warn!(printer = self.id(), error = %e, "the printer refused the receipt's footer; the receipt itself is printed");
                self.query(&Command::PrnCancel).await.map(|_| ())
            }
            // Held for paper longer than the task waits: the footer prints when paper is put
            // in; the receipt is printed already.
            Err(PrinterError::PaperTimeout) => {
                tracing::warn!(
                    printer = self.id(),
                    "the receipt's footer waits for paper; the receipt itself is printed"
                );
                Ok(())
            }
            other => other,
        }
    }

    async fn printout(
        &mut self,
        p: &crate::document::Printout,
        steps: &mut impl DocumentSteps,
    ) -> Result<(), PrinterError> {
        let mut body = vec![Command::FormStart {
            form: PRINTOUT_FORM,
            header: None,
        }];
        for (i, text) in p.lines.iter().enumerate() {
            // The printer takes no empty line: a space prints as one.
            let text = if text.is_empty() {
                " ".to_string()
            } else {
                text.clone()
            };
            let line = u16::try_from(i).unwrap_or(u16::MAX);
            body.push(Command::FormLine {
                form: PRINTOUT_FORM,
                line,
                text,
            });
        }
        let closing = Command::FormEnd {
            form: PRINTOUT_FORM,
        };
        let t = self.config.command_timeout;
        self.document(body, closing, t, steps).await
    }

    /// The printer's clock, read now.
    async fn read_clock(&mut self) -> Result<chrono::NaiveDateTime, PrinterError> {
        let f = self.query(&Command::RtcGet).await?;
        let at = Rtc::from_frame(&f).map_err(bad_reply)?.datetime;
        self.clock_offset = Some((at - chrono::Local::now().naive_local(), Instant::now()));
        Ok(at)
    }
}

fn mechanism_of(sprn: Sprn) -> Mechanism {
    Mechanism {
        paper_out: sprn.paper_out(),
        cover_open: sprn.cover_open(),
    }
}

fn vat_slots(table: &VatTable) -> Vec<VatSlot> {
    table
        .0
        .iter()
        .zip(SLOT_LETTERS)
        .map(|(rate, letter)| VatSlot {
            letter,
            rate: match rate {
                posnet::reply::VatRate::Percent(bp) => VatRate::BasisPoints(*bp),
                posnet::reply::VatRate::Exempt => VatRate::Exempt,
                posnet::reply::VatRate::Inactive => VatRate::Inactive,
            },
        })
        .collect()
}

/// What a POSNET printer prints: everything but discounts on an invoice's subtotal
/// (`trdiscnt*` is refused on an invoice).
pub const SUPPORT: DocumentSupport = DocumentSupport {
    protocol: "POSNET",
    invoices: true,
    invoice_subtotal_adjustments: false,
    periodic_reports: true,
    copies: true,
};

impl FiscalPrinter for PosnetPrinter {
    const SUPPORT: DocumentSupport = SUPPORT;

    async fn open(config: PrinterLink) -> Result<Self, PrinterError> {
        let session = SessionConfig {
            status_timeout: config.command_timeout,
            window: config.window,
            ..SessionConfig::default()
        };
        let link = Link::open(&config.path, config.baud, config.stats.clone(), session)
            .map_err(|e| PrinterError::Link(e.to_string()))?;
        Ok(PosnetPrinter {
            link,
            config,
            after: None,
            clock_offset: None,
        })
    }

    async fn identify(&mut self) -> Result<PrinterIdentity, PrinterError> {
        self.link.reset_input();
        let sid = Sid::from_frame(&self.query(&Command::SId).await?).map_err(bad_reply)?;
        let vat = VatTable::from_frame(&self.query(&Command::VatGet).await?).map_err(bad_reply)?;
        let scomm = Scomm::from_frame(&self.query(&Command::SComm).await?).map_err(bad_reply)?;
        if scomm.transaction == 0 {
            // Percentages must round as the daemon computes them (`document::PERCENT_ROUNDING`).
            if let Err(e) = self.query(&discount_type()).await {
                tracing::warn!(printer = self.id(), error = %e, "could not set the discount type; percentage discounts may be refused with 2801");
            }
        }
        Ok(PrinterIdentity {
            model: sid.name,
            firmware: sid.version,
            serial_number: scomm.unique_number,
            vat: vat_slots(&vat),
            read_only: scomm.read_only,
        })
    }

    async fn mechanism(&mut self) -> Result<Mechanism, PrinterError> {
        let f = self.query(&Command::SPrn { immediate: true }).await?;
        Ok(mechanism_of(Sprn::from_frame(&f).map_err(bad_reply)?))
    }

    async fn activity(&mut self) -> Result<Activity, PrinterError> {
        let f = self.query(&Command::SDev { immediate: true }).await?;
        let sdev = Sdev::from_frame(&f).map_err(bad_reply)?;
        Ok(Activity {
            paper_low: sdev.paper_near_end,
            queue_empty: sdev.queue_empty,
            waiting_for_operator: sdev.state != 0,
        })
    }

    async fn document_open(&mut self) -> Result<bool, PrinterError> {
        let f = self.query(&Command::SComm).await?;
        Ok(Scomm::from_frame(&f).map_err(bad_reply)?.transaction != 0)
    }

    async fn cancel_document(&mut self) -> Result<(), PrinterError> {
        self.query(&Command::PrnCancel).await.map(|_| ())
    }

    async fn counters(&mut self) -> Result<DocumentCounters, PrinterError> {
        // Read behind the last document's closing command, in the same stream.
        if let Some(after) = self.after.take() {
            return Ok(after);
        }
        let f = self.query(&Command::SCnt).await?;
        pipeline::counters_of(&f)
    }

    async fn clock(&mut self) -> Result<chrono::NaiveDateTime, PrinterError> {
        // The printer's clock from its offset to ours, read at most CLOCK_REREAD ago.
        match self.clock_offset {
            Some((offset, read)) if read.elapsed() < CLOCK_REREAD => {
                let at = chrono::Local::now().naive_local() + offset;
                Ok(at.with_nanosecond(0).unwrap_or(at))
            }
            _ => self.read_clock().await,
        }
    }

    async fn print<S: DocumentSteps>(
        &mut self,
        document: Document<'_>,
        steps: &mut S,
    ) -> Result<(), PrinterError> {
        let (t, report) = (self.config.command_timeout, self.config.report_timeout);
        match document {
            Document::Receipt(r) => self.receipt(r, steps).await,
            Document::DailyReport => {
                // The report is for the day of the printer's clock, read now.
                let date = self.read_clock().await?.date();
                self.document(Vec::new(), Command::DailyRep { date }, report, steps)
                    .await
            }
            Document::Cash(c) => {
                let cash = Command::Cash {
                    amount: c.amount,
                    deposit: c.deposit,
                };
                self.document(Vec::new(), cash, t, steps).await
            }
            Document::Printout(p) => self.printout(p, steps).await,
            Document::Invoice(i) => self.invoice(i, steps).await,
            Document::PeriodicReport(r) => {
                let command = Command::PeriodicRep {
                    from: r.from,
                    to: r.to,
                    summary: r.summary,
                };
                self.document(Vec::new(), command, report, steps).await
            }
            Document::Copy(c) => self.copy(c, steps).await,
        }
    }
}
