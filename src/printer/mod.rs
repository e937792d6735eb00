//! The printer task: one per configured printer, whatever its protocol. It alone owns the
//! printer's connection (a [`FiscalPrinter`] driver), works through the printer's jobs in
//! FIFO order from the journal, and reconciles any job that was interrupted (timeout, lost
//! connection, daemon restart) from the printer's own document counters instead of
//! resending it. Nothing here knows a protocol.

mod jobs;
pub mod verdict;

use crate::config::PrinterConfig;
use crate::device::printer::{
    FiscalPrinter, Hold, Mechanism, PrinterError, PrinterIdentity, PrinterLink, PrinterObserver,
    VatRate,
};
use crate::device::{DeviceConfig, DeviceHandle, DeviceState, HandleStatus};
use crate::journal::{JobId, Journal};
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A printer's live status, shared with the API (read-only there).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    pub state: DeviceState,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub serial_number: Option<String>,
    /// VAT rates by letter, as read from the printer.
    pub vat: Option<Vec<VatEntry>>,
    /// The last problem, in plain words.
    pub last_error: Option<String>,
    pub current_job: Option<JobId>,
}

/// One VAT slot as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct VatEntry {
    pub letter: char,
    /// Rate in percent as a decimal string ("23", "8", "0"), or null.
    pub rate: Option<String>,
    pub exempt: bool,
    pub active: bool,
}

/// The API's handle on a printer task.
pub type PrinterHandle = DeviceHandle<PrinterConfig, DeviceStatus>;

impl HandleStatus for DeviceStatus {
    const KIND: &'static str = "fiscal_printer";
    fn not_connected() -> Self {
        DeviceStatus {
            state: DeviceState::Offline,
            model: None,
            firmware: None,
            serial_number: None,
            vat: None,
            last_error: Some("not connected yet".into()),
            current_job: None,
        }
    }
}

impl DeviceConfig for PrinterConfig {
    fn id(&self) -> &str {
        &self.id
    }
}

impl DeviceHandle<PrinterConfig, DeviceStatus> {
    /// VAT letters the printer has active, once its table has been read.
    pub fn active_vat(&self) -> Option<Vec<char>> {
        self.status()
            .vat
            .map(|v| v.iter().filter(|e| e.active).map(|e| e.letter).collect())
    }

    /// Show the mechanism's state (paper out, open cover, or neither).
    fn apply_mechanism(&self, m: Mechanism) {
        self.update(|s| {
            let before = s.state;
            if m.paper_out {
                s.state = DeviceState::PaperOut;
                s.last_error = Some("paper out: put in a new roll".into());
            } else if m.cover_open {
                s.state = DeviceState::CoverOpen;
                s.last_error = Some("the printer's cover is open: close it".into());
            } else if matches!(
                s.state,
                DeviceState::PaperOut | DeviceState::CoverOpen | DeviceState::Offline
            ) {
                s.state = if s.current_job.is_some() {
                    DeviceState::Busy
                } else {
                    DeviceState::Ready
                };
                s.last_error = None;
            }
            if before != s.state {
                tracing::info!(printer = %self.config.id, state = ?s.state, "printer state changed");
            }
        });
    }
}

