//! fiscald: a local daemon between POS software and fiscal printers.
//!
//! See `ARCHITECTURE.md` for the map. In short: [`api`] accepts documents and journals
//! them ([`journal`]); one [`printer`] task per device owns its port and works through
//! its jobs; [`sim`] holds the device emulators.

pub mod api;
pub mod auth;
pub mod config;
pub mod ctl;
pub mod device;
pub mod diagnose;
pub mod document;
pub mod drain;
pub mod drivers;
pub mod events;
pub mod fleet;
pub mod job;
pub mod journal;
pub mod metrics;
pub mod noviapi;
pub mod port;
pub mod printer;
pub mod probe;
pub mod replay;
pub mod sales;
pub mod serve;
pub mod sim;
pub mod terminal;
pub mod today;
pub mod trace;
