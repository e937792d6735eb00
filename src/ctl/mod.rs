//! `fiscald ctl`: the command-line client of the local API.
//!
//! It speaks HTTP/1.1 (hyper's client) to the daemon's Unix socket, or to its loopback TCP
//! listener with a bearer token, on a current-thread runtime. People get tables and one-line
//! summaries; scripts get `--json` and exit codes (see [`EXIT_CODES`]).

//!
//! - `client`: where the daemon is and the HTTP connection to it; answers are decoded into
//!   the API's shared types ([`crate::api::types`]), so client and server cannot drift.
//! - `output`: tables, one-line summaries and the progress line.
//! - [`sse`]: the Server-Sent Events parser behind `ctl events`.

mod client;
mod fleet;
mod output;
mod payment;
pub mod sse;

pub use payment::{PaymentArgs, PaymentCmd, PaymentType, ResolveArgs};

pub use sse::{SseEvent, SseParser};

use crate::api::types::{
    CashBody, DailyReportBody, DeviceList, DeviceView, Health, HealthStatus, JobList, JobView,
    PeriodicReportBody, PrintoutBody, to_json,
};
use clap::{Args, Subcommand, ValueEnum};
use client::{ANSWER_TIMEOUT, Client, Endpoint, api_failure, decode};
use http_body_util::BodyExt;
use output::{Progress, devices_table, job_details, job_exit, job_summary, jobs_table};
use serde::Serialize;
use serde_json::{Value, json};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Where the daemon's socket is when neither `--socket` nor `--config` says otherwise.
pub const DEFAULT_SOCKET: &str = "/run/fiscald/api.sock";

/// Success: the request was answered and the job, if any, ended `done`.
pub const EXIT_OK: u8 = 0;
/// The job ended `failed`, `needs_attention` or `cancelled`; for `status`, a device is not ready.
pub const EXIT_JOB_FAILED: u8 = 1;
/// Bad input: bad arguments, an unreadable file, or the API refused the request (4xx).
pub const EXIT_BAD_INPUT: u8 = 2;
/// The daemon cannot be reached, or it failed (5xx), or it lacks the endpoint (`events`).
pub const EXIT_UNREACHABLE: u8 = 3;
/// The job was still queued or running when `--wait` ran out.
pub const EXIT_PENDING: u8 = 4;

/// The exit codes, as `--help` shows them.
pub const EXIT_CODES: &str = "\
Exit codes:
  0  success: the request was answered and the job, if any, ended done
  1  the job ended failed, needs_attention or cancelled (a device error);
     for `status`: some device is not ready
  2  bad input: bad arguments, an unreadable file or bad JSON, or the API
     refused the request (4xx: 422 validation, 404 unknown job, 409 conflict
     such as cancelling a job that already ended, 401 bad token)
  3  cannot reach the daemon, or it failed (5xx); for `events`: the daemon
     has no event stream
  4  the job was still queued or running when --wait ran out

Amounts: an integer is grosze (1250 = 12.50 zł); a number with a decimal point
or comma is złoty with at most two decimals (12.50, 12,5). They are read exactly.";

/// `fiscald ctl`: talk to a running daemon.
#[derive(Args, Debug)]
#[command(after_help = EXIT_CODES)]
pub struct CtlArgs {
    /// The daemon's Unix socket (default: `[api] socket` of --config, else /run/fiscald/api.sock).
    #[arg(long, global = true, value_name = "PATH", conflicts_with = "url")]
    pub socket: Option<PathBuf>,
    /// Read the socket path from this configuration file.
    #[arg(long, global = true, value_name = "FILE", conflicts_with = "url")]
    pub config: Option<PathBuf>,
    /// Use the loopback TCP listener instead, e.g. http://127.0.0.1:8787 (needs --token-file).
    #[arg(long, global = true, value_name = "URL")]
    pub url: Option<String>,
    /// A file holding the raw bearer token for --url (one line; must not be readable by others).
    #[arg(long, global = true, value_name = "FILE", requires = "url")]
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON instead of tables and summaries.
    #[arg(long, global = true)]
    pub json: bool,
    /// For commands that create or show a job: wait up to this long for it to end
    /// (default 60 for new jobs, 0 for `job ID`; 0 = do not wait).
    #[arg(long, global = true, value_name = "SECONDS")]
    pub wait: Option<u64>,
    /// Idempotency-Key for job-creating commands: the same key and body return the same job.
    #[arg(long, global = true, value_name = "KEY")]
    pub idempotency_key: Option<String>,
    #[command(subcommand)]
    pub command: CtlCmd,
}

