//! The local HTTP/JSON API. Handlers validate, journal and read; they never touch a port.

use crate::auth::{self, Principal, Role};
use crate::document::{self, Invalid, PrinterLimits};
use crate::journal::{
    Actor, Job, JobId, JobKind, JobRequest, JobState, Journal, JournalError, NewJob, SalePayment,
    SaleRequest,
};
use crate::printer::PrinterHandle;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;
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
    /// Refusals go to the audit log through this writer (batched).
    pub audit: crate::journal::AuditWriter,
    pub printers: Arc<BTreeMap<String, Arc<PrinterHandle>>>,
    pub terminals: Arc<BTreeMap<String, Arc<crate::terminal::TerminalHandle>>>,
    pub events: broadcast::Sender<JobId>,
    /// Device and job state changes for `GET /v1/events`.
    pub bus: crate::events::EventBus,
    /// Status page sessions (cookies) on loopback TCP.
    pub sessions: Sessions,
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
            JournalError::IdempotencyConflict(_) | JournalError::IdempotencyOwner(_) => {
                ApiError::new(StatusCode::CONFLICT, "idempotency_conflict", e.to_string())
            }
            JournalError::NotFound(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            JournalError::NotCancellable { .. } => {
                ApiError::new(StatusCode::CONFLICT, "not_cancellable", e.to_string())
            }
            JournalError::Corrupt { .. } => {
                tracing::error!(error = %e, "journal record unreadable");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "journal_corrupt",
                    e.to_string(),
                )
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
        let mut resp = (self.status, Json(body)).into_response();
        resp.extensions_mut().insert(ErrorCode(self.code));
        resp
    }
}

/// The error code of a response, for the audit log.
#[derive(Clone, Copy)]
struct ErrorCode(&'static str);

/// Set on a response whose audit entry was written with its job, in the same transaction.
#[derive(Clone, Copy)]
struct AuditRecorded;

/// The job a fiscal response is about, and whether it was a replay, for the audit log.
#[derive(Clone, Copy)]
struct AuditJob {
    id: JobId,
    replayed: bool,
}

/// The client behind a request and what it asks for, set once it is authorised.
#[derive(Clone, Debug)]
pub struct Caller {
    pub who: Principal,
    /// e.g. `POST /v1/receipts`.
    pub operation: String,
}

impl Caller {
    fn actor(&self) -> Actor {
        Actor {
            name: self.who.name.clone(),
            role: self.who.role.as_str().into(),
            operation: self.operation.clone(),
            may_replay_others: self.who.sees_all_jobs(),
        }
    }
    /// 403 unless the table allows this caller `payment_type` on this route.
    fn require(&self, payment_type: Option<&str>) -> Result<(), ApiError> {
        let (method, route) = self.operation.split_once(' ').unwrap_or(("", ""));
        let roles = auth::allowed_roles(method, route, payment_type);
        if roles.contains(&self.who.role) {
            return Ok(());
        }
        let what = match payment_type {
            Some(t) => format!("{} with type {t:?}", self.operation),
            None => self.operation.clone(),
        };
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "{} has the {} role and may not run {what}; it needs the {} role (ask a manager, or use a token with that role)",
                self.who.name,
                self.who.role.as_str(),
                auth::role_list(&roles)
            ),
        ))
    }
}

type ApiResult = Result<Response, ApiError>;

pub use crate::auth::Tokens;

/// How a listener identifies its clients.
#[derive(Clone)]
pub struct Auth {
    pub tokens: Tokens,
    /// Whether the token file was configured (so tokens can be checked at all).
    pub has_token_file: bool,
    /// The role of a request without a token; None: every request needs a token (TCP).
    pub anonymous_role: Option<Role>,
    /// `socket` or `tcp`: the principal a request without a valid token is audited under.
    pub listener: &'static str,
}

/// The router for one listener: authentication (401), the access table (403) and the
/// audit log wrap every route.
pub fn router(state: AppState, auth: Auth) -> Router {
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
        .route("/v1/audit", get(get_audit))
        .route("/v1/events", get(get_events))
        .route("/metrics", get(get_metrics))
        .route("/", get(status_page))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authorize,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), auth),
            authenticate,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// `METHOD /path` for the audit log of a request that matched no route (kept short).
