//! The session's settings, events, failures and counters.

#[cfg(doc)]
use super::Session;
use crate::frame::{DecodeError, Frame};
use crate::reply::Sprn;
use crate::text::TextError;
use std::time::Duration;

/// Timer and retry settings of a [`Session`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// How often a held command's printer is asked for its state (`sprn`), 500 ms.
    pub held_poll: Duration,
    /// How many times a command is sent again after frame errors (2).
    pub frame_error_resends: u32,
    /// The reply timeout of the queries the session sends itself (`sprn`, `rpt`); the
    /// daemon uses its `command_timeout` (5 s).
    pub status_timeout: Duration,
    /// How many commands, and how many bytes of them, may be in flight at once (sent and
    /// not yet answered). One command: no pipelining.
    pub window: Window,
}

impl Default for SessionConfig {
    fn default() -> Self {
        SessionConfig {
            held_poll: Duration::from_millis(500),
            frame_error_resends: 2,
            status_timeout: Duration::from_secs(5),
            window: Window::SINGLE,
        }
    }
}

/// The bound on commands in flight: at most `commands` of them, and at most `bytes` of
/// their frames together (a single command larger than `bytes` may still go alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub commands: usize,
    pub bytes: usize,
}

impl Window {
    /// One command at a time.
    pub const SINGLE: Window = Window {
        commands: 1,
        bytes: usize::MAX,
    };

    /// The daemon's default when pipelining: well below the printer's limits (it keeps
    /// about 32 answers or 1 KiB for `rpt`, and queues at most a few commands while it
    /// holds one for paper), so every answer in flight can still be asked for again.
    pub const PIPELINED: Window = Window {
        commands: 8,
        bytes: 512,
    };
}

/// Why [`Session::start`] did not start the command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    /// A command is still in flight; wait for its [`SessionEvent::Completed`].
    #[error("a command is still in flight")]
    Busy,
    /// The command's text cannot be sent to the printer.
    #[error("text cannot be sent to the printer: {0}")]
    Text(#[from] TextError),
}

/// How the session recovered, in [`SessionEvent::Retried`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The reply was lost and fetched again with `rpt`.
    Rpt,
    /// The printer did not know the token (it never got the command, or it restarted):
    /// the command was sent again, once.
    Resend,
    /// A frame error (`ERR`): the command was sent again.
    FrameError,
}

impl Retry {
    /// A short name for metrics and logs: `rpt`, `resend`, `frame_error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Retry::Rpt => "rpt",
            Retry::Resend => "resend",
            Retry::FrameError => "frame_error",
        }
    }
}

/// Why a command did not end with a good reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandFailure {
    /// The printer answered with an error code: it refused, nothing was done.
    #[error("the printer refused {mnemonic} with error {code}")]
    Refused { mnemonic: String, code: u32 },
    /// Frame errors persisted after the resends (`code` 0 if the `ERR` carried none).
    #[error("frame error {code} for {mnemonic} persisted after the resends")]
    FrameError { mnemonic: String, code: u32 },
    /// Nothing answered within this timeout (neither the command nor the status query,
    /// or `rpt`): a link problem, the outcome is unknown.
    #[error("no reply within {0:?}")]
    Silent(Duration),
    /// The printer answers status but neither the command nor `rpt`, even after the one
    /// resend (or `rpt` itself kept getting frame errors): the outcome is unknown.
    #[error("the printer answers status but never the command")]
    NoReply,
    /// The status query the session sent (`sprn`) was refused, kept getting frame errors
    /// or could not be read, so the session cannot tell what happened: the outcome is
    /// unknown.
    #[error("the status query failed: {0}")]
    BadStatus(String),
    /// The printer did not take this command (a frame error, or `rpt` found its token
    /// unknown) while later commands were already in flight: sending it again would put
    /// it after them, so it is not resent. The later commands may have run; the caller
    /// must treat the document as interrupted (cancel it and reconcile).
    #[error("the printer did not take {mnemonic} while later commands were in flight")]
    NotTaken { mnemonic: String },
    /// [`Session::abandon`] was called while the command was in flight (typically while
    /// held, when the caller's paper-wait policy ran out): the outcome is unknown, and a
    /// held command may still run when the paper is back.
    #[error("abandoned by the caller")]
    Abandoned,
}

/// What the session reports to its driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEvent {
    /// The command in flight ended. `Ok`: its reply frame, with no error code.
    Completed(Result<Frame, CommandFailure>),
    /// The printer holds the command for lack of paper or an open cover (`sprn` said
    /// so). Emitted each time a status poll sees it (after the [`SessionEvent::Status`]).
    Held(Sprn),
    /// A status poll the session made (`sprn`) saw this state, also when it is fine.
    /// Also emitted with code 0 when a held command's reply arrives (the printer runs
    /// again), so that a caller showing "paper out" can clear it.
    Status(Sprn),
    /// The session recovered from a fault. `token` is the token of the attempt that
    /// failed (the one `rpt` asked for, or the one sent again).
    Retried {
        mnemonic: String,
        token: u16,
        retry: Retry,
    },
    /// A frame that is not an answer to anything in flight (a late answer to an earlier
    /// command or token), dropped. For logs and metrics.
    Discarded(Frame),
    /// A frame-shaped byte run that failed to decode.
    Invalid { error: DecodeError, raw: Vec<u8> },
    /// Bytes between frames.
    Garbage(Vec<u8>),
    /// Every frame the session decoded, before what it did with it (for wire traces).
    Received(Frame),
}

/// Byte and frame counters, in both directions (the daemon's `LinkStats`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SessionStats {
    /// Bytes handed out by [`Session::poll_transmit`].
    pub bytes_out: u64,
    /// Bytes fed to [`Session::handle_input`].
    pub bytes_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Frames decoded.
    pub frames_in: u64,
    /// Invalid frames received (bad CRC, syntax, too long).
    pub frame_errors: u64,
    /// Bytes received outside any frame.
    pub garbage_bytes: u64,
}