#[derive(Subcommand, Debug)]
pub enum CtlCmd {
    /// The daemon's health and a summary of its devices.
    Status,
    /// The devices: state, model, queue and last error.
    Devices,
    /// The fleet link to NATS JetStream: connected, backlog, oldest unsent, last ack.
    Fleet,
    /// Print a fiscal receipt from a JSON file (the API's receipt body), or from stdin.
    Receipt {
        /// The JSON file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
    /// Print a VAT invoice from a JSON file (the API's invoice body), or from stdin.
    Invoice {
        /// The JSON file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
    /// Print a non-fiscal copy of a printed receipt or invoice, by the job that printed it.
    Copy {
        /// The job id of the receipt, invoice or sale.
        job: i64,
    },
    /// A card sale (receipt JSON with a card payment), from a JSON file or stdin.
    Sale {
        /// The JSON file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
    /// A card payment on the terminal; `payment resolve` settles one in needs_attention.
    Payment(PaymentArgs),
    /// Show one job.
    Job {
        /// The job id.
        id: i64,
    },
    /// List jobs, newest first.
    Jobs {
        /// Only jobs in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// At most this many (1-1000; the daemon's default is 50).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: Option<u32>,
    },
    /// Cancel a job that is still queued.
    Cancel {
        /// The job id.
        id: i64,
    },
    /// Fiscal reports.
    #[command(subcommand)]
    Report(ReportCmd),
    /// Cash in (deposit) or out (withdrawal).
    Cash {
        #[arg(value_enum)]
        direction: Direction,
        /// Grosze (1250), or złoty with a decimal point (12.50).
        amount: String,
        /// The printer (may be left out when only one is configured).
        #[arg(long)]
        printer: Option<String>,
    },
    /// A non-fiscal printout: each line of the file (or stdin) is a line on paper.
    Print {
        /// The text file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
        /// The printer (may be left out when only one is configured).
        #[arg(long)]
        printer: Option<String>,
    },
    /// Follow the daemon's event stream and print each event.
    Events,
}

#[derive(Subcommand, Debug)]
pub enum ReportCmd {
    /// The daily (Z) report.
    Daily {
        /// The printer (may be left out when only one is configured).
        #[arg(long)]
        printer: Option<String>,
    },
    /// A periodic report over a range of days (`--from` and `--to`), or a month
    /// (`--monthly`).
    Periodic {
        /// The first day, YYYY-MM-DD.
        #[arg(long, requires = "to", conflicts_with = "monthly")]
        from: Option<String>,
        /// The last day, YYYY-MM-DD.
        #[arg(long, requires = "from", conflicts_with = "monthly")]
        to: Option<String>,
        /// A whole month, YYYY-MM.
        #[arg(long, required_unless_present = "from")]
        monthly: Option<String>,
        /// The summary report instead of the full one.
        #[arg(long)]
        summary: bool,
        /// The printer (may be left out when only one is configured).
        #[arg(long)]
        printer: Option<String>,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Direction {
    In,
    Out,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StateArg {
    Queued,
    Running,
    Done,
    Failed,
    #[value(name = "needs_attention", alias = "needs-attention")]
    NeedsAttention,
    Cancelled,
}

impl StateArg {
    fn as_str(self) -> &'static str {
        match self {
            StateArg::Queued => "queued",
            StateArg::Running => "running",
            StateArg::Done => "done",
            StateArg::Failed => "failed",
            StateArg::NeedsAttention => "needs_attention",
            StateArg::Cancelled => "cancelled",
        }
    }
}

/// Why the command ends without success.
#[derive(Debug)]
struct Failure {
    code: u8,
    message: String,
    /// The API's error body, printed on stdout with `--json`.
    body: Option<Value>,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            body: None,
        }
    }
    fn bad_input(message: impl Into<String>) -> Self {
        Self::new(EXIT_BAD_INPUT, message)
    }
    fn unreachable(message: impl Into<String>) -> Self {
        Self::new(EXIT_UNREACHABLE, message)
    }
    /// Stdout went away (e.g. `| head`): end quietly.
    fn quiet() -> Self {
        Self::new(EXIT_OK, "")
    }
}

type R<T> = Result<T, Failure>;

/// Run `fiscald ctl`.
pub fn run(args: CtlArgs) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("fiscald ctl: cannot start the runtime: {e}");
            return ExitCode::from(EXIT_UNREACHABLE);
        }
    };
    let json = args.json;
    match rt.block_on(run_async(args)) {
        Ok(code) => ExitCode::from(code),
        Err(f) => {
            if let (true, Some(body)) = (json, &f.body) {
                let _ = emit(&body.to_string());
            }
            if !f.message.is_empty() {
                eprintln!("fiscald ctl: {}", f.message);
            }
            ExitCode::from(f.code)
        }
    }
}

