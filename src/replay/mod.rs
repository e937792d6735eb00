//! `fiscald replay TRACE --link PATH`: play the device side of a POSNET wire trace
//! (see [`crate::trace`]) on a pseudo-terminal.
//!
//! The trace is read as a list of exchanges: each frame the host wrote (`>`) and the
//! device's bytes that followed it (`<`) up to the next request. Replay publishes a PTY at
//! `--link`, waits for each request in order and answers with the recorded reply bytes.
//!
//! - **Tokens**: the daemon starts its `@NNNN` tokens at a time-seeded value, so requests
//!   are compared as decoded frames without the token (and so without the CRC), and each
//!   recorded reply frame that carries a token gets the token of the request just received,
//!   with its CRC recomputed. Everything else must match exactly: mnemonic, field names,
//!   values and their order.
//! - **Timing** is ignored (replies are sent at once) unless `--realtime`, which waits as
//!   long as the recorded device did.
//! - **The end**: once every request was answered and the line has been quiet for
//!   `--linger-ms`, replay exits 0. The first request that differs from the recording (or
//!   one that comes after its end) is reported with both byte strings, hex and decoded, and
//!   replay exits 1; so does a client that stops before the end (`--timeout`, or SIGTERM).
//!   A trace that cannot be read exits 2.
//! - **ZVT traces are not replayed**: their card data is masked in the file, so the
//!   terminal's messages cannot be reproduced byte for byte. Replay refuses them (exit 2).

use crate::sim::pty::Pty;
use crate::sim::pump::Pump;
use crate::trace::{self, Dir, Protocol};
use posnet::{Decoded, Frame, FrameDecoder};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// `fiscald replay` options.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The trace file (POSNET).
    pub trace: PathBuf,
    /// Publish the replayed device as a symlink at this path.
    #[arg(long)]
    pub link: PathBuf,
    /// Answer after the recorded delays instead of at once.
    #[arg(long)]
    pub realtime: bool,
    /// After the last reply, exit 0 once the line has been quiet this many milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub linger_ms: u64,
    /// Fail when the client sends nothing for this many seconds before the end.
    #[arg(long, default_value_t = 120)]
    pub timeout: u64,
}

/// What the device sends after a request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub item: Decoded,
    /// The recorded delay before it (from the request, or from the previous reply).
    pub delay: Duration,
}

/// One request and the device's answer.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The trace line that completed the request.
    pub line: usize,
    pub raw: Vec<u8>,
    pub request: Frame,
    pub replies: Vec<Reply>,
}

/// A POSNET trace read as exchanges.
#[derive(Debug, Clone, Default)]
pub struct Script {
    /// Device bytes recorded before the first request (sent when a client connects).
    pub preamble: Vec<Reply>,
    pub exchanges: Vec<Exchange>,
}

fn delay(
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: chrono::DateTime<chrono::Utc>,
) -> Duration {
    from.and_then(|f| (to - f).to_std().ok())
        .unwrap_or_default()
}

/// Read a trace's text into a [`Script`].
pub fn script(text: &str) -> Result<Script, String> {
    let t = trace::parse(text)?;
    match t.protocol {
        Some(Protocol::Posnet) => {}
        Some(Protocol::Zvt) => {
            return Err(
                "this is a ZVT trace: its card data is masked, so it cannot be replayed (only POSNET traces can)".into(),
            );
        }
        None => return Err("no `# fiscald trace v1 ... protocol=...` header".into()),
    }
    let mut out_dec = FrameDecoder::new();
    let mut in_dec = FrameDecoder::new();
    let mut s = Script::default();
    let mut last: Option<chrono::DateTime<chrono::Utc>> = None;
    for line in &t.lines {
        let bytes = line.bytes.as_ref().ok_or(format!(
            "line {}: masked bytes cannot be replayed",
            line.number
        ))?;
        match line.dir {
            Dir::Out => {
                out_dec.push(bytes);
                while let Some(item) = out_dec.next_item() {
                    match item {
                        Decoded::Frame(f) => {
                            s.exchanges.push(Exchange {
                                line: line.number,
                                raw: f.encode_raw(),
                                request: f,
                                replies: Vec::new(),
                            });
                            last = Some(line.time);
                        }
                        other => {
                            return Err(format!(
                                "line {}: the host wrote something that is not a frame ({})",
                                line.number,
                                trace::describe_decoded(&other)
                            ));
                        }
                    }
                }
            }
            Dir::In => {
                in_dec.push(bytes);
                while let Some(item) = in_dec.next_item() {
                    let reply = Reply {
                        item,
                        delay: delay(last, line.time),
                    };
                    last = Some(line.time);
                    match s.exchanges.last_mut() {
                        Some(ex) => ex.replies.push(reply),
                        None => s.preamble.push(reply),
                    }
                }
            }
        }
    }
    if s.exchanges.is_empty() {
        return Err("the trace holds no request".into());
    }
    Ok(s)
}

