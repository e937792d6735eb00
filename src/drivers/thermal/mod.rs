//! The Thermal (ESC P) driver: a [`FiscalPrinter`] over `protocols/thermal`, for
//! `protocol = "thermal"` with `dialect = "posnet" | "novitus"` and
//! `encoding = "mazovia" | "cp1250"`.
//!
//! Most Thermal commands get no reply. After each command the driver asks DLE (answered at
//! once, even while the printer holds a command for paper) and ENQ (answered once the
//! command ran): ENQ's CMD bit says whether it was carried out, and `#n` gives the code when
//! not. Errors are silent (`1#e` at connect). Identity from `#v`; the VAT table, TRF, the
//! open transaction and PAR_NUM (the receipt counter) from `23#s`; the number of the last
//! printed document from `50#s`.
//!
//! Exactly once: before a document the driver reads `23#s`; an open transaction is cancelled
//! (`0$e`) and the counters are reported to the task (journaled before the first byte of the
//! document). A good close sets TRF and moves PAR_NUM by one; recovery compares the counters
//! with the journaled ones (`printer::verdict`).

pub mod link;
mod request;

pub use request::check_request;

use crate::device::printer::{
    Abort, Activity, Document, DocumentSteps, FiscalPrinter, Hold, Mechanism, PrinterError,
    PrinterIdentity, PrinterLink, VatRate, VatSlot,
};
use crate::device::{DeviceError, DocumentCounters, ErrorCategory};
use crate::document::DocumentSupport;
use link::Link;
use std::time::Duration;
use thermal::command::{Command, ErrorMode};
use thermal::reply::{Dle, Enq, Identity, Rate, Status};
use thermal::session::Incoming;
use thermal::{DLE, Dialect, ENQ, Encoding};
use tokio::time::Instant;

/// The `#s` mode whose `2#X` reply carries all seven VAT slots and a checksum.
const STATUS_MODE: u32 = 23;
/// The `#s` mode that reports the last printed document's number (second-hand: the
/// Thermal spec's read-back list; not confirmed on a device).
const LAST_DOCUMENT_MODE: u32 = 50;
/// How often DLE is asked again while the printer holds a command.
const HOLD_POLL: Duration = Duration::from_millis(300);

/// What a Thermal printer prints: receipts, cash in/out and the daily report. No invoices,
/// periodic reports or copies (see `check_request` for the parts of a receipt it refuses).
pub const SUPPORT: DocumentSupport = DocumentSupport {
    protocol: "Thermal",
    invoices: false,
    invoice_subtotal_adjustments: false,
    periodic_reports: false,
    copies: false,
};

/// The neutral category of a Thermal error.
fn category(c: thermal::error::Category) -> ErrorCategory {
    use thermal::error::Category as C;
    match c {
        C::InvalidField => ErrorCategory::InvalidField,
        C::InvalidVat => ErrorCategory::InvalidVat,
        C::TotalMismatch => ErrorCategory::TotalMismatch,
        C::TransactionState => ErrorCategory::TransactionState,
        C::DailyReportRequired => ErrorCategory::DailyReportRequired,
        C::Clock => ErrorCategory::Clock,
        C::MemoryFull => ErrorCategory::MemoryFull,
        C::DeviceFault => ErrorCategory::DeviceFault,
        C::Protocol => ErrorCategory::Protocol,
        C::Cancelled => ErrorCategory::Blocked,
        C::Unknown => ErrorCategory::Unknown,
    }
}

/// The job error for the printer's refusal of `command` with `code`.
pub fn refusal(device: &str, command: &str, code: u32) -> DeviceError {
    let info = thermal::error::info(code);
    DeviceError::new(
        category(info.category),
        format!(
            "printer {device} refused `{command}` with error {code}: {}",
            info.message
        ),
        Some(code),
    )
}

fn mechanism_of(d: Dle) -> Mechanism {
    Mechanism {
        paper_out: d.paper_end,
        cover_open: d.error,
    }
}

/// One open connection to a Thermal printer.
pub struct ThermalPrinter {
    link: Link,
    config: PrinterLink,
    dialect: Dialect,
    encoding: Encoding,
    /// The counters read behind the last document's closing command.
    after: Option<DocumentCounters>,
    /// TRF with no transaction open, as the last counter read saw it: the last receipt
    /// was completed.
    completed: Option<bool>,
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::SetErrorMode(_) => "#e",
        Command::ErrorQuery => "#n",
        Command::Status { .. } => "#s",
        Command::Identity => "#v",
        Command::Begin { .. } => "$h",
        Command::Line(_) => "$l",
        Command::Payment { .. } => "$b",
        Command::Close { .. } => "$e",
        Command::Cancel => "0$e",
        Command::CashIn(_) => "#i",
        Command::CashOut(_) => "#d",
        Command::DailyReport { .. } => "#r",
    }
}

