//! `fiscald ctl`: the command-line client of the local API.
//!
//! It speaks HTTP/1.1 (hyper's client) to the daemon's Unix socket, or to its loopback TCP
//! listener with a bearer token, on a current-thread runtime. People get tables and one-line
//! summaries; scripts get `--json` and exit codes (see [`EXIT_CODES`]).

use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
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
    /// Print a fiscal receipt from a JSON file (the API's receipt body), or from stdin.
    Receipt {
        /// The JSON file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
    /// A card sale (receipt JSON with a card payment), from a JSON file or stdin.
    Sale {
        /// The JSON file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
    },
    /// A card payment on the terminal.
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
}

#[derive(Args, Debug)]
pub struct PaymentArgs {
    /// What kind of payment.
    #[arg(long = "type", value_enum)]
    pub kind: PaymentType,
    /// Grosze (1250), or złoty with a decimal point (12.50).
    #[arg(long)]
    pub amount: String,
    /// PLN or EUR (default: the terminal's).
    #[arg(long)]
    pub currency: Option<String>,
    /// For a reversal: the terminal's receipt number of the payment to reverse.
    #[arg(long)]
    pub original_receipt_number: Option<u64>,
    /// The terminal (may be left out when only one is configured).
    #[arg(long)]
    pub terminal: Option<String>,
    /// A reference printed on the terminal's slip.
    #[arg(long)]
    pub reference: Option<String>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum PaymentType {
    Sale,
    Refund,
    Reversal,
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
        CtlCmd::Receipt { file } => {
            let body = read_json(file.as_deref())?;
            ctl.submit("/v1/receipts", body).await
        }
        CtlCmd::Sale { file } => {
            let body = read_json(file.as_deref())?;
            ctl.submit("/v1/sales", body).await
        }
        CtlCmd::Payment(p) => {
            let mut body = json!({
                "type": match p.kind {
                    PaymentType::Sale => "sale",
                    PaymentType::Refund => "refund",
                    PaymentType::Reversal => "reversal",
                },
                "amount": parse_amount(&p.amount).map_err(Failure::bad_input)?,
            });
            for (k, v) in [
                ("currency", p.currency.map(Value::from)),
                (
                    "original_receipt_number",
                    p.original_receipt_number.map(Value::from),
                ),
                ("terminal", p.terminal.map(Value::from)),
                ("reference", p.reference.map(Value::from)),
            ] {
                if let Some(v) = v {
                    body[k] = v;
                }
            }
            ctl.submit("/v1/payments", body.to_string().into_bytes())
                .await
        }
        CtlCmd::Job { id } => ctl.job(id).await,
        CtlCmd::Jobs { state, limit } => ctl.jobs(state, limit).await,
        CtlCmd::Cancel { id } => ctl.cancel(id).await,
        CtlCmd::Report(ReportCmd::Daily { printer }) => {
            let body = with_printer(json!({}), printer);
            ctl.submit("/v1/reports/daily", body).await
        }
        CtlCmd::Cash {
            direction,
            amount,
            printer,
        } => {
            let amount = parse_amount(&amount).map_err(Failure::bad_input)?;
            let direction = match direction {
                Direction::In => "in",
                Direction::Out => "out",
            };
            let body = with_printer(json!({"direction": direction, "amount": amount}), printer);
            ctl.submit("/v1/cash", body).await
        }
        CtlCmd::Print { file, printer } => {
            let text = read_input(file.as_deref())?;
            let text = String::from_utf8(text).map_err(|_| {
                Failure::bad_input(format!("{}: not UTF-8 text", input_name(file.as_deref())))
            })?;
            let lines: Vec<&str> = text.lines().collect();
            let body = with_printer(json!({"lines": lines}), printer);
            ctl.submit("/v1/printouts", body).await
        }
        CtlCmd::Events => ctl.events().await,
    }
}

fn with_printer(mut body: Value, printer: Option<String>) -> Vec<u8> {
    if let Some(p) = printer {
        body["printer"] = Value::from(p);
    }
    body.to_string().into_bytes()
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

/// Where the daemon is.
#[derive(Debug)]
enum Endpoint {
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
        authority: String,
        token: String,
    },
}

