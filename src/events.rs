//! The event bus behind `GET /v1/events`: device and job state changes, each with an
//! increasing id, kept in a bounded ring so a client that reconnects with
//! `Last-Event-ID` gets exactly what it missed.
//!
//! - Device events are published from one place per device kind: the status setter of
//!   the printer and terminal handles compares the old and the new state (and its
//!   detail) and publishes when they differ.
//! - Job events are published from one place too: [`EventBus::follow_jobs`] follows the
//!   job-change notifications every task already sends after a journal commit (the
//!   `broadcast::Sender<JobId>` behind `?wait=`), reads the job and publishes its state
//!   when it differs from the last one published for it. A state that lasted less than
//!   that read (e.g. `running` of a job refused at once) can be folded into the next.
//! - Ids start at the daemon's start time in microseconds since the epoch and go up by
//!   one per event, so they keep increasing across restarts (unless the clock is set
//!   back, or more than a million events a second were published).

use crate::device::DeviceState;
use crate::journal::{Job, JobId, JobState, Journal};
use serde_json::json;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

/// Events kept for `Last-Event-ID`.
pub const RING_CAPACITY: usize = 1024;
/// Jobs whose last published state is remembered (to publish changes only).
const JOB_MEMORY: usize = 4096;

/// One published event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub id: u64,
    /// The SSE event name: `device`, `job` (or `reset`, which is never stored).
    pub name: &'static str,
    /// For a job event, the job's owner: cashiers only see their own jobs' events.
    pub owner: Option<String>,
    /// The JSON data.
    pub data: String,
}

/// What a subscriber gets before the live events.
#[derive(Debug)]
pub enum Resume {
    /// The events after the requested id (empty without `Last-Event-ID`).
    Replay(Vec<Arc<Event>>),
    /// The requested id is older than the ring (or unknown): the client must re-read the
    /// state; live events follow. `last_id` is the id to resume from next time.
    Reset { last_id: u64 },
}

struct Ring {
    /// The id of the next event.
    next: u64,
    events: VecDeque<Arc<Event>>,
    capacity: usize,
    job_states: HashMap<JobId, JobState>,
    job_order: VecDeque<JobId>,
}

struct Inner {
    tx: broadcast::Sender<Arc<Event>>,
    ring: Mutex<Ring>,
    /// Open event streams by principal.
    streams: Mutex<HashMap<String, usize>>,
}

/// Most event streams one principal may hold open at once.
pub const MAX_STREAMS_PER_PRINCIPAL: usize = 8;

/// One open event stream; dropping it gives its place back.
pub struct StreamPermit {
    inner: Arc<Inner>,
    principal: String,
}

impl Drop for StreamPermit {
    fn drop(&mut self) {
        let mut streams = self.inner.streams.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = streams.get_mut(&self.principal) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                streams.remove(&self.principal);
            }
        }
    }
}

/// The daemon's event bus. Cloning gives another handle on the same bus.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

impl crate::device::StatePublisher for EventBus {
    fn device_state(
        &self,
        device: &str,
        kind: &'static str,
        state: DeviceState,
        detail: Option<&str>,
    ) {
        self.device(device, kind, state, detail);
    }
}

impl Default for EventBus {
    fn default() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        EventBus::with_seed(seed, RING_CAPACITY)
    }
}

