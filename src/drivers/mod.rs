//! Protocol drivers: one module per device protocol, each behind a device trait
//! (`crate::device::printer::FiscalPrinter`, the terminal trait). A driver turns the
//! neutral calls into its protocol crate's commands (`protocols/<name>`) and moves bytes
//! through `crate::port`.

pub mod ecr_eft;
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
    }
}
