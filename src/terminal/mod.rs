//! The terminal task: one per configured card terminal, whatever its protocol. It alone
//! owns the terminal's driver ([`PaymentTerminal`]), runs its card jobs (payments, end of
//! day, the payment part of sales) in FIFO order from the journal, and reconciles any
//! transaction whose outcome it did not see, never sending an authorization twice.
//!
//! The journal steps of a card job: `prepare` (started), `authorizing` (committed before
//! the command goes to the terminal), `approved`/`declined` (the outcome, committed before
//! the driver acknowledges it), then the end (or `printing` for a sale whose receipt is
//! queued). `closing` for an end of day.

mod jobs;
mod reconcile;

use crate::config::TerminalConfig;
use crate::device::terminal::{CardCommand, CardOutcome, Committed, FlowObserver, PaymentTerminal};
use crate::device::{DeviceConfig, DeviceError, DeviceHandle, DeviceState, HandleStatus};
use crate::document::CardPayment;
use crate::document::Receipt;
use crate::journal::{
    CardOutcome as PaymentRecord, EndOfDayResult, Job, JobId, JobKind, JobRequest, JobResult,
    JobState, Journal, Step,
};
use serde::Serialize;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

// ---------------------------------------------------------------------------------------
// The job JSON this task reads and writes. Every access to `job.request` and `job.result`
// by path is here, so typed journal records can replace these functions one by one.

/// The payment a card job asks for (a payment, or a sale's payment).
fn payment_request(job: &Job) -> Result<CardPayment, TaskError> {
    job.request.card_payment().ok_or_else(|| {
        TaskError::BadJob(format!(
            "a {} job cannot run on a terminal",
            job.kind.as_str()
        ))
    })
}

/// A sale's printer and receipt.
fn sale_receipt(job: &Job) -> Result<(String, Receipt), TaskError> {
    match &job.request {
        JobRequest::Sale(s) => Ok((s.printer.clone(), s.receipt.clone())),
        other => Err(TaskError::BadJob(format!(
            "job {} is a {}, not a sale",
            job.id,
            other.kind().as_str()
        ))),
    }
}

/// What an interrupted job had already journaled of its payment.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Recorded {
    /// The outcome was seen and journaled with this trace number.
    trace_number: Option<u32>,
    /// What a reversal of it names.
    receipt_number: Option<u32>,
    /// The slip lines journaled with the outcome.
    slip: Vec<String>,
}

fn recorded_payment(job: &Job) -> Recorded {
    let Some(p) = job.result.as_ref().and_then(JobResult::card_outcome) else {
        return Recorded::default();
    };
    Recorded {
        trace_number: p.trace_number,
        receipt_number: p.terminal_receipt_number,
        slip: p.slip.clone(),
    }
}

/// A payment as a job's result records it.
fn payment_record(
    o: &CardOutcome,
    slip: &[String],
    terminal: &str,
    terminal_id: Option<String>,
) -> PaymentRecord {
    PaymentRecord {
        approved: o.approved,
        amount: o.amount,
        currency: o
            .currency
            .map(|c| crate::device::terminal::currency_name(c).to_string()),
        masked_pan: o.masked_pan.clone(),
        card_brand: o.card_name.clone(),
        auth_code: o.auth_code.clone(),
        trace_number: o.trace_number,
        terminal_receipt_number: o.receipt_number,
        terminal_id: o.terminal_id.clone().or(terminal_id),
        result_code: u8::try_from(o.result_code).unwrap_or(u8::MAX),
        slip: slip.to_vec(),
        terminal: terminal.to_string(),
        transaction_id: o.transaction_id.clone(),
        resolved_by: None,
    }
}

/// An end of day's result.
fn end_of_day_result(
    total: Option<u64>,
    currency: u16,
    terminal: &str,
    slip: &[String],
) -> JobResult {
    JobResult::EndOfDay(EndOfDayResult {
        total,
        currency: crate::device::terminal::currency_name(currency).to_string(),
        terminal: terminal.to_string(),
        slip: slip.to_vec(),
    })
}

