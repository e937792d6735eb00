//! Early answers reach the client: a tower layer that reads and discards the rest of a
//! request body the handler did not read, so that the answer is not lost.
//!
//! A handler may answer before it has read the whole body: 413 when the body is over the
//! limit, 401 or 403 before the body is looked at, 415 for a wrong content type. If the
//! server then closes the connection while the client is still sending, the kernel answers
//! the unread bytes with a reset, and a client that sends its whole request before reading
//! (Python's `http.client`, `requests`) gets a broken pipe instead of the answer. hyper
//! closes the read side as soon as the request body is dropped unread.
//!
//! [`DrainLayer`] keeps the body: the handler gets a [`Tap`] on it, and when the answer is
//! ready and the body was not read to its end, a task goes on reading and discarding it
//! while hyper writes the answer. The drain stops at [`MAX_DRAIN_BYTES`] or after
//! [`MAX_DRAIN_TIME`], whichever comes first (and the body's own read deadline still
//! applies); then the body is dropped and the connection closes as before. A body read to
//! its end keeps the connection alive for the next request.
//!
//! A request with `Expect: 100-continue` whose body was never read is not drained: the
//! client is still waiting for the go-ahead and sends nothing after the final answer.

use axum::body::Body;
use axum::http::{Request, Response, header};
use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// The most bytes read and discarded after an early answer.
pub const MAX_DRAIN_BYTES: u64 = 8 * 1024 * 1024;

/// The longest a drain may take after an early answer.
pub const MAX_DRAIN_TIME: Duration = Duration::from_secs(10);

/// The layer that drains the unread rest of a request body after an early answer.
#[derive(Debug, Clone, Copy)]
pub struct DrainLayer {
    max_bytes: u64,
    max_time: Duration,
}

impl DrainLayer {
    /// With the default bounds, [`MAX_DRAIN_BYTES`] and [`MAX_DRAIN_TIME`].
    pub fn new() -> DrainLayer {
        DrainLayer::with_bounds(MAX_DRAIN_BYTES, MAX_DRAIN_TIME)
    }

    /// With other bounds (tests use short ones).
    pub fn with_bounds(max_bytes: u64, max_time: Duration) -> DrainLayer {
        DrainLayer {
            max_bytes,
            max_time,
        }
    }
}

impl Default for DrainLayer {
    fn default() -> Self {
        DrainLayer::new()
    }
}

impl<S> tower::Layer<S> for DrainLayer {
    type Service = Drain<S>;

    fn layer(&self, inner: S) -> Drain<S> {
        Drain {
            inner,
            bounds: *self,
        }
    }
}

/// The service made by [`DrainLayer`].
#[derive(Debug, Clone)]
pub struct Drain<S> {
    inner: S,
    bounds: DrainLayer,
}

/// The request body as the wrapper and the handler's [`Tap`] share it.
struct Shared<B> {
    /// The body; taken by the drain once the answer is ready.
    body: Option<B>,
    /// The handler polled the body at least once.
    polled: bool,
    /// The body reached its end or failed: nothing is left to drain.
    ended: bool,
}

/// The handler's view of the request body: frames come from the shared body, which stays
/// with [`Drain`] when the handler drops its view early.
pub struct Tap<B> {
    shared: Arc<Mutex<Shared<B>>>,
}

