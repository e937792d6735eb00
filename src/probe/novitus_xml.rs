//! Probing for a Novitus XML printer with read-only queries only: `<dle/>`, then
//! `<info action="version"/>`, `<taxrates action="get"/>` and `<info action="checkout"/>`.

use super::{Attempt, FoundPrinter, Port, open_failure};
use crate::device::LinkStats;
use crate::drivers::novitus_xml::link::Link;
use novitus_xml::reply::{self, Element};
use novitus_xml::{Checkout, Command, Decoded, TaxRate};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The speeds tried: the common serial default and USB's (a silent port costs 2 × `FIRST`).
pub const BAUDS: [u32; 2] = [9_600, 115_200];
/// How long the first `<dle/>` waits: its reply is short and comes at once.
const FIRST: Duration = Duration::from_millis(300);
/// How long a query waits once the printer has answered.
const TIMEOUT: Duration = Duration::from_millis(1500);

async fn ask(link: &mut Link, commands: &[Command], timeout: Duration) -> Option<Vec<Element>> {
    link.reset_input();
    link.send(Command::packet(commands).ok()?);
    let deadline = Instant::now() + timeout;
    loop {
        if let Decoded::Packet(p) = link.next(deadline).await.ok()?? {
            return reply::parse(&p.body).ok();
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
    match ask(&mut link, &[Command::Dle], FIRST).await {
        Some(els) if els.iter().any(|e| e.name == "dle") => {}
        _ => return Err(Attempt::NoAnswer),
    }
    let mut found = FoundPrinter {
        id: String::new(),
        protocol: "novitus-xml",
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
    let queries = [Command::Version, Command::TaxRates, Command::Checkout];
    let Some(els) = ask(&mut link, &queries, TIMEOUT).await else {
        return Ok(found);
    };
    if let Ok(v) = reply::version(&els) {
        let v = super::clean(&v);
        let (model, firmware) = v.rsplit_once(' ').unwrap_or((v.as_str(), ""));
        found.model = Some(model.to_string()).filter(|s| !s.is_empty());
        found.firmware = Some(firmware.to_string()).filter(|s| !s.is_empty());
    }
    if let Ok(c) = Checkout::from_elements(&els) {
        found.unique_number = c.unique_number.as_deref().map(super::clean);
    }
    if let Some(f) = els
        .iter()
        .find(|e| e.name == "info" && e.attr("action") == Some("checkout"))
        .and_then(|e| e.flag("isfiscal"))
    {
        found.fiscal = Some(f);
    }
    if let Ok(rates) = reply::tax_rates(&els) {
        let vat = ['A', 'B', 'C', 'D', 'E', 'F', 'G']
            .into_iter()
            .map(|l| {
                let text = match rates.iter().find(|(x, _)| *x == l) {
                    Some((_, TaxRate::BasisPoints(bp))) => format!(
                        "{}%",
                        rust_decimal::Decimal::new(i64::from(*bp), 2).normalize()
                    ),
                    Some((_, TaxRate::Exempt)) => "exempt".into(),
                    None => "inactive".into(),
                };
                (l, text)
            })
            .collect();
        found.vat = Some(vat);
    }
    Ok(found)
}