impl Endpoint {
    fn from_args(args: &CtlArgs) -> R<Endpoint> {
        if let Some(url) = &args.url {
            let Some(token_file) = &args.token_file else {
                return Err(Failure::bad_input(
                    "--url needs --token-file: the TCP listener takes only requests with a bearer token",
                ));
            };
            return Self::tcp(url, token_file);
        }
        if let Some(s) = &args.socket {
            return Ok(Endpoint::Unix(s.clone()));
        }
        if let Some(c) = &args.config {
            let config =
                crate::config::Config::load(c).map_err(|e| Failure::bad_input(e.to_string()))?;
            return Ok(Endpoint::Unix(config.api.socket));
        }
        Ok(Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET)))
    }

    fn tcp(url: &str, token_file: &Path) -> R<Endpoint> {
        let bad = |why: &str| Failure::bad_input(format!("--url {url:?}: {why}"));
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| bad("expected http://127.0.0.1:PORT"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// on a loopback address is supported"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("give only the scheme, host and port"));
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(bad(
                "the daemon listens on loopback only; the token is not sent elsewhere",
            ));
        }
        let port = uri.port_u16().unwrap_or(80);
        Ok(Endpoint::Tcp {
            host: bare.to_string(),
            port,
            authority: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            token: read_token(token_file)?,
        })
    }

    fn describe(&self) -> String {
        match self {
            Endpoint::Unix(p) => p.display().to_string(),
            Endpoint::Tcp { host, port, .. } => format!("{host}:{port}"),
        }
    }
}

/// The raw bearer token: the first non-empty line of a file nobody else can read.
fn read_token(path: &Path) -> R<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Failure::bad_input(format!(
            "{}: the token file is readable by others; chmod 600 it",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::bad_input(format!("{}: cannot read: {e}", path.display())))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Failure::bad_input(format!("{}: no token in the file", path.display())))
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for an answer beyond any `?wait=`.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// One keep-alive HTTP/1.1 connection, opened on first use and again when it closes.
struct Client {
    endpoint: Endpoint,
    sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    async fn connect(&self) -> R<SendRequest<Full<Bytes>>> {
        let where_ = self.endpoint.describe();
        let explain = |e: std::io::Error| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound => " (is fiscald running? see --socket and --config)",
                std::io::ErrorKind::ConnectionRefused => " (is fiscald running?)",
                std::io::ErrorKind::PermissionDenied => {
                    " (run as a member of the socket's group, or as its owner)"
                }
                _ => "",
            };
            Failure::unreachable(format!("cannot reach the daemon at {where_}: {e}{hint}"))
        };
        let timed_out =
            || Failure::unreachable(format!("cannot reach the daemon at {where_}: timed out"));
        match &self.endpoint {
            Endpoint::Unix(path) => {
                let stream =
                    tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(path))
                        .await
                        .map_err(|_| timed_out())?
                        .map_err(explain)?;
                handshake(stream).await
            }
            Endpoint::Tcp { host, port, .. } => {
                let stream = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio::net::TcpStream::connect((host.as_str(), *port)),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(explain)?;
                handshake(stream).await
            }
        }
    }

    /// Send one request; the response's body is left to the caller.
    async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> R<hyper::Response<hyper::body::Incoming>> {
        let mut sender = match self.sender.take() {
            Some(mut s) => match s.ready().await {
                Ok(()) => s,
                Err(_) => self.connect().await?,
            },
            None => self.connect().await?,
        };
        let mut req = hyper::Request::builder().method(method).uri(path);
        match &self.endpoint {
            Endpoint::Unix(_) => req = req.header(hyper::header::HOST, "localhost"),
            Endpoint::Tcp {
                authority, token, ..
            } => {
                req = req
                    .header(hyper::header::HOST, authority.as_str())
                    .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
            }
        }
        // Every POST is JSON, an empty one too (the API refuses anything else with 415).
        if body.is_some() || method == "POST" {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Failure::bad_input(format!("cannot build the request: {e}")))?;
        let where_ = self.endpoint.describe();
        let resp = tokio::time::timeout(timeout, sender.send_request(req))
            .await
            .map_err(|_| {
                Failure::unreachable(format!(
                    "the daemon at {where_} did not answer {method} {path} within {}s",
                    timeout.as_secs()
                ))
            })?
            .map_err(|e| {
                Failure::unreachable(format!("{method} {path} to the daemon at {where_}: {e}"))
            })?;
        self.sender = Some(sender);
        Ok(resp)
    }

    /// A request with a JSON answer; any status outside 2xx is a [`Failure`].
    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> R<(u16, Value)> {
        let resp = self.send(method, path, body, headers, timeout).await?;
        let status = resp.status().as_u16();
        let bytes = tokio::time::timeout(timeout, resp.into_body().collect())
            .await
            .map_err(|_| Failure::unreachable(format!("{method} {path}: the answer stalled")))?
            .map_err(|e| Failure::unreachable(format!("{method} {path}: {e}")))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if (200..300).contains(&status) {
            Ok((status, value))
        } else {
            Err(api_failure(status, value))
        }
    }

    async fn get(&mut self, path: &str, timeout: Duration) -> R<Value> {
        Ok(self.call("GET", path, None, &[], timeout).await?.1)
    }
}

