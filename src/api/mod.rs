//! The local HTTP/JSON API. Handlers validate, journal and read; they never touch a port.
//!
//! - `middleware`: who is asking (401), may they (403), and the audit log around each route.
//! - `jobs`: printer documents (receipt, daily report, cash, printout), jobs (get, list,
//!   cancel) and the submit-and-wait rules every job-creating request shares.
//! - `cards`: card payments, a terminal's end of day, sales and their reversal (HTTP only;
//!   the sale rules are in [`crate::sales`]).
//! - `devices`: health, devices, and the only code here that knows the device handles.
//! - `events`: `GET /v1/events` (Server-Sent Events). `metrics`: `GET /metrics`.
//! - `status_page`: `GET /`, its login and sessions. `audit`: the audit log's page.
//! - [`types`]: the request and response bodies, shared with `fiscald ctl`.

mod audit;
mod cards;
mod devices;
mod documents;
mod events;
mod jobs;
mod metrics;
mod middleware;
pub mod origin;
mod resolve;
mod status_page;
mod today;
pub mod types;

pub use crate::auth::Tokens;
pub use events::EVENTS_KEEP_ALIVE;
pub use jobs::job_json;
pub use status_page::{SESSION_COOKIE, SESSION_TTL, Sessions};

use crate::auth::{self, Principal, Role};
use crate::document::Invalid;
use crate::journal::{Actor, JobId, Journal, JournalError};
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
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
    pub printers: devices::Printers,
    pub terminals: devices::Terminals,
    pub events: broadcast::Sender<JobId>,
    /// Device and job state changes for `GET /v1/events`.
    pub bus: crate::events::EventBus,
    /// Status page sessions (cookies) on loopback TCP.
    pub sessions: Sessions,
    /// Cancelled when the daemon stops: long waits answer at once with the job as it stands.
    pub shutdown: tokio_util::sync::CancellationToken,
    /// The fleet link (`[fleet]`), when configured.
    pub fleet: Option<std::sync::Arc<crate::fleet::FleetStatus>>,
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
    /// 422 for a validation failure, naming the field.
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
        let body = types::ErrorBody {
            error: types::ErrorDetail {
                code: self.code.into(),
                message: self.message,
                field: self.field,
                device_code: None,
            },
        };
        let mut resp = (self.status, Json(types::to_json(&body))).into_response();
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

/// What a handler answers.
type ApiResult = Result<Response, ApiError>;

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
        .route("/v1/health", get(devices::health))
        .route("/v1/devices", get(devices::devices))
        .route("/v1/receipts", post(jobs::post_receipt))
        .route("/v1/reports/daily", post(jobs::post_daily_report))
        .route("/v1/cash", post(jobs::post_cash))
        .route("/v1/printouts", post(jobs::post_printout))
        .route("/v1/invoices", post(documents::post_invoice))
        .route(
            "/v1/reports/periodic",
            post(documents::post_periodic_report),
        )
        .route("/v1/jobs/{id}/copy", post(documents::post_copy))
        .route("/v1/payments", post(cards::post_payment))
        .route(
            "/v1/terminals/{id}/end-of-day",
            post(cards::post_end_of_day),
        )
        .route("/v1/payments/{id}/resolve", post(resolve::resolve_payment))
        .route("/v1/sales", post(cards::post_sale))
        .route("/v1/sales/{id}/reverse", post(cards::reverse_sale))
        .route("/v1/jobs", get(jobs::list_jobs))
        .route("/v1/jobs/{id}", get(jobs::get_job))
        .route("/v1/jobs/{id}/cancel", post(jobs::cancel_job))
        .route("/v1/audit", get(audit::get_audit))
        .route("/v1/today", get(today::get_today))
        .route("/v1/events", get(events::get_events))
        .route("/metrics", get(metrics::get_metrics))
        .route("/", get(status_page::status_page))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authorize,
        ))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), auth),
            middleware::authenticate,
        ))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
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
