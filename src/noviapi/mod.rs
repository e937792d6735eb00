//! A NoviAPI-compatible REST facade: POS software written for Novitus NoviAPI drives any
//! printer fiscald speaks, through fiscald's journal.
//!
//! - `tokens`: `GET`/`PATCH /api/v1/token`, the JWTs (a random HS256 key per start, never
//!   written anywhere), the rate limit, and the bearer check on every other path.
//! - `requests`: the two-phase life cycle (`POST` stores, `PUT` queues exactly one fiscald
//!   job, `GET` long-polls, `DELETE` removes what has not started) and `/api/v1/queue`.
//! - `mapping`: NoviAPI bodies → the native API's bodies, validated by [`crate::document`]
//!   (so the messages are the native API's), and the facade's field names in errors.
//! - `status`: the `status` endpoint's answers, from the printer's status and the journal.
//!
//! The stored requests are `noviapi_requests` in the journal (`src/journal/noviapi.rs`).

mod commands;
mod hs256;
mod mapping;
mod requests;
mod status;
mod tokens;

use crate::api::AppState;
use crate::auth::Role;
use crate::config::NoviApiConfig;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;

/// The principal NoviAPI callers' jobs and audit entries carry.
pub const PRINCIPAL: &str = "noviapi";

/// The facade's state: the native API's, the configuration and the tokens.
#[derive(Clone)]
pub struct Facade {
    pub(crate) app: AppState,
    pub(crate) printer: String,
    pub(crate) terminal: Option<String>,
    pub(crate) role: Role,
    pub(crate) tokens: Arc<tokens::TokenIssuer>,
    /// Host names answered besides the loopback ones (`[api] allowed_hosts`).
    pub(crate) allowed_hosts: Arc<Vec<String>>,
}

impl Facade {
    /// The facade for `config` over the native API's state. Fails when no printer is
    /// configured for it.
    pub fn new(
        app: AppState,
        config: &NoviApiConfig,
        allowed_hosts: &[String],
    ) -> anyhow::Result<Facade> {
        let printer = match &config.printer {
            Some(p) => p.clone(),
            None => app
                .printers
                .keys()
                .next()
                .cloned()
                .ok_or_else(|| anyhow::anyhow!("[noviapi] needs a printer"))?,
        };
        Ok(Facade {
            app,
            printer,
            terminal: config.terminal.clone(),
            role: config.role,
            tokens: Arc::new(tokens::TokenIssuer::new()?),
            allowed_hosts: Arc::new(allowed_hosts.to_vec()),
        })
    }
}

/// The facade's router, under `/api/v1`.
pub fn router(facade: Facade) -> Router {
    Router::new()
        .route("/api/v1", get(comm_test))
        .route("/api/v1/", get(comm_test))
        .route(
            "/api/v1/token",
            get(tokens::get_token).patch(tokens::patch_token),
        )
        .nest(
            "/api/v1",
            Router::new()
                .route(
                    "/queue",
                    get(requests::queue_check).delete(requests::queue_clear),
                )
                .route("/{endpoint}", axum::routing::post(requests::post_request))
                .route(
                    "/{endpoint}/{id}",
                    get(requests::check_request)
                        .put(requests::confirm_request)
                        .delete(requests::delete_request),
                )
                .route_layer(axum::middleware::from_fn_with_state(
                    facade.clone(),
                    tokens::require_bearer,
                )),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(crate::api::MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            facade.clone(),
            local_only,
        ))
        .with_state(facade)
}

/// No DNS rebinding and no web pages: the `Host` must be a loopback name (or one of
/// `[api] allowed_hosts`), and a browser's cross-site request (`Origin`) is refused. A token
/// is had without credentials, so this is what keeps other web sites from printing.
async fn local_only(
    axum::extract::State(f): axum::extract::State<Facade>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("");
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    let loopback = matches!(name, "localhost" | "[::1]")
        || name
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|a| a.is_loopback());
    if !loopback && !f.allowed_hosts.iter().any(|h| h.eq_ignore_ascii_case(name)) {
        return NoviError::new(
            StatusCode::MISDIRECTED_REQUEST,
            8,
            format!("Host {host:?} is not this server's; use 127.0.0.1 or localhost"),
        )
        .into_response();
    }
    if req.headers().contains_key(axum::http::header::ORIGIN) {
        return NoviError::new(
            StatusCode::FORBIDDEN,
            6,
            "requests from web pages (with an Origin header) are refused by fiscald's NoviAPI facade",
        )
        .into_response();
    }
    next.run(req).await
}

/// `GET /api/v1`: the connection test, without a token.
async fn comm_test() -> Response {
    (StatusCode::OK, axum::Json(json!({}))).into_response()
}

async fn not_found() -> NoviError {
    NoviError::not_found("no such NoviAPI path")
}

async fn method_not_allowed() -> NoviError {
    NoviError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        8,
        "this NoviAPI path does not take that method",
    )
}

/// A NoviAPI error: `{"exception": {"code", "description", "errors"?}}` with the status
/// codes NoviAPI uses (400: 7 parse, 8 validation; 401: 4; 403: 6; 404: 1; 409: 11;
/// 429: 2; 500: 13).
#[derive(Debug)]
pub struct NoviError {
    pub status: StatusCode,
    pub code: u16,
    pub description: String,
    pub errors: Vec<String>,
    /// Extra members of `exception` (e.g. `allowed_refresh_date`).
    pub extra: Option<Box<(&'static str, Value)>>,
    /// The waiting daily report's request id, beside `exception` (409, code 11).
    pub daily_report_id: Option<Box<str>>,
}

impl NoviError {
    pub fn new(status: StatusCode, code: u16, description: impl Into<String>) -> Self {
        NoviError {
            status,
            code,
            description: description.into(),
            errors: Vec::new(),
            extra: None,
            daily_report_id: None,
        }
    }
    pub fn parse(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, 7, description)
    }
    pub fn validation(description: impl Into<String>) -> Self {
        let d = description.into();
        NoviError {
            errors: vec![d.clone()],
            ..Self::new(StatusCode::BAD_REQUEST, 8, d)
        }
    }
    pub fn unauthorized(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, 4, description)
    }
    pub fn not_found(description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, 1, description)
    }
    pub fn internal(description: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, 13, description)
    }
}

impl From<crate::journal::JournalError> for NoviError {
    fn from(e: crate::journal::JournalError) -> Self {
        tracing::error!(error = %e, "NoviAPI: journal failure");
        NoviError::internal(format!("{e}; nothing was queued, retry later"))
    }
}

impl IntoResponse for NoviError {
    fn into_response(self) -> Response {
        let mut exception = json!({"code": self.code, "description": self.description});
        if !self.errors.is_empty() {
            exception["errors"] = json!(self.errors);
        }
        if let Some(extra) = self.extra {
            let (k, v) = *extra;
            exception[k] = v;
        }
        let mut body = json!({ "exception": exception });
        if let Some(id) = self.daily_report_id {
            body["daily_report_id"] = json!(&*id);
        }
        (self.status, axum::Json(body)).into_response()
    }
}
