//! The publisher task: the outbox's unsent rows to JetStream, one at a time in sequence
//! order, each with `Nats-Msg-Id: <till>-<seq>`, marked sent once the broker acknowledged
//! them.
//!
//! One message is in flight at a time (stop-and-wait): a message is sent only after the one
//! before it was acknowledged, so the stream holds a till's events in order even when the
//! broker goes away in the middle of a burst (with several in flight, those lost in the
//! dead connection would be overtaken by the client's buffered ones). A message whose ack
//! did not come is sent again: the broker's duplicate window drops the copy. Rows are
//! marked sent in batches; after a crash the unmarked ones are sent again and dropped as
//! duplicates by the same rule.

use super::FleetConfig;
use super::status::FleetStatus;
use crate::journal::{Journal, OutboxRow};
use async_nats::jetstream::{self, stream};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Rows read from the outbox at once.
const BATCH: u32 = 256;
/// How long an idle publisher waits before it looks at the outbox again.
const IDLE_POLL: Duration = Duration::from_millis(100);
/// How long a publish waits for the broker's acknowledgement.
const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// Reconnect back-off: from the first to the last value, doubling.
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Acknowledged rows are marked sent at least this often while a backlog drains.
const MARK_EVERY: Duration = Duration::from_millis(200);

/// The options the client connects with: credentials, TLS, and our own event callback.
async fn connect_options(
    cfg: &FleetConfig,
    status: Arc<FleetStatus>,
) -> Result<async_nats::ConnectOptions, String> {
    let mut o = async_nats::ConnectOptions::new()
        .name(format!("fiscald {}", cfg.till))
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        .reconnect_delay_callback(|attempts| {
            (BACKOFF_MIN * 2u32.saturating_pow(attempts.min(8) as u32)).min(BACKOFF_MAX)
        })
        .event_callback(move |event| {
            let status = status.clone();
            async move { status.on_client_event(&event) }
        });
    if let Some(path) = &cfg.credentials {
        o = o
            .credentials_file(path)
            .await
            .map_err(|e| format!("cannot read the credentials file {}: {e}", path.display()))?;
    }
    if let Some(tls) = &cfg.tls {
        o = o.require_tls(tls.required);
        if let Some(ca) = &tls.ca_file {
            o = o.add_root_certificates(ca.clone());
        }
        if let (Some(c), Some(k)) = (&tls.cert_file, &tls.key_file) {
            o = o.add_client_certificate(c.clone(), k.clone());
        }
    }
    Ok(o)
}

/// The stream configuration fiscald creates when it is missing.
pub fn stream_config(cfg: &FleetConfig) -> stream::Config {
    stream::Config {
        name: cfg.stream.clone(),
        subjects: vec![format!("{}.>", cfg.subject_prefix)],
        duplicate_window: Duration::from_secs(cfg.duplicate_window),
        storage: stream::StorageType::File,
        retention: stream::RetentionPolicy::Limits,
        ..Default::default()
    }
}

/// Create the stream if allowed and missing, else check that it exists and takes our
/// subjects.
async fn ensure_stream(js: &jetstream::Context, cfg: &FleetConfig) -> Result<(), String> {
    if cfg.create_stream {
        js.get_or_create_stream(stream_config(cfg))
            .await
            .map_err(|e| format!("cannot create or open stream {}: {e}", cfg.stream))?;
        return Ok(());
    }
    let s = js.get_stream(&cfg.stream).await.map_err(|e| {
        format!(
            "stream {} is not there ({e}) and create_stream = false: ask head office to create it with subjects \"{}.>\"",
            cfg.stream, cfg.subject_prefix
        )
    })?;
    let subjects = &s.cached_info().config.subjects;
    let ours = format!("{}.{}.jobs", cfg.subject_prefix, cfg.till);
    if !subjects.iter().any(|f| subject_matches(f, &ours)) {
        return Err(format!(
            "stream {} does not take {ours} (its subjects: {}): add \"{}.>\"",
            cfg.stream,
            subjects.join(", "),
            cfg.subject_prefix
        ));
    }
    Ok(())
}

/// Whether NATS subject filter `filter` (with `*` and `>`) matches `subject`.
pub fn subject_matches(filter: &str, subject: &str) -> bool {
    let mut s = subject.split('.');
    for f in filter.split('.') {
        match (f, s.next()) {
            (">", Some(_)) => return true,
            ("*", Some(_)) => {}
            (f, Some(t)) if f == t => {}
            _ => return false,
        }
    }
    s.next().is_none()
}

