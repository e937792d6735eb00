//! What printers and terminals share: a live status that the API reads and that changes in
//! one place, which publishes every change of state on the event bus.

use super::DeviceState;
use std::sync::{Arc, Mutex};

/// Where devices' changes of state are announced (the event bus implements it).
pub trait StatePublisher: Send + Sync {
    /// `device` (of API kind `kind`) is now in `state`, with `detail` in plain words.
    fn device_state(
        &self,
        device: &str,
        kind: &'static str,
        state: DeviceState,
        detail: Option<&str>,
    );
}

/// A device status that knows its state and the plain-words detail of it.
pub trait Observable {
    fn state(&self) -> DeviceState;
    fn detail(&self) -> Option<&str>;
}

/// A device's live status behind a lock. Changes of state (or of its detail) are published
/// on the event bus, under the lock, so events leave in the order the changes were made.
pub struct StatusCell<T> {
    inner: Mutex<T>,
    device: String,
    kind: &'static str,
    events: Option<Arc<dyn StatePublisher>>,
}

impl<T: Clone + Observable> StatusCell<T> {
    /// `kind` is the API's device kind (`fiscal_printer`, `payment_terminal`).
    pub fn new(device: &str, kind: &'static str, initial: T) -> Self {
        StatusCell {
            inner: Mutex::new(initial),
            device: device.to_string(),
            kind,
            events: None,
        }
    }

    /// Publish changes on `events` from now on.
    pub fn set_events(&mut self, events: impl StatePublisher + 'static) {
        self.events = Some(Arc::new(events));
    }

    /// A copy of the current status.
    pub fn get(&self) -> T {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Change the status; a change of state or detail is published.
    pub fn update(&self, f: impl FnOnce(&mut T)) {
        let mut s = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let before = (s.state(), s.detail().map(String::from));
        f(&mut s);
        if (s.state(), s.detail()) != (before.0, before.1.as_deref())
            && let Some(events) = &self.events
        {
            events.device_state(&self.device, self.kind, s.state(), s.detail());
        }
    }
}
