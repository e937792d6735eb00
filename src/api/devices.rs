//! The devices as the API sees them: `GET /v1/health`, `GET /v1/devices`, and which device
//! a request is for. This is the only API file that knows the printer and terminal task
//! handles; the rest of the API goes through [`PrinterTarget`], [`TerminalTarget`] and the
//! [`DeviceView`]s built here.

use super::types::{
    DeviceList, DeviceView, Health, HealthStatus, PrinterLink, PrinterView, TerminalLink,
    TerminalView, VatView, to_json,
};
use super::{ApiError, ApiResult, AppState};
use crate::document::{Invalid, PrinterLimits};
use crate::printer::PrinterHandle;
use crate::terminal::TerminalHandle;
use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;
use tokio::sync::Notify;

/// The configured printers' task handles, by id.
pub type Printers = Arc<BTreeMap<String, Arc<PrinterHandle>>>;
/// The configured terminals' task handles, by id.
pub type Terminals = Arc<BTreeMap<String, Arc<TerminalHandle>>>;

/// A device's queue: its id, and what wakes its task when a job is queued.
pub(super) type Queue<'a> = (&'a str, &'a Notify);

/// The printer a job goes to.
pub(super) struct PrinterTarget(Arc<PrinterHandle>);

impl PrinterTarget {
    /// Its id.
    pub(super) fn id(&self) -> &str {
        &self.0.config.id
    }

    /// Where its jobs queue: its id, and what wakes its task when one is queued.
    pub(super) fn queue(&self) -> Queue<'_> {
        (&self.0.config.id, &self.0.wake)
    }

    /// Its unique (serial) number, once it was read.
    pub(super) fn serial_number(&self) -> Option<String> {
        self.0.status().serial_number
    }

    /// The protocol's own check of a validated request (code page, unsupported parts).
    pub(super) fn check(
        &self,
        request: &crate::job::records::JobRequest,
    ) -> Result<(), crate::document::Invalid> {
        crate::drivers::check_request(&self.0.config, request)
    }

    /// What its protocol can print.
    pub(super) fn support(&self) -> crate::document::DocumentSupport {
        crate::drivers::printer_support(self.0.config.protocol)
    }

    /// What validation must know about it: name length, and its active VAT letters once
    /// its table was read (`f` gets the limits for the duration of the call).
    pub(super) fn with_limits<T>(&self, f: impl FnOnce(&PrinterLimits<'_>) -> T) -> T {
        let active = self.0.active_vat();
        f(&PrinterLimits {
            max_name_length: self.0.config.max_name_length,
            active_vat: active.as_deref(),
            support: crate::drivers::printer_support(self.0.config.protocol),
        })
    }
}

/// The terminal a job goes to.
pub(super) struct TerminalTarget(Arc<TerminalHandle>);

impl TerminalTarget {
    /// Where its jobs queue: its id, and what wakes its task when one is queued.
    pub(super) fn queue(&self) -> Queue<'_> {
        (&self.0.config.id, &self.0.wake)
    }

    /// Its currency (ISO 4217 numeric).
    pub(super) fn currency_code(&self) -> u16 {
        self.0.config.currency_code()
    }
}

/// The printer named by the body's `printer`, or the only one.
pub(super) fn pick_printer(state: &AppState, body: &Value) -> Result<PrinterTarget, ApiError> {
    pick_device(&state.printers, body, "printer").map(PrinterTarget)
}

/// A configured printer by id.
pub(super) fn printer(state: &AppState, id: &str) -> Option<PrinterTarget> {
    state.printers.get(id).cloned().map(PrinterTarget)
}

/// The terminal named by the body's `terminal`, or the only one.
pub(super) fn pick_terminal(state: &AppState, body: &Value) -> Result<TerminalTarget, ApiError> {
    pick_device(&state.terminals, body, "terminal").map(TerminalTarget)
}

/// A configured terminal by id.
pub(super) fn terminal(state: &AppState, id: &str) -> Option<TerminalTarget> {
    state.terminals.get(id).cloned().map(TerminalTarget)
}

