//! The two-phase life cycle on fiscald's journal. `POST /<endpoint>` validates the body and
//! stores it (`STORED`), queuing nothing; `PUT /<endpoint>/{id}` turns it into exactly one
//! fiscald job (keyed by the request's id, in the transaction that records the
//! confirmation); `GET /<endpoint>/{id}?timeout=ms` maps the job's state onto NoviAPI's
//! (`QUEUED`, `PENDING`, `DONE` with `jpkid`, `ERROR`); `DELETE` removes what has not
//! started. `GET`/`DELETE /queue` count and clear what is not yet running.

use super::mapping::{self, Endpoint, UNSUPPORTED, money_text};
use super::{Facade, NoviError, PRINCIPAL};
use crate::document::PrinterLimits;
use crate::job::records::JobResult;
use crate::journal::{
    Actor, Job, JobId, JobState, NewJob, NoviDeleted, NoviRequest, NoviState, NoviWork,
    noviapi_job_key,
};
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::time::Duration;

/// Longest long-poll of `GET …/{id}?timeout=`.
const MAX_POLL: Duration = Duration::from_secs(60);

/// NoviAPI's clean-up at a daily report (see `Journal::noviapi_prune`), before any
/// request is read.
async fn prune(f: &Facade) -> Result<(), NoviError> {
    let printer = f.printer.clone();
    let n = f
        .app
        .journal
        .run(move |j| j.noviapi_prune(&printer))
        .await?;
    if n > 0 {
        tracing::info!(
            removed = n,
            "NoviAPI: requests from before the daily report removed"
        );
    }
    Ok(())
}

/// Audit the jobs cancelled here (`operation`), and tell the waiters and the event stream.
async fn announce(f: &Facade, operation: &str, cancelled: &[JobId]) {
    for id in cancelled {
        f.app.audit.append(crate::journal::NewAudit {
            principal: PRINCIPAL.into(),
            role: Some(f.role.as_str()),
            operation: operation.into(),
            job: Some(*id),
            outcome: "cancelled".into(),
            detail: None,
        });
        let _ = f.app.events.send(*id);
        let id = *id;
        if let Ok(Some(job)) = f.app.journal.run(move |j| j.get(id)).await {
            f.app.bus.job(&job);
        }
    }
}

fn ok(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// The endpoint of a path, or the error for an unsupported or unknown one.
fn endpoint(name: &str) -> Result<Endpoint, NoviError> {
    if UNSUPPORTED.contains(&name) {
        return Err(NoviError::validation(format!(
            "{name} is not supported by fiscald's NoviAPI facade (it drives printers of other \
             makes, which have no Novitus {name}); nothing was stored"
        )));
    }
    Endpoint::parse(name)
        .ok_or_else(|| NoviError::not_found(format!("no NoviAPI endpoint {name:?}")))
}

/// A request id is 32 hex digits; anything else is not found.
fn request_id(id: &str) -> Result<&str, NoviError> {
    if id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        Err(NoviError::not_found(format!("no request {id:?}")))
    }
}

/// 403 unless the configured role may run `ep` (the native access table's rule for the
/// same operation); a refusal is audited.
fn require_role(f: &Facade, ep: Endpoint, operation: &str) -> Result<(), NoviError> {
    let (method, route) = ep.native_rule();
    let payment = (ep == Endpoint::Eft).then_some("sale");
    let roles = crate::auth::allowed_roles(method, route, payment);
    if roles.contains(&f.role) {
        return Ok(());
    }
    f.app.audit.append(crate::journal::NewAudit {
        principal: PRINCIPAL.into(),
        role: Some(f.role.as_str()),
        operation: operation.into(),
        job: None,
        outcome: "refused:403".into(),
        detail: Some("forbidden"),
    });
    Err(NoviError::new(
        StatusCode::FORBIDDEN,
        6,
        format!(
            "the NoviAPI facade acts with the {} role, which may not run {}; it needs the {} role ([noviapi] role in the configuration)",
            f.role.as_str(),
            ep.as_str(),
            crate::auth::role_list(&roles)
        ),
    ))
}

