//! Shop-chain delivery: the journal's events to NATS JetStream, effectively once.
//!
//! - `config`: `[fleet]`.
//! - `event`: [`event::FleetEvent`], the typed messages, and their JSON envelope.
//! - The outbox itself lives in the journal (`journal/outbox.rs`): rows are written in the
//!   same transaction as the change they describe.

pub mod config;
pub mod event;

pub use config::FleetConfig;
pub mod publisher;
pub mod status;
pub mod tail;

pub use status::{DevicePublishers, FleetStatus};

use crate::journal::Journal;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// Turn the outbox on and start the publisher and the device-event writer on `tasks`.
/// Called only when `[fleet]` is configured: without it no broker code runs.
pub fn start(
    journal: &Journal,
    cfg: &FleetConfig,
    tasks: &mut tokio::task::JoinSet<()>,
    shutdown: &CancellationToken,
) -> anyhow::Result<(Arc<FleetStatus>, status::DeviceSink)> {
    journal
        .enable_outbox(&cfg.till, cfg.max_rows, cfg.max_bytes)
        .map_err(|e| anyhow::anyhow!("cannot turn the fleet outbox on: {e}"))?;
    let status = Arc::new(FleetStatus::new(&cfg.till, &cfg.stream));
    let (sink, rx) = status::device_sink();
    tasks.spawn(status::write_device_events(
        journal.clone(),
        rx,
        shutdown.clone(),
    ));
    tasks.spawn(publisher::run(
        journal.clone(),
        cfg.clone(),
        status.clone(),
        shutdown.clone(),
    ));
    tracing::info!(till = %cfg.till, stream = %cfg.stream, nats = %cfg.nats.list().join(","), "fleet: outbox on, publisher started");
    Ok((status, sink))
}

/// The fleet view for the API: the link's status with the outbox's figures.
pub async fn view(
    journal: &Journal,
    status: &FleetStatus,
) -> Result<crate::api::types::FleetView, crate::journal::JournalError> {
    let stats = journal.run(|j| j.outbox_stats()).await?;
    Ok(status.view(&stats))
}
