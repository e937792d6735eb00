//! `GET /`: the technician's status page (one HTML document, its CSS and script inline),
//! the login form on loopback TCP (`POST /login`, so the token never enters an address or
//! the browser's history), and the sessions a token opens.

use super::audit::{audit, audit_unauthenticated};
use super::{ApiError, AppState, Auth};
use crate::auth::Principal;
use axum::extract::{Query, Request};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;

const STATUS_PAGE: &str = include_str!("../status_page.html");

/// The page's Content-Security-Policy: only its own inline script and style (by hash),
/// and requests to the daemon itself.
fn page_csp() -> &'static str {
    static CSP: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CSP.get_or_init(|| {
        use sha2::Digest;
        let inline = |open: &str, close: &str| {
            let start = STATUS_PAGE.find(open).map(|i| i + open.len()).unwrap_or(0);
            let end = STATUS_PAGE[start..].find(close).map_or(start, |i| start + i);
            let digest = sha2::Sha256::digest(&STATUS_PAGE.as_bytes()[start..end]);
            format!("'sha256-{}'", base64(&digest))
        };
        format!(
            "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; img-src 'self' data:; \
             base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            inline("<script>", "</script>"),
            inline("<style>", "</style>")
        )
    })
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn html(status: StatusCode, body: String, csp: &str) -> Response {
    html_with(status, body, csp, "no-referrer")
}

/// An HTML answer with the page's security headers and this `Referrer-Policy`.
fn html_with(status: StatusCode, body: String, csp: &str, referrer: &'static str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::CONTENT_SECURITY_POLICY, csp),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, referrer),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the status page for the technician.
pub(super) async fn status_page() -> Response {
    html(StatusCode::OK, STATUS_PAGE.to_string(), page_csp())
}

/// The page shown on loopback TCP without a session: how to open it with a token.
pub(super) fn login_page(status: StatusCode, problem: Option<&str>) -> Response {
    let problem = problem
        .map(|p| format!("<p class=problem>{p}</p>"))
        .unwrap_or_default();
    let body = format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8><title>fiscald</title>\
         <meta name=viewport content=\"width=device-width\"></head><body>\
         <h1>fiscald</h1>{problem}<p>This status page needs a token from the daemon's token file.</p>\
         <form method=post action=\"/login\"><label>Token <input type=password name=token autocomplete=off autofocus></label> \
         <button>Open</button></form></body></html>"
    );
    // `same-origin`, not `no-referrer`: under `no-referrer` a browser sends the form's
    // post with `Origin: null`, which the browser defences refuse as another site's.
    html_with(
        status,
        body,
        "default-src 'none'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        "same-origin",
    )
}

/// The `token` parameter of a query (`GET /?token=...`) or of a form body.
pub(super) fn page_token(query: Option<&str>) -> Option<String> {
    let uri: axum::http::Uri = format!("/?{}", query?).parse().ok()?;
    let Query(q) = Query::<std::collections::HashMap<String, String>>::try_from_uri(&uri).ok()?;
    q.get("token").cloned()
}

/// The status page's session cookie.
pub const SESSION_COOKIE: &str = "fiscald_session";

pub(super) fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == SESSION_COOKIE)
        .map(|(_, v)| v.to_string())
}

/// `GET /?token=T`, refused: a token in the address stays in the browser's history (and
/// in any proxy's log). The page says to use the form, which posts it instead.
pub(super) fn token_in_address(state: &AppState, auth: &Auth) -> Response {
    audit_unauthenticated(
        state,
        auth.listener,
        "GET /?token=",
        StatusCode::BAD_REQUEST,
        "token_in_address",
    );
    login_page(
        StatusCode::BAD_REQUEST,
        Some(
            "A token in the address is not accepted: it would stay in the browser's history. \
             Type it into the form below instead.",
        ),
    )
}

/// The longest login form body read, in bytes.
const MAX_LOGIN_BODY: usize = 4096;

/// Whether a form post comes from the page itself: a browser's `Origin` (when sent) must be
/// this listener's own, and `Sec-Fetch-Site` (when sent) `same-origin` or `none`. A
/// configured browser POS origin does not count: it has no business logging in here.
fn same_origin_post(headers: &HeaderMap) -> bool {
    let get = |h: &str| headers.get(h).and_then(|v| v.to_str().ok());
    let host = get("host").unwrap_or("");
    let origin_ok = get("origin").is_none_or(|o| {
        o.strip_prefix("http://")
            .is_some_and(|rest| !host.is_empty() && rest.eq_ignore_ascii_case(host))
    });
    let site_ok = get("sec-fetch-site")
        .is_none_or(|s| s.eq_ignore_ascii_case("same-origin") || s.eq_ignore_ascii_case("none"));
    origin_ok && site_ok
}

