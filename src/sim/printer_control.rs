//! The control commands every emulated printer takes (paper, cover, power, line faults,
//! clock), parsed and applied once for all families; each emulator adds only its `status`.

use super::control::ControlSocket;
use super::pty::Pty;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Line faults the emulator injects (the printer model handles paper and cover).
#[derive(Debug, Default)]
pub struct LineFaults {
    /// Added before every reply.
    pub delay: Duration,
    /// Replies still to drop.
    pub drop_replies: u32,
    /// Garbage bytes to send before the next reply.
    pub garbage_next: usize,
    /// The printer's clock against the host's.
    pub clock_offset: chrono::Duration,
}

/// What a control command asks of the emulator's main loop.
pub enum Control {
    /// Done; the answer's text.
    Done(String),
    /// Switch the printer off for this long, then on.
    PowerCycle(Duration),
}

/// The paper and cover of a printer model.
pub trait Mechanism {
    fn paper_out(&mut self, after_lines: Option<u32>);
    fn paper_back(&mut self);
    fn set_cover_open(&mut self, open: bool);
}

macro_rules! mechanism {
    ($($t:ty),*) => {$(
        impl Mechanism for $t {
            fn paper_out(&mut self, after_lines: Option<u32>) {
                <$t>::paper_out(self, after_lines)
            }
            fn paper_back(&mut self) {
                <$t>::paper_back(self)
            }
            fn set_cover_open(&mut self, open: bool) {
                <$t>::set_cover_open(self, open)
            }
        }
    )*};
}
mechanism!(
    posnet::model::Printer,
    thermal::model::Printer,
    novitus_xml::model::Printer
);

/// Apply one control command other than `status`: `paper out [after N]`, `paper back`,
/// `cover open|close`, `power cycle [MS]`, `delay MS`, `drop N`, `garbage N`, `clock ±S`.
pub fn apply(
    printer: &mut impl Mechanism,
    faults: &mut LineFaults,
    cmd: &str,
) -> Result<Control, String> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let num = |s: &str| {
        s.parse::<u64>()
            .map_err(|_| format!("{s:?} is not a whole number"))
    };
    let done = |m: &str| Ok(Control::Done(m.to_string()));
    match words.as_slice() {
        ["paper", "out"] => {
            printer.paper_out(None);
            done("paper out")
        }
        ["paper", "out", "after", n] => {
            printer.paper_out(Some(num(n)?.min(u64::from(u32::MAX)) as u32));
            done("paper runs out later")
        }
        ["paper", "back"] => {
            printer.paper_back();
            done("paper back")
        }
        ["cover", "open"] => {
            printer.set_cover_open(true);
            done("cover open")
        }
        ["cover", "close"] | ["cover", "closed"] => {
            printer.set_cover_open(false);
            done("cover closed")
        }
        ["power", "cycle"] => Ok(Control::PowerCycle(Duration::from_millis(1000))),
        ["power", "cycle", ms] => Ok(Control::PowerCycle(Duration::from_millis(num(ms)?))),
        ["delay", ms] => {
            faults.delay = Duration::from_millis(num(ms)?);
            done("delay set")
        }
        ["drop", n] => {
            faults.drop_replies = num(n)?.min(u64::from(u32::MAX)) as u32;
            done("replies will be dropped")
        }
        ["garbage", n] => {
            faults.garbage_next = num(n)?.min(65_536) as usize;
            done("garbage queued")
        }
        ["clock", off] => {
            let secs: i64 = off
                .trim_start_matches('+')
                .parse()
                .map_err(|_| format!("{off:?} is not a number of seconds"))?;
            faults.clock_offset += chrono::Duration::seconds(secs);
            done("clock moved")
        }
        _ => Err(format!("unknown control command {cmd:?}")),
    }
}

/// Accept and answer pending control connections with `run` (one command line each); a
/// power cycle while the printer is off is refused. Returns a power cycle to carry out.
pub fn poll(
    control: &ControlSocket,
    powered: bool,
    mut run: impl FnMut(&str) -> Result<Control, String>,
) -> Option<Control> {
    control.poll(|line| match run(line) {
        Ok(Control::Done(msg)) => (format!("ok {msg}"), None),
        Ok(Control::PowerCycle(_)) if !powered => {
            ("error the printer is already off".to_string(), None)
        }
        Ok(c @ Control::PowerCycle(_)) => ("ok power cycle".to_string(), Some(c)),
        Err(e) => (format!("error {e}"), None),
    })
}

/// An emulated printer's program, as [`run_powered`] drives it.
pub trait PoweredPrinter {
    /// The device link (a symlink to the PTY).
    fn link(&self) -> &Path;
    /// Log that the printer is on at `pty`.
    fn announce(&self, pty: &Pty);
    /// Serve one power-on period: `Some(off time)` for a power cycle, `None` on stop.
    fn serve_on(
        &mut self,
        pty: &Pty,
        control: &ControlSocket,
        stop: &AtomicBool,
    ) -> anyhow::Result<Option<Duration>>;
    /// The printer goes off (its model forgets what a power cut loses; persist it).
    fn power_off(&mut self) -> anyhow::Result<()>;
    /// Answer control connections ([`poll`]).
    fn control_poll(&mut self, control: &ControlSocket, powered: bool) -> Option<Control>;
}

/// Run an emulated printer until `stop`: a fresh PTY for every power-on period; while
/// it is off, the link is gone and control commands are still answered.
pub fn run_powered(
    printer: &mut impl PoweredPrinter,
    control: &ControlSocket,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let pty = Pty::create(printer.link())?;
        printer.announce(&pty);
        let off = printer.serve_on(&pty, control, stop)?;
        pty.unlink();
        drop(pty);
        let Some(off) = off else { break };
        tracing::info!(?off, "power cycle: the printer is off");
        printer.power_off()?;
        let until = Instant::now() + off;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            printer.control_poll(control, false);
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_reach_the_model_and_the_faults() {
        let mut p = posnet::model::Printer::new();
        let mut f = LineFaults::default();
        assert!(matches!(
            apply(&mut p, &mut f, "delay 25"),
            Ok(Control::Done(_))
        ));
        assert_eq!(f.delay, Duration::from_millis(25));
        apply(&mut p, &mut f, "drop 2").unwrap();
        assert_eq!(f.drop_replies, 2);
        apply(&mut p, &mut f, "garbage 999999").unwrap();
        assert_eq!(f.garbage_next, 65_536);
        apply(&mut p, &mut f, "clock -30").unwrap();
        assert_eq!(f.clock_offset, chrono::Duration::seconds(-30));
        assert!(matches!(
            apply(&mut p, &mut f, "power cycle 200"),
            Ok(Control::PowerCycle(d)) if d == Duration::from_millis(200)
        ));
        assert!(apply(&mut p, &mut f, "drop many").is_err());
        assert!(apply(&mut p, &mut f, "frobnicate").is_err());
    }
}
