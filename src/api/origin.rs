//! Browser defences, before anything else looks at a request: the `Host` must be the
//! till's own (no DNS rebinding), a state-changing request from another web origin is
//! refused unless that origin is configured (`[api] cors_origins`), every POST carries a
//! JSON content type (no `<form>` or no-cors `fetch` can send one), and configured browser
//! POS origins get CORS (with Chrome's Private Network Access) on the TCP listener.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The methods a browser POS may use.
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
/// The request headers a browser POS may send.
const ALLOWED_HEADERS: &str = "Authorization, Content-Type, Idempotency-Key, Last-Event-ID";
/// How long a browser may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "600";
/// Paths that take the status page's login form (`application/x-www-form-urlencoded`).
pub const FORM_PATHS: [&str; 1] = ["/login"];

/// Which hosts and origins one listener accepts.
#[derive(Clone, Default)]
pub struct OriginPolicy {
    /// Host names besides `localhost`, `127.0.0.1` and `[::1]` (`[api] allowed_hosts`).
    pub allowed_hosts: Vec<String>,
    /// Web origins of browser POS software (`[api] cors_origins`), e.g. `http://pos.example:3000`.
    pub cors_origins: Vec<String>,
    /// Whether this listener answers CORS (the loopback TCP listener does; the socket not).
    pub cors: bool,
    /// Where refusals are counted: the listener's name and the audit writer. They come
    /// before anyone is authenticated, so they are counted per window, never a row each.
    pub audit: Option<(&'static str, crate::journal::AuditWriter)>,
}

impl OriginPolicy {
    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host);
        matches!(name.as_str(), "localhost" | "127.0.0.1" | "[::1]" | "::1")
            || self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(&name))
    }

    fn origin_listed(&self, origin: &str) -> bool {
        self.cors_origins
            .iter()
            .any(|o| o.trim_end_matches('/').eq_ignore_ascii_case(origin))
    }
}

/// The host name of a `Host` header value, lowercased, without its port.
fn host_name(host: &str) -> String {
    let host = host.trim().to_ascii_lowercase();
    if let Some(end) = host.strip_prefix('[').and_then(|h| h.find(']')) {
        return host[..end + 2].to_string();
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.chars().all(|c| c.is_ascii_digit()) => name.to_string(),
        _ => host,
    }
}

fn header(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether `origin` is the listener's own (`http://` + the request's `Host`).
fn same_origin(origin: &str, host: &str) -> bool {
    origin
        .strip_prefix("http://")
        .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
}

fn refuse(status: StatusCode, code: &'static str, message: String) -> Response {
    super::ApiError::new(status, code, message).into_response()
}

/// Count a refusal in the audit log's window for this listener.
fn audited(
    policy: &OriginPolicy,
    req: &Request,
    response: Response,
    code: &'static str,
) -> Response {
    if let Some((listener, audit)) = &policy.audit {
        let status = response.status().as_u16();
        audit.append_unauthenticated(crate::journal::Unauthenticated {
            listener,
            operation: format!("{} {}", req.method(), req.uri().path()),
            outcome: if status == 415 {
                format!("invalid:{status}")
            } else {
                format!("refused:{status}")
            },
            detail: code,
        });
    }
    response
}

/// The middleware (`axum::middleware::from_fn_with_state`).
pub async fn guard(State(policy): State<Arc<OriginPolicy>>, req: Request, next: Next) -> Response {
    let headers = req.headers();
    let host = header(headers, header::HOST)
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.to_string()))
        .unwrap_or_default();
    if !policy.host_allowed(&host) {
        let r = refuse(
            StatusCode::MISDIRECTED_REQUEST,
            "wrong_host",
            format!(
                "this is the till's local API; Host {host:?} is not one of its names \
                 (localhost, 127.0.0.1, [::1] or [api] allowed_hosts)"
            ),
        );
        return audited(&policy, &req, r, "wrong_host");
    }
    let origin = header(headers, header::ORIGIN).map(str::to_string);
    let listed = origin.as_deref().is_some_and(|o| policy.origin_listed(o));
    if req.method() == Method::OPTIONS {
        let r = preflight(&policy, headers, origin.as_deref(), listed);
        if r.status().is_client_error() {
            return audited(&policy, &req, r, "cross_origin");
        }
        return r;
    }
    let changes_state = !matches!(*req.method(), Method::GET | Method::HEAD);
    if changes_state {
        let cross_origin = origin.as_deref().is_some_and(|o| !same_origin(o, &host));
        let cross_site = header(headers, header::HeaderName::from_static("sec-fetch-site"))
            .is_some_and(|s| s.eq_ignore_ascii_case("cross-site"));
        if (cross_origin || cross_site) && !listed {
            let r = refuse(
                StatusCode::FORBIDDEN,
                "cross_origin",
                format!(
                    "a request from the web origin {} may not change anything here; \
                     a browser POS must be listed in [api] cors_origins",
                    origin.as_deref().unwrap_or("of another site")
                ),
            );
            return audited(&policy, &req, r, "cross_origin");
        }
        if req.method() == Method::POST && !FORM_PATHS.contains(&req.uri().path()) {
            let ct = header(headers, header::CONTENT_TYPE).unwrap_or("");
            let mime = ct.split(';').next().unwrap_or("").trim();
            if !mime.eq_ignore_ascii_case("application/json") {
                let r = refuse(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    format!(
                        "send every POST, an empty one too, with Content-Type: application/json (got {ct:?})"
                    ),
                );
                return audited(&policy, &req, r, "unsupported_media_type");
            }
        }
    }
    let mut response = next.run(req).await;
    if policy.cors && listed {
        let h = response.headers_mut();
        if let Some(o) = origin
            .as_deref()
            .and_then(|o| HeaderValue::from_str(o).ok())
        {
            h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
        }
        h.append(header::VARY, HeaderValue::from_static("Origin"));
    }
    response
}