fn raw_operation(req: &Request) -> String {
    let path: String = req.uri().path().chars().take(120).collect();
    format!("{} {path}", req.method())
}

/// The job id in `/v1/jobs/{id}/...` or `/v1/sales/{id}/...`, for the audit log.
fn path_job(route: &str, path: &str) -> Option<JobId> {
    if route.starts_with("/v1/jobs/{id}") || route.starts_with("/v1/sales/{id}") {
        path.split('/').nth(3).and_then(|id| id.parse().ok())
    } else {
        None
    }
}

/// Append to the audit log (committed in the background, within milliseconds; readers of
/// the log flush first). A failure is logged: the answer to the client stands.
async fn audit(
    state: &AppState,
    principal: &str,
    role: Option<Role>,
    operation: &str,
    job: Option<JobId>,
    outcome: String,
    detail: Option<&'static str>,
) {
    state.audit.append(crate::journal::NewAudit {
        principal: principal.to_string(),
        role: role.map(Role::as_str),
        operation: operation.to_string(),
        job,
        outcome,
        detail,
    });
}

fn outcome(status: StatusCode, replayed: bool) -> String {
    match status.as_u16() {
        200..=299 if replayed => "replayed".into(),
        200..=299 => "accepted".into(),
        s @ (401 | 403) => format!("refused:{s}"),
        s @ 400..=499 => format!("invalid:{s}"),
        s => format!("error:{s}"),
    }
}

/// Every request: who is it? A valid bearer token gives its name and role; without one,
/// the Unix socket gives `socket_role` and TCP answers 401. A token that is not in the
/// token file is 401 on either listener.
async fn authenticate(
    State((state, auth)): State<(AppState, Auth)>,
    mut req: Request,
    next: Next,
) -> Response {
    if req.method() == axum::http::Method::GET
        && req.uri().path() == "/"
        && let Some(token) = page_token(req.uri().query())
    {
        return page_login(&state, &auth, &token).await;
    }
    let bare = !req.headers().contains_key(header::AUTHORIZATION);
    let safe = matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    // A status page session: for GETs only, so the cookie never authorises a change.
    if bare
        && safe
        && let Some(p) = session_cookie(req.headers()).and_then(|c| state.sessions.check(&c))
    {
        req.extensions_mut().insert(p);
        return next.run(req).await;
    }
    if bare && safe && auth.anonymous_role.is_none() && req.uri().path() == "/" {
        return login_page(StatusCode::UNAUTHORIZED, None);
    }
    let refused = match req.headers().get(header::AUTHORIZATION) {
        None => match auth.anonymous_role {
            Some(role) => {
                req.extensions_mut().insert(Principal {
                    name: auth::SOCKET.into(),
                    role,
                });
                return next.run(req).await;
            }
            None => "this listener needs `Authorization: Bearer <token>` with a token from the token file".to_string(),
        },
        Some(v) => {
            let token = v
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
                .map(str::trim);
            match token.and_then(|t| auth.tokens.check(t)) {
                Some(p) => {
                    let p = p.clone();
                    req.extensions_mut().insert(p);
                    return next.run(req).await;
                }
                None if token.is_none() => {
                    "the Authorization header must be `Bearer <token>`".to_string()
                }
                None if !auth.has_token_file => "no token file is configured ([api] token_file), so no token is valid; send the request without Authorization to get the socket's role".to_string(),
                None => "the bearer token is not in the token file; check the token, or ask for its SHA-256 hash to be added to the token file".to_string(),
            }
        }
    };
    let op = raw_operation(&req);
    let err = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", refused);
    audit(
        &state,
        auth.listener,
        None,
        &op,
        None,
        outcome(err.status, false),
        Some(err.code),
    )
    .await;
    err.into_response()
}

