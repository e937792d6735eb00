//! Around every route: who is asking (a bearer token, a status page session or the
//! socket's role; else 401), whether the access table lets them (403), and the audit log
//! entry of each fiscal operation and refusal.

use super::audit::{audit, audit_unauthenticated, outcome};
use super::status_page::{form_login, login_page, page_token, session_cookie, token_in_address};
use super::{ApiError, AppState, AuditJob, AuditRecorded, Auth, Caller, ErrorCode};
use crate::auth::{self, Principal};
use crate::journal::JobId;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The method and path as sent (cut short; the audit log sanitises it further).
fn raw_operation(req: &Request) -> String {
    let path: String = req.uri().path().chars().take(120).collect();
    format!("{} {path}", req.method())
}

/// The job id in `/v1/jobs/{id}/...`, `/v1/sales/{id}/...` or `/v1/payments/{id}/...`, for
/// the audit log.
fn path_job(route: &str, path: &str) -> Option<JobId> {
    if route.starts_with("/v1/jobs/{id}")
        || route.starts_with("/v1/sales/{id}")
        || route.starts_with("/v1/payments/{id}")
    {
        path.split('/').nth(3).and_then(|id| id.parse().ok())
    } else {
        None
    }
}

/// Every request: who is it? A valid bearer token gives its name and role; without one,
/// the Unix socket gives `socket_role` and TCP answers 401. A token that is not in the
/// token file is 401 on either listener. A 401 is counted in the listener's window of the
/// audit log (see [`audit_unauthenticated`]), not written as a row of its own.
pub(super) async fn authenticate(
    State((state, auth)): State<(AppState, Auth)>,
    req: Request,
    next: Next,
) -> Response {
    if req.method() == axum::http::Method::POST && req.uri().path() == "/login" {
        return form_login(&state, &auth, req).await;
    }
    if req.method() == axum::http::Method::GET
        && req.uri().path() == "/"
        && page_token(req.uri().query()).is_some()
    {
        return token_in_address(&state, &auth);
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
        return run_as(&state, p, req, next).await;
    }
    if bare && safe && auth.anonymous_role.is_none() && req.uri().path() == "/" {
        let op = raw_operation(&req);
        audit_unauthenticated(
            &state,
            auth.listener,
            &op,
            StatusCode::UNAUTHORIZED,
            "unauthorized",
        );
        return login_page(StatusCode::UNAUTHORIZED, None);
    }
    let refused = match req.headers().get(header::AUTHORIZATION) {
        None => match auth.anonymous_role {
            Some(role) => {
                let p = Principal {
                    name: auth::SOCKET.into(),
                    role,
                };
                return run_as(&state, p, req, next).await;
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
                    return run_as(&state, p, req, next).await;
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
    audit_unauthenticated(&state, auth.listener, &op, err.status, err.code);
    err.into_response()
}

/// Run the request as `who`. A refusal (401, 403, 405) that nothing audited on the way,
/// such as a 405 for a method a path does not take (no route runs for it), gets its row
/// here, as `METHOD /path` as sent.
async fn run_as(state: &AppState, who: Principal, mut req: Request, next: Next) -> Response {
    let op = raw_operation(&req);
    req.extensions_mut().insert(who.clone());
    let resp = next.run(req).await;
    if is_refusal(resp.status()) && resp.extensions().get::<AuditRecorded>().is_none() {
        audit(
            state,
            &who.name,
            Some(who.role),
            &crate::journal::audit_sample(&op),
            None,
            outcome(resp.status(), false),
            resp.extensions().get::<ErrorCode>().map(|c| c.0),
        )
        .await;
    }
    resp
}

/// The answers the audit log records for every request, fiscal or not.
fn is_refusal(status: StatusCode) -> bool {
    matches!(status.as_u16(), 401 | 403 | 405)
}

/// Every route: the access table (403), then the audit log of fiscal operations and of
/// every refusal. A `HEAD` is checked as the `GET` it mirrors and audited as `HEAD ...`.
pub(super) async fn authorize(
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
        let mut resp = e.into_response();
        resp.extensions_mut().insert(AuditRecorded);
        return resp;
    }
    req.extensions_mut().insert(caller.clone());
    let mut resp = next.run(req).await;
    if resp.extensions().get::<AuditRecorded>().is_none()
        && (auth::audited(&method, &route) || is_refusal(resp.status()))
    {
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
        resp.extensions_mut().insert(AuditRecorded);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::path_job;

    #[test]
    fn the_job_of_a_path_is_known_for_every_route_that_names_one() {
        assert_eq!(
            path_job("/v1/jobs/{id}/cancel", "/v1/jobs/7/cancel"),
            Some(7)
        );
        assert_eq!(
            path_job("/v1/sales/{id}/reverse", "/v1/sales/8/reverse"),
            Some(8)
        );
        // A refused resolve is audited with its payment's job, as an accepted one is.
        assert_eq!(
            path_job("/v1/payments/{id}/resolve", "/v1/payments/9/resolve"),
            Some(9)
        );
        assert_eq!(path_job("/v1/payments", "/v1/payments"), None);
        assert_eq!(path_job("/v1/receipts", "/v1/receipts"), None);
    }
}
