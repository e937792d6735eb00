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
    if let Some(f) = &state.fleet
        && let Ok(v) = crate::fleet::view(&state.journal, f).await
    {
        metrics::gauge!("fiscald_fleet_connected").set(u8::from(v.connected) as f64);
        metrics::gauge!("fiscald_fleet_backlog_rows").set(v.backlog as f64);
        metrics::gauge!("fiscald_fleet_oldest_unsent_age_seconds")
            .set(v.oldest_unsent_age.unwrap_or(0) as f64);
        metrics::gauge!("fiscald_fleet_outbox_full").set(u8::from(v.outbox_full) as f64);
        metrics::gauge!("fiscald_fleet_outbox_rows").set(v.outbox_rows as f64);
        metrics::gauge!("fiscald_fleet_last_ack_seq").set(v.last_ack_seq.unwrap_or(0) as f64);
        metrics::gauge!("fiscald_fleet_published").set(v.published as f64);
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