/// Start HTTP/1.1 on a connected stream; the connection runs as its own task.
async fn handshake<S>(stream: S) -> R<SendRequest<Full<Bytes>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| Failure::unreachable(format!("HTTP handshake with the daemon: {e}")))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// An API error answer as a failure: 4xx is bad input, anything else the daemon's.
fn api_failure(status: u16, body: Value) -> Failure {
    let code = if (400..500).contains(&status) {
        EXIT_BAD_INPUT
    } else {
        EXIT_UNREACHABLE
    };
    let e = &body["error"];
    let mut message = match (e["code"].as_str(), e["message"].as_str()) {
        (Some(c), Some(m)) => format!("{status} {c}: {m}"),
        _ => match &body {
            Value::String(s) if !s.is_empty() => format!("HTTP {status}: {s}"),
            _ => format!("HTTP {status}"),
        },
    };
    if let Some(f) = e["field"].as_str()
        && !message.contains(f)
    {
        message.push_str(&format!(" (field {f})"));
    }
    if let Some(d) = e.get("device_code").filter(|d| !d.is_null()) {
        message.push_str(&format!(" (device code {d})"));
    }
    Failure {
        code,
        message,
        body: Some(body),
    }
}

struct Ctl {
    client: Client,
    json: bool,
    wait: Option<u64>,
    key: Option<String>,
    /// Show progress in place on stderr (a terminal).
    progress: bool,
}

fn is_pending(job: &Value) -> bool {
    matches!(job["state"].as_str(), Some("queued" | "running"))
}