/// An `OPTIONS` request: a CORS preflight from a listed origin is answered (no token
/// needed); anything else gets no CORS headers.
fn preflight(
    policy: &OriginPolicy,
    headers: &HeaderMap,
    origin: Option<&str>,
    listed: bool,
) -> Response {
    let (Some(origin), true, true) = (origin, listed, policy.cors) else {
        return refuse(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "CORS is answered on the TCP listener for the origins in [api] cors_origins only"
                .into(),
        );
    };
    let mut r = StatusCode::NO_CONTENT.into_response();
    let h = r.headers_mut();
    if let Ok(o) = HeaderValue::from_str(origin) {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, o);
    }
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static(PREFLIGHT_MAX_AGE),
    );
    h.insert(header::VARY, HeaderValue::from_static("Origin"));
    let private = headers
        .get("access-control-request-private-network")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if private {
        h.insert(
            "access-control-allow-private-network",
            HeaderValue::from_static("true"),
        );
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Router;
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn app(cors: bool) -> Router {
        let policy = Arc::new(OriginPolicy {
            allowed_hosts: vec!["till-7.local".into()],
            cors_origins: vec!["http://pos.example:3000".into()],
            cors,
            audit: None,
        });
        Router::new()
            .route("/v1/receipts", post(|| async { "queued" }))
            .route("/v1/devices", get(|| async { "devices" }))
            .layer(axum::middleware::from_fn_with_state(policy, guard))
    }

    async fn call(app: Router, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap()
    }

    const JSON: (&str, &str) = ("content-type", "application/json");

    #[tokio::test]
    async fn only_the_tills_own_names_are_served() {
        for host in [
            "localhost",
            "localhost:8787",
            "127.0.0.1:8787",
            "[::1]:8787",
            "TILL-7.local",
        ] {
            let r = call(app(false), "GET", "/v1/devices", &[("host", host)]).await;
            assert_eq!(r.status(), StatusCode::OK, "{host}");
        }
        for host in [
            "evil.test",
            "evil.test:8787",
            "127.0.0.2",
            "localhost.evil.test",
            "",
        ] {
            let r = call(app(false), "POST", "/v1/receipts", &[("host", host), JSON]).await;
            assert_eq!(r.status(), StatusCode::MISDIRECTED_REQUEST, "{host:?}");
        }
    }

    #[tokio::test]
    async fn cross_origin_writes_are_refused_unless_listed() {
        let h = ("host", "127.0.0.1:8787");
        let cases = [
            (("origin", "http://evil.test"), StatusCode::FORBIDDEN),
            (("origin", "null"), StatusCode::FORBIDDEN),
            (("sec-fetch-site", "cross-site"), StatusCode::FORBIDDEN),
            (("origin", "http://127.0.0.1:8787"), StatusCode::OK),
        ];
        for (extra, want) in cases {
            let r = call(app(true), "POST", "/v1/receipts", &[h, JSON, extra]).await;
            assert_eq!(r.status(), want, "{extra:?}");
        }
        let r = call(
            app(true),
            "POST",
            "/v1/receipts",
            &[h, JSON, ("origin", "http://pos.example:3000")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "http://pos.example:3000"
        );
    }

    #[tokio::test]
    async fn every_post_needs_json_even_an_empty_one() {
        let h = ("host", "localhost");
        let r = call(app(false), "POST", "/v1/receipts", &[h]).await;
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let r = call(
            app(false),
            "POST",
            "/v1/receipts",
            &[h, ("content-type", "text/plain")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let r = call(
            app(false),
            "POST",
            "/v1/receipts",
            &[h, ("content-type", "Application/JSON; charset=utf-8")],
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn preflight_is_answered_for_listed_origins_on_tcp_only() {
        let ask = [
            ("host", "127.0.0.1:8787"),
            ("origin", "http://pos.example:3000"),
            ("access-control-request-method", "POST"),
            ("access-control-request-private-network", "true"),
        ];
        let r = call(app(true), "OPTIONS", "/v1/receipts", &ask).await;
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        let h = r.headers();
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
            "http://pos.example:3000"
        );
        assert!(
            h[header::ACCESS_CONTROL_ALLOW_HEADERS]
                .to_str()
                .unwrap()
                .contains("Idempotency-Key")
        );
        assert_eq!(h["access-control-allow-private-network"], "true");
        let mut other = ask;
        other[1] = ("origin", "http://evil.test");
        let r = call(app(true), "OPTIONS", "/v1/receipts", &other).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        assert!(
            r.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );
        let r = call(app(false), "OPTIONS", "/v1/receipts", &ask).await;
        assert!(
            r.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none(),
            "not on the socket"
        );
        let r = call(
            app(true),
            "GET",
            "/v1/devices",
            &[("host", "localhost"), ("origin", "http://evil.test")],
        )
        .await;
        assert!(
            r.headers()
                .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
                .is_none()
        );
    }
}
