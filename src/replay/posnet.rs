//! POSNET replay: the printer's side of a POSNET trace on a pseudo-terminal (see the
//! parent module for the rules).

use super::{Divergence, ReplayArgs, delay, show};
use crate::sim::pty::Pty;
use crate::sim::pump::Pump;
use crate::trace::{self, Dir, Protocol};
use posnet::{Decoded, Frame, FrameDecoder};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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

/// Read a trace's text into a [`Script`].
pub fn script(text: &str) -> Result<Script, String> {
    let t = trace::parse(text)?;
    match t.protocol {
        Some(Protocol::Posnet) => {}
        Some(Protocol::Zvt) => return Err("this is a ZVT trace, not a POSNET one".into()),
        Some(Protocol::Thermal) => {
            return Err("this is a Thermal trace, not a POSNET one".into());
        }
        Some(Protocol::NovitusXml) => {
            return Err("this is a Novitus XML trace, not a POSNET one".into());
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

/// Run the replay until done; `Ok` when the whole trace was played.
pub fn run(
    script: &Script,
    args: &ReplayArgs,
    stop: &AtomicBool,
) -> anyhow::Result<Result<(), Divergence>> {
    let link = args.serial_link()?;
    let pty = Pty::create(link)?;
    tracing::info!(device = %pty.device.display(), link = %link.display(), requests = script.exchanges.len(), "replaying");
    let result = play(&pty, script, args, stop);
    pty.unlink();
    Ok(result)
}

/// Send recorded `replies`. Each tokened reply gets the token the client gave the request
/// that carried its recorded token (a pipelining client has several requests out before
/// their replies), else `latest`, the token of the request just received.
fn send(
    pty: &Pty,
    replies: &[Reply],
    tokens: &std::collections::HashMap<u16, u16>,
    latest: Option<u16>,
    realtime: bool,
) {
    for r in replies {
        if realtime {
            std::thread::sleep(r.delay);
        }
        let recorded = match &r.item {
            Decoded::Frame(f) => f.token,
            _ => None,
        };
        let token = recorded.and_then(|t| tokens.get(&t).copied()).or(latest);
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
    // Recorded request tokens to the client's.
    let mut tokens = std::collections::HashMap::new();
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
                send(pty, &script.preamble, &tokens, None, args.realtime);
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
            if let (Some(recorded), Some(actual)) = (ex.request.token, f.token) {
                tokens.insert(recorded, actual);
            }
            send(pty, &ex.replies, &tokens, f.token, args.realtime);
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
    fn a_trace_becomes_exchanges_and_zvt_is_not_read_as_posnet() {
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
