//! Probing for a Thermal (ESC P) printer with read-only queries only: DLE, `#v` (identity),
//! `23#s` (status and VAT table) and `21#s` (whose reply form hints at the dialect).

use super::{Attempt, FoundPrinter, Port, Reason, open_failure};
use crate::device::LinkStats;
use crate::drivers::thermal::link::Link;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use thermal::command::Command;
use thermal::reply::{Identity, Rate, Status};
use thermal::session::Incoming;
use thermal::{DLE, Dialect, Encoding, Frame};
use tokio::time::Instant;

/// The speeds tried, most common first (older devices default to 9600).
pub const BAUDS: [u32; 3] = [9_600, 115_200, 19_200];
const TIMEOUT: Duration = Duration::from_millis(400);

async fn frame_reply(link: &mut Link, c: &Command, reply: &str) -> Option<Frame> {
    let frame = c.to_frame(Dialect::Posnet, Encoding::Cp1250).ok()?;
    link.reset_input();
    link.send_frame(&frame);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match link.next(deadline).await.ok()?? {
            Incoming::Frame(f) if f.command_str() == reply => return Some(f),
            _ => {}
        }
    }
}

/// Ask at one speed.
pub(super) async fn probe(port: &Port, baud: u32) -> Result<FoundPrinter, Attempt> {
    let stats = Arc::new(Mutex::new(LinkStats::default()));
    let mut link = match Link::open(&port.path, baud, stats) {
        Ok(l) => l,
        Err(reason) => {
            let (r, d) = open_failure(&reason);
            return Err(Attempt::Open(r, d));
        }
    };
    link.send_bytes(&[DLE]);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match link.next(deadline).await {
            Ok(Some(Incoming::Dle(_))) => break,
            Ok(Some(_)) => {}
            Ok(None) => return Err(Attempt::NoAnswer),
            Err(e) => return Err(Attempt::Open(Reason::OpenFailed, e)),
        }
    }
    let mut found = FoundPrinter {
        id: String::new(),
        protocol: "thermal",
        port: port.config_path.clone(),
        device: port.device.clone(),
        baud,
        model: None,
        firmware: None,
        unique_number: None,
        fiscal: None,
        vat: None,
        error_code: None,
        usb: port.usb.clone(),
        dialect: None,
    };
    if let Some(f) = frame_reply(&mut link, &Command::Identity, "#R").await
        && let Ok(id) = Identity::from_frame(&f)
    {
        found.model = Some(super::clean(&id.model)).filter(|s| !s.is_empty());
        found.firmware = Some(super::clean(&id.version)).filter(|s| !s.is_empty());
    }
    if let Some(f) = frame_reply(&mut link, &Command::Status { mode: 23 }, "#X").await
        && let Ok(s) = Status::from_frame(&f, Encoding::Cp1250)
    {
        found.unique_number = Some(super::clean(&s.unique)).filter(|s| !s.is_empty());
        found.fiscal = Some(s.fiscal);
        let letters = thermal::reply::LETTERS;
        found.vat = Some(
            s.vat
                .iter()
                .zip(letters)
                .map(|(r, l)| {
                    let text = match r {
                        Rate::Percent(bp) => format!(
                            "{}%",
                            rust_decimal::Decimal::new(i64::from(*bp), 2).normalize()
                        ),
                        Rate::Exempt => "exempt".into(),
                        Rate::Inactive => "inactive".into(),
                    };
                    (l, text)
                })
                .collect(),
        );
    }
    // A guess: Novitus answers `21#s` in the `2#X` form (what litex-novitus parses), Posnet
    // Thermal in the `1#X` form.
    if let Some(f) = frame_reply(&mut link, &Command::Status { mode: 21 }, "#X").await {
        found.dialect = Some(if f.params == b"2" {
            "novitus"
        } else {
            "posnet"
        });
    }
    Ok(found)
}
