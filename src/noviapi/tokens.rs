//! NoviAPI tokens: HS256 JWTs signed with a key drawn at random when the facade starts
//! (held in memory only, so a restart invalidates every token), 20 minutes each, at most
//! 10 `GET /token` an hour (then the current token is deleted and 429 names when the next
//! may be had), `PATCH /token` with the last token, even an expired one, refreshes without
//! counting, and every other path needs `Authorization: Bearer` with the current token.

use super::{Facade, NoviError};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::VecDeque;
use std::sync::Mutex;

/// How long a token is valid.
pub const TOKEN_LIFETIME: chrono::Duration = chrono::Duration::minutes(20);
/// Most `GET /token` in [`TOKEN_WINDOW`].
pub const MAX_TOKEN_GETS: usize = 10;
pub const TOKEN_WINDOW: chrono::Duration = chrono::Duration::hours(1);

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    exp: i64,
    jti: String,
}

struct Issued {
    /// When each counted `GET /token` was answered, oldest first (within the window).
    gets: VecDeque<DateTime<Utc>>,
    /// The id of the current token; None once deleted.
    current: Option<String>,
}

/// Issues and checks the facade's tokens.
pub struct TokenIssuer {
    encoding: EncodingKey,
    decoding: DecodingKey,
    issued: Mutex<Issued>,
}

/// 16 random bytes as 32 lower-case hex digits.
pub(super) fn random_id() -> String {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).expect("the system's random source");
    hex::encode(b)
}

