//! Printer documents (receipt, daily report, cash, printout), jobs (get, list, cancel), and
//! what every job-creating request shares: `?wait=`, `Idempotency-Key`, a JSON body, the
//! journal submission and the wait for the job to end.

use super::devices::{PrinterTarget, Queue, pick_printer};
use super::types::{JobList, JobView, to_json};
use super::{
    ApiError, ApiResult, AppState, AuditRecorded, Caller, MAX_BODY_BYTES, MAX_WAIT_SECONDS,
};
use crate::document;
use crate::journal::{IdempotencyKey, Job, JobId, JobRequest, JobState, JournalError, NewJob};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use tokio::sync::broadcast;

/// A job as the API shows it (a [`JobView`]).
pub fn job_json(job: &Job) -> Value {
    to_json(&JobView::from(job))
}

/// The query of a document or job request: only `wait` is known.
pub(super) fn parse_wait(query: Option<&str>) -> Result<Option<Duration>, ApiError> {
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

/// The `Idempotency-Key` header: a client key, scoped to the caller by the journal.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let s = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|s| !s.is_empty() && s.len() <= 255);
    match s {
        Some(s) => Ok(Some(IdempotencyKey::Client(s.to_string()))),
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
pub(super) async fn submit(
    state: &AppState,
    caller: &Caller,
    device: Queue<'_>,
    request: JobRequest,
    key: Option<IdempotencyKey>,
    wait: Option<Duration>,
) -> ApiResult {
    submit_with(state, caller, device, request, key, wait, |_| async {}).await
}

/// [`submit`], running `queued` with the job right after it is committed.
#[allow(clippy::too_many_arguments)]
pub(super) async fn submit_with<F: std::future::Future<Output = ()>>(
    state: &AppState,
    caller: &Caller,
    device: Queue<'_>,
    request: JobRequest,
    key: Option<IdempotencyKey>,
    wait: Option<Duration>,
    queued: impl FnOnce(JobId) -> F,
) -> ApiResult {
    let (status, job) = submit_job(state, caller, device, request, key, wait, queued).await?;
    Ok(job_response(status, &job))
}

/// A job-creating request's answer: the job, with the status given.
pub(super) fn job_response(status: StatusCode, job: &Job) -> axum::response::Response {
    let mut resp = (status, Json(job_json(job))).into_response();
    resp.extensions_mut().insert(AuditRecorded);
    resp
}

/// Journal the job (or find the one its idempotency key made), wake its device, and wait
/// for it as asked: the status to answer with (200 once ended and waited for or replayed,
/// else 202) and the job.
#[allow(clippy::too_many_arguments)]
pub(super) async fn submit_job<F: std::future::Future<Output = ()>>(
    state: &AppState,
    caller: &Caller,
    device: Queue<'_>,
    request: JobRequest,
    key: Option<IdempotencyKey>,
    wait: Option<Duration>,
    queued: impl FnOnce(JobId) -> F,
) -> Result<(StatusCode, Job), ApiError> {
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
    Ok((status, job))
}

async fn wait_for(
    state: &AppState,
    id: JobId,
    rx: &mut broadcast::Receiver<JobId>,
    wait: Duration,
) -> Result<Job, ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let job = load_job(state, id).await?;
        if job.state.is_terminal() {
            // The event stream (and its metrics) hear of the end before the caller does;
            // the bus publishes each state once, whoever reads it first.
            state.bus.job(&job);
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
pub(super) struct JobPost {
    pub(super) wait: Option<Duration>,
    pub(super) key: Option<IdempotencyKey>,
    pub(super) body: Value,
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

/// A printer document: pick the printer, validate the body into the job's request with
/// `document`, and submit it.
pub(super) async fn submit_to_printer(
    state: &AppState,
    caller: &Caller,
    JobPost { wait, key, body }: JobPost,
    document: impl FnOnce(&PrinterTarget, &Value) -> Result<JobRequest, document::Invalid>,
) -> ApiResult {
    let printer = pick_printer(state, &body)?;
    let request = document(&printer, &body)
        .and_then(|r| printer.check(&r).map(|()| r))
        .map_err(ApiError::invalid)?;
    submit(state, caller, printer.queue(), request, key, wait).await
}

/// `POST /v1/receipts`.
pub(super) async fn post_receipt(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    post: JobPost,
) -> ApiResult {
    submit_to_printer(&state, &caller, post, |printer, body| {
        printer
            .with_limits(|limits| document::receipt(body, limits, &["printer"]))
            .map(JobRequest::Receipt)
    })
    .await
}

/// `POST /v1/reports/daily`.
pub(super) async fn post_daily_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    post: JobPost,
) -> ApiResult {
    submit_to_printer(&state, &caller, post, |_, body| {
        document::empty(body, &["printer"]).map(|()| JobRequest::DailyReport)
    })
    .await
}

/// `POST /v1/cash`.
pub(super) async fn post_cash(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    post: JobPost,
) -> ApiResult {
    submit_to_printer(&state, &caller, post, |_, body| {
        document::cash(body, &["printer"]).map(JobRequest::Cash)
    })
    .await
}

/// `POST /v1/printouts`.
pub(super) async fn post_printout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    post: JobPost,
) -> ApiResult {
    submit_to_printer(&state, &caller, post, |_, body| {
        document::printout(body, &["printer"]).map(JobRequest::Printout)
    })
    .await
}

/// One job from the journal; 404 when there is none.
pub(super) async fn load_job(state: &AppState, id: JobId) -> Result<Job, ApiError> {
    Ok(state
        .journal
        .run(move |j| j.get(id))
        .await?
        .ok_or(JournalError::NotFound(id))?)
}

pub(super) fn parse_id(id: &str) -> Result<JobId, ApiError> {
    id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("job {id:?} not found"),
        )
    })
}

pub(super) async fn get_job(
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
pub(super) struct ListQuery {
    state: Option<String>,
    limit: Option<u32>,
}

pub(super) async fn list_jobs(
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
    let jobs = jobs.iter().map(JobView::from).collect();
    Ok(Json(to_json(&JobList { jobs })).into_response())
}

pub(super) async fn cancel_job(State(state): State<AppState>, Path(id): Path<String>) -> ApiResult {
    let id = parse_id(&id)?;
    let job = state.journal.run(move |j| j.cancel(id)).await?;
    let _ = state.events.send(id);
    Ok(Json(job_json(&job)).into_response())
}