/// A job's result with its payment recorded (a sale keeps what else it had).
fn with_payment(job: &Job, payment: PaymentRecord) -> JobResult {
    match job.result.clone() {
        Some(JobResult::Sale(mut sale)) => {
            sale.payment = Some(payment);
            JobResult::Sale(sale)
        }
        _ => JobResult::recorded_payment(job.kind, payment),
    }
}

// ---------------------------------------------------------------------------------------

/// A terminal's live status, shared with the API.
#[derive(Debug, Clone, Serialize)]
pub struct TerminalStatus {
    /// The state the API shows.
    pub state: DeviceState,
    /// The terminal's id, once it reported one.
    pub terminal_id: Option<String>,
    /// What the terminal shows during a transaction (intermediate status).
    pub display: Option<String>,
    /// Why the terminal is not ready, in plain words.
    pub last_error: Option<String>,
    /// The job the terminal is working on.
    pub current_job: Option<JobId>,
    /// Bytes written on the current (or last) connection.
    pub bytes_out: u64,
    /// Bytes read on the current (or last) connection.
    pub bytes_in: u64,
}

impl crate::device::Observable for TerminalStatus {
    fn state(&self) -> DeviceState {
        self.state
    }
    fn detail(&self) -> Option<&str> {
        self.last_error.as_deref()
    }
}

impl HandleStatus for TerminalStatus {
    const KIND: &'static str = "payment_terminal";
    fn not_connected() -> Self {
        TerminalStatus {
            state: DeviceState::Offline,
            terminal_id: None,
            display: None,
            last_error: Some("not connected yet".into()),
            current_job: None,
            bytes_out: 0,
            bytes_in: 0,
        }
    }
}

impl DeviceConfig for TerminalConfig {
    fn id(&self) -> &str {
        &self.id
    }
}

/// The API's handle on a terminal task.
pub type TerminalHandle = DeviceHandle<TerminalConfig, TerminalStatus>;

/// How a job step went wrong, as the task sees it.
#[derive(Debug)]
enum TaskError {
    /// The terminal or its link failed (the error's kind says what that means).
    Device(DeviceError),
    /// The job cannot be carried out as journaled.
    BadJob(String),
    /// Journal write failed; stop before telling the terminal anything.
    Journal(String),
}

impl From<DeviceError> for TaskError {
    fn from(e: DeviceError) -> Self {
        TaskError::Device(e)
    }
}

impl From<crate::device::terminal::FlowError<TaskError>> for TaskError {
    fn from(e: crate::device::terminal::FlowError<TaskError>) -> Self {
        match e {
            crate::device::terminal::FlowError::Device(e) => TaskError::Device(e),
            crate::device::terminal::FlowError::Observer(e) => e,
        }
    }
}

impl std::fmt::Display for TaskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TaskError::Device(e) if e.is_refusal() => write!(f, "refused: {e}"),
            TaskError::Device(e) => write!(f, "{e}"),
            TaskError::BadJob(m) | TaskError::Journal(m) => f.write_str(m),
        }
    }
}

/// Wakes a printer task by its id (the terminal task knows printers only by id).
pub type WakePrinter = Arc<dyn Fn(&str) + Send + Sync>;

/// Runs one terminal until `shutdown`, through its driver `D`.
pub struct TerminalTask<D: PaymentTerminal> {
    /// The handle the API reads the terminal's status from and rings when a job is queued.
    pub handle: Arc<TerminalHandle>,
    /// Where the task takes its jobs from and records every step.
    pub journal: Journal,
    /// Job changes, announced to the API's waiters.
    pub events: broadcast::Sender<JobId>,
    /// Stops the task.
    pub shutdown: CancellationToken,
    /// Wakes the printer task of this id (a sale's receipt was queued on it).
    pub wake_printer: WakePrinter,
    /// Reverse approved payments that cannot be attached to their sale (see `[sales]`).
    pub reverse_unattached: bool,
    /// The terminal's protocol driver.
    pub driver: D,
}