/// Run until `shutdown`: connect (with back-off), make sure of the stream, send the backlog
/// and then each new row. Never touches the API; the API only reads [`FleetStatus`].
pub async fn run(
    journal: Journal,
    cfg: FleetConfig,
    status: Arc<FleetStatus>,
    shutdown: CancellationToken,
) {
    let mut backoff = BACKOFF_MIN;
    loop {
        let attempt = async {
            let options = connect_options(&cfg, status.clone()).await?;
            let client = options
                .connect(cfg.nats.list())
                .await
                .map_err(|e| format!("cannot connect to {}: {e}", cfg.nats.list().join(", ")))?;
            status.set_connected(true);
            let mut js = jetstream::new(client);
            js.set_timeout(ACK_TIMEOUT);
            ensure_stream(&js, &cfg).await?;
            status.set_stream_ready(true);
            Ok::<_, String>(js)
        };
        let js = tokio::select! {
            r = attempt => r,
            _ = shutdown.cancelled() => return,
        };
        let js = match js {
            Ok(js) => js,
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "fleet: broker not reachable; events stay in the outbox");
                status.set_error(e);
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
                continue;
            }
        };
        tracing::info!(stream = %cfg.stream, till = %cfg.till, "fleet: connected");
        backoff = BACKOFF_MIN;
        // The client reconnects by itself; a failed publish is retried here with back-off.
        loop {
            match drain(&journal, &js, &cfg, &status, &shutdown).await {
                Ok(()) => return,
                Err(e) => {
                    tracing::warn!(error = %e, retry_in = ?backoff, "fleet: publish failed; retrying");
                    status.set_error(e);
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
}

/// Send rows until `shutdown` (Ok) or a publish fails (Err).
async fn drain(
    journal: &Journal,
    js: &jetstream::Context,
    cfg: &FleetConfig,
    status: &FleetStatus,
    shutdown: &CancellationToken,
) -> Result<(), String> {
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let rows = journal
            .run(|j| j.outbox_unsent(BATCH))
            .await
            .map_err(|e| e.to_string())?;
        if rows.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(IDLE_POLL) => {}
                _ = shutdown.cancelled() => return Ok(()),
            }
            continue;
        }
        let mut acked: Option<i64> = None;
        let mut marked_at = tokio::time::Instant::now();
        let mut outcome = Ok(());
        for row in &rows {
            match publish(js, cfg, row).await {
                Ok(ack) => {
                    acked = Some(row.id);
                    status.acked(row.seq, ack.duplicate);
                }
                Err(e) => {
                    outcome = Err(e);
                    break;
                }
            }
            if marked_at.elapsed() >= MARK_EVERY
                && let Some(id) = acked.take()
            {
                mark(journal, id).await?;
                marked_at = tokio::time::Instant::now();
            }
            if shutdown.is_cancelled() {
                break;
            }
        }
        if let Some(id) = acked {
            mark(journal, id).await?;
        }
        outcome?;
        status.clear_error();
    }
}

async fn mark(journal: &Journal, id: i64) -> Result<(), String> {
    journal
        .run(move |j| j.outbox_mark_sent(id))
        .await
        .map_err(|e| format!("cannot mark outbox rows sent: {e}"))
}

/// One row to the broker, waiting for its acknowledgement.
async fn publish(
    js: &jetstream::Context,
    cfg: &FleetConfig,
    row: &OutboxRow,
) -> Result<jetstream::publish::PublishAck, String> {
    let subject = format!("{}.{}.{}", cfg.subject_prefix, row.till, row.subject);
    let message = jetstream::message::PublishMessage::build()
        .payload(row.payload.clone().into())
        .message_id(message_id(&row.till, row.seq));
    let ack = js
        .send_publish(subject.clone(), message)
        .await
        .map_err(|e| format!("cannot publish {subject} seq {}: {e}", row.seq))?;
    ack.await
        .map_err(|e| format!("no acknowledgement for {subject} seq {}: {e}", row.seq))
}

/// `Nats-Msg-Id` of a till's event: `<till>-<seq>`.
pub fn message_id(till: &str, seq: u64) -> String {
    format!("{till}-{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_filters() {
        assert!(subject_matches("fiscald.>", "fiscald.t1.jobs"));
        assert!(subject_matches("fiscald.*.jobs", "fiscald.t1.jobs"));
        assert!(!subject_matches("fiscald.*.audit", "fiscald.t1.jobs"));
        assert!(!subject_matches("fiscald", "fiscald.t1.jobs"));
        assert!(!subject_matches("other.>", "fiscald.t1.jobs"));
        assert_eq!(message_id("shop17-till2", 42), "shop17-till2-42");
    }
}
