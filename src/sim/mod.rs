//! Device emulators reached over real pseudo-terminals or TCP (`fiscald sim ...`).

pub mod control;
pub mod ecr_eft;
pub mod line;
pub mod novitus_xml;
pub mod posnet;
pub mod printer_control;
pub mod pty;
pub mod pump;
pub mod state;
pub mod thermal;
pub mod zvt;