async fn run_async(args: CtlArgs) -> R<u8> {
    let endpoint = Endpoint::from_args(&args)?;
    let mut ctl = Ctl {
        client: Client {
            endpoint,
            sender: None,
        },
        json: args.json,
        wait: args.wait,
        key: args.idempotency_key,
        progress: std::io::stderr().is_terminal(),
    };
    match args.command {
        CtlCmd::Status => ctl.status().await,
        CtlCmd::Devices => ctl.devices().await,
        CtlCmd::Fleet => ctl.fleet().await,
        CtlCmd::Receipt { file } => {
            let body = read_json(file.as_deref())?;
            ctl.submit("/v1/receipts", body).await
        }
        CtlCmd::Invoice { file } => {
            let body = read_json(file.as_deref())?;
            ctl.submit("/v1/invoices", body).await
        }
        CtlCmd::Copy { job } => {
            ctl.submit(&format!("/v1/jobs/{job}/copy"), b"{}".to_vec())
                .await
        }
        CtlCmd::Sale { file } => {
            let body = read_json(file.as_deref())?;
            ctl.submit("/v1/sales", body).await
        }
        CtlCmd::Payment(p) => ctl.payment(p).await,
        CtlCmd::Job { id } => ctl.job(id).await,
        CtlCmd::Jobs { state, limit } => ctl.jobs(state, limit).await,
        CtlCmd::Cancel { id } => ctl.cancel(id).await,
        CtlCmd::Report(ReportCmd::Daily { printer }) => {
            let body = body_bytes(&DailyReportBody { printer });
            ctl.submit("/v1/reports/daily", body).await
        }
        CtlCmd::Report(ReportCmd::Periodic {
            from,
            to,
            monthly,
            summary,
            printer,
        }) => {
            let body = body_bytes(&PeriodicReportBody {
                from,
                to,
                monthly,
                summary,
                printer,
            });
            ctl.submit("/v1/reports/periodic", body).await
        }
        CtlCmd::Cash {
            direction,
            amount,
            printer,
        } => {
            let body = CashBody {
                direction: match direction {
                    Direction::In => "in",
                    Direction::Out => "out",
                }
                .into(),
                amount: parse_amount(&amount).map_err(Failure::bad_input)?,
                printer,
            };
            ctl.submit("/v1/cash", body_bytes(&body)).await
        }
        CtlCmd::Print { file, printer } => {
            let text = read_input(file.as_deref())?;
            let text = String::from_utf8(text).map_err(|_| {
                Failure::bad_input(format!("{}: not UTF-8 text", input_name(file.as_deref())))
            })?;
            let lines = text.lines().map(String::from).collect();
            let body = body_bytes(&PrintoutBody { lines, printer });
            ctl.submit("/v1/printouts", body).await
        }
        CtlCmd::Events => ctl.events().await,
    }
}

