//! The API's handle on one device task, whatever the device: its configuration, the port it
//! opens, its live status and the bell that wakes the task when a job is queued.
//!
//! Printers and terminals differ only in their configuration and status types, so one
//! generic handle serves both (`DeviceHandle<TerminalConfig, TerminalStatus>` is the
//! terminal's).

use super::{LinkStats, Observable, StatusCell};
use std::sync::{Arc, Mutex};
use tokio::sync::Notify;

/// A device's configuration, as far as the handle needs it.
pub trait DeviceConfig {
    /// The device's id in the configuration (`fp1`, `t1`).
    fn id(&self) -> &str;
}

/// A device's live status, as far as the handle needs it.
pub trait HandleStatus: Clone + Observable {
    /// The API's device kind (`fiscal_printer`, `payment_terminal`).
    const KIND: &'static str;
    /// The status before the task has connected (offline, "not connected yet").
    fn not_connected() -> Self;
}

/// The API's handle on a device task.
pub struct DeviceHandle<C, S> {
    /// The device's configuration.
    pub config: C,
    /// What the task opens: a device path (the emulator's pseudo-terminal for `"sim"`) or
    /// `tcp://...`.
    pub target: String,
    /// The live status; every change of state is published.
    pub status: StatusCell<S>,
    /// Wakes the task when a job is queued.
    pub wake: Notify,
    /// Byte and frame counters of the device's link, which its driver keeps (the API's `link`).
    pub link: Arc<Mutex<LinkStats>>,
}

impl<C: DeviceConfig, S: HandleStatus> DeviceHandle<C, S> {
    /// A handle for a device that has not connected yet.
    pub fn new(config: C, target: String) -> Self {
        let status = StatusCell::new(config.id(), S::KIND, S::not_connected());
        DeviceHandle {
            config,
            target,
            status,
            wake: Notify::new(),
            link: Arc::default(),
        }
    }

    /// Publish this device's state changes on `events`.
    pub fn with_events(mut self, events: impl super::StatePublisher + 'static) -> Self {
        self.status.set_events(events);
        self
    }

    /// The device's id.
    pub fn id(&self) -> &str {
        self.config.id()
    }

    /// A copy of the current status.
    pub fn status(&self) -> S {
        self.status.get()
    }

    /// A copy of the link's counters.
    pub fn link_stats(&self) -> LinkStats {
        *self.link.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Change the status (a change of state or detail is published).
    pub fn update(&self, f: impl FnOnce(&mut S)) {
        self.status.update(f);
    }
}