/// The exit code for a job as it stands.
fn job_exit(job: &Value, waited: bool) -> u8 {
    match job["state"].as_str() {
        Some("done") => EXIT_OK,
        Some("queued" | "running") if waited => EXIT_PENDING,
        Some("queued" | "running") => EXIT_OK,
        _ => EXIT_JOB_FAILED,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) if s.is_empty() => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// A job's outcome in a few words.
fn outcome(job: &Value) -> String {
    let r = &job["result"];
    let e = &job["error"];
    if !e.is_null() {
        let mut s = match (e["code"].as_str(), e["message"].as_str()) {
            (Some(c), Some(m)) => format!("{c}: {m}"),
            (None, Some(m)) => m.to_string(),
            _ => text(e),
        };
        if let Some(d) = e.get("device_code").filter(|d| !d.is_null()) {
            s.push_str(&format!(" (device code {d})"));
        }
        return s;
    }
    if r.is_null() {
        return "-".into();
    }
    let mut parts = Vec::new();
    let num = |k: &str| r.get(k).filter(|v| !v.is_null()).map(text);
    if let Some(n) = num("receipt_number") {
        parts.push(format!("receipt no. {n}"));
    }
    if let Some(n) = num("report_number") {
        parts.push(format!("report no. {n}"));
    }
    if let Some(n) = num("printout_number") {
        parts.push(format!("printout no. {n}"));
    }
    if let Some(d) = num("date") {
        parts.push(format!("date {d}"));
    }
    if let Some(t) = r["total"].as_u64() {
        parts.push(format!("total {}", format_grosze(t)));
    }
    let payment = if r.get("approved").is_some() {
        Some(r)
    } else {
        r.get("payment").filter(|p| p.get("approved").is_some())
    };
    if let Some(p) = payment {
        let approved = p["approved"].as_bool() == Some(true);
        let mut s = String::from(if approved { "approved" } else { "declined" });
        if let Some(a) = p["amount"].as_u64() {
            s.push_str(&format!(" {}", format_grosze(a)));
        }
        if let Some(n) = p.get("terminal_receipt_number").filter(|v| !v.is_null()) {
            s.push_str(&format!(", terminal receipt no. {}", text(n)));
        }
        parts.push(s);
    }
    if let Some(n) = num("receipt_job") {
        parts.push(format!("receipt job {n}"));
    }
    if parts.is_empty() {
        let s = r.to_string();
        if s.chars().count() > 80 {
            format!("{}…", s.chars().take(79).collect::<String>())
        } else {
            s
        }
    } else {
        parts.join(", ")
    }
}

/// Left-aligned columns; the last column is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let n = cells.len();
        let mut s = String::new();
        for (i, c) in cells.into_iter().enumerate() {
            s.push_str(c);
            if i + 1 < n {
                let pad = widths[i] - c.chars().count() + 2;
                s.extend(std::iter::repeat_n(' ', pad));
            }
        }
        s.trim_end().to_string()
    };
    let mut out = vec![line(header.to_vec())];
    for row in rows {
        out.push(line(row.iter().map(String::as_str).collect()));
    }
    out.join("\n")
}

fn devices_table(devices: &[Value]) -> String {
    let rows: Vec<Vec<String>> = devices
        .iter()
        .map(|d| {
            let model = if d["model"].is_null() {
                d.get("terminal_id")
                    .filter(|t| !t.is_null())
                    .map(|t| format!("TID {}", text(t)))
                    .unwrap_or_else(|| "-".into())
            } else {
                text(&d["model"])
            };
            vec![
                text(&d["id"]),
                text(&d["kind"]),
                text(&d["state"]),
                model,
                text(&d["queue_depth"]),
                text(&d["last_error"]),
            ]
        })
        .collect();
    table(
        &["ID", "KIND", "STATE", "MODEL", "QUEUE", "LAST_ERROR"],
        &rows,
    )
}

/// `2026-11-26T10:15:00.123Z` → `2026-11-26 10:15:00Z`.
fn short_time(v: &Value) -> String {
    let s = text(v);
    match (s.get(..10), s.get(11..19)) {
        (Some(d), Some(t)) if s.len() > 19 => {
            let zone = if s.ends_with('Z') { "Z" } else { "" };
            format!("{d} {t}{zone}")
        }
        _ => s,
    }
}

fn jobs_table(jobs: &[Value]) -> String {
    let rows: Vec<Vec<String>> = jobs
        .iter()
        .map(|j| {
            vec![
                text(&j["id"]),
                text(&j["kind"]),
                text(&j["device"]),
                text(&j["state"]),
                short_time(&j["updated_at"]),
                outcome(j),
            ]
        })
        .collect();
    table(
        &["ID", "KIND", "DEVICE", "STATE", "UPDATED", "RESULT/ERROR"],
        &rows,
    )
}

fn job_summary(job: &Value) -> String {
    format!(
        "job {} ({} on {}): {}: {}",
        text(&job["id"]),
        text(&job["kind"]),
        text(&job["device"]),
        text(&job["state"]),
        outcome(job)
    )
}

