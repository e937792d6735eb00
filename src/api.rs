//! The local HTTP/JSON API. Handlers validate, journal and read; they never touch a port.

use crate::document::{self, Invalid, PrinterLimits};
use crate::journal::{Job, JobId, JobKind, JobState, Journal, JournalError, NewJob};
use crate::printer::PrinterHandle;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Path, Query, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 256 * 1024;
/// Longest `?wait=` in seconds.
pub const MAX_WAIT_SECONDS: f64 = 60.0;

/// Shared state of the API.
#[derive(Clone)]
pub struct AppState {
    pub journal: Journal,
    pub submitter: crate::journal::Submitter,
    pub printers: Arc<BTreeMap<String, Arc<PrinterHandle>>>,
    pub terminals: Arc<BTreeMap<String, Arc<crate::terminal::TerminalHandle>>>,
    pub events: broadcast::Sender<JobId>,
    /// Cancelled when the daemon stops: long waits answer at once with the job as it stands.
    pub shutdown: tokio_util::sync::CancellationToken,
}

/// An API error: `{"error": {"code", "message", "field", "device_code"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }
    fn invalid(i: Invalid) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: "invalid_request",
            message: format!("{}: {}", i.field, i.message),
            field: Some(i.field),
        }
    }
}

impl From<JournalError> for ApiError {
    fn from(e: JournalError) -> Self {
        match e {
            JournalError::IdempotencyConflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "idempotency_conflict", e.to_string())
            }
            JournalError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            JournalError::NotCancellable { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_cancellable", e.to_string())
            }
            JournalError::Sqlite(_) | JournalError::Commit(_) => {
                tracing::error!(error = %e, "journal failure");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "journal_unavailable",
                    format!("{e}; nothing was queued, retry later"),
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message, "field": self.field, "device_code": null}});
        (self.status, Json(body)).into_response()
    }
}

type ApiResult = Result<Response, ApiError>;

/// The router, without authentication (the Unix socket).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/devices", get(devices))
        .route("/v1/receipts", post(post_receipt))
        .route("/v1/reports/daily", post(post_daily_report))
        .route("/v1/cash", post(post_cash))
        .route("/v1/printouts", post(post_printout))
        .route("/v1/payments", post(post_payment))
        .route("/v1/terminals/{id}/end-of-day", post(post_end_of_day))
        .route("/v1/sales", post(post_sale))
        .route("/v1/sales/{id}/reverse", post(reverse_sale))
        .route("/v1/jobs", get(list_jobs))
        .route("/v1/jobs/{id}", get(get_job))
        .route("/v1/jobs/{id}/cancel", post(cancel_job))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Bearer tokens accepted on TCP, by SHA-256 hash.
#[derive(Clone, Default)]
pub struct Tokens {
    by_hash: Arc<HashMap<String, String>>,
}

impl Tokens {
    /// Read a token file: one `<sha256-hex> <name> [role]` per line; `#` comments.
    /// The file must not be readable by group or others.
    pub fn load(path: &std::path::Path) -> Result<Tokens, String> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "{}: token file is readable by others; chmod 600 it",
                path.display()
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut by_hash = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut parts = line.split_whitespace();
            let hash = parts.next().unwrap_or_default().to_ascii_lowercase();
            let name = parts.next().unwrap_or("token").to_string();
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!(
                    "{}:{}: expected a SHA-256 hex digest first",
                    path.display(),
                    n + 1
                ));
            }
            by_hash.insert(hash, name);
        }
        Ok(Tokens {
            by_hash: Arc::new(by_hash),
        })
    }

    fn check(&self, token: &str) -> Option<&str> {
        use sha2::Digest;
        let h = hex::encode(sha2::Sha256::digest(token.as_bytes()));
        self.by_hash.get(&h).map(String::as_str)
    }
}

/// Middleware for the TCP listener: every request needs a valid bearer token.
pub async fn require_token(State(tokens): State<Tokens>, req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match token.and_then(|t| tokens.check(t.trim())) {
        Some(_) => next.run(req).await,
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this listener needs `Authorization: Bearer <token>` with a token from the token file",
        )
        .into_response(),
    }
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        "no such API path; see the README for the paths under /v1",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this path does not take that method",
    )
}