/// `POST /login` with the form's `token` (`application/x-www-form-urlencoded`, from the
/// page's own origin only): a valid token opens a session for its principal (an
/// `HttpOnly`, `SameSite=Strict` cookie, valid for GETs only) and answers 303 to `/`.
pub(super) async fn form_login(state: &AppState, auth: &Auth, req: Request) -> Response {
    let refuse = |status: StatusCode, code: &'static str, problem: &str| {
        audit_unauthenticated(state, auth.listener, "POST /login", status, code);
        login_page(status, Some(problem))
    };
    if !same_origin_post(req.headers()) {
        return refuse(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "The sign-in form must be sent from this page itself.",
        );
    }
    let form = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "Sign in with the form (application/x-www-form-urlencoded).",
        );
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_LOGIN_BODY)
        .await
        .ok()
        .and_then(|b| String::from_utf8(b.to_vec()).ok());
    let Some(token) = body.as_deref().and_then(|b| page_token(Some(b))) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "The form carried no token.",
        );
    };
    let Some(p) = auth.tokens.check(token.trim()).cloned() else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "login_refused",
            "That token is not in the token file.",
        );
    };
    let Some(id) = state.sessions.create(p.clone()) else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "cannot make a session id (/dev/urandom)",
        )
        .into_response();
    };
    audit(
        state,
        &p.name,
        Some(p.role),
        "POST /login",
        None,
        "accepted".into(),
        Some("session"),
    )
    .await;
    let cookie = format!(
        "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/".to_string()),
            (header::SET_COOKIE, cookie),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::REFERRER_POLICY, "no-referrer".to_string()),
        ],
    )
        .into_response()
}

/// How long a status page session lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Most sessions one principal keeps; its own oldest goes first, so one principal's logins
/// never end another's session.
pub const MAX_SESSIONS_PER_PRINCIPAL: usize = 8;
/// Most sessions kept in all, a backstop for memory: 128 principals at their own cap. When
/// it is reached, the principal with the most sessions loses its oldest.
const MAX_SESSIONS: usize = 128 * MAX_SESSIONS_PER_PRINCIPAL;

type SessionMap = std::collections::HashMap<String, (Principal, std::time::Instant)>;

/// Status page sessions: a random id (the cookie) → the token's principal. They live in
/// memory only, so a restart ends them; the token itself is never stored in the browser.
#[derive(Clone, Default)]
pub struct Sessions {
    inner: Arc<std::sync::Mutex<SessionMap>>,
}

/// The id of the oldest session of `name` (of anyone's, when None).
fn oldest(map: &SessionMap, name: Option<&str>) -> Option<String> {
    map.iter()
        .filter(|(_, (p, _))| name.is_none_or(|n| p.name == n))
        .min_by_key(|(_, (_, at))| *at)
        .map(|(k, _)| k.clone())
}

impl Sessions {
    fn map(&self) -> std::sync::MutexGuard<'_, SessionMap> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new session for `who`; None if no random id can be made. Past
    /// [`MAX_SESSIONS_PER_PRINCIPAL`], `who`'s own oldest session ends.
    pub fn create(&self, who: Principal) -> Option<String> {
        use std::io::Read;
        let mut raw = [0u8; 32];
        std::fs::File::open("/dev/urandom")
            .and_then(|mut f| f.read_exact(&mut raw))
            .ok()?;
        let id = hex::encode(raw);
        let mut map = self.map();
        map.retain(|_, (_, at)| at.elapsed() < SESSION_TTL);
        while map.values().filter(|(p, _)| p.name == who.name).count() >= MAX_SESSIONS_PER_PRINCIPAL
        {
            let Some(k) = oldest(&map, Some(&who.name)) else {
                break;
            };
            map.remove(&k);
        }
        while map.len() >= MAX_SESSIONS {
            let mut counts: std::collections::HashMap<&str, usize> = Default::default();
            for (p, _) in map.values() {
                *counts.entry(p.name.as_str()).or_default() += 1;
            }
            let most = counts
                .into_iter()
                .max_by_key(|(_, n)| *n)
                .map(|(name, _)| name.to_string());
            let Some(k) = oldest(&map, most.as_deref()) else {
                break;
            };
            map.remove(&k);
        }
        map.insert(id.clone(), (who, std::time::Instant::now()));
        Some(id)
    }

    /// The principal of a live session.
    pub fn check(&self, id: &str) -> Option<Principal> {
        let map = self.map();
        map.get(id)
            .filter(|(_, at)| at.elapsed() < SESSION_TTL)
            .map(|(p, _)| p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(name: &str) -> Principal {
        Principal {
            name: name.into(),
            role: crate::auth::Role::Cashier,
        }
    }

    #[test]
    fn sessions_are_capped_per_principal() {
        let s = Sessions::default();
        let tech = s.create(who("tech")).unwrap();
        let cashier: Vec<String> = (0..64).map(|_| s.create(who("pos-1")).unwrap()).collect();
        assert!(
            s.check(&tech).is_some(),
            "another principal's logins end no session"
        );
        let live = cashier.iter().filter(|c| s.check(c).is_some()).count();
        assert_eq!(live, MAX_SESSIONS_PER_PRINCIPAL);
        assert!(s.check(&cashier[0]).is_none(), "the oldest went first");
        assert!(s.check(cashier.last().unwrap()).is_some());
    }

    #[test]
    fn the_global_cap_takes_from_the_principal_with_the_most() {
        let s = Sessions::default();
        let first = s.create(who("p0")).unwrap();
        for i in 0..MAX_SESSIONS {
            s.create(who(&format!("p{}", i / MAX_SESSIONS_PER_PRINCIPAL + 1)))
                .unwrap();
        }
        assert!(s.map().len() <= MAX_SESSIONS);
        assert!(s.check(&first).is_some(), "p0 has the fewest sessions");
    }

    #[test]
    fn base64_matches_the_standard() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foo"), "Zm9v");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn the_page_token_is_read_from_the_query() {
        assert_eq!(
            super::page_token(Some("token=a%2Bb")).as_deref(),
            Some("a+b")
        );
        assert_eq!(super::page_token(Some("x=1")), None);
        assert_eq!(super::page_token(None), None);
    }
}