impl TokenIssuer {
    pub fn new() -> anyhow::Result<TokenIssuer> {
        super::hs256::install();
        let mut key = [0u8; 32];
        getrandom::fill(&mut key)
            .map_err(|e| anyhow::anyhow!("no random source for the NoviAPI token key: {e}"))?;
        let issuer = TokenIssuer {
            encoding: EncodingKey::from_secret(&key),
            decoding: DecodingKey::from_secret(&key),
            issued: Mutex::new(Issued {
                gets: VecDeque::new(),
                current: None,
            }),
        };
        key.fill(0);
        Ok(issuer)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Issued> {
        self.issued.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new current token (`issuer` is the printer's unique number) and its expiry.
    fn mint(
        &self,
        issued: &mut Issued,
        issuer: &str,
    ) -> Result<(String, DateTime<Utc>), NoviError> {
        let now = Utc::now();
        let exp = now + TOKEN_LIFETIME;
        let jti = random_id();
        let claims = Claims {
            iss: issuer.to_string(),
            sub: "NoviApi".into(),
            exp: exp.timestamp(),
            jti: jti.clone(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| NoviError::internal(format!("cannot sign a token: {e}")))?;
        issued.current = Some(jti);
        // The expiry as signed (whole seconds).
        let exp = DateTime::from_timestamp(exp.timestamp(), 0).unwrap_or(exp);
        Ok((token, exp))
    }

    /// `GET /token`: counted against the limit.
    fn get(&self, issuer: &str) -> Result<(String, DateTime<Utc>), NoviError> {
        let now = Utc::now();
        let mut issued = self.lock();
        while issued
            .gets
            .front()
            .is_some_and(|t| now - *t >= TOKEN_WINDOW)
        {
            issued.gets.pop_front();
        }
        if issued.gets.len() >= MAX_TOKEN_GETS {
            issued.current = None;
            let allowed = issued
                .gets
                .front()
                .map(|t| *t + TOKEN_WINDOW)
                .unwrap_or(now);
            return Err(NoviError {
                extra: Some(Box::new(("allowed_refresh_date", json!(rfc3339(allowed))))),
                ..NoviError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    2,
                    format!(
                        "at most {MAX_TOKEN_GETS} tokens an hour; the current token was deleted. \
                         Refresh with PATCH /api/v1/token, or get a new one after {}",
                        rfc3339(allowed)
                    ),
                )
            });
        }
        issued.gets.push_back(now);
        self.mint(&mut issued, issuer)
    }

    /// The claims of a token signed with this start's key (expired or not).
    fn claims(&self, token: &str) -> Option<Claims> {
        let mut v = Validation::new(Algorithm::HS256);
        v.validate_exp = false;
        v.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .ok()
            .map(|d| d.claims)
            .filter(|c| c.sub == "NoviApi")
    }

    /// `PATCH /token` with the last token (expired or not): a new one, not counted.
    fn refresh(&self, token: &str, issuer: &str) -> Result<(String, DateTime<Utc>), NoviError> {
        let claims = self.claims(token).ok_or_else(|| {
            NoviError::unauthorized(
                "the token is not one this server issued; get a new one with GET /api/v1/token",
            )
        })?;
        let mut issued = self.lock();
        if issued.current.as_deref() != Some(claims.jti.as_str()) {
            return Err(NoviError::unauthorized(
                "only the last token can be refreshed; get a new one with GET /api/v1/token",
            ));
        }
        self.mint(&mut issued, issuer)
    }

    /// Whether `token` is the current, unexpired token.
    fn check(&self, token: &str) -> Result<(), NoviError> {
        let claims = self.claims(token).ok_or_else(|| {
            NoviError::unauthorized("the token is not valid; get one with GET /api/v1/token")
        })?;
        if claims.exp <= Utc::now().timestamp() {
            return Err(NoviError::unauthorized(
                "the token has expired; refresh it with PATCH /api/v1/token",
            ));
        }
        if self.lock().current.as_deref() != Some(claims.jti.as_str()) {
            return Err(NoviError::unauthorized(
                "the token was replaced or deleted; get a new one with GET /api/v1/token",
            ));
        }
        Ok(())
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

fn token_response(token: String, exp: DateTime<Utc>) -> Response {
    (
        StatusCode::OK,
        axum::Json(json!({"token": token, "expiration_date": rfc3339(exp)})),
    )
        .into_response()
}

/// The printer's unique number for the tokens' `iss`, once it was read.
fn issuer(f: &Facade) -> String {
    f.app
        .printers
        .get(&f.printer)
        .and_then(|p| p.status().serial_number)
        .unwrap_or_else(|| "fiscald".into())
}

/// `GET /api/v1/token`.
pub(super) async fn get_token(State(f): State<Facade>) -> Result<Response, NoviError> {
    let (token, exp) = f.tokens.get(&issuer(&f))?;
    tracing::info!("NoviAPI: token issued");
    Ok(token_response(token, exp))
}

/// `PATCH /api/v1/token` (the body may be empty).
pub(super) async fn patch_token(
    State(f): State<Facade>,
    headers: HeaderMap,
) -> Result<Response, NoviError> {
    let token = bearer(&headers).ok_or_else(|| {
        NoviError::unauthorized("PATCH /api/v1/token needs Authorization: Bearer <the last token>")
    })?;
    let (token, exp) = f.tokens.refresh(token, &issuer(&f))?;
    Ok(token_response(token, exp))
}

/// Every path but the connection test and `/token`: `Authorization: Bearer` with the
/// current token, else 401.
pub(super) async fn require_bearer(State(f): State<Facade>, req: Request, next: Next) -> Response {
    let checked = match bearer(req.headers()) {
        None => Err(NoviError::unauthorized(
            "send Authorization: Bearer <token>; get one with GET /api/v1/token",
        )),
        Some(t) => f.tokens.check(t),
    };
    match checked {
        Ok(()) => next.run(req).await,
        Err(e) => {
            f.app
                .audit
                .append_unauthenticated(crate::journal::Unauthenticated {
                    listener: "noviapi",
                    operation: format!("{} {}", req.method(), req.uri().path()),
                    outcome: "refused:401".into(),
                    detail: "unauthorized",
                });
            e.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_refreshed_and_limited() {
        let t = TokenIssuer::new().unwrap();
        let (a, exp) = t.get("X").unwrap();
        assert!(exp > Utc::now() + chrono::Duration::minutes(19));
        t.check(&a).unwrap();
        let (b, _) = t.refresh(&a, "X").unwrap();
        assert!(t.check(&a).is_err(), "the refreshed token is replaced");
        t.check(&b).unwrap();
        assert!(t.refresh(&a, "X").is_err(), "only the last token refreshes");
        // Another start's key does not verify.
        let other = TokenIssuer::new().unwrap();
        assert_eq!(
            other.check(&b).unwrap_err().status,
            StatusCode::UNAUTHORIZED
        );
        for _ in 1..MAX_TOKEN_GETS {
            t.get("X").unwrap();
        }
        let (last, _) = {
            let i = t.lock();
            (i.current.clone().unwrap(), ())
        };
        assert!(!last.is_empty());
        let e = t.get("X").unwrap_err();
        assert_eq!(e.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(e.code, 2);
        assert!(t.lock().current.is_none(), "the current token is deleted");
    }

    #[test]
    fn unsigned_and_other_algorithms_are_refused() {
        use base64::Engine;
        let t = TokenIssuer::new().unwrap();
        let (good, _) = t.get("X").unwrap();
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let claims = good.split('.').nth(1).unwrap();
        for header in [r#"{"alg":"none"}"#, r#"{"alg":"HS384","typ":"JWT"}"#] {
            let forged = format!("{}.{claims}.", b64.encode(header));
            assert!(t.check(&forged).is_err(), "{header}");
        }
        let mut tampered: Vec<&str> = good.split('.').collect();
        let other = b64.encode(br#"{"iss":"X","sub":"NoviApi","exp":99999999999,"jti":"x"}"#);
        tampered[1] = &other;
        assert!(t.check(&tampered.join(".")).is_err());
        t.check(&good).unwrap();
    }

    #[test]
    fn an_expired_last_token_still_refreshes() {
        let t = TokenIssuer::new().unwrap();
        let mut issued = t.lock();
        let claims = Claims {
            iss: "X".into(),
            sub: "NoviApi".into(),
            exp: Utc::now().timestamp() - 60,
            jti: "j".into(),
        };
        issued.current = Some("j".into());
        drop(issued);
        let old =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &t.encoding).unwrap();
        assert_eq!(t.check(&old).unwrap_err().code, 4);
        let (new, _) = t.refresh(&old, "X").unwrap();
        t.check(&new).unwrap();
    }
}
