//! Device protocol drivers: each implements a driver trait of `crate::device` for one
//! protocol crate.

pub mod zvt;
