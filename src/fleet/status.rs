//! The fleet link's live status (what `/v1/health`, `/metrics`, the status page and
//! `fiscald ctl fleet` show), and the device-state sink that feeds the outbox.

use crate::api::types::FleetView;
use crate::device::{DeviceState, StatePublisher};
use crate::fleet::event::DeviceEvent;
use crate::journal::{Journal, OutboxStats};
use std::sync::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Default)]
struct Inner {
    connected: bool,
    stream_ready: bool,
    last_ack_at: Option<String>,
    last_ack_seq: Option<u64>,
    published: u64,
    duplicates: u64,
    last_error: Option<String>,
}

/// The link's status, written by the publisher task and read by the API.
#[derive(Debug)]
pub struct FleetStatus {
    till: String,
    stream: String,
    inner: Mutex<Inner>,
}

impl FleetStatus {
    /// A link not yet connected.
    pub fn new(till: &str, stream: &str) -> FleetStatus {
        FleetStatus {
            till: till.into(),
            stream: stream.into(),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn on_client_event(&self, event: &async_nats::Event) {
        match event {
            async_nats::Event::Connected => self.set_connected(true),
            async_nats::Event::Disconnected | async_nats::Event::Closed => {
                tracing::warn!(event = %event, "fleet: broker connection lost");
                self.set_connected(false)
            }
            other => tracing::info!(event = %other, "fleet: client event"),
        }
    }

    pub(super) fn set_connected(&self, connected: bool) {
        let mut s = self.lock();
        s.connected = connected;
        if !connected {
            s.last_error.get_or_insert_with(|| "disconnected".into());
        }
    }

    pub(super) fn set_stream_ready(&self, ready: bool) {
        self.lock().stream_ready = ready;
    }

    pub(super) fn set_error(&self, e: String) {
        self.lock().last_error = Some(e);
    }

    pub(super) fn clear_error(&self) {
        self.lock().last_error = None;
    }

    pub(super) fn acked(&self, seq: u64, duplicate: bool) {
        let mut s = self.lock();
        s.last_ack_at = Some(crate::journal::now());
        s.last_ack_seq = Some(seq);
        s.published += 1;
        if duplicate {
            s.duplicates += 1;
        }
        s.last_error = None;
    }

    /// The view, with the outbox's figures (`stats`) read from the journal.
    pub fn view(&self, stats: &OutboxStats) -> FleetView {
        let s = self.lock();
        let oldest_unsent_age = stats.oldest_unsent.as_deref().and_then(|t| {
            let t = chrono::DateTime::parse_from_rfc3339(t).ok()?;
            Some(
                (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
                    .num_seconds()
                    .max(0) as u64,
            )
        });
        let state = if stats.full {
            "outbox_full"
        } else if s.connected && s.stream_ready {
            "connected"
        } else {
            "disconnected"
        };
        FleetView {
            state: state.into(),
            till: self.till.clone(),
            stream: self.stream.clone(),
            connected: s.connected && s.stream_ready,
            backlog: stats.backlog,
            oldest_unsent_age,
            last_ack: s.last_ack_at.clone(),
            last_ack_seq: s.last_ack_seq,
            last_seq: stats.last_seq,
            outbox_rows: stats.rows,
            outbox_bytes: stats.bytes,
            outbox_full: stats.full,
            published: s.published,
            duplicates: s.duplicates,
            last_error: s.last_error.clone(),
        }
    }
}

/// Device state changes for the outbox: sent from the status setter (which must not wait
/// on the journal) to [`write_device_events`].
#[derive(Clone)]
pub struct DeviceSink(mpsc::UnboundedSender<DeviceEvent>);

/// Publishes device changes on the event bus and, when the fleet is on, to the outbox.
#[derive(Clone)]
pub struct DevicePublishers {
    pub bus: crate::events::EventBus,
    pub fleet: Option<DeviceSink>,
}

impl StatePublisher for DevicePublishers {
    fn device_state(
        &self,
        device: &str,
        kind: &'static str,
        state: DeviceState,
        detail: Option<&str>,
    ) {
        self.bus.device_state(device, kind, state, detail);
        if let Some(DeviceSink(tx)) = &self.fleet {
            let _ = tx.send(DeviceEvent {
                device: device.into(),
                kind,
                state,
                detail: detail.map(String::from),
            });
        }
    }
}

/// A sink and the receiver [`write_device_events`] drains.
pub fn device_sink() -> (DeviceSink, mpsc::UnboundedReceiver<DeviceEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (DeviceSink(tx), rx)
}

/// Write device events into the outbox, in order, until `shutdown` (then what is queued).
pub async fn write_device_events(
    journal: Journal,
    mut rx: mpsc::UnboundedReceiver<DeviceEvent>,
    shutdown: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            e = rx.recv() => e,
            _ = shutdown.cancelled() => rx.try_recv().ok(),
        };
        let Some(event) = event else { return };
        let r = journal
            .run_until_committed(&shutdown, "fleet device event", move |j| {
                j.record_device_state(event.clone())
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "fleet: cannot journal a device event");
        }
    }
}
