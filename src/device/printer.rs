//! The fiscal-printer driver trait: what the protocol-neutral printer task
//! (the printer task) asks of any printer protocol, and the neutral types it speaks.
//!
//! A driver owns one open connection to one printer. It hides the protocol: frames,
//! tokens, lost replies, resends and held commands are its business. The task owns the
//! queue, the journal steps, the verdict, the paper-wait policy, reconnecting and events.
//!
//! # The invariants every driver keeps
//! - **Before the document**, the driver finds out whether a document is open on the printer
//!   (and cancels it: it is not this job's), reads the document counters, and reports them
//!   with [`DocumentSteps::printing`]. The counters must be read before anything of the
//!   document can have run; the report may come while the document's first commands are on
//!   their way.
//! - While printing, the driver calls [`DocumentSteps::closing`] (after `printing`) and waits
//!   for it to return `Ok` **before the first byte of the closing command** (the one that
//!   makes the document fiscal: a receipt's end, the daily report, the cash operation, the
//!   end of a printout) goes out, and sends nothing of the document after an `Err`.
//!   Everything before the closing command may be repeated safely after a crash (the open
//!   document is cancelled); the closing command may not, so the journal must know it may
//!   have been sent.

use super::{DeviceError, DocumentCounters, ErrorCategory, LinkStats};
use crate::config::PrinterConfig;
use crate::document::{
    CashOperation, DocumentCopy, DocumentSupport, Invoice, PeriodicReport, Printout, Receipt,
};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// What a printer says about itself after connecting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterIdentity {
    pub model: String,
    pub firmware: String,
    /// The fiscal serial ("unique") number, if the printer reports one.
    pub serial_number: Option<String>,
    /// The VAT table, slot by slot.
    pub vat: Vec<VatSlot>,
    /// The printer takes no fiscal documents any more (fiscal memory full, end of life).
    pub read_only: bool,
}

/// One VAT slot of the printer's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VatSlot {
    /// The slot's letter (`A`..`G`).
    pub letter: char,
    pub rate: VatRate,
}

/// A VAT slot's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VatRate {
    /// A rate in basis points of a percent (2300 = 23 %).
    BasisPoints(u32),
    /// Exempt from VAT ("zw").
    Exempt,
    /// The slot is not in use.
    Inactive,
}

/// The print mechanism's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mechanism {
    pub paper_out: bool,
    pub cover_open: bool,
}

impl Mechanism {
    /// Whether the printer holds commands until an operator acts.
    pub fn holds(self) -> bool {
        self.paper_out || self.cover_open
    }
}

/// What the printer is doing besides printing, as the idle poll and recovery need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Activity {
    /// The paper is running low; documents still print.
    pub paper_low: bool,
    /// Commands sent earlier have all been carried out.
    pub queue_empty: bool,
    /// The printer waits for its operator (a menu, a key, an error shown).
    pub waiting_for_operator: bool,
}

