//! `GET /v1/events`: device and job state changes as Server-Sent Events, from the event
//! bus (`crate::events`), with `Last-Event-ID` resumption.

use super::types::{ResetEvent, to_json};
use super::{AppState, Caller};
use axum::Extension;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast;

/// How often an idle event stream sends a keep-alive comment.
pub const EVENTS_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// A stream that delivered no event for this long is closed; the client reconnects with
/// `Last-Event-ID` and misses nothing.
pub const EVENTS_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

fn sse_event(e: &crate::events::Event) -> axum::response::sse::Event {
    axum::response::sse::Event::default()
        .event(e.name)
        .id(e.id.to_string())
        .data(&e.data)
}

fn reset_event(last_id: u64, why: &str) -> axum::response::sse::Event {
    axum::response::sse::Event::default()
        .event("reset")
        .id(last_id.to_string())
        .data(
            to_json(&ResetEvent {
                kind: "reset".into(),
                reason: why.into(),
            })
            .to_string(),
        )
}

/// `GET /v1/events`: device and job state changes as Server-Sent Events. With
/// `Last-Event-ID`, the events after it come first (or `reset` when they are no longer
/// kept: re-read the state). Cashiers get only their own jobs' events.
pub(super) async fn get_events(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
) -> Response {
    use crate::events::{Event, Resume};
    let Some(permit) = state.bus.open_stream(&caller.who.name) else {
        return super::ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!(
                "{} already has {} event streams open; close one (each client needs only one)",
                caller.who.name,
                crate::events::MAX_STREAMS_PER_PRINCIPAL
            ),
        )
        .into_response();
    };
    use axum::response::sse::{KeepAlive, Sse};
    use futures_util::StreamExt;
    let last = headers.get("last-event-id").and_then(|v| v.to_str().ok());
    let (resume, rx) = state.bus.subscribe(last);
    let owner = (!caller.who.sees_all_jobs()).then(|| caller.who.name.clone());
    let visible = move |e: &Event| match &owner {
        None => true,
        Some(me) => e.name != "job" || e.owner.as_deref() == Some(me.as_str()),
    };
    let first: Vec<axum::response::sse::Event> = match resume {
        Resume::Replay(events) => events
            .iter()
            .filter(|e| visible(e))
            .map(|e| sse_event(e))
            .collect(),
        Resume::Reset { last_id } => vec![reset_event(
            last_id,
            "the events after Last-Event-ID are no longer kept; read the devices and jobs again",
        )],
    };
    struct Live<F> {
        rx: broadcast::Receiver<Arc<Event>>,
        bus: crate::events::EventBus,
        shutdown: tokio_util::sync::CancellationToken,
        visible: F,
        _permit: crate::events::StreamPermit,
    }
    let live = futures_util::stream::unfold(
        Live {
            rx,
            bus: state.bus.clone(),
            shutdown: state.shutdown.clone(),
            visible,
            _permit: permit,
        },
        |mut l| async move {
            loop {
                let r = tokio::select! {
                    r = l.rx.recv() => r,
                    // The stream ends when the daemon stops, so shutdown is not held up.
                    _ = l.shutdown.cancelled() => return None,
                    // An idle stream ends too: its client reconnects with Last-Event-ID.
                    _ = tokio::time::sleep(EVENTS_IDLE_TIMEOUT) => return None,
                };
                match r {
                    Ok(e) if (l.visible)(&e) => return Some((sse_event(&e), l)),
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        l.rx = l.rx.resubscribe();
                        let ev = reset_event(
                            l.bus.last_id(),
                            "this client fell behind and missed events; read the devices and jobs again",
                        );
                        return Some((ev, l));
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        },
    );
    let stream = futures_util::stream::iter(first)
        .chain(live)
        .map(Ok::<_, std::convert::Infallible>);
    let mut resp = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(EVENTS_KEEP_ALIVE))
        .into_response();
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}