impl ThermalPrinter {
    fn id(&self) -> &str {
        &self.config.id
    }

    fn frame_of(&self, c: &Command) -> Result<thermal::Frame, PrinterError> {
        c.to_frame(self.dialect, self.encoding)
            .map_err(|e| PrinterError::Unsupported(format!("printer {}: {e}", self.config.id)))
    }

    fn silent(&self, what: &str, timeout: Duration) -> PrinterError {
        PrinterError::Link(format!(
            "printer {} did not answer {what} within {:.1} s",
            self.config.id,
            timeout.as_secs_f64()
        ))
    }

    /// Send a query frame and wait for the reply frame `reply` (with parameters `params`
    /// when given); anything else that arrives meanwhile is a late answer and is dropped.
    async fn frame_query(
        &mut self,
        c: &Command,
        reply: &str,
        params: Option<&[u8]>,
    ) -> Result<thermal::Frame, PrinterError> {
        let frame = self.frame_of(c)?;
        self.link.reset_input();
        self.link.send_frame(&frame);
        let timeout = self.config.command_timeout;
        let deadline = Instant::now() + timeout;
        loop {
            match self.link.next(deadline).await.map_err(PrinterError::Link)? {
                Some(Incoming::Frame(f))
                    if f.command_str() == reply && params.is_none_or(|p| f.params == p) =>
                {
                    return Ok(f);
                }
                Some(other) => {
                    tracing::debug!(printer = self.id(), ?other, "dropping a late answer");
                }
                None => return Err(self.silent(&format!("`{}`", command_name(c)), timeout)),
            }
        }
    }

    async fn status(&mut self) -> Result<Status, PrinterError> {
        let c = Command::Status { mode: STATUS_MODE };
        // `2#X` (or `1#X` from a device that ignores the mode); never `50#X`.
        let f = loop {
            let f = self.frame_query(&c, "#X", None).await?;
            if f.params != b"50" {
                break f;
            }
        };
        Status::from_frame(&f, self.encoding).map_err(|e| PrinterError::Protocol(e.to_string()))
    }

    async fn last_document(&mut self) -> Result<u64, PrinterError> {
        let c = Command::Status {
            mode: LAST_DOCUMENT_MODE,
        };
        let f = self.frame_query(&c, "#X", Some(b"50")).await?;
        thermal::reply::parse_last_document(&f).map_err(|e| PrinterError::Protocol(e.to_string()))
    }

    async fn error_code(&mut self) -> Result<u32, PrinterError> {
        let f = self.frame_query(&Command::ErrorQuery, "#E", None).await?;
        thermal::reply::parse_error(&f).map_err(|e| PrinterError::Protocol(e.to_string()))
    }

    /// One single-byte query (`DLE` or `ENQ`) and its answer.
    async fn byte_query(&mut self, q: u8) -> Result<Incoming, PrinterError> {
        self.link.reset_input();
        self.link.send_bytes(&[q]);
        let timeout = self.config.command_timeout;
        let deadline = Instant::now() + timeout;
        loop {
            match self.link.next(deadline).await.map_err(PrinterError::Link)? {
                Some(i @ Incoming::Dle(_)) if q == DLE => return Ok(i),
                Some(i @ Incoming::Enq(_)) if q == ENQ => return Ok(i),
                Some(_) => {}
                None => {
                    let what = if q == DLE { "DLE" } else { "ENQ" };
                    return Err(self.silent(what, timeout));
                }
            }
        }
    }

    async fn dle(&mut self) -> Result<Dle, PrinterError> {
        match self.byte_query(DLE).await? {
            Incoming::Dle(d) => Ok(d),
            _ => Err(PrinterError::Protocol("no DLE answer".into())),
        }
    }

