//! Card jobs over HTTP: `POST /v1/payments`, a terminal's end of day, `POST /v1/sales` and
//! `POST /v1/sales/{id}/reverse`. Whether a sale may be reversed, and what to tell the user
//! when not, is decided in [`crate::sales`].

use super::devices::{pick_printer, pick_terminal, terminal};
use super::jobs::{JobPost, job_json, load_job, parse_id, parse_wait, submit, submit_with};
use super::{ApiError, ApiResult, AppState, AuditJob, Caller};
use crate::auth;
use crate::document;
use crate::journal::{JobRequest, SalePayment, SaleRequest};
use crate::sales::{self, NotReversible, Reversal};
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use serde_json::Value;

pub(super) async fn post_payment(
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
    let p = document::card_payment(&body, terminal.currency_code(), &["terminal"])
        .map_err(ApiError::invalid)?;
    submit(
        &state,
        &caller,
        terminal.queue(),
        JobRequest::Payment(p),
        key,
        wait,
    )
    .await
}

pub(super) async fn post_end_of_day(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JobPost { wait, key, body }: JobPost,
) -> ApiResult {
    document::empty(&body, &[]).map_err(ApiError::invalid)?;
    let terminal = terminal(&state, &id).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no terminal {id:?} is configured"),
        )
    })?;
    submit(
        &state,
        &caller,
        terminal.queue(),
        JobRequest::EndOfDay,
        key,
        wait,
    )
    .await
}

pub(super) async fn post_sale(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    JobPost { wait, key, body }: JobPost,
) -> ApiResult {
    let printer = pick_printer(&state, &body)?;
    let terminal = pick_terminal(&state, &body)?;
    let receipt = printer
        .with_limits(|limits| document::receipt(&body, limits, &["printer", "terminal"]))
        .map_err(ApiError::invalid)?;
    let amount = document::sale_card_amount(&receipt).map_err(ApiError::invalid)?;
    let request = JobRequest::Sale(SaleRequest {
        receipt,
        printer: printer.id().to_string(),
        payment: SalePayment {
            kind: "sale".into(),
            amount,
            currency: terminal.currency_code(),
        },
    });
    submit(&state, &caller, terminal.queue(), request, key, wait).await
}

/// Reverse the card payment of a sale whose receipt was not printed.
pub(super) async fn reverse_sale(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult {
    let id = parse_id(&id)?;
    let wait = parse_wait(q.as_deref())?;
    let sale = load_job(&state, id).await?;
    let conflict = |m: NotReversible| ApiError::new(StatusCode::CONFLICT, "not_reversible", m.0);
    let plan = match sales::reversal(&sale).map_err(conflict)? {
        Reversal::AlreadyQueued(existing) => {
            let job = load_job(&state, existing).await?;
            let mut resp = (StatusCode::OK, Json(job_json(&job))).into_response();
            resp.extensions_mut().insert(AuditJob {
                id: existing,
                replayed: true,
            });
            return Ok(resp);
        }
        Reversal::Allowed(plan) => plan,
    };
    if let Some(rid) = plan.receipt_job {
        let receipt = state.journal.run(move |j| j.get(rid)).await?;
        plan.check_receipt(receipt.as_ref()).map_err(conflict)?;
    }
    let terminal =
        terminal(&state, &plan.terminal).ok_or_else(|| conflict(plan.terminal_gone()))?;
    let request = JobRequest::Payment(plan.request(terminal.currency_code()));
    let key = Some(plan.idempotency_key());
    let journal = state.journal.clone();
    submit_with(
        &state,
        &caller,
        terminal.queue(),
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