fn device_json(p: &PrinterHandle, depth: i64) -> Value {
    let s = p.status();
    let stats = *p.stats.lock().unwrap_or_else(|e| e.into_inner());
    json!({
        "id": p.config.id,
        "kind": "fiscal_printer",
        "protocol": "posnet",
        "port": p.config.port,
        "state": s.state,
        "model": s.model,
        "firmware": s.firmware,
        "serial_number": s.serial_number,
        "vat": s.vat,
        "last_error": s.last_error,
        "current_job": s.current_job,
        "queue_depth": depth,
        "link": stats,
    })
}

async fn health(State(state): State<AppState>) -> Json<Value> {
    let mut printers = serde_json::Map::new();
    let mut degraded = false;
    let states = state
        .printers
        .iter()
        .map(|(id, p)| (id, p.status().state))
        .chain(state.terminals.iter().map(|(id, t)| (id, t.status().state)));
    for (id, s) in states {
        degraded |= !matches!(
            s,
            crate::printer::DeviceState::Ready | crate::printer::DeviceState::Busy
        );
        printers.insert(id.clone(), json!(s));
    }
    Json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "devices": printers,
    }))
}

async fn devices(State(state): State<AppState>) -> ApiResult {
    let ids: Vec<String> = state
        .printers
        .keys()
        .chain(state.terminals.keys())
        .cloned()
        .collect();
    let depths = state
        .journal
        .run(move |j| {
            ids.iter()
                .map(|id| j.queue_depth(id))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let mut depths = depths.into_iter();
    let mut list: Vec<Value> = Vec::new();
    for p in state.printers.values() {
        list.push(device_json(p, depths.next().unwrap_or(0)));
    }
    for t in state.terminals.values() {
        list.push(terminal_json(t, depths.next().unwrap_or(0)));
    }
    Ok(Json(json!({"devices": list})).into_response())
}

/// Job as the API shows it.
pub fn job_json(job: &Job) -> Value {
    json!({
        "id": job.id,
        "kind": job.kind.as_str(),
        "device": job.device,
        (if matches!(job.kind, JobKind::Payment | JobKind::EndOfDay | JobKind::Sale) { "terminal" } else { "printer" }): job.device,
        "sale": job.parent_id,
        "state": job.state.as_str(),
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "attempts": job.attempts,
        "result": job.result,
        "error": job.error,
    })
}

/// The query of a document or job request: only `wait` is known.
fn parse_wait(query: Option<&str>) -> Result<Option<Duration>, ApiError> {
    let mut wait = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("wait", v)) => wait = Some(v),
            _ => {
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    format!("unknown query parameter {pair:?}; only wait=SECONDS is accepted"),
                ));
            }
        }
    }
    let Some(w) = wait else { return Ok(None) };
    let secs: f64 = w
        .parse()
        .ok()
        .filter(|s: &f64| s.is_finite() && (0.0..=MAX_WAIT_SECONDS).contains(s))
        .ok_or_else(|| ApiError {
            field: Some("wait".into()),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("wait must be a number of seconds from 0 to {MAX_WAIT_SECONDS}"),
            )
        })?;
    Ok(Some(Duration::from_secs_f64(secs)))
}

fn body_rejection(e: BytesRejection) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "body_too_large",
            format!("the body is larger than the {MAX_BODY_BYTES}-byte limit"),
        )
    } else {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("cannot read the body: {}", e.body_text()),
        )
    }
}

/// Parse a JSON body; the content type must be JSON.
fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mime = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if !body.is_empty() && mime != "application/json" {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("send the body as Content-Type: application/json (got {ct:?})"),
        ));
    }
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("the body is not valid JSON: {e}"),
        )
    })
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 255);
    match s {
        Some(s) => Ok(Some(s.to_string())),
        None => Err(ApiError {
            field: Some("Idempotency-Key".into()),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Idempotency-Key must be 1..255 visible ASCII characters",
            )
        }),
    }
}

