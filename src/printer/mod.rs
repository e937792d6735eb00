//! The printer task: one per configured printer. It alone owns the printer's port,
//! works through the printer's jobs in FIFO order from the journal, and reconciles any
//! job that was interrupted (timeout, lost connection, daemon restart) from the
//! printer's own document counters instead of resending it.

pub mod link;

use crate::config::PrinterConfig;
use crate::device::{DeviceError, DeviceState, DocumentCounters, ErrorCategory};
use crate::journal::{
    DailyReportPrinted, Job, JobId, JobKind, JobRequest, JobResult, JobState, Journal,
    PrintoutPrinted, ReceiptPrinted, Step,
};
use link::{Link, LinkError, LinkStats};
use posnet::reply::{Rtc, SLOT_LETTERS, Scnt, Scomm, Sdev, Sid, Sprn, VatRate, VatTable};
use posnet::{Command, Frame};
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, broadcast};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// A printer's live status, shared with the API (read-only there).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceStatus {
    pub state: DeviceState,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub serial_number: Option<String>,
    /// VAT rates by letter, as read from the printer (`vatget`).
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
pub struct PrinterHandle {
    pub config: PrinterConfig,
    /// The path actually opened (the emulator's pseudo-terminal for `port = "sim"`).
    pub port_path: String,
    pub status: crate::device::StatusCell<DeviceStatus>,
    pub stats: Arc<Mutex<LinkStats>>,
    /// Wakes the task when a job is queued.
    pub wake: Notify,
}

impl PrinterHandle {
    pub fn new(config: PrinterConfig, port_path: String) -> Self {
        let id = config.id.clone();
        PrinterHandle {
            config,
            port_path,
            status: crate::device::StatusCell::new(
                &id,
                "fiscal_printer",
                DeviceStatus {
                    state: DeviceState::Offline,
                    model: None,
                    firmware: None,
                    serial_number: None,
                    vat: None,
                    last_error: Some("not connected yet".into()),
                    current_job: None,
                },
            ),
            stats: Arc::default(),
            wake: Notify::new(),
        }
    }

    /// Publish this printer's state changes on `events`.
    pub fn with_events(mut self, events: crate::events::EventBus) -> Self {
        self.status.set_events(events);
        self
    }

    pub fn status(&self) -> DeviceStatus {
        self.status.get()
    }

    fn update(&self, f: impl FnOnce(&mut DeviceStatus)) {
        self.status.update(f);
    }

    /// VAT letters the printer has active, once its table has been read.
    pub fn active_vat(&self) -> Option<Vec<char>> {
        self.status()
            .vat
            .map(|v| v.iter().filter(|e| e.active).map(|e| e.letter).collect())
    }
}

/// How a step went wrong.
#[derive(Debug)]
enum StepError {
    /// The printer refused a command (it answered with an error code): nothing was done.
    Device { mnemonic: String, code: u32 },
    /// The printer reported a frame error: the command was not understood or not received intact.
    Frame { mnemonic: String, code: u32 },
    /// The reply did not have the expected shape.
    BadReply(String),
    /// The line failed or stayed silent: what the printer did is unknown until reconciled.
    Link(LinkError),
    /// The job itself cannot be carried out (a kind or request the printer cannot take).
    BadJob(String),
    /// The job was cancelled (a sale past its print deadline) before anything fiscal was sent.
    Cancelled,
    /// The printer answers status but not the command (its reply was lost).
    NoReply,
    /// Paper (or the cover) was not fixed within `paper_wait`.
    PaperTimeout,
    /// The daemon is stopping while waiting.
    Shutdown,
}

impl StepError {
    /// The job error for a printer's refusal.
    fn to_error(&self, device: &str) -> Option<DeviceError> {
        match self {
            StepError::Device { mnemonic, code } => {
                Some(device_error(device, mnemonic, *code, false))
            }
            StepError::Frame { mnemonic, code } => {
                Some(device_error(device, mnemonic, *code, true))
            }
            _ => None,
        }
    }
}

impl From<LinkError> for StepError {
    fn from(e: LinkError) -> Self {
        StepError::Link(e)
    }
}