impl<B> HttpBody for Tap<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut shared = lock(&self.shared);
        let shared = &mut *shared;
        let Some(body) = shared.body.as_mut() else {
            return Poll::Ready(None);
        };
        shared.polled = true;
        let frame = Pin::new(&mut *body).poll_frame(cx);
        match &frame {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => shared.ended = true,
            Poll::Ready(Some(Ok(_))) if body.is_end_stream() => shared.ended = true,
            _ => {}
        }
        frame
    }

    fn is_end_stream(&self) -> bool {
        let shared = lock(&self.shared);
        shared.ended || shared.body.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        lock(&self.shared)
            .body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

/// The lock, also after a panic elsewhere (the state stays consistent: flags and a body).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl<S, B> tower::Service<Request<B>> for Drain<S>
where
    S: tower::Service<Request<Body>, Response = Response<Body>>,
    S::Future: Send + 'static,
    B: HttpBody<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        if req.body().is_end_stream() {
            // No body (GET, or an empty POST): nothing can be left unread.
            return Box::pin(self.inner.call(req.map(Body::new)));
        }
        let expects_continue = req
            .headers()
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        let shared = Arc::new(Mutex::new(Shared {
            body: None,
            polled: false,
            ended: false,
        }));
        let req = req.map(|body| {
            lock(&shared).body = Some(body);
            Body::new(Tap {
                shared: shared.clone(),
            })
        });
        let answer = self.inner.call(req);
        let bounds = self.bounds;
        Box::pin(async move {
            let response = answer.await?;
            let rest = {
                let mut shared = lock(&shared);
                let waiting_for_go_ahead = expects_continue && !shared.polled;
                let rest = shared.body.take();
                (!shared.ended && !waiting_for_go_ahead)
                    .then_some(rest)
                    .flatten()
            };
            if let Some(rest) = rest {
                let status = response.status().as_u16();
                tokio::spawn(discard(rest, status, bounds));
            }
            Ok(response)
        })
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drained {
    /// The body was read to its end: the connection can carry the next request.
    ToTheEnd,
    /// Over the byte bound: the body is dropped and the connection closes.
    TooLarge,
    /// The body failed (the client went away, or its read deadline passed).
    Failed,
    /// Over the time bound.
    TooSlow,
}

/// Read and discard `body` within `bounds`, then drop it.
async fn discard<B>(mut body: B, status: u16, bounds: DrainLayer)
where
    B: HttpBody<Data = Bytes> + Unpin,
{
    let mut bytes = 0u64;
    let read = async {
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(frame) => {
                    bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
                    if bytes > bounds.max_bytes {
                        return Drained::TooLarge;
                    }
                }
                Err(_) => return Drained::Failed,
            }
        }
        Drained::ToTheEnd
    };
    let outcome = tokio::time::timeout(bounds.max_time, read)
        .await
        .unwrap_or(Drained::TooSlow);
    tracing::debug!(
        status,
        bytes,
        outcome = ?outcome,
        "discarded the unread rest of a request body after an early answer"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use std::sync::atomic::{AtomicU64, Ordering};
    use tokio::sync::mpsc;
    use tower::{Layer, ServiceExt};

    /// A request body fed by a channel; counts the bytes taken from it.
    struct Fed {
        rx: mpsc::Receiver<Bytes>,
        taken: Arc<AtomicU64>,
    }

    impl HttpBody for Fed {
        type Data = Bytes;
        type Error = std::convert::Infallible;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
            self.rx.poll_recv(cx).map(|c| {
                c.map(|c| {
                    self.taken.fetch_add(c.len() as u64, Ordering::SeqCst);
                    Ok(Frame::data(c))
                })
            })
        }
    }

    fn fed() -> (mpsc::Sender<Bytes>, Fed, Arc<AtomicU64>) {
        let (tx, rx) = mpsc::channel(4);
        let taken = Arc::new(AtomicU64::new(0));
        (
            tx,
            Fed {
                rx,
                taken: taken.clone(),
            },
            taken,
        )
    }

    /// A handler that reads up to `read` bytes of the body, then answers 413.
    fn refusing(
        read: u64,
    ) -> tower::util::BoxCloneService<Request<Body>, Response<Body>, std::convert::Infallible> {
        tower::service_fn(move |req: Request<Body>| async move {
            let mut body = req.into_body();
            let mut seen = 0;
            while seen < read {
                match body.frame().await {
                    Some(Ok(f)) => seen += f.data_ref().map_or(0, |d| d.len() as u64),
                    _ => break,
                }
            }
            Ok(Response::builder()
                .status(StatusCode::PAYLOAD_TOO_LARGE)
                .body(Body::from("{\"error\": {}}"))
                .unwrap())
        })
        .boxed_clone()
    }

    fn post(body: Fed, expect: bool) -> Request<Fed> {
        let mut r = Request::post("/v1/receipts");
        if expect {
            r = r.header("expect", "100-continue");
        }
        r.body(body).unwrap()
    }

    const CHUNK: usize = 64 * 1024;

    #[tokio::test]
    async fn the_unread_rest_is_discarded_to_its_end() {
        let (tx, body, taken) = fed();
        let svc = DrainLayer::new().layer(refusing(CHUNK as u64));
        let feeder = tokio::spawn(async move {
            for _ in 0..64 {
                tx.send(Bytes::from(vec![b'x'; CHUNK])).await.unwrap();
            }
        });
        let resp = svc.oneshot(post(body, false)).await;
        assert_eq!(resp.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
        feeder.await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while taken.load(Ordering::SeqCst) < 64 * CHUNK as u64 {
            assert!(tokio::time::Instant::now() < deadline, "not drained");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn a_body_over_the_byte_bound_is_dropped_there() {
        let (tx, body, taken) = fed();
        let svc =
            DrainLayer::with_bounds(4 * CHUNK as u64, Duration::from_secs(10)).layer(refusing(0));
        let resp = svc.oneshot(post(body, false)).await;
        assert_eq!(resp.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
        let mut sent = 0;
        while tx.send(Bytes::from(vec![b'x'; CHUNK])).await.is_ok() {
            sent += 1;
            assert!(sent < 64, "the drain did not stop at its bound");
        }
        let taken = taken.load(Ordering::SeqCst);
        assert!(
            taken > 4 * CHUNK as u64 && taken <= 5 * CHUNK as u64,
            "{taken}"
        );
    }

    #[tokio::test]
    async fn a_stalled_body_is_dropped_after_the_time_bound() {
        let (tx, body, _) = fed();
        let svc =
            DrainLayer::with_bounds(MAX_DRAIN_BYTES, Duration::from_millis(100)).layer(refusing(0));
        let resp = svc.oneshot(post(body, false)).await;
        assert_eq!(resp.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
        tx.send(Bytes::from_static(b"a little")).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), tx.closed())
            .await
            .expect("the stalled body is dropped");
    }

    #[tokio::test]
    async fn a_client_waiting_for_100_continue_is_not_drained() {
        let (tx, body, taken) = fed();
        let svc = DrainLayer::new().layer(refusing(0));
        let resp = svc.oneshot(post(body, true)).await;
        assert_eq!(resp.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
        tokio::time::timeout(Duration::from_secs(5), tx.closed())
            .await
            .expect("the body is dropped at once");
        assert_eq!(taken.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_body_read_to_its_end_is_left_alone() {
        let (tx, body, taken) = fed();
        tx.send(Bytes::from_static(b"{}")).await.unwrap();
        drop(tx);
        let svc = DrainLayer::new().layer(refusing(u64::MAX));
        let resp = svc.oneshot(post(body, false)).await;
        assert_eq!(resp.unwrap().status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(taken.load(Ordering::SeqCst), 2);
    }
}