/// A frame without its token, for comparison.
fn untokened(f: &Frame) -> Frame {
    Frame {
        token: None,
        ..f.clone()
    }
}

/// Do two requests match, ignoring their tokens (and so their CRCs)?
pub fn same_request(expected: &Frame, received: &Frame) -> bool {
    untokened(expected) == untokened(received)
}

/// The bytes to send for a recorded reply, with its token set to `token` (and its CRC
/// recomputed); garbage and invalid frames are sent as recorded.
pub fn reply_bytes(item: &Decoded, token: Option<u16>) -> Vec<u8> {
    match item {
        Decoded::Frame(f) => {
            let mut f = f.clone();
            if f.token.is_some() {
                f.token = token.or(f.token);
            }
            f.encode_raw()
        }
        Decoded::Invalid { raw, .. } => raw.clone(),
        Decoded::Garbage(g) => g.clone(),
    }
}

/// How a replay ended badly.
#[derive(Debug)]
pub struct Divergence(pub String);

fn show(raw: &[u8], item: &str) -> String {
    format!("{}\n      {item}", hex::encode(raw))
}

/// Run the replay until done; `Ok` when the whole trace was played.
pub fn run(
    script: &Script,
    args: &ReplayArgs,
    stop: &AtomicBool,
) -> anyhow::Result<Result<(), Divergence>> {
    let pty = Pty::create(&args.link)?;
    tracing::info!(device = %pty.device.display(), link = %args.link.display(), requests = script.exchanges.len(), "replaying");
    let result = play(&pty, script, args, stop);
    pty.unlink();
    Ok(result)
}

fn send(pty: &Pty, replies: &[Reply], token: Option<u16>, realtime: bool) {
    for r in replies {
        if realtime {
            std::thread::sleep(r.delay);
        }
        crate::sim::line::write_all(&pty.master, &reply_bytes(&r.item, token));
    }
}

fn play(
    pty: &Pty,
    script: &Script,
    args: &ReplayArgs,
    stop: &AtomicBool,
) -> Result<(), Divergence> {
    let total = script.exchanges.len();
    let mut decoder = FrameDecoder::new();
    let mut pump = Pump::new();
    let mut next = 0;
    let mut last_activity = Instant::now();
    let mut preamble_sent = script.preamble.is_empty();
    let linger = Duration::from_millis(args.linger_ms);
    let timeout = Duration::from_secs(args.timeout);
    loop {
        if stop.load(Ordering::Relaxed) {
            return if next == total {
                Ok(())
            } else {
                Err(Divergence(format!(
                    "stopped after {next} of {total} requests; the next expected is at trace line {}:\n  expected: {}",
                    script.exchanges[next].line,
                    show(
                        &script.exchanges[next].raw,
                        &trace::describe_frame(&script.exchanges[next].request)
                    )
                )))
            };
        }
        if pump.input(pty, Duration::from_millis(10), |b| decoder.push(b)) > 0 {
            last_activity = Instant::now();
        }
        while let Some(item) = decoder.next_item() {
            if !preamble_sent {
                send(pty, &script.preamble, None, args.realtime);
                preamble_sent = true;
            }
            let (raw, frame) = match &item {
                Decoded::Frame(f) => (f.encode_raw(), Some(f)),
                Decoded::Invalid { raw, .. } => (raw.clone(), None),
                Decoded::Garbage(g) => (g.clone(), None),
            };
            let received = show(&raw, &trace::describe_decoded(&item));
            let Some(ex) = script.exchanges.get(next) else {
                return Err(Divergence(format!(
                    "request {} comes after the end of the trace ({total} requests)\n  expected: nothing\n  received: {received}",
                    next + 1
                )));
            };
            let matched = frame.filter(|f| same_request(&ex.request, f));
            let Some(f) = matched else {
                return Err(Divergence(format!(
                    "request {} of {total} (trace line {}) differs (tokens and CRCs are not compared)\n  expected: {}\n  received: {received}",
                    next + 1,
                    ex.line,
                    show(&ex.raw, &trace::describe_frame(&ex.request)),
                )));
            };
            tracing::debug!(request = next + 1, mnemonic = %f.mnemonic, "request matches");
            send(pty, &ex.replies, f.token, args.realtime);
            next += 1;
            last_activity = Instant::now();
        }
        let quiet = last_activity.elapsed();
        if next == total && decoder.pending() == 0 && quiet >= linger {
            return Ok(());
        }
        if next < total && quiet >= timeout {
            let ex = &script.exchanges[next];
            return Err(Divergence(format!(
                "the client sent nothing for {timeout:?} after {next} of {total} requests\n  expected: {}\n  received: nothing",
                show(&ex.raw, &trace::describe_frame(&ex.request))
            )));
        }
    }
}

