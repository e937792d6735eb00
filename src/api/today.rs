//! `GET /v1/today`: the day at a glance ([`crate::today`]). A cashier sees its own jobs'
//! day; managers and technicians see the whole till's.

use super::{ApiResult, AppState, Caller};
use crate::today::{self, Today};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use chrono::{Local, TimeZone};

/// `GET /v1/today`.
pub(super) async fn get_today(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> ApiResult {
    let now = Local::now();
    let date = now.date_naive();
    // Local midnight, in the journal's UTC form; on a day that starts with a clock change,
    // the earliest midnight there is.
    let midnight = date
        .and_hms_opt(0, 0, 0)
        .and_then(|m| Local.from_local_datetime(&m).earliest())
        .unwrap_or(now)
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let owner = (!caller.who.sees_all_jobs()).then(|| caller.who.name.clone());
    let printers: Vec<String> = state.printers.keys().cloned().collect();
    let day: Today = state
        .journal
        .run(move |j| {
            let jobs = j.ended_since(&midnight, owner.as_deref())?;
            let mut reports = Vec::with_capacity(printers.len());
            for p in &printers {
                let last = j.last_daily_report(p)?;
                let after = last.as_ref().map(|r| r.updated_at.clone());
                let first = j.first_document_after(p, after.as_deref())?;
                reports.push(today::daily_report(
                    p,
                    last.as_ref(),
                    first.as_deref(),
                    date,
                ));
            }
            Ok::<_, crate::journal::JournalError>(today::summarise(date, &jobs, reports))
        })
        .await?;
    Ok(Json(day).into_response())
}
