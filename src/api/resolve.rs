//! `POST /v1/payments/{id}/resolve` (manager): a person records what the terminal's own
//! printout says about a payment whose outcome the terminal could not tell
//! (`needs_attention`), e.g. an interrupted ECR-EFT sale. Protocol-neutral.

use super::jobs::{JobPost, job_json, parse_id};
use super::{ApiError, ApiResult, AppState, AuditJob, Caller};
use crate::journal::resolve::{Decision, Resolution};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde_json::Value;

/// Longest transaction id and note accepted (characters).
const MAX_TRANSACTION_ID: usize = 40;
const MAX_NOTE: usize = 200;

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    ApiError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "invalid_request",
        message: format!("{field}: {}", message.into()),
        field: Some(field.into()),
    }
}

/// A printable text of at most `max` characters, or a 422 naming `field`.
fn text(body: &Value, field: &str, max: usize) -> Result<Option<String>, ApiError> {
    match body.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let s = s.trim();
            if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
                return Err(invalid(
                    field,
                    format!("must be 1 to {max} printable characters"),
                ));
            }
            Ok(Some(s.to_string()))
        }
        Some(_) => Err(invalid(field, "must be a string")),
    }
}

/// The body as a decision, or a 422.
fn decision(body: &Value) -> Result<(Decision, Option<String>), ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(invalid("outcome", "the body must be a JSON object"));
    };
    if let Some(k) = obj
        .keys()
        .find(|k| !["outcome", "transaction_id", "note"].contains(&k.as_str()))
    {
        return Err(invalid(
            k,
            "unknown field; expected outcome, transaction_id, note",
        ));
    }
    let txid = text(body, "transaction_id", MAX_TRANSACTION_ID)?;
    let note = text(body, "note", MAX_NOTE)?;
    let d = match body.get("outcome").and_then(Value::as_str) {
        Some("approved") => Decision::Approved {
            transaction_id: txid.ok_or_else(|| {
                invalid(
                    "transaction_id",
                    "an approved payment needs the transaction id from the terminal's printout",
                )
            })?,
        },
        Some("not_charged") if txid.is_some() => {
            return Err(invalid(
                "transaction_id",
                "a payment that was not charged has no transaction id",
            ));
        }
        Some("not_charged") => Decision::NotCharged,
        _ => {
            return Err(invalid(
                "outcome",
                "must be \"approved\" or \"not_charged\"",
            ));
        }
    };
    Ok((d, note))
}

pub(super) async fn resolve_payment(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JobPost { body, .. }: JobPost,
) -> ApiResult {
    let id = parse_id(&id)?;
    let (decision, note) = decision(&body)?;
    let resolution = Resolution {
        decision,
        by: caller.who.name.clone(),
        note,
    };
    let job = state
        .journal
        .run(move |j| j.resolve_payment(id, &resolution))
        .await?
        .map_err(|e| ApiError::new(StatusCode::CONFLICT, "not_resolvable", e.0))?;
    tracing::info!(job = id, by = %caller.who.name, state = %job.state.as_str(), "payment resolved by hand");
    let _ = state.events.send(id);
    let mut resp = (StatusCode::OK, Json(job_json(&job))).into_response();
    resp.extensions_mut().insert(AuditJob {
        id,
        replayed: false,
    });
    Ok(resp)
}