fn job_details(job: &Value) -> String {
    let mut rows = vec![
        ("job", text(&job["id"])),
        ("kind", text(&job["kind"])),
        ("device", text(&job["device"])),
        ("state", text(&job["state"])),
        ("created", short_time(&job["created_at"])),
        ("updated", short_time(&job["updated_at"])),
        ("attempts", text(&job["attempts"])),
    ];
    if !job["sale"].is_null() {
        rows.push(("sale", text(&job["sale"])));
    }
    rows.push(("outcome", outcome(job)));
    if !job["result"].is_null() {
        rows.push(("result", job["result"].to_string()));
    }
    if !job["error"].is_null() {
        rows.push(("error", job["error"].to_string()));
    }
    rows.iter()
        .map(|(k, v)| format!("{k:<9} {v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A progress line on stderr, rewritten in place.
struct Progress {
    on: bool,
    shown: bool,
}

impl Progress {
    fn show(&mut self, line: &str) {
        if self.on {
            // One screen line, or `\r` would no longer rewrite it in place.
            let width = std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(80)
                .max(20);
            let line: String = line.chars().take(width - 1).collect();
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K{line}");
            let _ = e.flush();
            self.shown = true;
        }
    }
    fn clear(&mut self) {
        if self.shown {
            let mut e = std::io::stderr().lock();
            let _ = write!(e, "\r\x1b[2K");
            let _ = e.flush();
            self.shown = false;
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

fn wait_query(secs: f64) -> String {
    format!("wait={secs:.3}")
}

impl Ctl {
    fn print_value(&self, v: &Value) -> R<()> {
        emit(&v.to_string())
    }

    async fn status(&mut self) -> R<u8> {
        let health = self.client.get("/v1/health", ANSWER_TIMEOUT).await?;
        let devices = self.client.get("/v1/devices", ANSWER_TIMEOUT).await?;
        let code = if health["status"] == "ok" {
            EXIT_OK
        } else {
            EXIT_JOB_FAILED
        };
        if self.json {
            self.print_value(&json!({"health": health, "devices": devices["devices"]}))?;
        } else {
            emit(&format!(
                "fiscald {}: {}",
                text(&health["version"]),
                text(&health["status"])
            ))?;
            let list = devices["devices"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                emit("no devices are configured")?;
            } else {
                emit(&devices_table(&list))?;
            }
        }
        Ok(code)
    }

    async fn devices(&mut self) -> R<u8> {
        let devices = self.client.get("/v1/devices", ANSWER_TIMEOUT).await?;
        if self.json {
            self.print_value(&devices)?;
        } else {
            let list = devices["devices"].as_array().cloned().unwrap_or_default();
            emit(&devices_table(&list))?;
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
        let jobs = self.client.get(&path, ANSWER_TIMEOUT).await?;
        if self.json {
            self.print_value(&jobs)?;
        } else {
            let list = jobs["jobs"].as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                emit("no jobs")?;
            } else {
                emit(&jobs_table(&list))?;
            }
        }
        Ok(EXIT_OK)
    }

    async fn job(&mut self, id: i64) -> R<u8> {
        let wait = self.wait.unwrap_or(0);
        let job = self
            .client
            .get(&format!("/v1/jobs/{id}"), ANSWER_TIMEOUT)
            .await?;
        let job = self.follow(job, wait).await?;
        if self.json {
            self.print_value(&job)?;
        } else {
            emit(&job_details(&job))?;
        }
        Ok(job_exit(&job, wait > 0))
    }

    async fn cancel(&mut self, id: i64) -> R<u8> {
        let (_, job) = self
            .client
            .call(
                "POST",
                &format!("/v1/jobs/{id}/cancel"),
                None,
                &[],
                ANSWER_TIMEOUT,
            )
            .await?;
        if self.json {
            self.print_value(&job)?;
        } else {
            emit(&format!("job {id} {}", text(&job["state"])))?;
        }
        Ok(EXIT_OK)
    }

    /// Create a job, wait for it as `--wait` says, and report how it ended.
    async fn submit(&mut self, path: &str, body: Vec<u8>) -> R<u8> {
        let wait = self.wait.unwrap_or(60);
        let first = if self.progress { 1.0 } else { 60.0 };
        let first = (wait as f64).min(first);
        let path = if wait > 0 {
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
        let (_, job) = self
            .client
            .call("POST", &path, Some(body), &headers, timeout)
            .await?;
        let job = self.follow_from(job, wait, start).await?;
        if self.json {
            self.print_value(&job)?;
        } else {
            emit(&job_summary(&job))?;
            if wait > 0 && is_pending(&job) {
                eprintln!(
                    "fiscald ctl: job {} is still {} after {wait}s; see `fiscald ctl job {}`",
                    text(&job["id"]),
                    text(&job["state"]),
                    text(&job["id"])
                );
            }
        }
        Ok(job_exit(&job, wait > 0))
    }

    async fn follow(&mut self, job: Value, wait: u64) -> R<Value> {
        self.follow_from(job, wait, Instant::now()).await
    }

    /// Poll `GET /v1/jobs/{id}?wait=` until the job ends or `wait` seconds from `start` pass,
    /// showing the job's and its device's state on a terminal.
    async fn follow_from(&mut self, mut job: Value, wait: u64, start: Instant) -> R<Value> {
        let deadline = start + Duration::from_secs(wait);
        let Some(id) = job["id"].as_i64() else {
            return Ok(job);
        };
        let mut progress = Progress {
            on: self.progress,
            shown: false,
        };
        while is_pending(&job) {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            let remaining = deadline - now;
            let chunk = remaining
                .min(Duration::from_secs(if self.progress { 1 } else { 60 }))
                .as_secs_f64();
            if self.progress {
                let device = text(&job["device"]);
                let dev_state = self
                    .client
                    .get("/v1/devices", ANSWER_TIMEOUT)
                    .await
                    .ok()
                    .and_then(|d| {
                        d["devices"].as_array().and_then(|l| {
                            l.iter().find(|x| x["id"] == job["device"]).map(|x| {
                                let mut s = text(&x["state"]);
                                if !x["last_error"].is_null() {
                                    s.push_str(&format!(" ({})", text(&x["last_error"])));
                                }
                                s
                            })
                        })
                    })
                    .unwrap_or_else(|| "?".into());
                progress.show(&format!(
                    "job {id} {}: {} · {device}: {dev_state} · {}s",
                    text(&job["kind"]),
                    text(&job["state"]),
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

/// One Server-Sent Event.
#[derive(Debug, Default, PartialEq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

/// Incremental Server-Sent Events parser (fields `event`, `id`, `data`; comments ignored).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feed bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                let ev = std::mem::take(&mut self.current);
                if std::mem::take(&mut self.has_data) {
                    out.push(ev);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (&*line, ""),
            };
            match field {
                "event" => self.current.event = Some(value.to_string()),
                "id" => self.current.id = Some(value.to_string()),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
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

    #[test]
    fn sse_events_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b": hello\n\nevent: job\nid: 3\nda").is_empty());
        let evs = p.push(b"ta: {\"id\": 7}\r\ndata: more\r\n\r\ndata: x\n\n");
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    event: Some("job".into()),
                    id: Some("3".into()),
                    data: "{\"id\": 7}\nmore".into()
                },
                SseEvent {
                    event: None,
                    id: None,
                    data: "x".into()
                }
            ]
        );
    }

    #[test]
    fn tables_align() {
        let t = table(
            &["ID", "STATE"],
            &[
                vec!["fp1".into(), "ready".into()],
                vec!["ż".into(), "-".into()],
            ],
        );
        assert_eq!(t, "ID   STATE\nfp1  ready\nż    -");
    }

    #[test]
    fn outcomes() {
        let job =
            json!({"state": "done", "result": {"receipt_number": 12, "total": 675}, "error": null});
        assert_eq!(outcome(&job), "receipt no. 12, total 6.75");
        let job = json!({"state": "failed", "result": null, "error": {"code": "paper_out", "message": "no paper", "device_code": 3}});
        assert_eq!(outcome(&job), "paper_out: no paper (device code 3)");
        assert_eq!(job_exit(&job, true), EXIT_JOB_FAILED);
        assert_eq!(job_exit(&json!({"state": "running"}), true), EXIT_PENDING);
        assert_eq!(job_exit(&json!({"state": "queued"}), false), EXIT_OK);
    }
}
