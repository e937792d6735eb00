//! The terminal task: one per configured card terminal. It alone owns the terminal's
//! connection, runs its card jobs (payments, end of day, the payment part of sales) in
//! FIFO order from the journal, and reconciles any transaction whose outcome it did not
//! see, never sending an authorization twice.

pub mod transport;

use crate::config::{SlipTarget, TerminalConfig};
use crate::device::{DeviceError, DeviceState, ErrorCategory};
use crate::journal::{
    CardOutcome, EndOfDayResult, Job, JobId, JobKind, JobRequest, JobResult, JobState, Journal,
    PaymentResult, Step,
};
use crate::printer::PrinterHandle;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, broadcast};
use tokio_util::sync::CancellationToken;
use transport::{Transport, TransportError};
use zvt::{EcrCommand, PtMessage, TransactionResult};

/// ZVT registration config: the register prints receipts via print-line messages (0x80),
/// payment receipts (0x02), wants intermediate status (0x08), amount entry (0x10) and
/// admin functions (0x20) on the terminal disabled.
const REGISTRATION_CONFIG: u8 = 0xBA;

/// A terminal's live status, shared with the API.
#[derive(Debug, Clone, Serialize)]
pub struct TerminalStatus {
    pub state: DeviceState,
    pub terminal_id: Option<String>,
    /// What the terminal shows during a transaction (intermediate status).
    pub display: Option<String>,
    pub last_error: Option<String>,
    pub current_job: Option<JobId>,
    pub bytes_out: u64,
    pub bytes_in: u64,
}

/// The API's handle on a terminal task.
pub struct TerminalHandle {
    pub config: TerminalConfig,
    /// What is opened: a device path (the emulator's PTY for `"sim"`) or `tcp://...`.
    pub target: String,
    pub status: crate::device::StatusCell<TerminalStatus>,
    pub wake: Notify,
}

impl TerminalHandle {
    pub fn new(config: TerminalConfig, target: String) -> Self {
        let id = config.id.clone();
        TerminalHandle {
            config,
            target,
            status: crate::device::StatusCell::new(
                &id,
                "payment_terminal",
                TerminalStatus {
                    state: DeviceState::Offline,
                    terminal_id: None,
                    display: None,
                    last_error: Some("not connected yet".into()),
                    current_job: None,
                    bytes_out: 0,
                    bytes_in: 0,
                },
            ),
            wake: Notify::new(),
        }
    }

    /// Publish this terminal's state changes on `events`.
    pub fn with_events(mut self, events: crate::events::EventBus) -> Self {
        self.status.set_events(events);
        self
    }

    pub fn status(&self) -> TerminalStatus {
        self.status.get()
    }

    fn update(&self, f: impl FnOnce(&mut TerminalStatus)) {
        self.status.update(f);
    }
}

/// How a terminal step went wrong.
#[derive(Debug)]
enum TermError {
    /// The line or connection failed: the outcome of what was in flight is unknown.
    Transport(TransportError),
    /// The terminal refused the command (`84 xx`): nothing happened.
    Refused(u8),
    /// The terminal sent something that does not fit the flow.
    Protocol(String),
    /// The job cannot be carried out as journaled.
    BadJob(String),
    /// Journal write failed; stop before telling the terminal anything.
    Journal(String),
}

impl From<TransportError> for TermError {
    fn from(e: TransportError) -> Self {
        TermError::Transport(e)
    }
}

impl std::fmt::Display for TermError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TermError::Transport(e) => write!(f, "{e}"),
            TermError::Refused(code) => write!(
                f,
                "refused with {code:02X}: {}",
                zvt::error::describe(*code).message
            ),
            TermError::Protocol(m) | TermError::BadJob(m) | TermError::Journal(m) => f.write_str(m),
        }
    }
}

/// What a command flow produced.
#[derive(Debug, Default)]
struct Flow {
    /// The Status-Information, if one came.
    result: Option<TransactionResult>,
    /// Receipt lines the terminal sent.
    slip: Vec<String>,
    /// `06 1E` result code, if the terminal aborted.
    aborted: Option<u8>,
    /// Terminal status from a status enquiry's completion.
    terminal_status: Option<u8>,
    terminal_id: Option<String>,
}

