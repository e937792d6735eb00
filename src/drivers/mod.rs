//! Protocol drivers: one module per device protocol, each behind a device trait
//! (`crate::device::printer::FiscalPrinter`, the terminal trait). A driver turns the
//! neutral calls into its protocol crate's commands (`protocols/<name>`) and moves bytes
//! through `crate::port`.

pub mod posnet;
pub mod zvt;
