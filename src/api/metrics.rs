//! `GET /metrics`: Prometheus text. Device states, queue depths and link counters are read
//! now, from the device views; the rest is counted as it happens (see `crate::metrics`).

use super::types::DeviceView;
use super::{ApiResult, AppState};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// `GET /metrics`.
pub(super) async fn get_metrics(State(state): State<AppState>) -> ApiResult {
    for device in super::devices::device_views(&state).await? {
        let id = device.id();
        crate::metrics::queue_depth(id, device.queue_depth());
        match &device {
            DeviceView::FiscalPrinter(p) => {
                crate::metrics::register_device(id, true);
                crate::metrics::device_state(id, device.kind(), p.state);
                crate::metrics::link(
                    id,
                    p.link.bytes_out,
                    p.link.bytes_in,
                    Some((p.link.frames_out, p.link.frames_in)),
                );
                crate::metrics::frame_errors(id, p.link.frame_errors, p.link.garbage_bytes);
            }
            DeviceView::PaymentTerminal(t) => {
                crate::metrics::register_device(id, false);
                crate::metrics::device_state(id, device.kind(), t.state);
                crate::metrics::link(id, t.link.bytes_out, t.link.bytes_in, None);
            }
        }
    }
    metrics::gauge!("fiscald_event_subscribers").set(state.bus.subscribers() as f64);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response())
}