/// Which device a request is for: the `field` (`printer` or `terminal`) in the body,
/// or the only device of that kind.
fn pick_device<T>(
    devices: &BTreeMap<String, Arc<T>>,
    body: &Value,
    field: &str,
) -> Result<Arc<T>, ApiError> {
    let invalid = |message: String| {
        ApiError::invalid(Invalid {
            field: field.into(),
            message,
        })
    };
    let named = match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(invalid(format!("must be a {field} id string"))),
    };
    match named {
        Some(id) => devices.get(id).cloned().ok_or_else(|| {
            let known: Vec<&str> = devices.keys().map(String::as_str).collect();
            invalid(format!(
                "unknown {field} {id:?}; configured: {}",
                known.join(", ")
            ))
        }),
        None => match devices.values().next() {
            Some(only) if devices.len() == 1 => Ok(only.clone()),
            Some(_) => Err(invalid(format!(
                "is required when more than one {field} is configured"
            ))),
            None => Err(invalid(format!("no {field} is configured"))),
        },
    }
}

fn pick_printer(state: &AppState, body: &Value) -> Result<Arc<PrinterHandle>, ApiError> {
    pick_device(&state.printers, body, "printer")
}

/// Journal a validated document as a job and answer per the `wait` rules.
async fn submit(
    state: &AppState,
    device: (&str, &tokio::sync::Notify),
    kind: JobKind,
    document: Value,
    key: Option<String>,
    wait: Option<Duration>,
) -> ApiResult {
    submit_with(state, device, kind, document, key, wait, |_| async {}).await
}

/// [`submit`], running `queued` with the job right after it is committed.
async fn submit_with<F: std::future::Future<Output = ()>>(
    state: &AppState,
    device: (&str, &tokio::sync::Notify),
    kind: JobKind,
    document: Value,
    key: Option<String>,
    wait: Option<Duration>,
    queued: impl FnOnce(JobId) -> F,
) -> ApiResult {
    let new = NewJob {
        kind,
        device: device.0.to_string(),
        request: json!({"document": document}),
        idempotency_key: key,
    };
    let mut rx = state.events.subscribe();
    let (job, existed) = state.submitter.submit(new).await?;
    if !existed {
        tracing::info!(
            job = job.id,
            kind = kind.as_str(),
            device = device.0,
            "job queued"
        );
        device.1.notify_one();
    }
    queued(job.id).await;
    let job = match wait {
        Some(w) if !job.state.is_terminal() => wait_for(state, job.id, &mut rx, w).await?,
        _ => job,
    };
    let status = if job.state.is_terminal() && (wait.is_some() || existed) {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(job_json(&job))).into_response())
}

async fn wait_for(
    state: &AppState,
    id: JobId,
    rx: &mut broadcast::Receiver<JobId>,
    wait: Duration,
) -> Result<Job, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let job = state
            .journal
            .run(move |j| j.get(id))
            .await?
            .ok_or(JournalError::NotFound(id))?;
        if job.state.is_terminal() {
            return Ok(job);
        }
        loop {
            tokio::select! {
                r = tokio::time::timeout_at(deadline, rx.recv()) => match r {
                    Err(_) => return Ok(job),
                    Ok(Ok(changed)) if changed != id => continue,
                    Ok(_) => break, // our job changed, or we lagged: read it again
                },
                _ = state.shutdown.cancelled() => return Ok(job),
            }
        }
    }
}

async fn post_receipt(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let wait = parse_wait(q.as_deref())?;
    let body = body.map_err(body_rejection)?;
    let key = idempotency_key(&headers)?;
    let body = parse_body(&headers, &body)?;
    let printer = pick_printer(&state, &body)?;
    let active = printer.active_vat();
    let limits = PrinterLimits {
        max_name_length: printer.config.max_name_length,
        active_vat: active.as_deref(),
    };
    let receipt = document::receipt(&body, &limits, &["printer"]).map_err(ApiError::invalid)?;
    let doc = serde_json::to_value(&receipt)
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    submit(
        &state,
        (&printer.config.id, &printer.wake),
        JobKind::Receipt,
        doc,
        key,
        wait,
    )
    .await
}

async fn post_daily_report(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let wait = parse_wait(q.as_deref())?;
    let body = body.map_err(body_rejection)?;
    let key = idempotency_key(&headers)?;
    let body = parse_body(&headers, &body)?;
    let printer = pick_printer(&state, &body)?;
    document::empty(&body, &["printer"]).map_err(ApiError::invalid)?;
    submit(
        &state,
        (&printer.config.id, &printer.wake),
        JobKind::DailyReport,
        json!({}),
        key,
        wait,
    )
    .await
}