/// A request body as the API's JSON.
fn body_bytes<T: Serialize>(body: &T) -> Vec<u8> {
    to_json(body).to_string().into_bytes()
}

/// Parse an amount exactly: digits are grosze; `Z.G` or `Z,G` (one or two decimals) is złoty.
pub fn parse_amount(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let bad = || {
        format!(
            "amount {s:?}: give grosze as an integer (1250) or złoty with at most two decimals (12.50)"
        )
    };
    let digits = |d: &str| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit());
    let grosze = match t.split_once(['.', ',']) {
        None if digits(t) => t.parse::<u64>().map_err(|_| bad())?,
        Some((whole, frac)) if digits(whole) && digits(frac) && frac.len() <= 2 => {
            let whole: u64 = whole.parse().map_err(|_| bad())?;
            let frac: u64 =
                frac.parse::<u64>().map_err(|_| bad())? * if frac.len() == 1 { 10 } else { 1 };
            whole
                .checked_mul(100)
                .and_then(|w| w.checked_add(frac))
                .ok_or_else(bad)?
        }
        _ => return Err(bad()),
    };
    if !(1..=9_999_999_999).contains(&grosze) {
        return Err(format!(
            "amount {s:?}: must be from 1 grosz to 99,999,999.99 zł"
        ));
    }
    Ok(grosze)
}

/// Format grosze as złoty, e.g. `12.50`.
pub fn format_grosze(g: u64) -> String {
    format!("{}.{:02}", g / 100, g % 100)
}

fn input_name(file: Option<&Path>) -> String {
    match file {
        Some(p) if p != Path::new("-") => p.display().to_string(),
        _ => "stdin".into(),
    }
}

fn read_input(file: Option<&Path>) -> R<Vec<u8>> {
    let mut buf = Vec::new();
    match file {
        Some(p) if p != Path::new("-") => {
            buf = std::fs::read(p)
                .map_err(|e| Failure::bad_input(format!("{}: cannot read: {e}", p.display())))?;
        }
        _ => {
            std::io::stdin()
                .read_to_end(&mut buf)
                .map_err(|e| Failure::bad_input(format!("stdin: cannot read: {e}")))?;
        }
    }
    Ok(buf)
}

/// Read a JSON document and check it parses; the bytes are sent as they are.
fn read_json(file: Option<&Path>) -> R<Vec<u8>> {
    let bytes = read_input(file)?;
    if let Err(e) = serde_json::from_slice::<Value>(&bytes) {
        return Err(Failure::bad_input(format!(
            "{}: not valid JSON: {e}",
            input_name(file)
        )));
    }
    Ok(bytes)
}

/// Write a line to stdout; a closed stdout ends the command quietly.
fn emit(line: &str) -> R<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .map_err(|_| Failure::quiet())
}

struct Ctl {
    client: Client,
    json: bool,
    wait: Option<u64>,
    key: Option<String>,
    /// Show progress in place on stderr (a terminal).
    progress: bool,
}

fn wait_query(secs: f64) -> String {
    format!("wait={secs:.3}")
}

/// What `ctl status --json` prints.
#[derive(Serialize)]
struct StatusOutput<'a> {
    health: &'a Health,
    devices: &'a [DeviceView],
}

impl Ctl {
    /// Print an answer as the API's JSON.
    fn print_json<T: Serialize>(&self, body: &T) -> R<()> {
        emit(&to_json(body).to_string())
    }