    /// Run a command that has no reply: send it, then DLE and ENQ. DLE is answered at once
    /// (a held command shows as paper end or a mechanism error: the task's policy decides
    /// how long to wait); ENQ once the command ran. CMD = 0 → `#n` gives the refusal.
    async fn run(&mut self, c: &Command, timeout: Duration) -> Result<Enq, PrinterError> {
        let frame = self.frame_of(c)?;
        self.link.reset_input();
        self.link.send_frame(&frame);
        self.link.send_bytes(&[DLE, ENQ]);
        let mut deadline = Instant::now() + timeout;
        let mut held_since: Option<Instant> = None;
        let mut saw_dle = false;
        let enq = loop {
            let wake = if held_since.is_some() {
                (Instant::now() + HOLD_POLL).min(deadline)
            } else {
                deadline
            };
            match self.link.next(wake).await.map_err(PrinterError::Link)? {
                Some(Incoming::Enq(e)) => break e,
                Some(Incoming::Dle(d)) => {
                    saw_dle = true;
                    let m = mechanism_of(d);
                    self.config.observer.mechanism(m);
                    if m.holds() {
                        let since = *held_since.get_or_insert_with(Instant::now);
                        match self.config.observer.hold(since) {
                            Hold::Wait => deadline = Instant::now() + timeout + HOLD_POLL,
                            Hold::GiveUp => return Err(PrinterError::PaperTimeout),
                            Hold::Stop => return Err(PrinterError::Aborted(Abort::Shutdown)),
                        }
                    } else if held_since.take().is_some() {
                        deadline = Instant::now() + timeout;
                    }
                }
                Some(Incoming::Frame(f)) => {
                    tracing::debug!(printer = self.id(), frame = ?f, "dropping a late reply");
                }
                None if held_since.is_some() && Instant::now() < deadline => {
                    self.link.send_bytes(&[DLE]);
                    self.link.flush().await.map_err(PrinterError::Link)?;
                }
                None if saw_dle => return Err(PrinterError::NoReply),
                None => return Err(self.silent(&format!("`{}`", command_name(c)), timeout)),
            }
        };
        if enq.command_ok {
            return Ok(enq);
        }
        let code = self.error_code().await?;
        Err(PrinterError::Refused(refusal(
            &self.config.id,
            command_name(c),
            code,
        )))
    }

    async fn read_counters(&mut self) -> Result<(Status, DocumentCounters), PrinterError> {
        let s = self.status().await?;
        self.completed = Some(s.trf && !s.in_transaction);
        let last = self.last_document().await?;
        let c = DocumentCounters {
            last_receipt: s.receipts,
            daily_reports: last,
            next_printout: last,
            invoices: 0,
        };
        Ok((s, c))
    }