async fn post_cash(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let wait = parse_wait(q.as_deref())?;
    let body = body.map_err(body_rejection)?;
    let key = idempotency_key(&headers)?;
    let body = parse_body(&headers, &body)?;
    let printer = pick_printer(&state, &body)?;
    let cash = document::cash(&body, &["printer"]).map_err(ApiError::invalid)?;
    let doc = json!({"deposit": cash.deposit, "amount": cash.amount});
    submit(
        &state,
        (&printer.config.id, &printer.wake),
        JobKind::Cash,
        doc,
        key,
        wait,
    )
    .await
}

async fn post_printout(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let wait = parse_wait(q.as_deref())?;
    let body = body.map_err(body_rejection)?;
    let key = idempotency_key(&headers)?;
    let body = parse_body(&headers, &body)?;
    let printer = pick_printer(&state, &body)?;
    let p = document::printout(&body, &["printer"]).map_err(ApiError::invalid)?;
    submit(
        &state,
        (&printer.config.id, &printer.wake),
        JobKind::Printout,
        json!({"lines": p.lines}),
        key,
        wait,
    )
    .await
}

fn parse_id(id: &str) -> Result<JobId, ApiError> {
    id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("job {id:?} not found"),
        )
    })
}

async fn get_job(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let id = parse_id(&id)?;
    let wait = parse_wait(q.as_deref())?;
    let mut rx = state.events.subscribe();
    let job = state
        .journal
        .run(move |j| j.get(id))
        .await?
        .ok_or(JournalError::NotFound(id))?;
    let job = match wait {
        Some(w) if !job.state.is_terminal() => wait_for(&state, id, &mut rx, w).await?,
        _ => job,
    };
    Ok(Json(job_json(&job)).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
}

async fn list_jobs(
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) =
        q.map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_request", e.body_text()))?;
    let filter = match q.state.as_deref() {
        None | Some("") => None,
        Some(s) => Some(JobState::parse(s).ok_or_else(|| ApiError {
            field: Some("state".into()),
            ..ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                format!("unknown state {s:?}"),
            )
        })?),
    };
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let jobs = state.journal.run(move |j| j.list(filter, limit)).await?;
    Ok(Json(json!({"jobs": jobs.iter().map(job_json).collect::<Vec<_>>()})).into_response())
}

async fn cancel_job(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let job = state.journal.run(move |j| j.cancel(id)).await?;
    let _ = state.events.send(id);
    Ok(Json(job_json(&job)).into_response())
}

fn terminal_json(t: &crate::terminal::TerminalHandle, depth: i64) -> Value {
    let s = t.status();
    json!({
        "id": t.config.id,
        "kind": "payment_terminal",
        "protocol": "zvt",
        "port": t.config.port,
        "state": s.state,
        "terminal_id": s.terminal_id,
        "display": s.display,
        "last_error": s.last_error,
        "current_job": s.current_job,
        "queue_depth": depth,
        "slip": t.config.slip,
        "link": {"bytes_out": s.bytes_out, "bytes_in": s.bytes_in},
    })
}

fn pick_terminal(
    state: &AppState,
    body: &Value,
) -> Result<Arc<crate::terminal::TerminalHandle>, ApiError> {
    pick_device(&state.terminals, body, "terminal")
}

async fn post_payment(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let wait = parse_wait(q.as_deref())?;
    let body = body.map_err(body_rejection)?;
    let key = idempotency_key(&headers)?;
    let body = parse_body(&headers, &body)?;
    let terminal = pick_terminal(&state, &body)?;
    let p = document::card_payment(&body, terminal.config.currency_code(), &["terminal"])
        .map_err(ApiError::invalid)?;
    let doc = serde_json::to_value(&p).unwrap_or(Value::Null);
    submit(
        &state,
        (&terminal.config.id, &terminal.wake),
        JobKind::Payment,
        doc,
        key,
        wait,
    )
    .await
}