/// Every route: the access table (403), then the audit log of fiscal operations.
async fn authorize(
    State(state): State<AppState>,
    matched: MatchedPath,
    mut req: Request,
    next: Next,
) -> Response {
    let route = matched.as_str().to_string();
    let method = req.method().as_str().to_string();
    let Some(who) = req.extensions().get::<Principal>().cloned() else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the request carries no identity; send `Authorization: Bearer <token>`",
        )
        .into_response();
    };
    let caller = Caller {
        who,
        operation: format!("{method} {route}"),
    };
    let job = path_job(&route, req.uri().path());
    if let Err(e) = caller.require(None) {
        audit(
            &state,
            &caller.who.name,
            Some(caller.who.role),
            &caller.operation,
            job,
            outcome(e.status, false),
            Some(e.code),
        )
        .await;
        return e.into_response();
    }
    req.extensions_mut().insert(caller.clone());
    let resp = next.run(req).await;
    if auth::audited(&method, &route) && resp.extensions().get::<AuditRecorded>().is_none() {
        let done = resp.extensions().get::<AuditJob>().copied();
        audit(
            &state,
            &caller.who.name,
            Some(caller.who.role),
            &caller.operation,
            done.map(|d| d.id).or(job),
            outcome(resp.status(), done.is_some_and(|d| d.replayed)),
            resp.extensions().get::<ErrorCode>().map(|c| c.0),
        )
        .await;
    }
    resp
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
            crate::device::DeviceState::Ready
                | crate::device::DeviceState::Busy
                | crate::device::DeviceState::PaperLow
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
        "owner": job.owner,
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
    caller: &Caller,
    device: (&str, &tokio::sync::Notify),
    request: JobRequest,
    key: Option<String>,
    wait: Option<Duration>,
) -> ApiResult {
    submit_with(state, caller, device, request, key, wait, |_| async {}).await
}

/// [`submit`], running `queued` with the job right after it is committed.
#[allow(clippy::too_many_arguments)]
async fn submit_with<F: std::future::Future<Output = ()>>(
    state: &AppState,
    caller: &Caller,
    device: (&str, &tokio::sync::Notify),
    request: JobRequest,
    key: Option<String>,
    wait: Option<Duration>,
    queued: impl FnOnce(JobId) -> F,
) -> ApiResult {
    let kind = request.kind();
    let new = NewJob {
        device: device.0.to_string(),
        request,
        idempotency_key: key,
        actor: Some(caller.actor()),
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
        state.bus.job(&job);
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
    let mut resp = (status, Json(job_json(&job))).into_response();
    resp.extensions_mut().insert(AuditRecorded);
    Ok(resp)
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

/// What every job-creating request carries: `?wait=`, an optional `Idempotency-Key` and a
/// JSON body. Extracting it checks all three, so handlers start from valid input.
struct JobPost {
    wait: Option<Duration>,
    key: Option<String>,
    body: Value,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for JobPost {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let wait = parse_wait(req.uri().query())?;
        let key = idempotency_key(req.headers())?;
        let headers = req.headers().clone();
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        let body = parse_body(&headers, &bytes)?;
        Ok(JobPost { wait, key, body })
    }
}

async fn post_receipt(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JobPost { wait, key, body }: JobPost,
) -> ApiResult {
    let printer = pick_printer(&state, &body)?;
    let active = printer.active_vat();
    let limits = PrinterLimits {
        max_name_length: printer.config.max_name_length,
        active_vat: active.as_deref(),
    };
    let receipt = document::receipt(&body, &limits, &["printer"]).map_err(ApiError::invalid)?;
    submit(
        &state,
        &caller,
        (&printer.config.id, &printer.wake),
        JobRequest::Receipt(receipt),
        key,
        wait,
    )
    .await
}

async fn post_daily_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JobPost { wait, key, body }: JobPost,
) -> ApiResult {
    let printer = pick_printer(&state, &body)?;
    document::empty(&body, &["printer"]).map_err(ApiError::invalid)?;
    submit(
        &state,
        &caller,
        (&printer.config.id, &printer.wake),
        JobRequest::DailyReport,
        key,
        wait,
    )
    .await
}

async fn post_cash(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JobPost { wait, key, body }: JobPost,
) -> ApiResult {
    let printer = pick_printer(&state, &body)?;
    let cash = document::cash(&body, &["printer"]).map_err(ApiError::invalid)?;
    submit(
        &state,
        &caller,
        (&printer.config.id, &printer.wake),
        JobRequest::Cash(cash),
        key,
        wait,
    )
    .await
}

async fn post_printout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JobPost { wait, key, body }: JobPost,
) -> ApiResult {
    let printer = pick_printer(&state, &body)?;
    let p = document::printout(&body, &["printer"]).map_err(ApiError::invalid)?;
    submit(
        &state,
        &caller,
        (&printer.config.id, &printer.wake),
        JobRequest::Printout(p),
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
    Extension(caller): Extension<Caller>,
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
        // A cashier sees only its own jobs; another's is "not found", so ids leak nothing.
        .filter(|job| caller.who.sees_all_jobs() || job.owner.as_deref() == Some(&caller.who.name))
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
    Extension(caller): Extension<Caller>,
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
    let owner = (!caller.who.sees_all_jobs()).then_some(caller.who.name);
    let jobs = state
        .journal
        .run(move |j| j.list(filter, limit, owner.as_deref()))
        .await?;
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
    Extension(caller): Extension<Caller>,
    JobPost { wait, key, body }: JobPost,
) -> ApiResult {
    if let Some(kind) = body.get("type").and_then(Value::as_str)
        && auth::RULES.iter().any(|r| r.payment_type == Some(kind))
    {
        caller.require(Some(kind))?;
    }
    let terminal = pick_terminal(&state, &body)?;
    let p = document::card_payment(&body, terminal.config.currency_code(), &["terminal"])
        .map_err(ApiError::invalid)?;
    submit(
        &state,
        &caller,
        (&terminal.config.id, &terminal.wake),
        JobRequest::Payment(p),
        key,
        wait,
    )
    .await
}

async fn post_end_of_day(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JobPost { wait, key, body }: JobPost,
) -> ApiResult {
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
        &caller,
        (&terminal.config.id, &terminal.wake),
        JobRequest::EndOfDay,
        key,
        wait,
    )
    .await
}