/// Everything of the task but its driver, so the driver can be borrowed mutably while an
/// observer borrows this.
struct Ctx {
    handle: Arc<TerminalHandle>,
    journal: Journal,
    events: broadcast::Sender<JobId>,
    wake_printer: WakePrinter,
    reverse_unattached: bool,
}

/// How often an idle terminal is asked for its status.
const IDLE_POLL: Duration = Duration::from_secs(10);
/// The first reconnect back-off; it doubles up to [`BACKOFF_CAP`].
const BACKOFF_START: Duration = Duration::from_millis(200);
/// The longest reconnect back-off. Not a multiple of a terminal's timers (ZVT repeats
/// every 5 s): a cap equal to the repeat timer made every reopen land just before the
/// terminal's repeat, a stable cycle that never registered.
const BACKOFF_CAP: Duration = Duration::from_millis(7300);

/// The wait before the next attempt: `backoff` less a random part of up to 40 %, so that
/// attempts do not keep step with the terminal's own timers.
fn jittered(backoff: Duration) -> Duration {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let permille = 600 + h.finish() % 401;
    backoff * u32::try_from(permille).unwrap_or(1000) / 1000
}

impl<D: PaymentTerminal> TerminalTask<D> {
    /// The task's main loop: connect and register, work through jobs, poll when idle,
    /// reconnect with back-off.
    pub async fn run(self) {
        let TerminalTask {
            handle,
            journal,
            events,
            shutdown,
            wake_printer,
            reverse_unattached,
            mut driver,
        } = self;
        let ctx = Ctx {
            handle,
            journal,
            events,
            wake_printer,
            reverse_unattached,
        };
        let mut backoff = BACKOFF_START;
        let mut poll = false;
        while !shutdown.is_cancelled() {
            let r = ctx.round(&mut driver, std::mem::take(&mut poll)).await;
            match r {
                Ok(true) => backoff = BACKOFF_START,
                Ok(false) => {
                    tokio::select! {
                        _ = ctx.handle.wake.notified() => {}
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(IDLE_POLL) => poll = true,
                    }
                }
                Err(e) => {
                    // A refusal (a busy terminal) keeps the connection: the next round
                    // drains and registers again. Only a lost link reopens the port.
                    let keep = matches!(&e, TaskError::Device(d) if d.is_refusal());
                    if !keep {
                        driver.disconnect();
                    }
                    tracing::warn!(terminal = ctx.id(), error = %e, reopen = !keep, "terminal unavailable");
                    ctx.handle.update(|s| {
                        s.state = DeviceState::Offline;
                        s.last_error = Some(format!(
                            "{e}; check the terminal's cable, network and power"
                        ));
                        s.display = None;
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(jittered(backoff)) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(BACKOFF_CAP);
                }
            }
        }
        tracing::info!(terminal = ctx.id(), "terminal task stopped");
    }
}

impl Ctx {
    fn id(&self) -> &str {
        &self.handle.config.id
    }

    fn account<D: PaymentTerminal>(&self, d: &D) {
        if let Some(c) = d.counters() {
            self.handle.update(|s| {
                s.bytes_out = c.bytes_out;
                s.bytes_in = c.bytes_in;
            });
        }
    }

    /// After an exchange: a driver that needs a connection per exchange is disconnected.
    fn end_exchange<D: PaymentTerminal>(&self, d: &mut D) {
        self.account(d);
        if d.connection_per_exchange() {
            d.disconnect();
        }
    }

    /// One round: make sure the terminal is reachable, then run the next job if any; when
    /// idle and `poll` is set, ask the terminal for its status.
    /// `Ok(true)` if a job was handled, `Ok(false)` when idle.
    async fn round<D: PaymentTerminal>(&self, d: &mut D, poll: bool) -> Result<bool, TaskError> {
        if !d.is_connected() {
            d.connect().await?;
            self.identify(d).await?;
        } else if d.needs_registration() {
            self.identify(d).await?;
        }
        let Some(job) = self.next_job().await? else {
            if !poll {
                return Ok(false);
            }
            // Idle: a status enquiry keeps the terminal's state fresh.
            let r = d.status().await;
            self.end_exchange(d);
            r?;
            return Ok(false);
        };
        self.handle.update(|s| {
            s.state = DeviceState::Busy;
            s.current_job = Some(job.id);
        });
        let r = self.work(d, job).await;
        self.handle.update(|s| {
            s.current_job = None;
            s.display = None;
            if s.state == DeviceState::Busy {
                s.state = DeviceState::Ready;
            }
        });
        self.end_exchange(d);
        r.map(|()| true)
    }

    /// Register with the terminal and read its status.
    async fn identify<D: PaymentTerminal>(&self, d: &mut D) -> Result<(), TaskError> {
        let interrupted = self.interrupted().await?;
        let mut observer = Observer::new(self, interrupted.as_ref());
        observer.interrupted = true;
        let info = d.register(&mut observer).await?;
        tracing::info!(terminal = self.id(), terminal_id = ?info.terminal_id, fault = ?info.fault.as_ref().map(|c| &c.shown), "terminal registered");
        self.handle.update(|s| {
            s.terminal_id = info.terminal_id.clone().or(s.terminal_id.take());
            s.state = match info.fault {
                None => DeviceState::Ready,
                Some(_) => DeviceState::Error,
            };
            s.last_error = info
                .fault
                .as_ref()
                .map(|c| format!("terminal status {}: {}", c.shown, c.message));
        });
        Ok(())
    }

    /// The terminal's next job: one left running by an interruption first, then the oldest
    /// queued.
    async fn next_job(&self) -> Result<Option<Job>, TaskError> {
        let id = self.id().to_string();
        self.journal
            .run(move |j| j.next_for_device(&id))
            .await
            .map_err(|e| TaskError::Journal(e.to_string()))
    }

    /// The card job whose authorization may have been sent when the task last lost the
    /// terminal (journaled `authorizing`, no outcome yet): an outcome the terminal still
    /// delivers on reconnect is its.
    async fn interrupted(&self) -> Result<Option<Job>, TaskError> {
        Ok(self.next_job().await?.filter(|j| {
            j.state == JobState::Running
                && matches!(j.kind, JobKind::Payment | JobKind::Sale)
                && j.step == Some(Step::Authorizing)
        }))
    }

    async fn finish(
        &self,
        id: JobId,
        state: JobState,
        result: Option<JobResult>,
        error: Option<DeviceError>,
    ) {
        // A failure is logged by the journal; the job stays as it was and is picked up again.
        let _ = self
            .journal
            .end_job(self.id(), &self.events, id, state, result, error)
            .await;
    }

    async fn fail(&self, id: JobId, result: Option<JobResult>, error: DeviceError) {
        self.finish(id, JobState::Failed, result, Some(error)).await;
    }

    async fn set_step(&self, id: JobId, step: Step) -> Result<(), TaskError> {
        self.journal
            .run(move |j| j.set_step(id, step, None, None))
            .await
            .map_err(|e| TaskError::Journal(e.to_string()))?
            .then_some(())
            .ok_or_else(|| TaskError::BadJob(format!("job {id} is no longer running")))
    }

    /// Journal a transaction outcome (before the terminal is told it was received): the
    /// whitelisted outcome in `card_transactions`, the payment in the job's result, and the
    /// step `approved` or `declined`, in one transaction.
    async fn journal_outcome(
        &self,
        job: &Job,
        o: &CardOutcome,
        slip: &[String],
    ) -> Result<(), TaskError> {
        let Some(trace) = o.trace_number else {
            return Ok(()); // declines without a trace number carry nothing to reconcile by
        };
        let card = crate::journal::CardRecord {
            terminal: self.id().to_string(),
            trace_number: trace,
            receipt_number: o.receipt_number,
            result: serde_json::to_value(o).unwrap_or(Value::Null),
        };
        let step = if o.approved {
            Step::Approved
        } else {
            Step::Declined
        };
        let partial = with_payment(job, self.payment_record(o, slip));
        let id = job.id;
        self.journal
            .run(move |j| j.record_card_result(id, &card, step, &partial))
            .await
            .map_err(|e| TaskError::Journal(e.to_string()))
    }

    /// An outcome a registration's drain caught: the commit point of the interrupted job
    /// `job`, reconciled before the terminal is told it arrived. It is journaled as the
    /// job's only if nothing owns its trace number yet and its amount is the job's; an
    /// outcome the journal already holds (its acknowledgement was lost) is only
    /// acknowledged, and so is one of no job (recovery's match by trace number settles
    /// the job later).
    async fn interrupted_outcome(
        &self,
        job: &Job,
        o: &CardOutcome,
        slip: &[String],
    ) -> Result<(), TaskError> {
        let owner = match o.trace_number {
            Some(trace) => {
                let term = self.id().to_string();
                self.journal
                    .run(move |j| j.job_for_trace(&term, trace))
                    .await
                    .map_err(|e| TaskError::Journal(e.to_string()))?
            }
            None => None,
        };
        let amount = payment_request(job).ok().map(|p| p.amount);
        if owner.is_none() && amount.is_some() && o.amount == amount {
            tracing::info!(terminal = self.id(), job = job.id, trace = ?o.trace_number, approved = o.approved, "journaled the outcome of the interrupted job");
            return self.journal_outcome(job, o, slip).await;
        }
        tracing::warn!(terminal = self.id(), job = job.id, trace = ?o.trace_number, owner = ?owner, "an earlier flow's outcome, not the interrupted job's");
        Ok(())
    }

    fn payment_record(&self, o: &CardOutcome, slip: &[String]) -> PaymentRecord {
        payment_record(o, slip, self.id(), self.handle.status().terminal_id)
    }
}

/// The task's observer of one card flow: shows the display text, collects the slip, and
/// journals the outcome at the commit point (when `job` is set).
struct Observer<'a> {
    ctx: &'a Ctx,
    /// The job whose outcome is journaled; `None` for flows whose outcome the job's end
    /// records instead (end of day, a reconciliation's reversal).
    job: Option<&'a Job>,
    slip: Vec<String>,
    /// The flow was interrupted (a registration's drain caught its outcome): an outcome
    /// is journaled for `job` only if it is the job's (see [`Ctx::interrupted_outcome`]).
    interrupted: bool,
}

impl<'a> Observer<'a> {
    fn new(ctx: &'a Ctx, job: Option<&'a Job>) -> Self {
        Observer {
            ctx,
            job,
            slip: Vec::new(),
            interrupted: false,
        }
    }
}

impl FlowObserver for Observer<'_> {
    type Error = TaskError;