/// Which device a request is for: the `field` (`printer` or `terminal`) in the body,
/// or the only device of that kind.
fn pick_device<T>(
    devices: &BTreeMap<String, Arc<T>>,
    body: &Value,
    field: &str,
) -> Result<Arc<T>, ApiError> {
    let invalid = |message: String| {
        ApiError::invalid(Invalid {
            field: field.into(),
            message,
        })
    };
    let named = match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err(invalid(format!("must be a {field} id string"))),
    };
    match named {
        Some(id) => devices.get(id).cloned().ok_or_else(|| {
            let known: Vec<&str> = devices.keys().map(String::as_str).collect();
            invalid(format!(
                "unknown {field} {id:?}; configured: {}",
                known.join(", ")
            ))
        }),
        None => match devices.values().next() {
            Some(only) if devices.len() == 1 => Ok(only.clone()),
            Some(_) => Err(invalid(format!(
                "is required when more than one {field} is configured"
            ))),
            None => Err(invalid(format!("no {field} is configured"))),
        },
    }
}

fn printer_view(p: &PrinterHandle, queue_depth: i64) -> DeviceView {
    let s = p.status();
    let link = p.link_stats();
    DeviceView::FiscalPrinter(PrinterView {
        id: p.config.id.clone(),
        protocol: p.config.protocol.as_str().into(),
        port: p.config.port.clone(),
        state: s.state,
        model: s.model,
        firmware: s.firmware,
        serial_number: s.serial_number,
        vat: s.vat.map(|slots| {
            slots
                .into_iter()
                .map(|v| VatView {
                    letter: v.letter,
                    rate: v.rate,
                    exempt: v.exempt,
                    active: v.active,
                })
                .collect()
        }),
        last_error: s.last_error,
        current_job: s.current_job,
        queue_depth,
        link: PrinterLink {
            bytes_out: link.bytes_out,
            bytes_in: link.bytes_in,
            frames_out: link.frames_out,
            frames_in: link.frames_in,
            frame_errors: link.frame_errors,
            garbage_bytes: link.garbage_bytes,
        },
    })
}

fn terminal_view(t: &TerminalHandle, queue_depth: i64) -> DeviceView {
    let s = t.status();
    DeviceView::PaymentTerminal(TerminalView {
        id: t.config.id.clone(),
        protocol: t.config.protocol.as_str().into(),
        port: t.config.port.clone(),
        state: s.state,
        terminal_id: s.terminal_id,
        display: s.display,
        last_error: s.last_error,
        current_job: s.current_job,
        queue_depth,
        slip: t.config.slip,
        link: TerminalLink {
            bytes_out: s.bytes_out,
            bytes_in: s.bytes_in,
        },
    })
}

/// Every device as `GET /v1/devices` shows it (printers first), with its queue depth from
/// the journal.
pub(super) async fn device_views(state: &AppState) -> Result<Vec<DeviceView>, ApiError> {
    let ids: Vec<String> = state
        .printers
        .keys()
        .chain(state.terminals.keys())
        .cloned()
        .collect();
    let depths = state
        .journal
        .run(move |j| {
            ids.iter()
                .map(|id| j.queue_depth(id))
                .collect::<Result<Vec<_>, _>>()
        })
        .await?;
    let mut depths = depths.into_iter();
    let mut views = Vec::new();
    for p in state.printers.values() {
        views.push(printer_view(p, depths.next().unwrap_or(0)));
    }
    for t in state.terminals.values() {
        views.push(terminal_view(t, depths.next().unwrap_or(0)));
    }
    Ok(views)
}

/// `GET /v1/health`: `degraded` when any device is not up.
pub(super) async fn health(State(state): State<AppState>) -> Json<Value> {
    let devices: BTreeMap<String, crate::device::DeviceState> = state
        .printers
        .iter()
        .map(|(id, p)| (id.clone(), p.status().state))
        .chain(
            state
                .terminals
                .iter()
                .map(|(id, t)| (id.clone(), t.status().state)),
        )
        .collect();
    let fleet = match &state.fleet {
        Some(f) => crate::fleet::view(&state.journal, f).await.ok(),
        None => None,
    };
    // The till works without the broker: only an outbox past its bound degrades health.
    let status =
        if devices.values().all(|s| s.is_up()) && !fleet.as_ref().is_some_and(|f| f.outbox_full) {
            HealthStatus::Ok
        } else {
            HealthStatus::Degraded
        };
    Json(to_json(&Health {
        status,
        version: env!("CARGO_PKG_VERSION").into(),
        devices,
        fleet,
    }))
}

/// `GET /v1/devices`.
pub(super) async fn devices(State(state): State<AppState>) -> ApiResult {
    let devices = device_views(&state).await?;
    Ok(Json(to_json(&DeviceList { devices })).into_response())
}