/// A payment job's request document (the validated card payment).
pub type PaymentRequest = crate::document::CardPayment;

/// Currency code → name for results.
pub fn currency_name(code: u16) -> &'static str {
    match code {
        985 => "PLN",
        978 => "EUR",
        _ => "XXX",
    }
}

/// Runs one terminal until `shutdown`.
pub struct TerminalTask {
    pub handle: Arc<TerminalHandle>,
    pub journal: Journal,
    pub events: broadcast::Sender<JobId>,
    pub shutdown: CancellationToken,
    pub printers: Arc<BTreeMap<String, Arc<PrinterHandle>>>,
    /// Reverse approved payments that cannot be attached to their sale (see `[sales]`).
    pub reverse_unattached: bool,
}

/// How often an idle terminal is asked for its status.
const IDLE_POLL: Duration = Duration::from_secs(10);

impl TerminalTask {
    fn id(&self) -> &str {
        &self.handle.config.id
    }

    fn is_tcp(&self) -> bool {
        self.handle.target.starts_with("tcp://")
    }

    async fn open(&self) -> Result<Transport, TermError> {
        let t = Transport::open(
            &self.handle.target,
            self.handle.config.baud,
            self.handle.config.command_timeout(),
        )
        .await?;
        Ok(t)
    }

    fn account(&self, t: &Transport) {
        self.handle.update(|s| {
            s.bytes_out = t.bytes_out;
            s.bytes_in = t.bytes_in;
        });
    }