impl From<posnet::reply::ReplyError> for StepError {
    fn from(e: posnet::reply::ReplyError) -> Self {
        StepError::BadReply(e.to_string())
    }
}

/// Attempts before a job whose document was never printed is given up as failed.
const MAX_ATTEMPTS: i64 = 5;
/// How often a command refused with a frame error is sent again.
const FRAME_ERROR_RESENDS: u32 = 2;

/// The counters recovery compares, from the printer's `scnt`.
fn document_counters(s: &Scnt) -> DocumentCounters {
    DocumentCounters {
        last_receipt: s.last_receipt,
        daily_reports: s.daily_reports,
        next_printout: s.next_printout,
    }
}

fn device_error(device: &str, mnemonic: &str, code: u32, frame: bool) -> DeviceError {
    let info = if frame {
        posnet::error::frame_error(code)
    } else {
        posnet::error::command_error(code)
    };
    let category = if frame {
        ErrorCategory::Protocol
    } else {
        ErrorCategory::from_name(info.category.as_str())
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

/// Runs one printer until `shutdown`.
pub struct PrinterTask {
    pub handle: Arc<PrinterHandle>,
    pub journal: Journal,
    pub events: broadcast::Sender<JobId>,
    pub shutdown: CancellationToken,
}

impl PrinterTask {
    fn id(&self) -> &str {
        &self.handle.config.id
    }

    /// The task's main loop: connect, serve, reconnect with back-off.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(200);
        while !self.shutdown.is_cancelled() {
            let opened = Link::open(
                &self.handle.port_path,
                self.handle.config.baud,
                self.handle.stats.clone(),
            );
            let mut link = match opened {
                Ok(l) => l,
                Err(e) => {
                    self.set_offline(&e.to_string());
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            tracing::info!(printer = self.id(), port = %self.handle.port_path, "port opened");
            match self.serve(&mut link).await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(printer = self.id(), error = ?e, "lost the printer; reconnecting");
                    self.set_offline(&describe(&e));
                    backoff = Duration::from_millis(200);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.shutdown.cancelled() => break,
                    }
                }
            }
        }
        tracing::info!(printer = self.id(), "printer task stopped");
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

    /// Serve an open link until shutdown (Ok) or until the link fails (Err).
    async fn serve(&self, link: &mut Link) -> Result<(), StepError> {
        self.identify(link).await?;
        loop {
            if self.shutdown.is_cancelled() {
                return Ok(());
            }
            let id = self.id().to_string();
            let next = self.journal.run(move |j| j.next_for_device(&id)).await;
            match next {
                Ok(Some(job)) => {
                    self.handle.update(|s| {
                        s.state = DeviceState::Busy;
                        s.current_job = Some(job.id);
                    });
                    let r = self.work(link, job).await;
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
                            self.poll_status(link).await?;
                            self.poll_paper_low(link).await?;
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(printer = self.id(), error = %e, "journal read failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Read identity, VAT table and status after (re)connecting.
    async fn identify(&self, link: &mut Link) -> Result<(), StepError> {
        let t = self.handle.config.command_timeout();
        link.reset_input();
        let sid = Sid::from_frame(&self.cmd(link, &Command::SId, t).await?)?;
        let vat = VatTable::from_frame(&self.cmd(link, &Command::VatGet, t).await?)?;
        let scomm = Scomm::from_frame(&self.cmd(link, &Command::SComm, t).await?)?;
        let entries = vat
            .0
            .iter()
            .zip(SLOT_LETTERS)
            .map(|(rate, letter)| match rate {
                VatRate::Percent(bp) => VatEntry {
                    letter,
                    rate: Some(
                        rust_decimal::Decimal::new(i64::from(*bp), 2)
                            .normalize()
                            .to_string(),
                    ),
                    exempt: false,
                    active: true,
                },
                VatRate::Exempt => VatEntry {
                    letter,
                    rate: None,
                    exempt: true,
                    active: true,
                },
                VatRate::Inactive => VatEntry {
                    letter,
                    rate: None,
                    exempt: false,
                    active: false,
                },
            })
            .collect();
        tracing::info!(printer = self.id(), model = %sid.name, firmware = %sid.version, "printer identified");
        self.handle.update(|s| {
            s.model = Some(sid.name.clone());
            s.firmware = Some(sid.version.clone());
            s.serial_number = scomm.unique_number.clone();
            s.vat = Some(entries);
            s.state = if scomm.read_only { DeviceState::Error } else { DeviceState::Ready };
            s.last_error = scomm.read_only.then(|| {
                "the printer is in read-only mode (fiscal memory full or end of life); call service".into()
            });
        });
        self.poll_status(link).await
    }

    /// Ask the print mechanism for its state (`sprn`) and reflect it.
    async fn poll_status(&self, link: &mut Link) -> Result<(), StepError> {
        let t = self.handle.config.command_timeout();
        let sprn = Sprn::from_frame(
            &self
                .cmd(link, &Command::SPrn { immediate: true }, t)
                .await?,
        )?;
        self.apply_sprn(sprn);
        Ok(())
    }

    /// Ask whether the paper is running low (`sdev` `pe`) and show it while idle.
    async fn poll_paper_low(&self, link: &mut Link) -> Result<(), StepError> {
        let t = self.handle.config.command_timeout();
        let sdev = Sdev::from_frame(
            &self
                .cmd(link, &Command::SDev { immediate: true }, t)
                .await?,
        )?;
        self.handle.update(|s| match s.state {
            DeviceState::Ready if sdev.paper_near_end => {
                s.state = DeviceState::PaperLow;
                s.last_error = Some("paper is running low: have a new roll ready".into());
            }
            DeviceState::PaperLow if !sdev.paper_near_end => {
                s.state = DeviceState::Ready;
                s.last_error = None;
            }
            _ => {}
        });
        Ok(())
    }

    fn apply_sprn(&self, sprn: Sprn) {
        self.handle.update(|s| {
            let before = s.state;
            if sprn.paper_out() {
                s.state = DeviceState::PaperOut;
                s.last_error = Some("paper out: put in a new roll".into());
            } else if sprn.cover_open() {
                s.state = DeviceState::CoverOpen;
                s.last_error = Some("the printer's cover is open: close it".into());
            } else if matches!(s.state, DeviceState::PaperOut | DeviceState::CoverOpen | DeviceState::Offline) {
                s.state = if s.current_job.is_some() { DeviceState::Busy } else { DeviceState::Ready };
                s.last_error = None;
            }
            if before != s.state {
                tracing::info!(printer = %self.handle.config.id, state = ?s.state, "printer state changed");
            }
        });
    }

    /// One command: send, wait for its reply, classify error replies.
    ///
    /// - While the printer holds the command for lack of paper (or an open cover), wait up
    ///   to `paper_wait`.
    /// - If it answers status but not the command, its reply was lost: ask for it again
    ///   with `rpt`. A printer that does not know the token never ran the command, so it is
    ///   sent once more.
    /// - A frame error (e.g. a bad CRC after line noise) means the frame was not taken, so
    ///   it is sent again, up to `FRAME_ERROR_RESENDS` times.
    async fn cmd(
        &self,
        link: &mut Link,
        command: &Command,
        timeout: Duration,
    ) -> Result<Frame, StepError> {
        let mut resent = 0;
        let mut unknown_token = false;
        let frame = loop {
            let frame = match link.exchange(command, timeout).await {
                Ok(f) => f,
                Err((LinkError::Timeout(_), token)) => {
                    match self.wait_held(link, command, token).await {
                        Ok(f) => f,
                        Err(StepError::NoReply) => {
                            let mnemonic = command.to_frame().mnemonic;
                            match link
                                .repeat(&mnemonic, token, self.handle.config.command_timeout())
                                .await?
                            {
                                Some(f) => {
                                    crate::metrics::retry(self.id(), "rpt");
                                    tracing::info!(
                                        printer = self.id(),
                                        mnemonic,
                                        token,
                                        "recovered a lost reply with rpt"
                                    );
                                    f
                                }
                                None if !unknown_token => {
                                    tracing::warn!(
                                        printer = self.id(),
                                        mnemonic,
                                        token,
                                        "the printer never got the command; sending it again"
                                    );
                                    unknown_token = true;
                                    crate::metrics::retry(self.id(), "resend");
                                    continue;
                                }
                                None => return Err(StepError::Link(LinkError::Timeout(timeout))),
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                Err((e, _)) => return Err(e.into()),
            };
            if frame.is_frame_error() && resent < FRAME_ERROR_RESENDS {
                resent += 1;
                crate::metrics::retry(self.id(), "frame_error");
                tracing::warn!(printer = self.id(), mnemonic = command.mnemonic(), code = ?frame.error_code, "frame error; sending the command again");
                continue;
            }
            break frame;
        };
        if let Some(code) = frame.error_code {
            return Err(if frame.is_frame_error() {
                StepError::Frame {
                    mnemonic: command.mnemonic().to_string(),
                    code,
                }
            } else {
                StepError::Device {
                    mnemonic: command.mnemonic().to_string(),
                    code,
                }
            });
        }
        Ok(frame)
    }

    /// The printer did not answer in time. If it reports paper out or an open cover, it is
    /// holding the command (`token`): keep waiting for the reply while polling its state.
    /// `NoReply` when it answers status without any reason to hold the command.
    async fn wait_held(
        &self,
        link: &mut Link,
        command: &Command,
        token: u16,
    ) -> Result<Frame, StepError> {
        let mnemonic = command.to_frame().mnemonic;
        let t = self.handle.config.command_timeout();
        let deadline = Instant::now() + self.handle.config.paper_wait();
        let mut held = false;
        loop {
            let sprn = match link.exchange(&Command::SPrn { immediate: true }, t).await {
                Ok(f) if f.error_code.is_none() => Sprn::from_frame(&f)?,
                Ok(f) => return Err(StepError::BadReply(format!("status query failed: {f:?}"))),
                Err((e, _)) => return Err(e.into()),
            };
            self.apply_sprn(sprn);
            if !(sprn.paper_out() || sprn.cover_open()) {
                if !held {
                    return Err(StepError::NoReply);
                }
                // Condition cleared: the held command runs now; give it a normal timeout.
                return match link
                    .receive(&mnemonic, Some(token), Instant::now() + t)
                    .await
                {
                    Ok(f) => Ok(f),
                    Err(LinkError::Timeout(_)) => Err(StepError::NoReply),
                    Err(e) => Err(e.into()),
                };
            }
            held = true;
            if Instant::now() >= deadline {
                return Err(StepError::PaperTimeout);
            }
            let slice = Instant::now() + Duration::from_millis(500);
            tokio::select! {
                r = link.receive(&mnemonic, Some(token), slice) => match r {
                    Ok(f) => {
                        self.apply_sprn(Sprn { code: 0 });
                        return Ok(f);
                    }
                    Err(LinkError::Timeout(_)) => {}
                    Err(e) => return Err(e.into()),
                },
                _ = self.shutdown.cancelled() => return Err(StepError::Shutdown),
            }
        }
    }

    async fn journal_step(
        &self,
        id: JobId,
        step: Step,
        counters: Option<DocumentCounters>,
    ) -> Result<(), StepError> {
        let still_running = self
            .journal
            .run(move |j| j.set_step(id, step, counters.as_ref(), None))
            .await
            .map_err(|e| StepError::BadReply(format!("journal write failed: {e}")))?;
        if still_running {
            Ok(())
        } else {
            Err(StepError::Cancelled)
        }
    }

    async fn finish(
        &self,
        id: JobId,
        state: JobState,
        result: Option<JobResult>,
        error: Option<DeviceError>,
    ) {
        // A journal failure is logged there; the job stays as it was and is picked up again.
        let _ = self
            .journal
            .end_job(self.id(), &self.events, id, state, result, error)
            .await;
    }

    /// Work on one job: start it, or reconcile it if it was interrupted.
    async fn work(&self, link: &mut Link, job: Job) -> Result<(), StepError> {
        let id = job.id;
        let mut job = job;
        if job.state == JobState::Queued {
            let started = self
                .journal
                .run(move |j| j.start(id))
                .await
                .unwrap_or(false);
            if !started {
                return Ok(());
            }
            let _ = self.events.send(id);
            job.step = Some(Step::Prepare);
            job.attempts += 1;
        }
        loop {
            let outcome = if job.step.unwrap_or(Step::Prepare) == Step::Prepare {
                self.execute(link, &job).await
            } else {
                self.reconcile(link, &job).await
            };
            match outcome {
                Ok(Next::Finished) => return Ok(()),
                Ok(Next::Retry(why)) => {
                    if job.attempts >= MAX_ATTEMPTS {
                        let err = DeviceError::new(
                            ErrorCategory::DeviceError,
                            format!(
                                "printer {} did not complete the document in {MAX_ATTEMPTS} attempts; last: {why}",
                                self.id()
                            ),
                            None,
                        );
                        self.finish(id, JobState::Failed, None, Some(err)).await;
                        return Ok(());
                    }
                    let w = why.clone();
                    self.journal
                        .run(move |j| j.retry(id, &w))
                        .await
                        .map_err(|e| StepError::BadReply(e.to_string()))?;
                    job.step = Some(Step::Prepare);
                    job.counters_before = None;
                    job.attempts += 1;
                    crate::metrics::retry(self.id(), "reprint");
                    tracing::info!(printer = self.id(), job = id, reason = %why, "printing the document again");
                }
                Err(e @ (StepError::Device { .. } | StepError::Frame { .. }))
                    if job.step == Some(Step::Prepare) =>
                {
                    self.finish(id, JobState::Failed, None, e.to_error(self.id()))
                        .await;
                    return Ok(());
                }
                Err(StepError::Shutdown) => return Ok(()),
                Err(StepError::Cancelled) => {
                    tracing::info!(
                        printer = self.id(),
                        job = id,
                        "the job was cancelled before printing"
                    );
                    let _ = self.events.send(id);
                    return Ok(());
                }
                Err(StepError::BadJob(why)) => {
                    // Nothing can have been printed for a job that could not be read.
                    let err = DeviceError::new(
                        ErrorCategory::InvalidJob,
                        format!("printer {}: {why}", self.id()),
                        None,
                    );
                    self.finish(id, JobState::Failed, None, Some(err)).await;
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Which document counter proves that a job of this kind was completed.
    fn counter(kind: JobKind, c: &DocumentCounters) -> u64 {
        match kind {
            JobKind::Receipt => c.last_receipt,
            JobKind::DailyReport => c.daily_reports,
            JobKind::Cash | JobKind::Printout => c.next_printout,
            // Not printer jobs (refused in `work`); never counted.
            JobKind::Payment | JobKind::EndOfDay | JobKind::Sale => c.last_receipt,
        }
    }

    /// A fresh attempt: record the counters, then send the document.
    async fn execute(&self, link: &mut Link, job: &Job) -> Result<Next, StepError> {
        let t = self.handle.config.command_timeout();
        let scomm = Scomm::from_frame(&self.cmd(link, &Command::SComm, t).await?)?;
        if scomm.transaction != 0 {
            tracing::warn!(
                printer = self.id(),
                "a document was left open on the printer; cancelling it"
            );
            self.cmd(link, &Command::PrnCancel, t).await?;
        }
        let before = Scnt::from_frame(&self.cmd(link, &Command::SCnt, t).await?)?;
        let before = document_counters(&before);
        self.journal_step(job.id, Step::Printing, Some(before))
            .await?;
        let mut closing = false;
        let sent = self.send_document(link, job, &mut closing).await;
        match sent {
            Ok(()) => {}
            Err(e @ (StepError::Device { .. } | StepError::Frame { .. })) => {
                // The printer refused: cancel what is open so nothing half-done remains.
                self.cmd(link, &Command::PrnCancel, t).await?;
                self.finish(job.id, JobState::Failed, None, e.to_error(self.id()))
                    .await;
                return Ok(Next::Finished);
            }
            Err(StepError::PaperTimeout) if closing => {
                // The closing command is held by the printer and runs when paper is put
                // in: the document may still be printed, so it cannot be failed.
                let err = DeviceError::new(
                    ErrorCategory::NeedsAttention,
                    format!(
                        "printer {} holds the closing command of job {} for lack of paper (or an open cover) \
                         for longer than {:?}; it prints when paper is put in. Check the printer, then settle the job by hand.",
                        self.id(),
                        job.id,
                        self.handle.config.paper_wait()
                    ),
                    None,
                );
                self.finish(job.id, JobState::NeedsAttention, None, Some(err))
                    .await;
                return Ok(Next::Finished);
            }
            Err(StepError::PaperTimeout) => {
                let err = DeviceError::new(
                    ErrorCategory::PaperOut,
                    format!(
                        "printer {} had no paper (or an open cover) for {:?}; the document was not completed. Put in paper and resend",
                        self.id(),
                        self.handle.config.paper_wait()
                    ),
                    None,
                );
                self.finish(job.id, JobState::Failed, None, Some(err)).await;
                return Ok(Next::Finished);
            }
            Err(e) => return Err(e),
        }
        self.reconcile_after(link, job, before, Step::Closed.as_str())
            .await
    }

    /// Send the document's commands up to and including the closing one.
    /// Send the document's commands; `closing` is set just before the closing command.
    async fn send_document(
        &self,
        link: &mut Link,
        job: &Job,
        closing: &mut bool,
    ) -> Result<(), StepError> {
        let t = self.handle.config.command_timeout();
        match &job.request {
            JobRequest::Receipt(r) => {
                let init = Command::TrInit { block_mode: false };
                match self.cmd(link, &init, t).await {
                    // A document was opened after our `scomm` (a command held from an earlier
                    // connection, or another program): it is not ours, so cancel it.
                    Err(StepError::Device { code: 2038, .. }) => {
                        tracing::warn!(
                            printer = self.id(),
                            "a receipt was already open at trinit; cancelling it"
                        );
                        self.cmd(link, &Command::PrnCancel, t).await?;
                        self.cmd(link, &init, t).await?;
                    }
                    r => {
                        r?;
                    }
                }
                if let Some(nip) = &r.buyer_nip {
                    self.cmd(link, &Command::TrNipSet { nip: nip.clone() }, t)
                        .await?;
                }
                for l in &r.lines {
                    let line = posnet::Line {
                        name: l.name.clone(),
                        vat_slot: (l.vat as u8).saturating_sub(b'A'),
                        unit_price: l.unit_price,
                        quantity: l.quantity,
                        amount: l.amount,
                        unit: l.unit.clone(),
                    };
                    self.cmd(link, &Command::TrLine(line), t).await?;
                }
                for p in &r.payments {
                    let c = Command::TrPayment {
                        kind: p.method.posnet(),
                        amount: p.amount,
                        name: None,
                        change: false,
                    };
                    self.cmd(link, &c, t).await?;
                }
                let change = r.change();
                if change > 0 {
                    let c = Command::TrPayment {
                        kind: posnet::PaymentKind::Cash,
                        amount: change,
                        name: None,
                        change: true,
                    };
                    self.cmd(link, &c, t).await?;
                }
                self.journal_step(job.id, Step::Closing, None).await?;
                *closing = true;
                self.cmd(
                    link,
                    &Command::TrEnd {
                        total: r.total,
                        payments: r.paid(),
                        change,
                    },
                    t,
                )
                .await?;
            }
            JobRequest::DailyReport => {
                let rtc = Rtc::from_frame(&self.cmd(link, &Command::RtcGet, t).await?)?;
                self.journal_step(job.id, Step::Closing, None).await?;
                *closing = true;
                let c = Command::DailyRep {
                    date: rtc.datetime.date(),
                };
                self.cmd(link, &c, self.handle.config.report_timeout())
                    .await?;
            }
            JobRequest::Cash(c) => {
                self.journal_step(job.id, Step::Closing, None).await?;
                *closing = true;
                self.cmd(
                    link,
                    &Command::Cash {
                        amount: c.amount,
                        deposit: c.deposit,
                    },
                    t,
                )
                .await?;
            }
            JobRequest::Printout(p) => {
                const FORM: u16 = 200;
                self.cmd(
                    link,
                    &Command::FormStart {
                        form: FORM,
                        header: None,
                    },
                    t,
                )
                .await?;
                for (i, text) in p.lines.iter().enumerate() {
                    let text = if text.is_empty() {
                        " ".to_string()
                    } else {
                        text.clone()
                    };
                    let line = u16::try_from(i).unwrap_or(u16::MAX);
                    self.cmd(
                        link,
                        &Command::FormLine {
                            form: FORM,
                            line,
                            text,
                        },
                        t,
                    )
                    .await?;
                }
                self.journal_step(job.id, Step::Closing, None).await?;
                *closing = true;
                self.cmd(link, &Command::FormEnd { form: FORM }, t).await?;
            }
            JobRequest::Payment(_) | JobRequest::EndOfDay | JobRequest::Sale(_) => {
                return Err(StepError::BadJob(format!(
                    "a {} job cannot run on a printer",
                    job.kind.as_str()
                )));
            }
        }
        Ok(())
    }

    /// An interrupted job: find out from the printer what happened.
    async fn reconcile(&self, link: &mut Link, job: &Job) -> Result<Next, StepError> {
        let t = self.handle.config.command_timeout();
        let Some(before) = job.counters_before else {
            return Ok(Next::Retry(
                "no counters were recorded; nothing was sent".into(),
            ));
        };
        tracing::info!(printer = self.id(), job = job.id, step = ?job.step, "reconciling an interrupted job from the printer's counters");
        // Commands sent before the interruption may still wait in the printer's queue (held
        // for paper, say): the counters mean nothing until they have run.
        self.wait_until_idle(link).await?;
        let scomm = Scomm::from_frame(&self.cmd(link, &Command::SComm, t).await?)?;
        if scomm.transaction != 0 {
            self.cmd(link, &Command::PrnCancel, t).await?;
        }
        let step = job.step.map_or("", Step::as_str);
        self.reconcile_after(link, job, before, step).await
    }

    /// Wait until the printer's command queue is empty and it is not waiting for the
    /// operator (`!sdev`: `qe` and `ds`), for at most `paper_wait`.
    async fn wait_until_idle(&self, link: &mut Link) -> Result<(), StepError> {
        let t = self.handle.config.command_timeout();
        let deadline = Instant::now() + self.handle.config.paper_wait();
        loop {
            let sdev = Sdev::from_frame(
                &self
                    .cmd(link, &Command::SDev { immediate: true }, t)
                    .await?,
            )?;
            if sdev.queue_empty && sdev.state == 0 {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(StepError::PaperTimeout);
            }
            tracing::info!(
                printer = self.id(),
                queue_empty = sdev.queue_empty,
                state = sdev.state,
                "waiting for the printer to finish its queued commands"
            );
            self.poll_status(link).await?;
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = self.shutdown.cancelled() => return Err(StepError::Shutdown),
            }
        }
    }

    /// Compare the counters with those recorded before the document and decide.
    async fn reconcile_after(
        &self,
        link: &mut Link,
        job: &Job,
        before: DocumentCounters,
        step: &str,
    ) -> Result<Next, StepError> {
        let t = self.handle.config.command_timeout();
        let after = document_counters(&Scnt::from_frame(
            &self.cmd(link, &Command::SCnt, t).await?,
        )?);
        let (b, a) = (
            Self::counter(job.kind, &before),
            Self::counter(job.kind, &after),
        );
        let verdict = verdict(step, b, a);
        if step != "closed" {
            // Not the check after a normal print: an interrupted job's reconciliation.
            let outcome = match verdict {
                Verdict::Printed => "printed",
                Verdict::NotPrinted => "not_printed",
                Verdict::Unknown => "needs_attention",
            };
            crate::metrics::reconciliation(self.id(), outcome);
        }
        match verdict {
            Verdict::Printed => {
                let rtc = Rtc::from_frame(&self.cmd(link, &Command::RtcGet, t).await?)?;
                let result = self.result(job, &after, &rtc);
                self.finish(job.id, JobState::Done, result, None).await;
                Ok(Next::Finished)
            }
            Verdict::NotPrinted => Ok(Next::Retry(format!(
                "the printer's counter did not move (still {a}): the document was not printed"
            ))),
            Verdict::Unknown => {
                let err = DeviceError::new(
                    ErrorCategory::NeedsAttention,
                    format!(
                        "printer {}: cannot tell whether job {} was printed: the document counter went from {b} to {a} at step '{step}'. \
                         Check the printer's last documents and settle the job by hand; it will not be retried.",
                        self.id(),
                        job.id
                    ),
                    None,
                );
                self.finish(job.id, JobState::NeedsAttention, None, Some(err))
                    .await;
                Ok(Next::Finished)
            }
        }
    }

    fn result(&self, job: &Job, after: &DocumentCounters, rtc: &Rtc) -> Option<JobResult> {
        let printed_at = rtc.datetime.format("%Y-%m-%dT%H:%M:%S").to_string();
        let printer = self.id().to_string();
        Some(match &job.request {
            JobRequest::Receipt(r) => JobResult::Receipt(ReceiptPrinted {
                receipt_number: after.last_receipt,
                total: r.total,
                printed_at,
                printer,
                printer_serial_number: self.handle.status().serial_number,
            }),
            JobRequest::DailyReport => JobResult::DailyReport(DailyReportPrinted {
                report_number: after.daily_reports,
                date: rtc.datetime.date().to_string(),
                printed_at,
                printer,
            }),
            JobRequest::Cash(_) | JobRequest::Printout(_) => JobResult::Printout(PrintoutPrinted {
                printout_number: after.next_printout.saturating_sub(1),
                printed_at,
                printer,
            }),
            JobRequest::Payment(_) | JobRequest::EndOfDay | JobRequest::Sale(_) => return None,
        })
    }
}

/// What the document counter says about an interrupted document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// It was printed (exactly once).
    Printed,
    /// It was not printed: printing it again is safe.
    NotPrinted,
    /// Neither can be proved: the job goes to `needs_attention`.
    Unknown,
}

/// Decide from the counter before the document (`before`), the counter now (`after`)
/// and the last journaled step. Before `closing` the closing command was never sent,
/// so the counter must not have moved; from `closing` on, one step means it ran.
pub fn verdict(step: &str, before: u64, after: u64) -> Verdict {
    match (step, after.checked_sub(before)) {
        ("closing" | "closed", Some(1)) => Verdict::Printed,
        ("printing" | "closing", Some(0)) => Verdict::NotPrinted,
        _ => Verdict::Unknown,
    }
}

/// What to do after a step.
enum Next {
    Finished,
    Retry(String),
}

fn describe(e: &StepError) -> String {
    match e {
        StepError::Link(LinkError::Timeout(d)) => {
            format!("the printer does not answer (no reply within {d:?}); check cable and power")
        }
        StepError::Link(e) => format!("{e}; check the cable and the printer's power"),
        StepError::BadReply(m) => format!("unexpected reply from the printer: {m}"),
        StepError::Device { mnemonic, code } => {
            format!(
                "the printer refused `{mnemonic}`: {}",
                posnet::error::command_error(*code).message
            )
        }
        StepError::Frame { mnemonic, code } => {
            format!(
                "frame error {code} on `{mnemonic}`: {}",
                posnet::error::frame_error(*code).message
            )
        }
        StepError::PaperTimeout => "paper out".into(),
        StepError::NoReply => "the printer answers status queries but not commands".into(),
        StepError::BadJob(m) => m.clone(),
        StepError::Cancelled => "the job was cancelled".into(),
        StepError::Shutdown => "stopping".into(),
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

#[cfg(test)]
mod tests {
    use super::{Verdict, verdict};

    #[test]
    fn counters_decide_exactly_once() {
        assert_eq!(verdict("printing", 7, 7), Verdict::NotPrinted);
        assert_eq!(verdict("closing", 7, 7), Verdict::NotPrinted);
        assert_eq!(verdict("closing", 7, 8), Verdict::Printed);
        assert_eq!(verdict("closed", 7, 8), Verdict::Printed);
        // The closing command was never sent, yet a document appeared: someone else printed.
        assert_eq!(verdict("printing", 7, 8), Verdict::Unknown);
        // The printer acknowledged the closing command but its counter did not move.
        assert_eq!(verdict("closed", 7, 7), Verdict::Unknown);
        assert_eq!(verdict("closing", 7, 9), Verdict::Unknown);
        assert_eq!(
            verdict("closing", 7, 3),
            Verdict::Unknown,
            "counter went backwards (printer replaced?)"
        );
    }
}
