//! Prometheus metrics for `GET /metrics`, through the `metrics` facade and
//! `metrics-exporter-prometheus` (without its own HTTP server: the API renders them).
//!
//! Two sorts:
//! - counted where they happen: job state transitions (from the event bus), retries,
//!   reconciliations and their outcomes, and the journal's commit latency (a histogram);
//! - read when scraped: device states, queue depths and the link counters
//!   (bytes, frames, frame errors), which the devices already keep.

use crate::device::DeviceState;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Instant;

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Buckets of the journal commit latency histogram, in seconds.
const COMMIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

/// Install the process-wide recorder (once; later calls are no-ops). Metrics recorded
/// before it are lost, so the daemon calls it first.
pub fn install() {
    if HANDLE.get().is_some() {
        return;
    }
    let built = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("fiscald_journal_commit_seconds".into()),
            COMMIT_BUCKETS,
        )
        .and_then(|b| b.install_recorder());
    match built {
        Ok(handle) => {
            let _ = HANDLE.set(handle);
            describe();
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot install the metrics recorder; /metrics stays empty")
        }
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    describe_counter!(
        "fiscald_job_transitions_total",
        "Jobs entering a state (queued, running, done, failed, needs_attention, cancelled) since the daemon started, by kind"
    );
    describe_gauge!(
        "fiscald_device_state",
        "1 for the device's current state, 0 for the others"
    );
    describe_gauge!(
        "fiscald_queue_depth",
        "Jobs queued or running on the device"
    );
    describe_counter!(
        "fiscald_link_bytes_total",
        "Bytes on the device's line, by direction (in: from the device)"
    );
    describe_counter!(
        "fiscald_link_frames_total",
        "POSNET frames on the printer's line, by direction"
    );
    describe_counter!(
        "fiscald_link_frame_errors_total",
        "Frames the printer did not take (frame error replies) and bytes that were not a frame (garbage)"
    );
    describe_counter!(
        "fiscald_retries_total",
        "Commands or documents sent again: frame_error (resent after a frame error), rpt (a lost reply recovered), resend (the printer never got the command), reprint (reconciliation showed the document was not printed)"
    );
    describe_counter!(
        "fiscald_reconciliations_total",
        "Interrupted jobs reconciled from the device, by outcome"
    );
    describe_histogram!(
        "fiscald_journal_commit_seconds",
        metrics::Unit::Seconds,
        "Time to write and commit a journal transaction (submit_batch, set_step, finish)"
    );
}

/// The rendered Prometheus text (empty when no recorder was installed).
pub fn render() -> String {
    HANDLE
        .get()
        .map(PrometheusHandle::render)
        .unwrap_or_default()
}

/// Record a journal commit that started at `t0`.
pub fn journal_commit(op: &'static str, t0: Instant) {
    metrics::histogram!("fiscald_journal_commit_seconds", "op" => op)
        .record(t0.elapsed().as_secs_f64());
}

/// Something was sent again (see `fiscald_retries_total`).
pub fn retry(device: &str, why: &'static str) {
    metrics::counter!("fiscald_retries_total", "device" => device.to_string(), "reason" => why)
        .increment(1);
}

/// An interrupted job was reconciled with this outcome.
pub fn reconciliation(device: &str, outcome: &'static str) {
    metrics::counter!("fiscald_reconciliations_total", "device" => device.to_string(), "outcome" => outcome)
        .increment(1);
}

const STATES: &[(DeviceState, &str)] = &[
    (DeviceState::Ready, "ready"),
    (DeviceState::Busy, "busy"),
    (DeviceState::Offline, "offline"),
    (DeviceState::PaperOut, "paper_out"),
    (DeviceState::PaperLow, "paper_low"),
    (DeviceState::CoverOpen, "cover_open"),
    (DeviceState::Error, "error"),
];

/// Set the device's state gauges: 1 for `state`, 0 for the others.
pub fn device_state(device: &str, kind: &'static str, state: DeviceState) {
    for (s, name) in STATES {
        metrics::gauge!("fiscald_device_state", "device" => device.to_string(), "kind" => kind, "state" => *name)
            .set(if *s == state { 1.0 } else { 0.0 });
    }
}

/// Register a device's retry and reconciliation series at zero, so every family is there
/// from the first scrape (adding 0 changes nothing).
pub fn register_device(device: &str, printer: bool) {
    let d = || device.to_string();
    if printer {
        for why in ["frame_error", "rpt", "resend", "reprint"] {
            metrics::counter!("fiscald_retries_total", "device" => d(), "reason" => why)
                .increment(0);
        }
    }
    let outcomes: &[&'static str] = if printer {
        &["printed", "not_printed", "needs_attention"]
    } else {
        &[
            "approved",
            "declined",
            "not_processed",
            "needs_attention",
            "reversed",
        ]
    };
    for outcome in outcomes {
        metrics::counter!("fiscald_reconciliations_total", "device" => d(), "outcome" => *outcome)
            .increment(0);
    }
}

/// Set a device's queue depth.
pub fn queue_depth(device: &str, depth: i64) {
    metrics::gauge!("fiscald_queue_depth", "device" => device.to_string()).set(depth as f64);
}

/// The link counters of a device as they stand.
pub fn link(device: &str, bytes_out: u64, bytes_in: u64, frames: Option<(u64, u64)>) {
    let d = || device.to_string();
    metrics::counter!("fiscald_link_bytes_total", "device" => d(), "direction" => "out")
        .absolute(bytes_out);
    metrics::counter!("fiscald_link_bytes_total", "device" => d(), "direction" => "in")
        .absolute(bytes_in);
    if let Some((out, inn)) = frames {
        metrics::counter!("fiscald_link_frames_total", "device" => d(), "direction" => "out")
            .absolute(out);
        metrics::counter!("fiscald_link_frames_total", "device" => d(), "direction" => "in")
            .absolute(inn);
    }
}

/// Frame errors and garbage bytes of a printer link.
pub fn frame_errors(device: &str, frame_errors: u64, garbage_bytes: u64) {
    metrics::counter!("fiscald_link_frame_errors_total", "device" => device.to_string(), "kind" => "frame_error")
        .absolute(frame_errors);
    metrics::counter!("fiscald_link_frame_errors_total", "device" => device.to_string(), "kind" => "garbage_bytes")
        .absolute(garbage_bytes);
}
