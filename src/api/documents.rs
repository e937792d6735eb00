//! The documents beyond the receipt: `POST /v1/invoices`, `POST /v1/reports/periodic` and
//! `POST /v1/jobs/{id}/copy`.

use super::devices::printer;
use super::jobs::{JobPost, job_response, load_job, parse_id, submit_job, submit_to_printer};
use super::{ApiError, ApiResult, AppState, Caller};
use crate::device::ErrorCategory;
use crate::document::{self, CopiedDocument, DocumentCopy};
use crate::journal::{Job, JobRequest, JobResult, JobState, JournalError};
use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;

/// `POST /v1/invoices`.
pub(super) async fn post_invoice(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    post: JobPost,
) -> ApiResult {
    submit_to_printer(&state, &caller, post, |printer, body| {
        printer
            .with_limits(|limits| document::invoice(body, limits, &["printer"]))
            .map(JobRequest::Invoice)
    })
    .await
}

/// `POST /v1/reports/periodic`.
pub(super) async fn post_periodic_report(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    post: JobPost,
) -> ApiResult {
    submit_to_printer(&state, &caller, post, |printer, body| {
        document::periodic_report(body, &["printer"], &printer.support())
            .map(JobRequest::PeriodicReport)
    })
    .await
}

fn conflict(message: String) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "not_copyable", message)
}

/// What a printed job left to copy: the document, its number, the printer and the printer's
/// serial number then.
fn original(job: &Job) -> Result<(CopiedDocument, u64, String, Option<String>), ApiError> {
    let printed = match (&job.state, &job.result) {
        (JobState::Done, Some(JobResult::Receipt(r))) => Some((
            CopiedDocument::Receipt,
            r.receipt_number,
            r.printer.clone(),
            r.printer_serial_number.clone(),
        )),
        (JobState::Done, Some(JobResult::Invoice(i))) => Some((
            CopiedDocument::Invoice,
            i.document_number,
            i.printer.clone(),
            i.printer_serial_number.clone(),
        )),
        (_, Some(JobResult::Sale(s))) => s.receipt.clone().flatten().map(|r| {
            (
                CopiedDocument::Receipt,
                r.receipt_number,
                r.printer,
                r.printer_serial_number,
            )
        }),
        _ => None,
    };
    printed.ok_or_else(|| {
        conflict(format!(
            "job {} is a {} that is {}: only a printed receipt, invoice or sale's receipt can be copied",
            job.id,
            job.kind.as_str(),
            job.state.as_str()
        ))
    })
}

/// `POST /v1/jobs/{id}/copy`: a non-fiscal copy of a printed receipt or invoice, from the
/// protected memory of the printer that printed it. 409 when the job printed no such
/// document, when that printer is gone or was replaced, and (with `?wait=`) when the
/// printer no longer holds the document.
pub(super) async fn post_copy(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    JobPost { wait, key, body }: JobPost,
) -> ApiResult {
    let id = parse_id(&id)?;
    document::empty(&body, &[]).map_err(ApiError::invalid)?;
    let job = load_job(&state, id).await?;
    // A cashier copies only its own jobs; another's is "not found", as for GET.
    if !(caller.who.sees_all_jobs() || job.owner.as_deref() == Some(&caller.who.name)) {
        return Err(JournalError::NotFound(id).into());
    }
    let (document, number, printer_id, serial) = original(&job)?;
    let target = printer(&state, &printer_id).ok_or_else(|| {
        conflict(format!(
            "job {id} was printed on printer {printer_id:?}, which is not configured any more; \
             its copy can only come from that printer's memory"
        ))
    })?;
    if !target.support().copies {
        return Err(conflict(format!(
            "printer {printer_id} ({}) cannot print copies from its memory",
            target.support().protocol
        )));
    }
    if let (Some(then), Some(now)) = (serial, target.serial_number())
        && then != now
    {
        return Err(conflict(format!(
            "printer {printer_id} was replaced since job {id} (unique number {then}, now {now}): \
             the document is not in this printer's memory"
        )));
    }
    let request = JobRequest::Copy(DocumentCopy {
        of_job: id,
        document,
        number,
    });
    let (status, copy) = submit_job(
        &state,
        &caller,
        target.queue(),
        request,
        key,
        wait,
        |_| async {},
    )
    .await?;
    let gone = copy.state == JobState::Failed
        && copy
            .error
            .as_ref()
            .is_some_and(|e| e.category == ErrorCategory::DocumentNotFound);
    Ok(job_response(
        if gone { StatusCode::CONFLICT } else { status },
        &copy,
    ))
}