    async fn status(&mut self) -> R<u8> {
        let health: Health = self.client.get("/v1/health", ANSWER_TIMEOUT).await?;
        let devices: DeviceList = self.client.get("/v1/devices", ANSWER_TIMEOUT).await?;
        let code = if health.status == HealthStatus::Ok {
            EXIT_OK
        } else {
            EXIT_JOB_FAILED
        };
        if self.json {
            self.print_json(&StatusOutput {
                health: &health,
                devices: &devices.devices,
            })?;
        } else {
            let status = match health.status {
                HealthStatus::Ok => "ok",
                HealthStatus::Degraded => "degraded",
            };
            emit(&format!(
                "fiscald {}: {status}",
                output::cell(Some(&health.version))
            ))?;
            if devices.devices.is_empty() {
                emit("no devices are configured")?;
            } else {
                emit(&devices_table(&devices.devices))?;
            }
        }
        Ok(code)
    }

    async fn devices(&mut self) -> R<u8> {
        let devices: DeviceList = self.client.get("/v1/devices", ANSWER_TIMEOUT).await?;
        if self.json {
            self.print_json(&devices)?;
        } else {
            emit(&devices_table(&devices.devices))?;
        }
        Ok(EXIT_OK)
    }

    async fn jobs(&mut self, state: Option<StateArg>, limit: Option<u32>) -> R<u8> {
        let mut q = Vec::new();
        if let Some(s) = state {
            q.push(format!("state={}", s.as_str()));
        }
        if let Some(l) = limit {
            q.push(format!("limit={l}"));
        }
        let path = if q.is_empty() {
            "/v1/jobs".to_string()
        } else {
            format!("/v1/jobs?{}", q.join("&"))
        };
        let jobs: JobList = self.client.get(&path, ANSWER_TIMEOUT).await?;
        if self.json {
            self.print_json(&jobs)?;
        } else if jobs.jobs.is_empty() {
            emit("no jobs")?;
        } else {
            emit(&jobs_table(&jobs.jobs))?;
        }
        Ok(EXIT_OK)
    }

    async fn job(&mut self, id: i64) -> R<u8> {
        let wait = self.wait.unwrap_or(0);
        let job: JobView = self
            .client
            .get(&format!("/v1/jobs/{id}"), ANSWER_TIMEOUT)
            .await?;
        let job = self.follow_from(job, wait, Instant::now()).await?;
        if self.json {
            self.print_json(&job)?;
        } else {
            emit(&job_details(&job))?;
        }
        Ok(job_exit(job.state, wait > 0))
    }

    async fn cancel(&mut self, id: i64) -> R<u8> {
        let path = format!("/v1/jobs/{id}/cancel");
        let (_, body) = self
            .client
            .call("POST", &path, None, &[], ANSWER_TIMEOUT)
            .await?;
        let job: JobView = decode(&format!("POST {path}"), body)?;
        if self.json {
            self.print_json(&job)?;
        } else {
            emit(&format!("job {id} {}", job.state.as_str()))?;
        }
        Ok(EXIT_OK)
    }

    /// Create a job, wait for it as `--wait` says, and report how it ended.
    async fn submit(&mut self, path: &str, body: Vec<u8>) -> R<u8> {
        let wait = self.wait.unwrap_or(60);
        let first = if self.progress { 1.0 } else { 60.0 };
        let first = (wait as f64).min(first);
        let url = if wait > 0 {
            format!("{path}?{}", wait_query(first))
        } else {
            path.to_string()
        };
        let key = self.key.clone();
        let headers: Vec<(&str, &str)> = key
            .as_deref()
            .map(|k| vec![("idempotency-key", k)])
            .unwrap_or_default();
        let timeout = ANSWER_TIMEOUT + Duration::from_secs_f64(first);
        let start = Instant::now();
        let (_, answer) = self
            .client
            .call("POST", &url, Some(body), &headers, timeout)
            .await?;
        let job: JobView = decode(&format!("POST {path}"), answer)?;
        let job = self.follow_from(job, wait, start).await?;
        if self.json {
            self.print_json(&job)?;
        } else {
            emit(&job_summary(&job))?;
            if wait > 0 && job.is_pending() {
                eprintln!(
                    "fiscald ctl: job {} is still {} after {wait}s; see `fiscald ctl job {}`",
                    job.id,
                    job.state.as_str(),
                    job.id
                );
            }
        }
        Ok(job_exit(job.state, wait > 0))
    }