    fn display(&mut self, text: &str) {
        let text = text.to_string();
        self.ctx.handle.update(|s| s.display = Some(text));
    }

    fn slip_line(&mut self, line: &str) {
        self.slip.push(line.to_string());
    }

    async fn outcome(&mut self, outcome: &CardOutcome) -> Result<Committed, TaskError> {
        match self.job {
            Some(job) if self.interrupted => {
                self.ctx
                    .interrupted_outcome(job, outcome, &self.slip)
                    .await?
            }
            Some(job) => self.ctx.journal_outcome(job, outcome, &self.slip).await?,
            None => {}
        }
        Ok(Committed::journaled())
    }
}

/// The driver's command for a journaled payment.
fn command_for(p: &CardPayment) -> Result<CardCommand, TaskError> {
    Ok(match p.kind.as_str() {
        "sale" => CardCommand::Sale {
            amount: p.amount,
            currency: p.currency,
        },
        "refund" => CardCommand::Refund {
            amount: p.amount,
            currency: p.currency,
        },
        "reversal" => CardCommand::Reversal {
            receipt_number: p.original_receipt_number.ok_or_else(|| {
                TaskError::BadJob("a reversal needs original_receipt_number".into())
            })?,
        },
        other => return Err(TaskError::BadJob(format!("unknown payment type {other:?}"))),
    })
}

/// `category` with the message and the device's code of `e`, e.g. to say what a refusal
/// meant for the job.
fn restate(e: &DeviceError, message: String) -> DeviceError {
    DeviceError::new(e.category, message, e.device_code)
}