    /// Print one document: its `body`, then its `closing` command. An open transaction found
    /// before it is not ours and is cancelled; the counters before it are reported first.
    async fn document(
        &mut self,
        body: Vec<Command>,
        closing: Command,
        closing_timeout: Duration,
        steps: &mut impl DocumentSteps,
    ) -> Result<(), PrinterError> {
        self.after = None;
        let t = self.config.command_timeout;
        let (mut s, mut before) = self.read_counters().await?;
        if s.in_transaction {
            tracing::warn!(
                printer = self.id(),
                "a receipt was left open on the printer; cancelling it"
            );
            self.run(&Command::Cancel, t).await?;
            (s, before) = self.read_counters().await?;
            if s.in_transaction {
                return Err(PrinterError::Protocol(format!(
                    "printer {}: a receipt is still open after cancelling it",
                    self.id()
                )));
            }
        }
        steps
            .printing(before)
            .await
            .map_err(PrinterError::Aborted)?;
        let sent = async {
            for c in &body {
                self.run(c, t).await?;
            }
            steps.closing().await.map_err(PrinterError::Aborted)
        }
        .await;
        match sent {
            Ok(()) => {}
            Err(e @ PrinterError::Aborted(Abort::Cancelled | Abort::Journal(_))) => {
                if let Err(c) = self.run(&Command::Cancel, t).await {
                    tracing::warn!(printer = self.id(), error = %c, "could not cancel the stopped receipt; it is cancelled before the next document");
                }
                return Err(e);
            }
            Err(e @ PrinterError::Refused(_)) => {
                // Nothing of a refused receipt may stay open.
                if let Err(c) = self.run(&Command::Cancel, t).await {
                    tracing::warn!(printer = self.id(), error = %c, "could not cancel the refused receipt");
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        let closed = self.run(&closing, closing_timeout).await;
        if let Err(e @ PrinterError::Refused(_)) = &closed
            && matches!(closing, Command::Close { .. })
        {
            if let Err(c) = self.run(&Command::Cancel, t).await {
                tracing::warn!(printer = self.id(), error = %c, "could not cancel the refused receipt");
            }
            return Err(e.clone());
        }
        closed?;
        let (_, after) = self.read_counters().await?;
        self.after = Some(after);
        Ok(())
    }
}

impl FiscalPrinter for ThermalPrinter {
    const SUPPORT: DocumentSupport = SUPPORT;

    async fn open(config: PrinterLink) -> Result<Self, PrinterError> {
        let settings = config.thermal;
        let link = Link::open(&config.path, config.baud, config.stats.clone())
            .map_err(PrinterError::Link)?;
        Ok(ThermalPrinter {
            link,
            dialect: settings.0,
            encoding: settings.1,
            config,
            after: None,
            completed: None,
        })
    }

    async fn identify(&mut self) -> Result<PrinterIdentity, PrinterError> {
        // Thermal has no tokens: a status byte still on its way from before this connection
        // would be taken for the next command's. Let the line go quiet first.
        let quiet = Instant::now() + Duration::from_millis(100);
        while self
            .link
            .next(quiet)
            .await
            .map_err(PrinterError::Link)?
            .is_some()
        {}
        self.link.reset_input();
        let t = self.config.command_timeout;
        self.run(&Command::SetErrorMode(ErrorMode::Silent), t)
            .await?;
        let f = self.frame_query(&Command::Identity, "#R", None).await?;
        let id = Identity::from_frame(&f).map_err(|e| PrinterError::Protocol(e.to_string()))?;
        let s = self.status().await?;
        let vat = s
            .vat
            .iter()
            .zip(thermal::reply::LETTERS)
            .map(|(r, letter)| VatSlot {
                letter,
                rate: match r {
                    Rate::Percent(bp) => VatRate::BasisPoints(*bp),
                    Rate::Exempt => VatRate::Exempt,
                    Rate::Inactive => VatRate::Inactive,
                },
            })
            .collect();
        Ok(PrinterIdentity {
            model: id.model,
            firmware: id.version,
            serial_number: (!s.unique.is_empty()).then_some(s.unique),
            vat,
            read_only: false,
        })
    }

    async fn mechanism(&mut self) -> Result<Mechanism, PrinterError> {
        Ok(mechanism_of(self.dle().await?))
    }

    async fn activity(&mut self) -> Result<Activity, PrinterError> {
        // A held command shows as paper end (or a mechanism error) until it ran.
        let d = self.dle().await?;
        Ok(Activity {
            paper_low: false,
            queue_empty: !d.paper_end && !d.error,
            waiting_for_operator: false,
        })
    }

    async fn document_open(&mut self) -> Result<bool, PrinterError> {
        Ok(self.status().await?.in_transaction)
    }

    async fn cancel_document(&mut self) -> Result<(), PrinterError> {
        let t = self.config.command_timeout;
        self.run(&Command::Cancel, t).await.map(|_| ())
    }

    async fn counters(&mut self) -> Result<DocumentCounters, PrinterError> {
        if let Some(after) = self.after.take() {
            return Ok(after);
        }
        Ok(self.read_counters().await?.1)
    }

    async fn last_transaction_completed(&mut self) -> Result<Option<bool>, PrinterError> {
        if self.completed.is_none() {
            self.read_counters().await?;
        }
        Ok(self.completed)
    }

    async fn clock(&mut self) -> Result<chrono::NaiveDateTime, PrinterError> {
        // The `#c` clock reply is not in the reference: the daemon's clock stands in.
        let now = chrono::Local::now().naive_local();
        Ok(chrono::Timelike::with_nanosecond(&now, 0).unwrap_or(now))
    }

    async fn print<S: DocumentSteps>(
        &mut self,
        document: Document<'_>,
        steps: &mut S,
    ) -> Result<(), PrinterError> {
        let (t, report) = (self.config.command_timeout, self.config.report_timeout);
        match document {
            Document::Receipt(r) => {
                let (body, closing) = request::receipt(r, self.dialect).map_err(|e| {
                    PrinterError::Unsupported(format!("printer {}: {e}", self.id()))
                })?;
                for c in body.iter().chain(std::iter::once(&closing)) {
                    self.frame_of(c)?;
                }
                self.document(body, closing, t, steps).await
            }
            Document::DailyReport => {
                let date = chrono::Local::now().date_naive();
                self.document(Vec::new(), Command::DailyReport { date }, report, steps)
                    .await
            }
            Document::Cash(c) => {
                let command = if c.deposit {
                    Command::CashIn(c.amount)
                } else {
                    Command::CashOut(c.amount)
                };
                self.document(Vec::new(), command, t, steps).await
            }
            Document::Printout(_)
            | Document::Invoice(_)
            | Document::PeriodicReport(_)
            | Document::Copy(_) => Err(PrinterError::Unsupported(format!(
                "printer {} speaks Thermal, which fiscald cannot print this document with",
                self.id()
            ))),
        }
    }
}