async fn post_sale(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JobPost { wait, key, body }: JobPost,
) -> ApiResult {
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
    let request = JobRequest::Sale(SaleRequest {
        receipt,
        printer: printer.config.id.clone(),
        payment: SalePayment {
            kind: "sale".into(),
            amount,
            currency: terminal.config.currency_code(),
        },
    });
    submit(
        &state,
        &caller,
        (&terminal.config.id, &terminal.wake),
        request,
        key,
        wait,
    )
    .await
}

/// Reverse the card payment of a sale whose receipt was not printed.
async fn reverse_sale(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
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
    let conflict =
        |m: crate::sales::NotReversible| ApiError::new(StatusCode::CONFLICT, "not_reversible", m.0);
    let plan = match crate::sales::reversal(&sale).map_err(conflict)? {
        crate::sales::Reversal::AlreadyQueued(existing) => {
            let job = state
                .journal
                .run(move |j| j.get(existing))
                .await?
                .ok_or(JournalError::NotFound(existing))?;
            let mut resp = (StatusCode::OK, Json(job_json(&job))).into_response();
            resp.extensions_mut().insert(AuditJob {
                id: existing,
                replayed: true,
            });
            return Ok(resp);
        }
        crate::sales::Reversal::Allowed(plan) => plan,
    };
    if let Some(rid) = plan.receipt_job {
        let receipt = state.journal.run(move |j| j.get(rid)).await?;
        plan.check_receipt(receipt.as_ref()).map_err(conflict)?;
    }
    let terminal = state
        .terminals
        .get(&plan.terminal)
        .cloned()
        .ok_or_else(|| conflict(plan.terminal_gone()))?;
    let request = JobRequest::Payment(plan.request(terminal.config.currency_code()));
    let key = Some(plan.idempotency_key());
    let journal = state.journal.clone();
    submit_with(
        &state,
        &caller,
        (&terminal.config.id, &terminal.wake),
        request,
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    limit: Option<u32>,
    before: Option<i64>,
}

/// `GET /v1/audit?limit=&before=`: the audit log, newest first, a page at a time.
async fn get_audit(
    State(state): State<AppState>,
    q: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let Query(q) = q.map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            format!("{}; use limit=1..1000 and before=<audit id>", e.body_text()),
        )
    })?;
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let before = q.before;
    state.audit.flush().await;
    let mut entries = state
        .journal
        .run(move |j| j.audit_page(before, limit + 1))
        .await?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    let next_before = if more {
        entries.last().map(|e| e.id)
    } else {
        None
    };
    Ok(Json(json!({"entries": entries, "next_before": next_before})).into_response())
}

// ---- Events, metrics and the status page -------------------------------------------

/// How often an idle event stream sends a keep-alive comment.
pub const EVENTS_KEEP_ALIVE: Duration = Duration::from_secs(15);

fn sse_event(e: &crate::events::Event) -> axum::response::sse::Event {
    axum::response::sse::Event::default()
        .event(e.name)
        .id(e.id.to_string())
        .data(&e.data)
}

