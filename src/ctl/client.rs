//! The connection to the daemon: where it is (`--socket`, `--config`, `--url` with a
//! token file), one keep-alive HTTP/1.1 connection, and the API's answers decoded into the
//! shared types of [`crate::api::types`].

use super::{CtlArgs, DEFAULT_SOCKET, EXIT_BAD_INPUT, EXIT_UNREACHABLE, Failure, R};
use crate::api::types::ErrorBody;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the daemon is.
#[derive(Debug)]
pub(super) enum Endpoint {
    Unix(PathBuf),
    Tcp {
        host: String,
        port: u16,
        authority: String,
        token: String,
    },
}

impl Endpoint {
    pub(super) fn from_args(args: &CtlArgs) -> R<Endpoint> {
        if let Some(url) = &args.url {
            let Some(token_file) = &args.token_file else {
                return Err(Failure::bad_input(
                    "--url needs --token-file: the TCP listener takes only requests with a bearer token",
                ));
            };
            return Self::tcp(url, token_file);
        }
        if let Some(s) = &args.socket {
            return Ok(Endpoint::Unix(s.clone()));
        }
        if let Some(c) = &args.config {
            let config =
                crate::config::Config::load(c).map_err(|e| Failure::bad_input(e.to_string()))?;
            return Ok(Endpoint::Unix(config.api.socket));
        }
        Ok(Endpoint::Unix(PathBuf::from(DEFAULT_SOCKET)))
    }

    fn tcp(url: &str, token_file: &Path) -> R<Endpoint> {
        let bad = |why: &str| Failure::bad_input(format!("--url {url:?}: {why}"));
        let uri: hyper::Uri = url
            .parse()
            .map_err(|_| bad("expected http://127.0.0.1:PORT"))?;
        if uri.scheme_str() != Some("http") {
            return Err(bad("only http:// on a loopback address is supported"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("give only the scheme, host and port"));
        }
        let host = uri.host().ok_or_else(|| bad("no host"))?;
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let loopback = bare.eq_ignore_ascii_case("localhost")
            || bare
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if !loopback {
            return Err(bad(
                "the daemon listens on loopback only; the token is not sent elsewhere",
            ));
        }
        let port = uri.port_u16().unwrap_or(80);
        Ok(Endpoint::Tcp {
            host: bare.to_string(),
            port,
            authority: uri.authority().map(|a| a.to_string()).unwrap_or_default(),
            token: read_token(token_file)?,
        })
    }

    fn describe(&self) -> String {
        match self {
            Endpoint::Unix(p) => p.display().to_string(),
            Endpoint::Tcp { host, port, .. } => format!("{host}:{port}"),
        }
    }
}

/// The raw bearer token: the first non-empty line of a file nobody else can read.
fn read_token(path: &Path) -> R<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path)
        .map_err(|e| Failure::bad_input(format!("{}: {e}", path.display())))?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(Failure::bad_input(format!(
            "{}: the token file is readable by others; chmod 600 it",
            path.display()
        )));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::bad_input(format!("{}: cannot read: {e}", path.display())))?;
    text.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Failure::bad_input(format!("{}: no token in the file", path.display())))
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Time for an answer beyond any `?wait=`.
pub(super) const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);

/// One keep-alive HTTP/1.1 connection, opened on first use and again when it closes.
pub(super) struct Client {
    pub(super) endpoint: Endpoint,
    pub(super) sender: Option<SendRequest<Full<Bytes>>>,
}