    /// The state of `device` in words, for the progress line: `paper_out (put in paper)`.
    async fn device_state(&mut self, device: &str) -> Option<String> {
        let devices: DeviceList = self.client.get("/v1/devices", ANSWER_TIMEOUT).await.ok()?;
        let d = devices.devices.iter().find(|d| d.id() == device)?;
        let mut s = d.state().as_str().to_string();
        if let Some(e) = d.last_error() {
            s.push_str(&format!(" ({})", output::cell(Some(e))));
        }
        Some(s)
    }

    /// Poll `GET /v1/jobs/{id}?wait=` until the job ends or `wait` seconds from `start` pass,
    /// showing the job's and its device's state on a terminal.
    async fn follow_from(&mut self, mut job: JobView, wait: u64, start: Instant) -> R<JobView> {
        let deadline = start + Duration::from_secs(wait);
        let id = job.id;
        let mut progress = Progress {
            on: self.progress,
            shown: false,
        };
        while job.is_pending() {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let remaining = deadline - now;
            let chunk = remaining
                .min(Duration::from_secs(if self.progress { 1 } else { 60 }))
                .as_secs_f64();
            if self.progress {
                let dev_state = self
                    .device_state(&job.device)
                    .await
                    .unwrap_or_else(|| "?".into());
                progress.show(&format!(
                    "job {id} {}: {} · {}: {dev_state} · {}s",
                    job.kind.as_str(),
                    job.state.as_str(),
                    output::cell(Some(&job.device)),
                    start.elapsed().as_secs()
                ));
            }
            job = self
                .client
                .get(
                    &format!("/v1/jobs/{id}?{}", wait_query(chunk)),
                    ANSWER_TIMEOUT + Duration::from_secs_f64(chunk),
                )
                .await?;
        }
        progress.clear();
        Ok(job)
    }

    /// Follow `GET /v1/events` (Server-Sent Events) and print each event.
    async fn events(&mut self) -> R<u8> {
        let resp = self
            .client
            .send(
                "GET",
                "/v1/events",
                None,
                &[("accept", "text/event-stream")],
                ANSWER_TIMEOUT,
            )
            .await?;
        let status = resp.status().as_u16();
        if status == 404 {
            return Err(Failure::unreachable(
                "this daemon has no event stream (GET /v1/events answered 404); upgrade fiscald",
            ));
        }
        if !(200..300).contains(&status) {
            let bytes = resp
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let body = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
            return Err(api_failure(status, body));
        }
        let mut body = resp.into_body();
        let mut parser = SseParser::default();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| Failure::unreachable(format!("event stream: {e}")))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            for ev in parser.push(&data) {
                let line = if self.json {
                    let data = serde_json::from_str::<Value>(&ev.data)
                        .unwrap_or_else(|_| Value::String(ev.data.clone()));
                    json!({"event": ev.event, "id": ev.id, "data": data}).to_string()
                } else {
                    format!("{}: {}", ev.event.as_deref().unwrap_or("message"), ev.data)
                };
                emit(&line)?;
            }
        }
        Err(Failure::unreachable("the daemon closed the event stream"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_are_exact() {
        assert_eq!(parse_amount("1000"), Ok(1000));
        assert_eq!(parse_amount("12.50"), Ok(1250));
        assert_eq!(parse_amount("12,5"), Ok(1250));
        assert_eq!(parse_amount("0.01"), Ok(1));
        assert_eq!(parse_amount("99999999.99"), Ok(9_999_999_999));
        for bad in [
            "",
            "0",
            "0.00",
            "-5",
            "1.234",
            "1e3",
            "12.",
            ".5",
            "1 000",
            "abc",
            "100000000.00",
        ] {
            assert!(parse_amount(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(format_grosze(1250), "12.50");
        assert_eq!(format_grosze(7), "0.07");
    }
}
