//! Protocol drivers: one module per device protocol, each behind a device trait
//! (`crate::device::printer::FiscalPrinter`, the terminal trait). A driver turns the
//! neutral calls into its protocol crate's commands (`protocols/<name>`) and moves bytes
//! through `crate::port`.

pub mod ecr_eft;
pub mod posnet;
pub mod zvt;

use crate::config::PrinterProtocol;
use crate::device::printer::FiscalPrinter;
use crate::document::DocumentSupport;

/// What a configured printer protocol can print, for validation before a job is queued.
pub fn printer_support(protocol: PrinterProtocol) -> DocumentSupport {
    match protocol {
        PrinterProtocol::Posnet => posnet::PosnetPrinter::SUPPORT,
    }
}