impl EventBus {
    /// A bus whose first event has id `seed + 1`, keeping the last `capacity` events.
    pub fn with_seed(seed: u64, capacity: usize) -> EventBus {
        let (tx, _) = broadcast::channel(capacity.max(16));
        EventBus {
            inner: Arc::new(Inner {
                tx,
                ring: Mutex::new(Ring {
                    next: seed + 1,
                    events: VecDeque::with_capacity(capacity),
                    capacity: capacity.max(1),
                    job_states: HashMap::new(),
                    job_order: VecDeque::new(),
                }),
                streams: Mutex::new(HashMap::new()),
            }),
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.inner.ring.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The id of the last event published (the seed before the first).
    pub fn last_id(&self) -> u64 {
        self.ring().next - 1
    }

    /// A place for one more event stream of `principal`, or None when it already holds
    /// [`MAX_STREAMS_PER_PRINCIPAL`]: one client cannot take every connection with streams.
    pub fn open_stream(&self, principal: &str) -> Option<StreamPermit> {
        let mut streams = self.inner.streams.lock().unwrap_or_else(|p| p.into_inner());
        let n = streams.entry(principal.to_string()).or_insert(0);
        if *n >= MAX_STREAMS_PER_PRINCIPAL {
            return None;
        }
        *n += 1;
        Some(StreamPermit {
            inner: self.inner.clone(),
            principal: principal.to_string(),
        })
    }

    /// Live subscribers.
    pub fn subscribers(&self) -> usize {
        self.inner.tx.receiver_count()
    }

    fn publish(ring: &mut Ring, tx: &broadcast::Sender<Arc<Event>>, ev: Event) -> Arc<Event> {
        let ev = Arc::new(ev);
        if ring.events.len() >= ring.capacity {
            ring.events.pop_front();
        }
        ring.events.push_back(ev.clone());
        ring.next += 1;
        // Under the ring's lock, so a subscriber's replay and its live events never
        // overlap or leave a gap.
        let _ = tx.send(ev.clone());
        ev
    }

    /// A device's state or detail changed.
    pub fn device(
        &self,
        device: &str,
        kind: &'static str,
        state: DeviceState,
        detail: Option<&str>,
    ) {
        let mut ring = self.ring();
        let data = json!({
            "type": "device", "device": device, "kind": kind, "state": state, "detail": detail,
        })
        .to_string();
        let id = ring.next;
        Self::publish(
            &mut ring,
            &self.inner.tx,
            Event {
                id,
                name: "device",
                owner: None,
                data,
            },
        );
    }

    /// A job as just read from the journal: published if its state differs from the
    /// last one published for it. Returns whether it was published.
    pub fn job(&self, job: &Job) -> bool {
        let mut ring = self.ring();
        if ring.job_states.get(&job.id) == Some(&job.state) {
            return false;
        }
        if ring.job_states.insert(job.id, job.state).is_none() {
            ring.job_order.push_back(job.id);
            if ring.job_order.len() > JOB_MEMORY
                && let Some(old) = ring.job_order.pop_front()
            {
                ring.job_states.remove(&old);
            }
        }
        let data = json!({
            "type": "job", "job": job.id, "kind": job.kind.as_str(), "device": job.device,
            "state": job.state.as_str(), "sale": job.parent_id,
        })
        .to_string();
        let id = ring.next;
        Self::publish(
            &mut ring,
            &self.inner.tx,
            Event {
                id,
                name: "job",
                owner: job.owner.clone(),
                data,
            },
        );
        drop(ring);
        metrics::counter!("fiscald_job_transitions_total", "kind" => job.kind.as_str(), "state" => job.state.as_str())
            .increment(1);
        true
    }

    /// Subscribe: what to send first for `last_event_id` (the `Last-Event-ID` header),
    /// and the live events after it.
    pub fn subscribe(
        &self,
        last_event_id: Option<&str>,
    ) -> (Resume, broadcast::Receiver<Arc<Event>>) {
        let ring = self.ring();
        let rx = self.inner.tx.subscribe();
        let last = ring.next - 1;
        let resume = match last_event_id.map(str::trim) {
            None | Some("") => Resume::Replay(Vec::new()),
            Some(text) => match text.parse::<u64>() {
                Ok(n) => {
                    let oldest = ring.events.front().map_or(ring.next, |e| e.id);
                    if n <= last && n + 1 >= oldest {
                        Resume::Replay(ring.events.iter().filter(|e| e.id > n).cloned().collect())
                    } else {
                        Resume::Reset { last_id: last }
                    }
                }
                Err(_) => Resume::Reset { last_id: last },
            },
        };
        (resume, rx)
    }

    /// Publish job state changes: for every job id announced on `changed` (sent after each
    /// journal commit that changes a job), read the job and publish it. Runs until
    /// `shutdown`.
    pub async fn follow_jobs(
        self,
        journal: Journal,
        mut changed: broadcast::Receiver<JobId>,
        shutdown: CancellationToken,
    ) {
        loop {
            let id = tokio::select! {
                r = changed.recv() => match r {
                    Ok(id) => id,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "the event bus fell behind job changes; some job events are missing");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = shutdown.cancelled() => return,
            };
            match journal.run(move |j| j.get(id)).await {
                Ok(Some(job)) => {
                    self.job(&job);
                }
                Ok(None) => {}
                Err(e) => tracing::warn!(job = id, error = %e, "cannot read a changed job"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JobKind;

    fn job(id: JobId, state: JobState, owner: &str) -> Job {
        Job {
            id,
            kind: JobKind::Receipt,
            device: "fp1".into(),
            state,
            step: None,
            request: crate::journal::JobRequest::DailyReport,
            result: None,
            error: None,
            counters_before: None,
            parent_id: None,
            attempts: 0,
            created_at: String::new(),
            updated_at: String::new(),
            owner: Some(owner.into()),
        }
    }

    #[test]
    fn ids_increase_and_resume_replays_exactly_what_was_missed() {
        let bus = EventBus::with_seed(100, 4);
        bus.device("fp1", "fiscal_printer", DeviceState::Ready, None);
        assert!(bus.job(&job(1, JobState::Queued, "a")));
        assert!(
            !bus.job(&job(1, JobState::Queued, "a")),
            "no change, no event"
        );
        assert!(bus.job(&job(1, JobState::Running, "a")));
        assert_eq!(bus.last_id(), 103);
        let Resume::Replay(r) = bus.subscribe(Some("101")).0 else {
            panic!()
        };
        assert_eq!(r.iter().map(|e| e.id).collect::<Vec<_>>(), vec![102, 103]);
        let Resume::Replay(r) = bus.subscribe(Some("103")).0 else {
            panic!()
        };
        assert!(r.is_empty());
        // Fill past the ring (4): 101 falls out, so only ids from 101 on can resume.
        bus.device(
            "fp1",
            "fiscal_printer",
            DeviceState::PaperOut,
            Some("paper out"),
        );
        bus.device("fp1", "fiscal_printer", DeviceState::Ready, None);
        assert!(matches!(
            bus.subscribe(Some("100")).0,
            Resume::Reset { last_id: 105 }
        ));
        assert!(matches!(bus.subscribe(Some("101")).0, Resume::Replay(ref v) if v.len() == 4));
        assert!(matches!(bus.subscribe(Some("102")).0, Resume::Replay(ref v) if v.len() == 3));
        // From another run (older or newer than anything here) or garbage: reset.
        assert!(matches!(bus.subscribe(Some("7")).0, Resume::Reset { .. }));
        assert!(matches!(bus.subscribe(Some("999")).0, Resume::Reset { .. }));
        assert!(matches!(bus.subscribe(Some("x")).0, Resume::Reset { .. }));
    }

    #[test]
    fn live_events_follow_the_replay_without_gap() {
        let bus = EventBus::with_seed(0, 8);
        bus.device("fp1", "fiscal_printer", DeviceState::Ready, None);
        let (_, mut rx) = bus.subscribe(Some("1"));
        bus.device("fp1", "fiscal_printer", DeviceState::Busy, None);
        assert_eq!(rx.try_recv().unwrap().id, 2);
    }

    #[test]
    fn ids_keep_increasing_across_restarts() {
        let a = EventBus::default();
        a.device("fp1", "fiscal_printer", DeviceState::Ready, None);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let b = EventBus::default();
        assert!(b.last_id() > a.last_id());
    }
}