impl Client {
    async fn connect(&self) -> R<SendRequest<Full<Bytes>>> {
        let where_ = self.endpoint.describe();
        let explain = |e: std::io::Error| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound => " (is fiscald running? see --socket and --config)",
                std::io::ErrorKind::ConnectionRefused => " (is fiscald running?)",
                std::io::ErrorKind::PermissionDenied => {
                    " (run as a member of the socket's group, or as its owner)"
                }
                _ => "",
            };
            Failure::unreachable(format!("cannot reach the daemon at {where_}: {e}{hint}"))
        };
        let timed_out =
            || Failure::unreachable(format!("cannot reach the daemon at {where_}: timed out"));
        match &self.endpoint {
            Endpoint::Unix(path) => {
                let stream =
                    tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::UnixStream::connect(path))
                        .await
                        .map_err(|_| timed_out())?
                        .map_err(explain)?;
                handshake(stream).await
            }
            Endpoint::Tcp { host, port, .. } => {
                let stream = tokio::time::timeout(
                    CONNECT_TIMEOUT,
                    tokio::net::TcpStream::connect((host.as_str(), *port)),
                )
                .await
                .map_err(|_| timed_out())?
                .map_err(explain)?;
                handshake(stream).await
            }
        }
    }

    /// Send one request; the response's body is left to the caller.
    pub(super) async fn send(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> R<hyper::Response<hyper::body::Incoming>> {
        let mut sender = match self.sender.take() {
            Some(mut s) => match s.ready().await {
                Ok(()) => s,
                Err(_) => self.connect().await?,
            },
            None => self.connect().await?,
        };
        let mut req = hyper::Request::builder().method(method).uri(path);
        match &self.endpoint {
            Endpoint::Unix(_) => req = req.header(hyper::header::HOST, "localhost"),
            Endpoint::Tcp {
                authority, token, ..
            } => {
                req = req
                    .header(hyper::header::HOST, authority.as_str())
                    .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
            }
        }
        // Every POST is JSON, an empty one too (the API refuses anything else with 415).
        if body.is_some() || method == "POST" {
            req = req.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| Failure::bad_input(format!("cannot build the request: {e}")))?;
        let where_ = self.endpoint.describe();
        let resp = tokio::time::timeout(timeout, sender.send_request(req))
            .await
            .map_err(|_| {
                Failure::unreachable(format!(
                    "the daemon at {where_} did not answer {method} {path} within {}s",
                    timeout.as_secs()
                ))
            })?
            .map_err(|e| {
                Failure::unreachable(format!("{method} {path} to the daemon at {where_}: {e}"))
            })?;
        self.sender = Some(sender);
        Ok(resp)
    }

    /// A request with a JSON answer; any status outside 2xx is a [`Failure`].
    pub(super) async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        headers: &[(&str, &str)],
        timeout: Duration,
    ) -> R<(u16, Value)> {
        let resp = self.send(method, path, body, headers, timeout).await?;
        let status = resp.status().as_u16();
        let bytes = tokio::time::timeout(timeout, resp.into_body().collect())
            .await
            .map_err(|_| Failure::unreachable(format!("{method} {path}: the answer stalled")))?
            .map_err(|e| Failure::unreachable(format!("{method} {path}: {e}")))?
            .to_bytes();
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        if (200..300).contains(&status) {
            Ok((status, value))
        } else {
            Err(api_failure(status, value))
        }
    }

    /// `GET path`, its answer as a `T`.
    pub(super) async fn get<T: DeserializeOwned>(&mut self, path: &str, timeout: Duration) -> R<T> {
        let body = self.call("GET", path, None, &[], timeout).await?.1;
        decode(&format!("GET {path}"), body)
    }
}

/// Start HTTP/1.1 on a connected stream; the connection runs as its own task.
async fn handshake<S>(stream: S) -> R<SendRequest<Full<Bytes>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| Failure::unreachable(format!("HTTP handshake with the daemon: {e}")))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// An answer as the shared type `T`; one that does not fit means the daemon and this
/// client disagree about the API (another version), which is the daemon's side.
pub(super) fn decode<T: DeserializeOwned>(what: &str, body: Value) -> R<T> {
    serde_json::from_value(body).map_err(|e| {
        Failure::unreachable(format!(
            "{what}: the daemon's answer is not what this fiscald ctl understands ({e}); are they the same version?"
        ))
    })
}

/// An API error answer as a failure: 4xx is bad input, anything else the daemon's.
pub(super) fn api_failure(status: u16, body: Value) -> Failure {
    let code = if (400..500).contains(&status) {
        EXIT_BAD_INPUT
    } else {
        EXIT_UNREACHABLE
    };
    let message = match serde_json::from_value::<ErrorBody>(body.clone()) {
        Ok(ErrorBody { error: e }) => {
            let mut m = format!("{status} {}: {}", e.code, e.message);
            if let Some(f) = e.field.filter(|f| !m.contains(f.as_str())) {
                m.push_str(&format!(" (field {f})"));
            }
            if let Some(d) = e.device_code {
                m.push_str(&format!(" (device code {d})"));
            }
            m
        }
        Err(_) => match &body {
            Value::String(s) if !s.is_empty() => format!("HTTP {status}: {s}"),
            _ => format!("HTTP {status}"),
        },
    };
    Failure {
        code,
        message,
        body: Some(body),
    }
}
