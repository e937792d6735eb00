//! The audit log: appending refusals and operations (through the batching writer), and
//! `GET /v1/audit`, its pages.

use super::types::AuditPage;
use super::{ApiError, ApiResult, AppState};
use crate::auth::Role;
use crate::journal::JobId;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde::Deserialize;

pub(super) async fn audit(
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

/// Count a refusal of a request whose sender is not known (a 401) in its listener's
/// window of the audit log, instead of a row of its own: an unauthenticated client cannot
/// grow the log by more than a row per window.
pub(super) fn audit_unauthenticated(
    state: &AppState,
    listener: &'static str,
    operation: &str,
    status: StatusCode,
    detail: &'static str,
) {
    state
        .audit
        .append_unauthenticated(crate::journal::Unauthenticated {
            listener,
            operation: operation.to_string(),
            outcome: outcome(status, false),
            detail,
        });
}

pub(super) fn outcome(status: StatusCode, replayed: bool) -> String {
    match status.as_u16() {
        200..=299 if replayed => "replayed".into(),
        200..=299 => "accepted".into(),
        s @ (401 | 403 | 405) => format!("refused:{s}"),
        s @ 400..=499 => format!("invalid:{s}"),
        s => format!("error:{s}"),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    limit: Option<u32>,
    before: Option<i64>,
}

/// `GET /v1/audit?limit=&before=`: the audit log, newest first, a page at a time.
pub(super) async fn get_audit(
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
    Ok(Json(super::types::to_json(&AuditPage {
        entries,
        next_before,
    }))
    .into_response())
}
