//! Protocol drivers: one module per device protocol, each behind a device trait
//! (`crate::device::printer::FiscalPrinter`, the terminal trait). A driver turns the
//! neutral calls into its protocol crate's commands (`protocols/<name>`) and moves bytes
//! through `crate::port`.

pub mod ecr_eft;
pub mod novitus_xml;
pub mod posnet;
pub mod thermal;
pub mod zvt;

use crate::config::PrinterProtocol;
use crate::device::printer::FiscalPrinter;
use crate::document::DocumentSupport;

/// What a configured printer protocol can print, for validation before a job is queued.
pub fn printer_support(protocol: PrinterProtocol) -> DocumentSupport {
    match protocol {
        PrinterProtocol::Posnet => posnet::PosnetPrinter::SUPPORT,
        PrinterProtocol::Thermal => thermal::ThermalPrinter::SUPPORT,
        PrinterProtocol::NovitusXml => novitus_xml::NovitusXmlPrinter::SUPPORT,
    }
}

/// A protocol's own check of a validated request before it is queued (a 422 when it fails):
/// what the protocol or the printer's code page cannot print.
pub fn check_request(
    config: &crate::config::PrinterConfig,
    request: &crate::job::records::JobRequest,
) -> Result<(), crate::document::Invalid> {
    match config.protocol {
        PrinterProtocol::Posnet => Ok(()),
        PrinterProtocol::Thermal => thermal::check_request(config, request),
        PrinterProtocol::NovitusXml => novitus_xml::check_request(config, request),
    }
}

/// The parts of a receipt a driver without discounts, deposits, footer lines, barcode or QR
/// code cannot print: `(field, why)` for the first one found.
pub fn receipt_extras(
    r: &crate::document::Receipt,
    family: &str,
    line_discounts: bool,
) -> Option<(String, String)> {
    let no = |f: &str, what: &str| {
        Some((
            f.to_string(),
            format!("{what} cannot be printed on a {family} printer by fiscald"),
        ))
    };
    if !r.discounts.is_empty() {
        return no("discounts", "a discount or surcharge on the subtotal");
    }
    if !r.deposits.is_empty() {
        return no("deposits", "returnable packaging");
    }
    if !r.footer.is_empty() {
        return no("footer", "a footer");
    }
    if r.barcode.is_some() {
        return no("barcode", "a barcode");
    }
    if r.qr.is_some() {
        return no("qr", "a QR code");
    }
    if let Some(i) = r.lines.iter().position(|l| l.discount.is_some())
        && !line_discounts
    {
        return no(&format!("lines[{i}].discount"), "a line discount");
    }
    None
}

/// A tap that records every byte on the port at `path` in its wire trace, when tracing is
/// on for that port.
pub(crate) fn wire_tap(path: &str) -> Option<crate::port::Tap> {
    crate::trace::for_port(path).map(|recorder| {
        Box::new(move |dir: crate::port::Direction, bytes: &[u8]| {
            let dir = match dir {
                crate::port::Direction::Out => crate::trace::Dir::Out,
                crate::port::Direction::In => crate::trace::Dir::In,
            };
            recorder.bytes(dir, bytes);
        }) as crate::port::Tap
    })
}

/// A printer's wire text for the debug log, with card numbers masked like every other
/// text a device sends (a printer echoes what it is given, a card slip included).
pub(crate) fn wire_text(text: &str) -> String {
    ::zvt::pan::mask_in_text(text)
}

#[cfg(test)]
mod tests {
    #[test]
    fn printer_wire_text_is_masked_for_the_log() {
        let logged = super::wire_text("trline na=\"Karta 5454 5454 5454 5454\" pr=\"100\"");
        let digits: String = logged.chars().filter(char::is_ascii_digit).collect();
        assert!(!digits.contains("5454545454545454"), "{logged}");
        assert!(logged.contains("pr=\"100\""), "{logged}");
    }
}
