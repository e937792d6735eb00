//! Shop-chain delivery: the journal's events to NATS JetStream, effectively once.
//!
//! - `config`: `[fleet]`.
//! - `event`: [`event::FleetEvent`], the typed messages, and their JSON envelope.
//! - The outbox itself lives in the journal (`journal/outbox.rs`): rows are written in the
//!   same transaction as the change they describe.

pub mod config;
pub mod event;

pub use config::FleetConfig;