/// The card terminal of `eft`.
fn terminal(f: &Facade) -> Result<std::sync::Arc<crate::terminal::TerminalHandle>, NoviError> {
    let t = match &f.terminal {
        Some(id) => f.app.terminals.get(id).cloned(),
        None if f.app.terminals.len() == 1 => f.app.terminals.values().next().cloned(),
        None => None,
    };
    t.ok_or_else(|| {
        NoviError::validation("eft needs a card terminal: set [noviapi] terminal = \"...\"")
    })
}

/// `POST /api/v1/{endpoint}`.
pub(super) async fn post_request(
    State(f): State<Facade>,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, NoviError> {
    let ep = endpoint(&name)?;
    let body: Value = serde_json::from_slice(&body)
        .map_err(|e| NoviError::parse(format!("the body is not valid JSON: {e}")))?;
    let root = body
        .as_object()
        .filter(|o| o.len() == 1)
        .and_then(|o| o.get(ep.root()))
        .ok_or_else(|| {
            NoviError::validation(format!("the body must be {{\"{}\": {{...}}}}", ep.root()))
        })?;
    require_role(&f, ep, &format!("POST /api/v1/{}", ep.as_str()))?;
    prune(&f).await?;
    let (device, work) =
        match ep {
            Endpoint::Eft => {
                let t = terminal(&f)?;
                let work = match mapping::eft(root, t.config.currency_code())? {
                    Some(req) => NoviWork::Job(req),
                    None => NoviWork::Read(json!({"type": mapping::EFT_COMMUNICATION_TEST})),
                };
                (t.config.id.clone(), work)
            }
            Endpoint::Status => (f.printer.clone(), NoviWork::Read(mapping::status(root)?)),
            _ => {
                let p =
                    f.app.printers.get(&f.printer).cloned().ok_or_else(|| {
                        NoviError::internal("the facade's printer is not configured")
                    })?;
                let active = p.active_vat();
                let limits = PrinterLimits {
                    max_name_length: p.config.max_name_length,
                    active_vat: active.as_deref(),
                    support: crate::drivers::printer_support(p.config.protocol),
                };
                let req = match ep {
                    Endpoint::Receipt => mapping::receipt(root, &limits)?,
                    Endpoint::Invoice => mapping::invoice(root, &limits)?,
                    Endpoint::NfPrintout => mapping::nf_printout(root)?,
                    _ => mapping::daily_report(root, chrono::Local::now().date_naive())?,
                };
                (f.printer.clone(), NoviWork::Job(req))
            }
        };
    if ep == Endpoint::DailyReport {
        // One daily report at a time: a POS that lost the answer to its POST gets the
        // waiting one's id instead of a second report.
        let printer = f.printer.clone();
        if let Some(waiting) = f
            .app
            .journal
            .run(move |j| j.noviapi_waiting_daily_report(&printer))
            .await?
        {
            return Err(NoviError {
                daily_report_id: Some(waiting.clone().into()),
                ..NoviError::new(
                    StatusCode::CONFLICT,
                    11,
                    format!(
                        "a daily report is already waiting (request {waiting}); confirm or delete it"
                    ),
                )
            });
        }
    }
    let r = NoviRequest {
        id: super::tokens::random_id(),
        endpoint: ep.as_str().into(),
        state: NoviState::Stored,
        device,
        work,
        job_id: None,
        response: None,
        created_at: String::new(),
    };
    let id = r.id.clone();
    f.app.journal.run(move |j| j.noviapi_store(&r)).await?;
    tracing::info!(request = %id, endpoint = ep.as_str(), "NoviAPI request stored");
    Ok(ok(
        StatusCode::CREATED,
        json!({"request": {"id": id, "status": "STORED"}}),
    ))
}

/// `PUT /api/v1/{endpoint}/{id}`: confirm; queues exactly one job however often it is sent.
pub(super) async fn confirm_request(
    State(f): State<Facade>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, NoviError> {
    let ep = endpoint(&name)?;
    let id = request_id(&id)?.to_ascii_lowercase();
    let operation = format!("PUT /api/v1/{}", ep.as_str());
    // Checked again: the configured role may have changed since the POST (a restart).
    require_role(&f, ep, &operation)?;
    prune(&f).await?;
    let found = {
        let (ep_s, id2) = (ep.as_str().to_string(), id.clone());
        f.app
            .journal
            .run(move |j| j.noviapi_get(&ep_s, &id2))
            .await?
    }
    .ok_or_else(|| NoviError::not_found(format!("no {} request {id}", ep.as_str())))?;
    let (new, response) = match &found.work {
        NoviWork::Job(req) => (
            Some(NewJob {
                device: found.device.clone(),
                request: req.clone(),
                idempotency_key: Some(noviapi_job_key(&found.id)),
                actor: Some(Actor {
                    name: PRINCIPAL.into(),
                    role: f.role.as_str().into(),
                    operation,
                }),
            }),
            None,
        ),
        NoviWork::Read(q) if found.state == NoviState::Stored => {
            let kind = q["type"].as_str().unwrap_or("device").to_string();
            if kind == mapping::EFT_COMMUNICATION_TEST {
                (None, Some(eft_communication_test(&f, &found.device)))
            } else {
                (None, Some(super::status::answer(&f, &kind).await?))
            }
        }
        NoviWork::Read(_) => (None, None),
    };
    let (ep_s, id2) = (ep.as_str().to_string(), id.clone());
    let confirmed = f
        .app
        .journal
        .run(move |j| j.noviapi_confirm(&ep_s, &id2, new, response.as_ref()))
        .await?
        .ok_or_else(|| NoviError::not_found(format!("no {} request {id}", ep.as_str())))?;
    if let (_, Some(job), true) = &confirmed {
        tracing::info!(request = %id, job = job.id, "NoviAPI request confirmed; job queued");
        f.app.bus.job(job);
        if let Some(p) = f.app.printers.get(&job.device) {
            p.wake.notify_one();
        } else if let Some(t) = f.app.terminals.get(&job.device) {
            t.wake.notify_one();
        }
    }
    Ok(ok(
        StatusCode::OK,
        json!({"request": {"id": id, "status": "CONFIRMED"}}),
    ))
}

/// The `timeout` (milliseconds) of a check.
fn poll_timeout(q: Option<&str>) -> Result<Option<Duration>, NoviError> {
    for pair in q.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        if let Some(("timeout", v)) = pair.split_once('=') {
            let ms: u64 = v.parse().map_err(|_| {
                NoviError::validation(format!("timeout must be milliseconds (got {v:?})"))
            })?;
            return Ok(Some(Duration::from_millis(ms).min(MAX_POLL)));
        }
    }
    Ok(None)
}

/// `GET /api/v1/{endpoint}/{id}[?timeout=ms]`.
pub(super) async fn check_request(
    State(f): State<Facade>,
    Path((name, id)): Path<(String, String)>,
    RawQuery(q): RawQuery,
) -> Result<Response, NoviError> {
    let ep = endpoint(&name)?;
    let id = request_id(&id)?.to_ascii_lowercase();
    let timeout = poll_timeout(q.as_deref())?;
    prune(&f).await?;
    let deadline = tokio::time::Instant::now() + timeout.unwrap_or_default();
    let mut rx = f.app.events.subscribe();
    loop {
        let (ep_s, id2) = (ep.as_str().to_string(), id.clone());
        let r = f
            .app
            .journal
            .run(move |j| -> Result<_, crate::journal::JournalError> {
                let r = j.noviapi_get(&ep_s, &id2)?;
                let job = match r.as_ref().and_then(|r| r.job_id) {
                    Some(job) => j.get(job)?,
                    None => None,
                };
                Ok(r.map(|r| (r, job)))
            })
            .await?
            .ok_or_else(|| NoviError::not_found(format!("no {} request {id}", ep.as_str())))?;
        let (req, job) = r;
        let waiting = match (&req.state, &job) {
            (NoviState::Confirmed, Some(job)) => !job.state.is_terminal(),
            _ => false,
        };
        if waiting
            && timeout.is_some()
            && let Some(job_id) = req.job_id
            && changed(&f, &mut rx, job_id, deadline).await
        {
            continue;
        }
        return Ok(ok(StatusCode::OK, check_body(&f, ep, &req, job.as_ref())));
    }
}

/// Wait until `job` changes (true; also when events were missed) or `deadline` passes or
/// the daemon stops (false).
async fn changed(
    f: &Facade,
    rx: &mut tokio::sync::broadcast::Receiver<JobId>,
    job: JobId,
    deadline: tokio::time::Instant,
) -> bool {
    loop {
        tokio::select! {
            r = tokio::time::timeout_at(deadline, rx.recv()) => match r {
                Err(_) => return false,
                Ok(Ok(id)) if id != job => continue,
                Ok(Err(tokio::sync::broadcast::error::RecvError::Closed)) => return false,
                Ok(_) => return true,
            },
            _ = f.app.shutdown.cancelled() => return false,
        }
    }
}

/// A check's answer: the device's status and the request's.
fn check_body(f: &Facade, ep: Endpoint, req: &NoviRequest, job: Option<&Job>) -> Value {
    let (up, problem) = match f.app.printers.get(&req.device) {
        Some(p) => {
            let s = p.status();
            (s.state.is_up(), s.last_error)
        }
        None => match f.app.terminals.get(&req.device) {
            Some(t) => {
                let s = t.status();
                (s.state.is_up(), s.last_error)
            }
            None => (false, None),
        },
    };
    let device = if up {
        json!({"status": "OK"})
    } else {
        json!({"status": "ERROR", "error": {"code": 1,
               "description": problem.unwrap_or_else(|| "the device is not ready".into())}})
    };
    let mut r = json!({"id": req.id});
    let status = match (req.state, job) {
        (NoviState::Stored, _) => "STORED",
        (NoviState::Confirmed, None) => {
            if let Some(resp) = &req.response {
                r["response"] = resp.clone();
            }
            "DONE"
        }
        (NoviState::Confirmed, Some(job)) => match job.state {
            JobState::Queued => "QUEUED",
            JobState::Running => "PENDING",
            JobState::Done => {
                if let Some(n) = jpkid(job.result.as_ref()) {
                    r["jpkid"] = json!(n);
                }
                if ep == Endpoint::Eft
                    && let Some(JobResult::Payment(p)) = &job.result
                {
                    r["response"] = json!({"eft": eft_response(p.outcome())});
                }
                "DONE"
            }
            JobState::Failed | JobState::Cancelled | JobState::NeedsAttention => {
                let (code, description) = match &job.error {
                    Some(e) => (e.device_code.unwrap_or(13), e.message.clone()),
                    None if job.state == JobState::Cancelled => (13, "cancelled".into()),
                    None => (13, format!("the job ended {}", job.state.as_str())),
                };
                r["error"] = json!({"code": code, "description": description});
                if ep == Endpoint::Eft
                    && let Some(JobResult::Payment(p)) = &job.result
                {
                    r["response"] = json!({"eft": eft_response(p.outcome())});
                }
                // Whether it printed is not known until someone looks (fiscald's
                // `needs_attention`): never reported as a plain failure to retry.
                if job.state == JobState::NeedsAttention {
                    "UNKNOWN"
                } else {
                    "ERROR"
                }
            }
        },
    };
    r["status"] = json!(status);
    json!({"device": device, "request": r})
}

/// The printed document's number: `jpkid`.
fn jpkid(result: Option<&JobResult>) -> Option<u64> {
    Some(match result? {
        JobResult::Receipt(r) => r.receipt_number,
        JobResult::DailyReport(d) => d.report_number,
        JobResult::Printout(p) => p.printout_number,
        JobResult::Invoice(i) => i.document_number,
        _ => return None,
    })
}

/// A card payment's outcome as NoviAPI's `eft` reply (the card number masked).
fn eft_response(o: &crate::job::records::CardOutcome) -> Value {
    json!({
        "agent": o.card_brand.clone().unwrap_or_default(),
        "amount": money_text(o.amount.unwrap_or(0)),
        "card_token": o.masked_pan.clone().unwrap_or_default(),
        "cashback": "0.00",
        "code": o.result_code,
        "eft_id": o.terminal_id.clone().unwrap_or_default(),
        "error_code": if o.approved { 0 } else { o.result_code },
        "message": if o.approved { "approved" } else { "declined" },
        "transaction_id": o.trace_number.map(|t| t.to_string()).unwrap_or_default(),
    })
}

/// A confirmed `eft` `communication_test`: whether the terminal is up, from its task's
/// state (kept current by registration and status queries), as NoviAPI's `eft` reply.
fn eft_communication_test(f: &Facade, terminal: &str) -> Value {
    let (ready, id, message) = match f.app.terminals.get(terminal) {
        Some(t) => {
            let s = t.status();
            let message = match (s.state.is_up(), s.last_error) {
                (true, _) => "the terminal answers".to_string(),
                (false, Some(e)) => e,
                (false, None) => format!("the terminal is {}", s.state.as_str()),
            };
            (s.state.is_up(), s.terminal_id.unwrap_or_default(), message)
        }
        None => (false, String::new(), format!("no terminal {terminal}")),
    };
    let code = if ready { 0 } else { 1 };
    json!({"eft": {
        "agent": "",
        "amount": "0.00",
        "card_token": "",
        "cashback": "0.00",
        "code": code,
        "eft_id": id,
        "error_code": code,
        "message": message,
        "transaction_id": "",
    }})
}

/// `DELETE /api/v1/{endpoint}/{id}`.
pub(super) async fn delete_request(
    State(f): State<Facade>,
    Path((name, id)): Path<(String, String)>,
) -> Result<Response, NoviError> {
    let ep = endpoint(&name)?;
    let id = request_id(&id)?.to_ascii_lowercase();
    prune(&f).await?;
    let (ep_s, id2) = (ep.as_str().to_string(), id.clone());
    match f
        .app
        .journal
        .run(move |j| j.noviapi_delete(&ep_s, &id2))
        .await?
    {
        NoviDeleted::NotFound => Err(NoviError::not_found(format!(
            "no {} request {id}",
            ep.as_str()
        ))),
        NoviDeleted::Started => Err(NoviError::validation(format!(
            "request {id} has started and can no longer be deleted"
        ))),
        NoviDeleted::Deleted(job) => {
            announce(
                &f,
                &format!("DELETE /api/v1/{}", ep.as_str()),
                job.as_slice(),
            )
            .await;
            Ok(ok(
                StatusCode::OK,
                json!({"request": {"status": "DELETED"}}),
            ))
        }
    }
}

/// `GET /api/v1/queue`.
pub(super) async fn queue_check(State(f): State<Facade>) -> Result<Response, NoviError> {
    prune(&f).await?;
    let n = f.app.journal.run(|j| j.noviapi_waiting()).await?;
    Ok(ok(StatusCode::OK, json!({"requests_in_queue": n})))
}

/// `DELETE /api/v1/queue`: every request not yet running is removed.
pub(super) async fn queue_clear(State(f): State<Facade>) -> Result<Response, NoviError> {
    prune(&f).await?;
    let (n, cancelled) = f.app.journal.run(|j| j.noviapi_clear()).await?;
    announce(&f, "DELETE /api/v1/queue", &cancelled).await;
    tracing::info!(removed = n, "NoviAPI queue cleared");
    Ok(ok(StatusCode::OK, json!({"status": "DELETED"})))
}
