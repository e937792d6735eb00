//! Device emulators reached over real pseudo-terminals (`fiscald sim ...`).

pub mod posnet;
pub mod pty;