fn reset_event(last_id: u64, why: &str) -> axum::response::sse::Event {
    axum::response::sse::Event::default()
        .event("reset")
        .id(last_id.to_string())
        .data(json!({"type": "reset", "reason": why}).to_string())
}

/// `GET /v1/events`: device and job state changes as Server-Sent Events. With
/// `Last-Event-ID`, the events after it come first (or `reset` when they are no longer
/// kept: re-read the state). Cashiers get only their own jobs' events.
async fn get_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    use crate::events::{Event, Resume};
    use axum::response::sse::{KeepAlive, Sse};
    use futures_util::StreamExt;
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let (resume, rx) = state.bus.subscribe(last);
    let owner = (!caller.who.sees_all_jobs()).then(|| caller.who.name.clone());
    let visible = move |e: &Event| match &owner {
        None => true,
        Some(me) => e.name != "job" || e.owner.as_deref() == Some(me.as_str()),
    };
    let first: Vec<axum::response::sse::Event> = match resume {
        Resume::Replay(events) => events
            .iter()
            .filter(|e| visible(e))
            .map(|e| sse_event(e))
            .collect(),
        Resume::Reset { last_id } => vec![reset_event(
            last_id,
            "the events after Last-Event-ID are no longer kept; read the devices and jobs again",
        )],
    };
    struct Live<F> {
        rx: broadcast::Receiver<Arc<Event>>,
        bus: crate::events::EventBus,
        shutdown: tokio_util::sync::CancellationToken,
        visible: F,
    }
    let live = futures_util::stream::unfold(
        Live {
            rx,
            bus: state.bus.clone(),
            shutdown: state.shutdown.clone(),
            visible,
        },
        |mut l| async move {
            loop {
                let r = tokio::select! {
                    r = l.rx.recv() => r,
                    // The stream ends when the daemon stops, so shutdown is not held up.
                    _ = l.shutdown.cancelled() => return None,
                };
                match r {
                    Ok(e) if (l.visible)(&e) => return Some((sse_event(&e), l)),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        l.rx = l.rx.resubscribe();
                        let ev = reset_event(
                            l.bus.last_id(),
                            "this client fell behind and missed events; read the devices and jobs again",
                        );
                        return Some((ev, l));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    let stream = futures_util::stream::iter(first)
        .chain(live)
        .map(Ok::<_, std::convert::Infallible>);
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(EVENTS_KEEP_ALIVE))
        .into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}

/// `GET /metrics`: Prometheus text. Device states, queue depths and link counters are
/// read now; the rest is counted as it happens (see `crate::metrics`).
async fn get_metrics(State(state): State<AppState>) -> ApiResult {
    let ids: Vec<String> = state
        .printers
        .keys()
        .chain(state.terminals.keys())
        .cloned()
        .collect();
    let depths = {
        let ids = ids.clone();
        state
            .journal
            .run(move |j| {
                ids.iter()
                    .map(|id| j.queue_depth(id))
                    .collect::<Result<Vec<_>, _>>()
            })
            .await?
    };
    for (id, depth) in ids.iter().zip(depths) {
        crate::metrics::queue_depth(id, depth);
    }
    for (id, p) in state.printers.iter() {
        crate::metrics::register_device(id, true);
        crate::metrics::device_state(id, "fiscal_printer", p.status().state);
        let st = *p.stats.lock().unwrap_or_else(|e| e.into_inner());
        crate::metrics::link(
            id,
            st.bytes_out,
            st.bytes_in,
            Some((st.frames_out, st.frames_in)),
        );
        crate::metrics::frame_errors(id, st.frame_errors, st.garbage_bytes);
    }
    for (id, t) in state.terminals.iter() {
        let s = t.status();
        crate::metrics::register_device(id, false);
        crate::metrics::device_state(id, "payment_terminal", s.state);
        crate::metrics::link(id, s.bytes_out, s.bytes_in, None);
    }
    metrics::gauge!("fiscald_event_subscribers").set(state.bus.subscribers() as f64);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response())
}

/// The status page: one HTML document with its CSS and script inline.
const STATUS_PAGE: &str = include_str!("status_page.html");

/// The page's Content-Security-Policy: only its own inline script and style (by hash),
/// and requests to the daemon itself.
fn page_csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        use sha2::Digest;
        let inline = |open: &str, close: &str| {
            let start = STATUS_PAGE.find(open).map(|i| i + open.len()).unwrap_or(0);
            let end = STATUS_PAGE[start..].find(close).map_or(start, |i| start + i);
            let digest = sha2::Sha256::digest(&STATUS_PAGE.as_bytes()[start..end]);
            format!("'sha256-{}'", base64(&digest))
        };
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            inline("<script>", "</script>"),
            inline("<style>", "</style>")
        )
    })
}

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn html(status: StatusCode, body: String, csp: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the status page for the technician.
async fn status_page() -> Response {
    html(StatusCode::OK, STATUS_PAGE.to_string(), page_csp())
}

/// The page shown on loopback TCP without a session: how to open it with a token.
fn login_page(status: StatusCode, problem: Option<&str>) -> Response {
    let problem = problem
        .map(|p| format!("<p class=problem>{p}</p>"))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>fiscald</title>\
         <meta name=viewport content=\"width=device-width\"></head><body>\
         <h1>fiscald</h1>{problem}<p>This status page needs a token from the daemon's token file.</p>\
         <form method=get action=\"/\"><label>Token <input type=password name=token autocomplete=off autofocus></label> \
         <button>Open</button></form></body></html>"
    );
    html(
        status,
        body,
        "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    )
}

/// The `token` query parameter of `GET /?token=...`.
fn page_token(query: Option<&str>) -> Option<String> {
    let uri: axum::http::Uri = format!("/?{}", query?).parse().ok()?;
    let Query(q) = Query::<std::collections::HashMap<String, String>>::try_from_uri(&uri).ok()?;
    q.get("token").cloned()
}

/// The status page's session cookie.
pub const SESSION_COOKIE: &str = "fiscald_session";

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// `GET /?token=T`: a valid token opens a session for its principal (an `HttpOnly`,
/// `SameSite=Strict` cookie, valid for GETs only) and redirects to `/`, so the token
/// leaves the address bar at once.
async fn page_login(state: &AppState, auth: &Auth, token: &str) -> Response {
    let Some(p) = auth.tokens.check(token.trim()).cloned() else {
        audit(
            state,
            auth.listener,
            None,
            "GET /",
            None,
            outcome(StatusCode::UNAUTHORIZED, false),
            Some("unauthorized"),
        )
        .await;
        return login_page(
            StatusCode::UNAUTHORIZED,
            Some("That token is not in the token file."),
        );
    };
    let Some(id) = state.sessions.create(p) else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "cannot make a session id (/dev/urandom)",
        )
        .into_response();
    };
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::REFERRER_POLICY, "no-referrer".to_string()),
        ],
    )
        .into_response()
}