/// `fiscald replay`.
pub fn main(args: ReplayArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.trace) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("fiscald replay: cannot read {}: {e}", args.trace.display());
            return ExitCode::from(2);
        }
    };
    let script = match script(&text) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("fiscald replay: {}: {e}", args.trace.display());
            return ExitCode::from(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        let _ = signal_hook::flag::register(sig, stop.clone());
    }
    match run(&script, &args, &stop) {
        Err(e) => {
            eprintln!("fiscald replay: {e:#}");
            ExitCode::from(2)
        }
        Ok(Ok(())) => {
            println!(
                "fiscald replay: {}: all {} requests matched",
                args.trace.display(),
                script.exchanges.len()
            );
            ExitCode::SUCCESS
        }
        Ok(Err(Divergence(msg))) => {
            eprintln!(
                "fiscald replay: {}: divergence: {msg}",
                args.trace.display()
            );
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_match_without_tokens_and_replies_take_the_new_token() {
        let a = Frame::new("trline").with("na", "Łódź").with_token(1);
        let b = Frame::new("trline").with("na", "Łódź").with_token(9876);
        let c = Frame::new("trline").with("na", "Lodz").with_token(1);
        assert!(same_request(&a, &b));
        assert!(!same_request(&a, &c));
        let reply = Decoded::Frame(Frame::new("trline").with_token(1));
        let bytes = reply_bytes(&reply, Some(9876));
        let back = posnet::frame::decode_frame(&bytes).unwrap();
        assert_eq!(back.token, Some(9876));
    }

    #[test]
    fn a_trace_becomes_exchanges_and_zvt_is_refused() {
        let req = Frame::new("sid").with_token(5).encode().unwrap();
        let rep = Frame::new("sid")
            .with("nm", "X")
            .with_token(5)
            .encode()
            .unwrap();
        let text = format!(
            "# fiscald trace v1 device=fp1 protocol=posnet fiscald=0 start=2025-01-01T00:00:00.000000Z\n\
             2025-01-01T00:00:00.000000Z fp1 > {}  # sid\n\
             2025-01-01T00:00:00.001000Z fp1 < {}\n\
             2025-01-01T00:00:00.002000Z fp1 < {}  # sid\n",
            hex::encode(&req),
            hex::encode(&rep[..4]),
            hex::encode(&rep[4..])
        );
        let s = script(&text).unwrap();
        assert_eq!(s.exchanges.len(), 1);
        assert_eq!(s.exchanges[0].replies.len(), 1);
        assert_eq!(s.exchanges[0].replies[0].delay, Duration::from_millis(2));
        let zvt = text.replace("protocol=posnet", "protocol=zvt");
        assert!(script(&zvt).unwrap_err().contains("ZVT"));
    }
}