    /// The task's main loop.
    pub async fn run(self) {
        let mut backoff = Duration::from_millis(200);
        let mut conn: Option<Transport> = None;
        let mut poll = false;
        while !self.shutdown.is_cancelled() {
            let r = self.round(&mut conn, std::mem::take(&mut poll)).await;
            match r {
                Ok(true) => backoff = Duration::from_millis(200),
                Ok(false) => {
                    tokio::select! {
                        _ = self.handle.wake.notified() => {}
                        _ = self.shutdown.cancelled() => break,
                        _ = tokio::time::sleep(IDLE_POLL) => poll = true,
                    }
                }
                Err(e) => {
                    conn = None;
                    tracing::warn!(terminal = self.id(), error = %e, "terminal unavailable");
                    self.handle.update(|s| {
                        s.state = DeviceState::Offline;
                        s.last_error = Some(format!(
                            "{e}; check the terminal's cable, network and power"
                        ));
                        s.display = None;
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = self.shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        tracing::info!(terminal = self.id(), "terminal task stopped");
    }

    /// One round: make sure the terminal is reachable, then run the next job if any; when
    /// idle and `poll` is set, ask the terminal for its status.
    /// `Ok(true)` if a job was handled, `Ok(false)` when idle.
    async fn round(&self, conn: &mut Option<Transport>, poll: bool) -> Result<bool, TermError> {
        if conn.is_none() {
            let mut t = self.open().await?;
            self.identify(&mut t).await?;
            *conn = Some(t);
        }
        let Some(t) = conn.as_mut() else {
            return Ok(false);
        };
        let id = self.id().to_string();
        let next = self
            .journal
            .run(move |j| j.next_for_device(&id))
            .await
            .map_err(|e| TermError::Journal(e.to_string()))?;
        let Some(job) = next else {
            if !poll {
                return Ok(false);
            }
            // Idle: a status enquiry keeps the terminal's state fresh (and is what ZVT asks for).
            let flow = self
                .flow(
                    t,
                    &EcrCommand::StatusEnquiry {
                        password: Some(self.handle.config.password_number()),
                    },
                    None,
                )
                .await;
            self.account(t);
            if self.is_tcp() {
                *conn = None;
            }
            flow?;
            return Ok(false);
        };
        self.handle.update(|s| {
            s.state = DeviceState::Busy;
            s.current_job = Some(job.id);
        });
        let r = self.work(t, job).await;
        self.account(t);
        self.handle.update(|s| {
            s.current_job = None;
            s.display = None;
            if s.state == DeviceState::Busy {
                s.state = DeviceState::Ready;
            }
        });
        if self.is_tcp() {
            *conn = None;
        }
        r.map(|()| true)
    }

    /// Register with the terminal and read its status.
    async fn identify(&self, t: &mut Transport) -> Result<(), TermError> {
        let cfg = &self.handle.config;
        let config = if cfg.slip == SlipTarget::Terminal {
            REGISTRATION_CONFIG & !0x02
        } else {
            REGISTRATION_CONFIG
        };
        let reg = EcrCommand::Registration {
            password: cfg.password_number(),
            config,
            currency: Some(cfg.currency_code()),
        };
        let flow = self.flow(t, &reg, None).await?;
        let enquiry = self
            .flow(
                t,
                &EcrCommand::StatusEnquiry {
                    password: Some(cfg.password_number()),
                },
                None,
            )
            .await?;
        let tid = flow.terminal_id.or(enquiry.terminal_id);
        tracing::info!(terminal = self.id(), terminal_id = ?tid, status = ?enquiry.terminal_status, "terminal registered");
        self.handle.update(|s| {
            s.terminal_id = tid.clone().or(s.terminal_id.take());
            s.state = match enquiry.terminal_status {
                Some(0) | None => DeviceState::Ready,
                Some(_) => DeviceState::Error,
            };
            s.last_error = enquiry.terminal_status.filter(|c| *c != 0).map(|c| {
                format!(
                    "terminal status {c:02X}: {}",
                    zvt::error::describe(c).message
                )
            });
        });
        Ok(())
    }

    /// Run one command flow: send, expect `80 00`, then answer every terminal message until
    /// completion or abort. `on_result` journals a Status-Information before it is
    /// acknowledged (the commit point).
    async fn flow(
        &self,
        t: &mut Transport,
        command: &EcrCommand,
        on_result: Option<(&Job, &str)>,
    ) -> Result<Flow, TermError> {
        let cfg = &self.handle.config;
        t.send(&command.to_apdu()).await?;
        let first = t.recv(cfg.command_timeout()).await?;
        match PtMessage::from_apdu(&first) {
            Ok(PtMessage::Ack) => {}
            Ok(PtMessage::Nack(code)) => return Err(TermError::Refused(code)),
            Ok(other) => {
                return Err(TermError::Protocol(format!(
                    "expected an acknowledgement, got {other:?}"
                )));
            }
            Err(e) => return Err(TermError::Protocol(e.to_string())),
        }
        if matches!(command, EcrCommand::Abort | EcrCommand::LogOff) {
            return Ok(Flow::default());
        }
        let mut flow = Flow::default();
        loop {
            let apdu = t.recv(cfg.transaction_timeout()).await?;
            let msg =
                PtMessage::from_apdu(&apdu).map_err(|e| TermError::Protocol(e.to_string()))?;
            match msg {
                PtMessage::IntermediateStatus { status, text, .. } => {
                    let shown = text
                        .map(|t| zvt::pan::mask_in_text(&t))
                        .unwrap_or_else(|| intermediate_text(status).to_string());
                    self.handle.update(|s| s.display = Some(shown));
                }
                PtMessage::StatusInformation(r) => {
                    if let Some((job, terminal)) = on_result {
                        self.journal_result(job, terminal, &r, &flow.slip).await?;
                    }
                    flow.result = Some(r);
                }
                // Receipt text is free text: mask any card number a terminal prints in clear.
                PtMessage::PrintLine { text, .. } => flow.slip.push(zvt::pan::mask_in_text(&text)),
                PtMessage::PrintTextBlock { lines, .. } => {
                    flow.slip
                        .extend(lines.iter().map(|l| zvt::pan::mask_in_text(l)));
                }
                PtMessage::Completion {
                    terminal_status,
                    terminal_id,
                    ..
                } => {
                    flow.terminal_status = terminal_status;
                    flow.terminal_id = terminal_id;
                    t.send(&EcrCommand::Ack.to_apdu()).await?;
                    return Ok(flow);
                }
                PtMessage::Abort { result_code, .. } => {
                    flow.aborted = Some(result_code);
                    t.send(&EcrCommand::Ack.to_apdu()).await?;
                    return Ok(flow);
                }
                PtMessage::Ack | PtMessage::Nack(_) => continue,
            }
            t.send(&EcrCommand::Ack.to_apdu()).await?;
        }
    }

    /// Journal a transaction outcome (before the terminal is told it was received).
    async fn journal_result(
        &self,
        job: &Job,
        terminal: &str,
        r: &TransactionResult,
        slip: &[String],
    ) -> Result<(), TermError> {
        let Some(trace) = r.trace_number else {
            return Ok(()); // declines without a trace number carry nothing to reconcile by
        };
        let card = crate::journal::CardRecord {
            terminal: terminal.to_string(),
            trace_number: trace,
            receipt_number: r.receipt_number,
            result: serde_json::to_value(r).unwrap_or(Value::Null),
        };
        let step = if r.result_code == 0 {
            Step::Approved
        } else {
            Step::Declined
        };
        let payment = self.payment_outcome(r, slip);
        let partial = match job.result.as_ref().and_then(JobResult::as_sale) {
            Some(sale) => JobResult::Sale(crate::journal::SaleResult {
                payment: Some(payment),
                ..sale.clone()
            }),
            None => JobResult::recorded_payment(job.kind, payment),
        };
        let id = job.id;
        self.journal
            .run(move |j| j.record_card_result(id, &card, step, &partial))
            .await
            .map_err(|e| TermError::Journal(e.to_string()))
    }

    fn payment_outcome(&self, r: &TransactionResult, slip: &[String]) -> CardOutcome {
        CardOutcome {
            approved: r.result_code == 0,
            amount: r.amount,
            currency: r.currency.map(|c| currency_name(c).to_string()),
            masked_pan: r.masked_pan.clone(),
            card_brand: r.card_name.clone(),
            auth_code: r.auth_code.clone(),
            trace_number: r.trace_number,
            terminal_receipt_number: r.receipt_number,
            terminal_id: r
                .terminal_id
                .clone()
                .or_else(|| self.handle.status().terminal_id),
            result_code: r.result_code,
            slip: slip.to_vec(),
            terminal: self.id().to_string(),
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

    async fn set_step(&self, id: JobId, step: Step) -> Result<(), TermError> {
        self.journal
            .run(move |j| j.set_step(id, step, None, None))
            .await
            .map_err(|e| TermError::Journal(e.to_string()))?
            .then_some(())
            .ok_or_else(|| TermError::BadJob(format!("job {id} is no longer running")))
    }

    /// Work on one job: start it, or reconcile it if it was interrupted.
    async fn work(&self, t: &mut Transport, mut job: Job) -> Result<(), TermError> {
        let id = job.id;
        if job.state == JobState::Queued {
            if !self
                .journal
                .run(move |j| j.start(id))
                .await
                .unwrap_or(false)
            {
                return Ok(());
            }
            let _ = self.events.send(id);
            job.step = Some(Step::Prepare);
        }
        let step = job.step.unwrap_or(Step::Prepare);
        let outcome = match (job.kind, step) {
            (JobKind::EndOfDay, _) => self.end_of_day(t, &job).await,
            (JobKind::Payment | JobKind::Sale, Step::Prepare) => self.pay(t, &job).await,
            (JobKind::Payment | JobKind::Sale, Step::Printing) => {
                // The sale's receipt is queued; the printer settles the sale.
                return Ok(());
            }
            (JobKind::Payment | JobKind::Sale, _) => self.reconcile(t, &job).await,
            (kind, _) => Err(TermError::BadJob(format!(
                "a {} job cannot run on a terminal",
                kind.as_str()
            ))),
        };
        match outcome {
            Ok(()) => Ok(()),
            Err(TermError::BadJob(why)) => {
                self.finish(
                    id,
                    JobState::Failed,
                    None,
                    Some(DeviceError::new(ErrorCategory::InvalidJob, why, None)),
                )
                .await;
                Ok(())
            }
            Err(TermError::Refused(code))
                if step == Step::Prepare || job.kind == JobKind::EndOfDay =>
            {
                let info = zvt::error::describe(code);
                let err = DeviceError::new(
                    ErrorCategory::from_name(info.category),
                    format!(
                        "terminal {} refused the command: {} (code {code:02X})",
                        self.id(),
                        info.message
                    ),
                    Some(u32::from(code)),
                );
                self.finish(id, JobState::Failed, None, Some(err)).await;
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    fn payment_request(job: &Job) -> Result<PaymentRequest, TermError> {
        job.request.card_payment().ok_or_else(|| {
            TermError::BadJob(format!("a {} job has no card payment", job.kind.as_str()))
        })
    }

    fn command_for(&self, p: &PaymentRequest) -> Result<EcrCommand, TermError> {
        let password = self.handle.config.password_number();
        Ok(match p.kind.as_str() {
            "sale" => EcrCommand::Authorization {
                amount: p.amount,
                currency: p.currency,
            },
            "refund" => EcrCommand::Refund {
                password,
                amount: p.amount,
                currency: p.currency,
            },
            "reversal" => EcrCommand::Reversal {
                password,
                receipt_number: p.original_receipt_number.ok_or_else(|| {
                    TermError::BadJob("a reversal needs original_receipt_number".into())
                })?,
            },
            other => return Err(TermError::BadJob(format!("unknown payment type {other:?}"))),
        })
    }

    /// A fresh payment: journal, send, follow the flow, journal the outcome before acking it.
    async fn pay(&self, t: &mut Transport, job: &Job) -> Result<(), TermError> {
        let p = Self::payment_request(job)?;
        let command = self.command_for(&p)?;
        self.set_step(job.id, Step::Authorizing).await?;
        let flow = self.flow(t, &command, Some((job, self.id()))).await;
        let flow = match flow {
            Ok(f) => f,
            Err(TermError::Refused(code)) => {
                // The terminal refused the command itself: nothing was charged.
                let info = zvt::error::describe(code);
                let err = DeviceError::new(
                    ErrorCategory::from_name(info.category),
                    format!(
                        "terminal {} refused the payment: {} (code {code:02X}); nothing was charged",
                        self.id(),
                        info.message
                    ),
                    Some(u32::from(code)),
                );
                self.finish(job.id, JobState::Failed, None, Some(err)).await;
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        self.conclude(job, &p, flow.result, flow.slip, flow.aborted)
            .await
    }

    /// Settle a payment from its Status-Information (or its absence).
    async fn conclude(
        &self,
        job: &Job,
        p: &PaymentRequest,
        result: Option<TransactionResult>,
        slip: Vec<String>,
        aborted: Option<u8>,
    ) -> Result<(), TermError> {
        match result {
            Some(r) if r.result_code == 0 => {
                let payment = self.payment_outcome(&r, &slip);
                if job.kind == JobKind::Sale {
                    self.queue_receipt(job, payment).await
                } else {
                    let result = JobResult::Payment(PaymentResult::Completed(payment));
                    self.finish(job.id, JobState::Done, Some(result), None)
                        .await;
                    Ok(())
                }
            }
            Some(r) => {
                let info = zvt::error::describe(r.result_code);
                let err = DeviceError::new(
                    ErrorCategory::CardDeclined,
                    format!(
                        "terminal {} declined the {}: {} (result code {:02X})",
                        self.id(),
                        p.kind,
                        info.message,
                        r.result_code
                    ),
                    Some(u32::from(r.result_code)),
                );
                let result = JobResult::recorded_payment(job.kind, self.payment_outcome(&r, &slip));
                self.finish(job.id, JobState::Failed, Some(result), Some(err))
                    .await;
                Ok(())
            }
            None => {
                let code = aborted.unwrap_or(0x6C);
                let info = zvt::error::describe(code);
                let category = if code < 0x64 {
                    ErrorCategory::CardDeclined
                } else {
                    ErrorCategory::from_name(info.category)
                };
                let err = DeviceError::new(
                    category,
                    format!(
                        "terminal {} ended the {} without payment: {} (code {code:02X}); nothing was charged",
                        self.id(),
                        p.kind,
                        info.message
                    ),
                    Some(u32::from(code)),
                );
                self.finish(job.id, JobState::Failed, None, Some(err)).await;
                Ok(())
            }
        }
    }

    /// An approved sale: queue its fiscal receipt (with the card payment) and the slip.
    async fn queue_receipt(&self, job: &Job, payment: CardOutcome) -> Result<(), TermError> {
        let JobRequest::Sale(sale) = &job.request else {
            return Err(TermError::BadJob(format!("job {} is not a sale", job.id)));
        };
        let printer = sale.printer.clone();
        let receipt = sale.receipt.clone();
        let slip =
            crate::sales::slip_printout(&payment, self.handle.config.slip == SlipTarget::Printer);
        let (id, p) = (job.id, printer.clone());
        self.journal
            .run(move |j| j.queue_sale_receipt(id, &p, &receipt, slip.as_ref(), &payment))
            .await
            .map_err(|e| TermError::Journal(e.to_string()))?;
        tracing::info!(terminal = self.id(), sale = job.id, printer = %printer, "card approved; the sale's receipt is queued");
        let _ = self.events.send(job.id);
        if let Some(ph) = self.printers.get(&printer) {
            ph.wake.notify_one();
        }
        Ok(())
    }

    /// An interrupted payment: wait until the terminal is idle, ask it for its last
    /// transaction, and match it to this job by trace number and amount.
    async fn reconcile(&self, t: &mut Transport, job: &Job) -> Result<(), TermError> {
        let p = Self::payment_request(job)?;
        let cfg = &self.handle.config;
        tracing::info!(terminal = self.id(), job = job.id, step = ?job.step, "reconciling an interrupted card transaction");
        // 1. Idle?
        let mut idle = false;
        for _ in 0..30 {
            match self
                .flow(
                    t,
                    &EcrCommand::StatusEnquiry {
                        password: Some(cfg.password_number()),
                    },
                    None,
                )
                .await
            {
                Ok(f) if f.terminal_status.unwrap_or(0) == 0 => {
                    idle = true;
                    break;
                }
                Ok(_) | Err(TermError::Refused(_)) => {
                    tokio::time::sleep(Duration::from_secs(1)).await
                }
                Err(e) => return Err(e),
            }
        }
        if !idle {
            return Err(TermError::Protocol(
                "the terminal did not become idle".into(),
            ));
        }
        // 2. The last transaction (service: Status-Information, no printout).
        let last = self
            .flow(
                t,
                &EcrCommand::RepeatReceipt {
                    password: cfg.password_number(),
                    service: 0x03,
                },
                None,
            )
            .await;
        let last = match last {
            Ok(f) => f.result,
            Err(TermError::Refused(_)) => None,
            Err(e) => return Err(e),
        };
        // 3. Match it.
        // The trace number journaled for this job, if its outcome was seen before.
        let outcome = job.result.as_ref().and_then(JobResult::card_outcome);
        let recorded: Option<u32> = outcome.and_then(|p| p.trace_number);
        let ours = match &last {
            Some(r) => {
                let owner = match r.trace_number {
                    Some(trace) => {
                        let term = self.id().to_string();
                        self.journal
                            .run(move |j| j.job_for_trace(&term, trace))
                            .await
                            .map_err(|e| TermError::Journal(e.to_string()))?
                    }
                    None => None,
                };
                match (owner, &recorded) {
                    (Some(owner), _) => owner == job.id,
                    (None, Some(_)) => false,
                    (None, None) => r.amount == Some(p.amount) && r.trace_number.is_some(),
                }
            }
            None => false,
        };
        if ours {
            let r = last.unwrap_or_default();
            crate::metrics::reconciliation(
                self.id(),
                if r.result_code == 0 {
                    "approved"
                } else {
                    "declined"
                },
            );
            if job.result.is_none() || recorded.is_none() {
                self.journal_result(job, self.id(), &r, &[]).await?;
            }
            tracing::info!(terminal = self.id(), job = job.id, trace = ?r.trace_number, approved = r.result_code == 0, "recovered the transaction's outcome");
            let slip = outcome.map(|p| p.slip.clone()).unwrap_or_default();
            return self.conclude(job, &p, Some(r), slip, None).await;
        }
        if recorded.is_some() {
            // We journaled an approval, but the terminal's last transaction is another one:
            // its commit cannot be confirmed. A sale's receipt was never queued (that happens
            // only after the approval is settled), so it may be reversed if configured.
            let receipt_no = outcome.and_then(|p| p.terminal_receipt_number);
            if self.reverse_unattached
                && job.kind == JobKind::Sale
                && let Some(receipt_number) = receipt_no
            {
                let cmd = EcrCommand::Reversal {
                    password: cfg.password_number(),
                    receipt_number,
                };
                let reversed = matches!(self.flow(t, &cmd, None).await, Ok(Flow { result: Some(ref r), .. }) if r.result_code == 0);
                if reversed {
                    crate::metrics::reconciliation(self.id(), "reversed");
                    let err = DeviceError::new(
                        ErrorCategory::PaymentReversed,
                        format!(
                            "terminal {}: the payment of sale {} could not be confirmed and its receipt was not printed, \
                             so it was reversed ([sales] reverse_unattached); nothing was charged",
                            self.id(),
                            job.id
                        ),
                        None,
                    );
                    self.finish(job.id, JobState::Failed, job.result.clone(), Some(err))
                        .await;
                    return Ok(());
                }
            }
            crate::metrics::reconciliation(self.id(), "needs_attention");
            let err = DeviceError::new(
                ErrorCategory::NeedsAttention,
                format!(
                    "terminal {}: the approval of job {} was recorded but the terminal's last transaction is a different one; \
                     check the terminal's journal before charging again or reversing",
                    self.id(),
                    job.id
                ),
                None,
            );
            self.finish(
                job.id,
                JobState::NeedsAttention,
                job.result.clone(),
                Some(err),
            )
            .await;
            return Ok(());
        }
        // The terminal never processed it: nothing was charged.
        crate::metrics::reconciliation(self.id(), "not_processed");
        let err = DeviceError::new(
            ErrorCategory::NotCharged,
            format!(
                "terminal {} did not process the {} of job {} (its last transaction is not this one); nothing was charged. Submit it again.",
                self.id(),
                p.kind,
                job.id
            ),
            None,
        );
        self.finish(job.id, JobState::Failed, None, Some(err)).await;
        Ok(())
    }

    async fn end_of_day(&self, t: &mut Transport, job: &Job) -> Result<(), TermError> {
        self.set_step(job.id, Step::Closing).await?;
        let flow = self
            .flow(
                t,
                &EcrCommand::EndOfDay {
                    password: self.handle.config.password_number(),
                },
                None,
            )
            .await?;
        match (flow.result, flow.aborted) {
            (Some(r), None) if r.result_code == 0 => {
                let currency = r.currency.unwrap_or(self.handle.config.currency_code());
                let result = JobResult::EndOfDay(EndOfDayResult {
                    total: r.amount,
                    currency: currency_name(currency).to_string(),
                    terminal: self.id().to_string(),
                    slip: flow.slip,
                });
                self.finish(job.id, JobState::Done, Some(result), None)
                    .await;
            }
            (r, aborted) => {
                let code = aborted.or(r.map(|r| r.result_code)).unwrap_or(0x77);
                let info = zvt::error::describe(code);
                let err = DeviceError::new(
                    ErrorCategory::from_name(info.category),
                    format!(
                        "terminal {} could not close the day: {} (code {code:02X})",
                        self.id(),
                        info.message
                    ),
                    Some(u32::from(code)),
                );
                self.finish(job.id, JobState::Failed, None, Some(err)).await;
            }
        }
        Ok(())
    }
}

/// Plain words for the common intermediate status codes.
fn intermediate_text(code: u8) -> &'static str {
    match code {
        0x00 => "awaiting amount confirmation",
        0x01 | 0x02 => "watch the PIN pad",
        0x04 => "waiting for the host",
        0x0A => "insert card",
        0x0B => "remove card",
        0x0E | 0x17 => "please wait",
        0x15 => "incorrect PIN",
        0x1D => "declined",
        _ => "in progress",
    }
}

impl crate::device::Observable for TerminalStatus {
    fn state(&self) -> DeviceState {
        self.state
    }
    fn detail(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}