/// How long a status page session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions kept; the oldest goes first.
const MAX_SESSIONS: usize = 64;

/// Status page sessions: a random id (the cookie) → the token's principal. They live in
/// memory only, so a restart ends them; the token itself is never stored in the browser.
#[derive(Clone, Default)]
pub struct Sessions {
    inner:
        Arc<std::sync::Mutex<std::collections::HashMap<String, (Principal, std::time::Instant)>>>,
}

impl Sessions {
    fn map(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (Principal, std::time::Instant)>>
    {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `who`; None if no random id can be made.
    pub fn create(&self, who: Principal) -> Option<String> {
        use std::io::Read;
        let mut raw = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut raw))
            .ok()?;
        let id = hex::encode(raw);
        let mut map = self.map();
        map.retain(|_, (_, at)| at.elapsed() < SESSION_TTL);
        while map.len() >= MAX_SESSIONS {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            map.remove(&oldest);
        }
        map.insert(id.clone(), (who, std::time::Instant::now()));
        Some(id)
    }

    /// The principal of a live session.
    pub fn check(&self, id: &str) -> Option<Principal> {
        let map = self.map();
        map.get(id)
            .filter(|(_, at)| at.elapsed() < SESSION_TTL)
            .map(|(p, _)| p.clone())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_page_token_is_read_from_the_query() {
        assert_eq!(
            super::page_token(Some("token=a%2Bb")).as_deref(),
            Some("a+b")
        );
        assert_eq!(super::page_token(Some("x=1")), None);
        assert_eq!(super::page_token(None), None);
    }
}