impl crate::device::Observable for DeviceStatus {
    fn state(&self) -> DeviceState {
        self.state
    }
    fn detail(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

/// The task's side of a driver's connection: mechanism changes go to the status, and the
/// paper-wait policy (`paper_wait` from the configuration) decides how long a held command
/// is waited for.
struct Observer {
    handle: Arc<PrinterHandle>,
    shutdown: CancellationToken,
}

impl PrinterObserver for Observer {
    fn mechanism(&self, state: Mechanism) {
        self.handle.apply_mechanism(state);
    }

    fn hold(&self, since: Instant) -> Hold {
        if self.shutdown.is_cancelled() {
            Hold::Stop
        } else if since.elapsed() >= self.handle.config.paper_wait() {
            Hold::GiveUp
        } else {
            Hold::Wait
        }
    }
}

/// Runs one printer through driver `D` until `shutdown`.
pub struct PrinterTask<D> {
    pub handle: Arc<PrinterHandle>,
    pub journal: Journal,
    pub events: broadcast::Sender<JobId>,
    pub shutdown: CancellationToken,
    driver: PhantomData<fn() -> D>,
}

/// The longest pause between two attempts to reach a printer.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

impl<D: FiscalPrinter> PrinterTask<D> {
    /// A task for `handle`'s printer, driven by `D`.
    pub fn new(
        handle: Arc<PrinterHandle>,
        journal: Journal,
        events: broadcast::Sender<JobId>,
        shutdown: CancellationToken,
    ) -> Self {
        PrinterTask {
            handle,
            journal,
            events,
            shutdown,
            driver: PhantomData,
        }
    }

    fn id(&self) -> &str {
        &self.handle.config.id
    }

    fn link(&self) -> PrinterLink {
        let observer = Arc::new(Observer {
            handle: self.handle.clone(),
            shutdown: self.shutdown.clone(),
        });
        PrinterLink::new(
            &self.handle.config,
            &self.handle.target,
            self.handle.link.clone(),
            observer,
        )
    }

    /// The task's main loop: connect, serve, reconnect with back-off.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(200);
        while !self.shutdown.is_cancelled() {
            let mut printer = match D::open(self.link()).await {
                Ok(p) => p,
                Err(e) => {
                    self.set_offline(&e.describe());
                    if self.pause(backoff).await {
                        break;
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            tracing::info!(printer = self.id(), port = %self.handle.target, "port opened");
            match self.serve(&mut printer).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(printer = self.id(), error = ?e, "lost the printer; reconnecting");
                    self.set_offline(&e.describe());
                    backoff = Duration::from_millis(200);
                    if self.pause(backoff).await {
                        break;
                    }
                }
            }
        }
        tracing::info!(printer = self.id(), "printer task stopped");
    }

    /// Sleep `d`; `true` if the daemon is stopping.
    async fn pause(&self, d: Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(d) => false,
            _ = self.shutdown.cancelled() => true,
        }
    }

    fn set_offline(&self, why: &str) {
        self.handle.update(|s| {
            if s.state != DeviceState::Offline || s.last_error.as_deref() != Some(why) {
                tracing::info!(printer = %self.handle.config.id, reason = why, "printer offline");
            }
            s.state = DeviceState::Offline;
            s.last_error = Some(why.to_string());
        });
    }

    /// Serve an open connection until shutdown (Ok) or until it fails (Err).
    async fn serve(&self, printer: &mut D) -> Result<(), PrinterError> {
        self.identify(printer).await?;
        loop {
            if self.shutdown.is_cancelled() {
                return Ok(());
            }
            let id = self.id().to_string();
            match self.journal.run(move |j| j.next_for_device(&id)).await {
                Ok(Some(job)) => {
                    self.handle.update(|s| {
                        s.state = DeviceState::Busy;
                        s.current_job = Some(job.id);
                    });
                    let r = self.work(printer, job).await;
                    self.handle.update(|s| {
                        s.current_job = None;
                        if s.state == DeviceState::Busy {
                            s.state = DeviceState::Ready;
                        }
                    });
                    r?;
                }
                Ok(None) => {
                    tokio::select! {
                        _ = self.handle.wake.notified() => {}
                        _ = self.shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(self.handle.config.status_poll()) => {
                            self.poll_status(printer).await?;
                            self.poll_paper_low(printer).await?;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(printer = self.id(), error = %e, "journal read failed");
                    if self.pause(Duration::from_secs(1)).await {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// Read identity, VAT table and status after (re)connecting.
    async fn identify(&self, printer: &mut D) -> Result<(), PrinterError> {
        let PrinterIdentity {
            model,
            firmware,
            serial_number,
            vat,
            read_only,
        } = printer.identify().await?;
        let entries = vat
            .iter()
            .map(|slot| VatEntry {
                letter: slot.letter,
                rate: match slot.rate {
                    VatRate::BasisPoints(bp) => Some(
                        rust_decimal::Decimal::new(i64::from(bp), 2)
                            .normalize()
                            .to_string(),
                    ),
                    VatRate::Exempt | VatRate::Inactive => None,
                },
                exempt: slot.rate == VatRate::Exempt,
                active: slot.rate != VatRate::Inactive,
            })
            .collect();
        tracing::info!(printer = self.id(), model = %model, firmware = %firmware, "printer identified");
        self.handle.update(|s| {
            s.model = Some(model);
            s.firmware = Some(firmware);
            s.serial_number = serial_number;
            s.vat = Some(entries);
            s.state = if read_only { DeviceState::Error } else { DeviceState::Ready };
            s.last_error = read_only.then(|| {
                "the printer is in read-only mode (fiscal memory full or end of life); call service".into()
            });
        });
        self.poll_status(printer).await
    }

    /// Ask the print mechanism for its state and reflect it.
    async fn poll_status(&self, printer: &mut D) -> Result<(), PrinterError> {
        let m = printer.mechanism().await?;
        self.handle.apply_mechanism(m);
        Ok(())
    }

    /// Ask whether the paper is running low and show it while idle.
    async fn poll_paper_low(&self, printer: &mut D) -> Result<(), PrinterError> {
        let low = printer.activity().await?.paper_low;
        self.handle.update(|s| match s.state {
            DeviceState::Ready if low => {
                s.state = DeviceState::PaperLow;
                s.last_error = Some("paper is running low: have a new roll ready".into());
            }
            DeviceState::PaperLow if !low => {
                s.state = DeviceState::Ready;
                s.last_error = None;
            }
            _ => {}
        });
        Ok(())
    }
}