/// One document the task asks a driver to print.
#[derive(Debug, Clone, Copy)]
pub enum Document<'a> {
    Receipt(&'a Receipt),
    /// The daily (Z) report, for the day of the printer's clock.
    DailyReport,
    Cash(&'a CashOperation),
    Printout(&'a Printout),
    /// A VAT invoice; its closing command is the invoice's end.
    Invoice(&'a Invoice),
    /// A periodic report by dates.
    PeriodicReport(&'a PeriodicReport),
    /// A non-fiscal copy of a printed receipt or invoice from protected memory.
    Copy(&'a DocumentCopy),
}

/// Why the task stopped a document at a step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Abort {
    /// The job was cancelled (a sale past its print deadline) before anything fiscal was sent.
    Cancelled,
    /// The journal could not record the step: nothing more may be sent.
    Journal(String),
    /// The daemon is stopping.
    Shutdown,
}

/// The task's side of one document: the driver reports its progress here.
pub trait DocumentSteps: Send {
    /// The counters before the document (no document open on the printer). The task
    /// journals them; the closing command may not go out before this returned `Ok`.
    fn printing(
        &mut self,
        before: DocumentCounters,
    ) -> impl Future<Output = Result<(), Abort>> + Send;

    /// The closing command is next. The task journals that it may be sent; only after `Ok`
    /// may its first byte go out (the invariant in the module docs).
    fn closing(&mut self) -> impl Future<Output = Result<(), Abort>> + Send;

    /// A short tag unique to this job, for a protocol that stores one on the document and
    /// reads it back after a crash (Novitus XML's `systemno`); empty when there is none.
    fn tag(&self) -> String {
        String::new()
    }
}

/// The last receipt as a printer that stores the host's tag on it reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedReceipt {
    /// It was closed (fiscal), not open or cancelled.
    pub closed: bool,
    /// Its number, when closed.
    pub number: Option<u64>,
    /// The tag it was closed with (`DocumentSteps::tag`).
    pub tag: String,
}

/// What the task decides while the printer holds a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Keep waiting for the operator.
    Wait,
    /// The paper wait is over: give up on the command.
    GiveUp,
    /// The daemon is stopping.
    Stop,
}

/// The task's side of a connection: the driver reports the mechanism's state here and asks
/// how long to wait for an operator. The paper-wait policy is the task's, not the driver's.
pub trait PrinterObserver: Send + Sync {
    /// The paper or cover state as the driver last saw it.
    fn mechanism(&self, state: Mechanism);
    /// The printer holds a command (no paper, open cover) since `since`.
    fn hold(&self, since: Instant) -> Hold;
}

/// How a driver call went wrong.
#[derive(Debug, Clone, thiserror::Error)]
pub enum PrinterError {
    /// The printer refused a command (it answered with an error code): that command did
    /// nothing. The error carries the neutral category, the printer's code and a message.
    #[error("{0}")]
    Refused(DeviceError),
    /// The line failed or stayed silent: what the printer did is unknown until reconciled.
    #[error("{0}")]
    Link(String),
    /// The printer answers status queries but not the command: its reply was lost.
    #[error("the printer answers status queries but not commands")]
    NoReply,
    /// The printer held a command (no paper, open cover) longer than the task would wait.
    #[error("paper out")]
    PaperTimeout,
    /// The printer's reply did not have the expected shape.
    #[error("unexpected reply from the printer: {0}")]
    Protocol(String),
    /// The document cannot be expressed in this printer's protocol.
    #[error("{0}")]
    Unsupported(String),
    /// The task stopped the document at a step.
    #[error("stopped: {0:?}")]
    Aborted(Abort),
}

impl PrinterError {
    /// The job error for a refusal, if this is one.
    pub fn refusal(&self) -> Option<&DeviceError> {
        match self {
            PrinterError::Refused(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the link must be reopened after this error.
    pub fn is_link_failure(&self) -> bool {
        matches!(
            self,
            PrinterError::Link(_) | PrinterError::NoReply | PrinterError::Protocol(_)
        )
    }

    /// The device's state detail for this error, in plain words with what to do.
    pub fn describe(&self) -> String {
        match self {
            PrinterError::Link(m) => format!("{m}; check the cable and the printer's power"),
            PrinterError::Refused(e) => e.message.clone(),
            other => other.to_string(),
        }
    }

    /// A refusal of `category` with the printer's own `code`.
    pub fn refused(category: ErrorCategory, message: impl Into<String>, code: u32) -> Self {
        PrinterError::Refused(DeviceError::new(category, message, Some(code)))
    }
}

/// Where a driver connects and how long it may wait, from the `[[printer]]` entry.
#[derive(Clone)]
pub struct PrinterLink {
    /// The printer's id, for messages and logs.
    pub id: String,
    /// The path actually opened (the emulator's pseudo-terminal for `port = "sim"`).
    pub path: String,
    pub baud: u32,
    /// How long one command may take.
    pub command_timeout: Duration,
    /// How long the daily report may take.
    pub report_timeout: Duration,
    /// How many commands (and bytes of them) may be in flight.
    pub window: posnet::session::Window,
    /// Byte and frame counters the API shows.
    pub stats: Arc<Mutex<LinkStats>>,
    /// The task's side: mechanism changes and the paper-wait policy.
    pub observer: Arc<dyn PrinterObserver>,
    /// `protocol = "thermal"`: the dialect and code page of the `[[printer]]` entry.
    pub thermal: (thermal::Dialect, thermal::Encoding),
}

impl PrinterLink {
    /// The link of a configured printer opened at `path`.
    pub fn new(
        config: &PrinterConfig,
        path: &str,
        stats: Arc<Mutex<LinkStats>>,
        observer: Arc<dyn PrinterObserver>,
    ) -> Self {
        PrinterLink {
            id: config.id.clone(),
            path: path.to_string(),
            baud: config.baud,
            command_timeout: config.command_timeout(),
            report_timeout: config.report_timeout(),
            window: config.window(),
            stats,
            observer,
            thermal: (config.thermal_dialect(), config.thermal_encoding()),
        }
    }
}

/// A fiscal printer behind one protocol. One value is one open connection; the task drops
/// it and opens a new one after a link failure.
pub trait FiscalPrinter: Sized + Send + 'static {
    /// Which documents the protocol can print; validation refuses the rest before queuing.
    const SUPPORT: DocumentSupport;

    /// Open the connection (exclusively: no second process may drive the printer).
    fn open(link: PrinterLink) -> impl Future<Output = Result<Self, PrinterError>> + Send;

    /// Identify the printer after connecting: model, serial number, VAT table.
    fn identify(&mut self) -> impl Future<Output = Result<PrinterIdentity, PrinterError>> + Send;

    /// The print mechanism's state (paper, cover).
    fn mechanism(&mut self) -> impl Future<Output = Result<Mechanism, PrinterError>> + Send;

    /// Paper-low, queue and operator state.
    fn activity(&mut self) -> impl Future<Output = Result<Activity, PrinterError>> + Send;

    /// Whether a document is open on the printer.
    fn document_open(&mut self) -> impl Future<Output = Result<bool, PrinterError>> + Send;

    /// Cancel the open document (nothing of it becomes fiscal).
    fn cancel_document(&mut self) -> impl Future<Output = Result<(), PrinterError>> + Send;

    /// The document counters recovery compares.
    fn counters(&mut self) -> impl Future<Output = Result<DocumentCounters, PrinterError>> + Send;

    /// The printer's clock (documents carry its time, not ours).
    fn clock(&mut self)
    -> impl Future<Output = Result<chrono::NaiveDateTime, PrinterError>> + Send;

    /// The last receipt with the tag it was closed with, for protocols that store one
    /// (default: `None`, the counters decide alone).
    fn last_receipt(
        &mut self,
    ) -> impl Future<Output = Result<Option<TaggedReceipt>, PrinterError>> + Send {
        async { Ok(None) }
    }

    /// Whether the last receipt was completed, for protocols that keep such a flag
    /// (Thermal's TRF), as of the last [`FiscalPrinter::counters`] read (default: `None`,
    /// the counters decide alone).
    fn last_transaction_completed(
        &mut self,
    ) -> impl Future<Output = Result<Option<bool>, PrinterError>> + Send {
        async { Ok(None) }
    }

    /// Print one document, calling `steps.closing()` before the closing command (see the
    /// module docs).
    fn print<S: DocumentSteps>(
        &mut self,
        document: Document<'_>,
        steps: &mut S,
    ) -> impl Future<Output = Result<(), PrinterError>> + Send;
}