async fn post_end_of_day(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let wait = parse_wait(q.as_deref())?;
    let body = body.map_err(body_rejection)?;
    let key = idempotency_key(&headers)?;
    let body = parse_body(&headers, &body)?;
    document::empty(&body, &[]).map_err(ApiError::invalid)?;
    let terminal = state.terminals.get(&id).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no terminal {id:?} is configured"),
        )
    })?;
    submit(
        &state,
        (&terminal.config.id, &terminal.wake),
        JobKind::EndOfDay,
        json!({}),
        key,
        wait,
    )
    .await
}

async fn post_sale(
    State(state): State<AppState>,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult {
    let wait = parse_wait(q.as_deref())?;
    let body = body.map_err(body_rejection)?;
    let key = idempotency_key(&headers)?;
    let body = parse_body(&headers, &body)?;
    let printer = pick_printer(&state, &body)?;
    let terminal = pick_terminal(&state, &body)?;
    let active = printer.active_vat();
    let limits = PrinterLimits {
        max_name_length: printer.config.max_name_length,
        active_vat: active.as_deref(),
    };
    let receipt =
        document::receipt(&body, &limits, &["printer", "terminal"]).map_err(ApiError::invalid)?;
    let amount = document::sale_card_amount(&receipt).map_err(ApiError::invalid)?;
    let doc = json!({
        "receipt": receipt,
        "printer": printer.config.id,
        "payment": {"type": "sale", "amount": amount, "currency": terminal.config.currency_code()},
    });
    submit(
        &state,
        (&terminal.config.id, &terminal.wake),
        JobKind::Sale,
        doc,
        key,
        wait,
    )
    .await
}

/// Reverse the card payment of a sale whose receipt was not printed.
async fn reverse_sale(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let id = parse_id(&id)?;
    let wait = parse_wait(q.as_deref())?;
    let sale = state
        .journal
        .run(move |j| j.get(id))
        .await?
        .ok_or(JournalError::NotFound(id))?;
    let conflict = |m: String| ApiError::new(StatusCode::CONFLICT, "not_reversible", m);
    if sale.kind != JobKind::Sale {
        return Err(conflict(format!(
            "job {id} is a {}, not a sale",
            sale.kind.as_str()
        )));
    }
    let result = sale.result.clone().unwrap_or(Value::Null);
    if let Some(existing) = result.get("reversal_job").and_then(Value::as_i64) {
        let job = state
            .journal
            .run(move |j| j.get(existing))
            .await?
            .ok_or(JournalError::NotFound(existing))?;
        return Ok((StatusCode::OK, Json(job_json(&job))).into_response());
    }
    if sale.state != JobState::NeedsAttention {
        return Err(conflict(format!(
            "sale {id} is {}; only a sale whose receipt was not printed (needs_attention) can be reversed",
            sale.state.as_str()
        )));
    }
    let payment = &result["payment"];
    let (Some(true), Some(receipt_no), Some(amount)) = (
        payment["approved"].as_bool(),
        payment["terminal_receipt_number"].as_u64(),
        payment["amount"].as_u64(),
    ) else {
        return Err(conflict(format!(
            "sale {id} has no approved card payment to reverse"
        )));
    };
    if let Some(rid) = result.get("receipt_job").and_then(Value::as_i64) {
        let receipt = state.journal.run(move |j| j.get(rid)).await?;
        if receipt.is_some_and(|r| r.state == JobState::Done) {
            return Err(conflict(format!(
                "the receipt of sale {id} was printed; refund the customer instead"
            )));
        }
    }
    let terminal = payment["terminal"]
        .as_str()
        .and_then(|t| state.terminals.get(t).cloned())
        .ok_or_else(|| conflict(format!("the terminal of sale {id} is no longer configured")))?;
    let doc = json!({
        "type": "reversal",
        "amount": amount,
        "currency": terminal.config.currency_code(),
        "reference": format!("sale {id}"),
        "original_receipt_number": receipt_no,
    });
    let key = Some(format!("fiscald:reverse-sale:{id}"));
    let journal = state.journal.clone();
    submit_with(
        &state,
        (&terminal.config.id, &terminal.wake),
        JobKind::Payment,
        doc,
        key,
        wait,
        |rev| async move {
            if let Err(e) = journal.run(move |j| j.note_sale_reversal(id, rev)).await {
                tracing::error!(sale = id, error = %e, "cannot note the reversal on the sale");
            }
        },
    )
    .await
}
