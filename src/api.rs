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
    for (id, p) in state.printers.iter() {
        let s = p.status();
        degraded |= !matches!(
            s.state,
            crate::printer::DeviceState::Ready | crate::printer::DeviceState::Busy
        );
        printers.insert(id.clone(), json!(s.state));
    }
    Json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "version": env!("CARGO_PKG_VERSION"),
        "devices": printers,
    }))
}

async fn devices(State(state): State<AppState>) -> ApiResult {
    let ids: Vec<String> = state.printers.keys().cloned().collect();
    let depths = state
        .journal
        .run(move |j| {
            ids.iter()
                .map(|id| j.queue_depth(id))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let list: Vec<Value> = state
        .printers
        .values()
        .zip(depths)
        .map(|(p, d)| device_json(p, d))
        .collect();
    Ok(Json(json!({"devices": list})).into_response())
}

/// Job as the API shows it.
pub fn job_json(job: &Job) -> Value {
    json!({
        "id": job.id,
        "kind": job.kind.as_str(),
        "printer": job.device,
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

/// Which printer a request is for: the `printer` field, or the only printer.
fn pick_printer(state: &AppState, body: &Value) -> Result<Arc<PrinterHandle>, ApiError> {
    let named = match body.get("printer") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => {
            return Err(ApiError::invalid(Invalid {
                field: "printer".into(),
                message: "must be a printer id string".into(),
            }));
        }
    };
    match named {
        Some(id) => state.printers.get(id).cloned().ok_or_else(|| {
            let known: Vec<&str> = state.printers.keys().map(String::as_str).collect();
            ApiError::invalid(Invalid {
                field: "printer".into(),
                message: format!("unknown printer {id:?}; configured: {}", known.join(", ")),
            })
        }),
        None if state.printers.len() == 1 => Ok(state
            .printers
            .values()
            .next()
            .cloned()
            .expect("one printer")),
        None => Err(ApiError::invalid(Invalid {
            field: "printer".into(),
            message: "is required when more than one printer is configured".into(),
        })),
    }
}

/// Journal a validated document as a job and answer per the `wait` rules.
async fn submit(
    state: &AppState,
    printer: &PrinterHandle,
    kind: JobKind,
    document: Value,
    key: Option<String>,
    wait: Option<Duration>,
) -> ApiResult {
    let new = NewJob {
        kind,
        device: printer.config.id.clone(),
        request: json!({"document": document}),
        idempotency_key: key,
    };
    let mut rx = state.events.subscribe();
    let (job, existed) = state.submitter.submit(new).await?;
    if !existed {
        tracing::info!(job = job.id, kind = kind.as_str(), printer = %printer.config.id, "job queued");
        printer.wake.notify_one();
    }
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
    submit(&state, &printer, JobKind::Receipt, doc, key, wait).await
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
    submit(&state, &printer, JobKind::DailyReport, json!({}), key, wait).await
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
    submit(&state, &printer, JobKind::Cash, doc, key, wait).await
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
        &printer,
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
