//! Fuzz the POSNET session with a command in flight. The first byte picks the command,
//! the first token and the size of the pieces the input is fed in; every 0x7F byte in
//! the rest fires the session's timer instead of being fed (a new command starts when the
//! last one ended). Nothing may panic, and a command may complete only with a reply that
//! has its mnemonic, no error code, and one of its own tokens or none.
#![no_main]

use libfuzzer_sys::fuzz_target;
use posnet::session::{Session, SessionConfig, SessionEvent};
use posnet::{Command, FrameDecoder};
use std::time::{Duration, Instant};

fn sent_tokens(s: &mut Session, ours: &mut Vec<u16>) {
    let mut decoder = FrameDecoder::new();
    while let Some(bytes) = s.poll_transmit() {
        for item in decoder.feed(&bytes) {
            if let posnet::Decoded::Frame(f) = item
                && let Some(t) = f.token
            {
                ours.push(t);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let commands = [
        Command::SCnt,
        Command::SPrn { immediate: true },
        Command::TrInit { block_mode: false },
    ];
    let command = &commands[usize::from(control % 3)];
    let base = command.mnemonic().trim_start_matches('!');
    let chunk = usize::from(control / 3 % 16) + 1;
    let mut now = Instant::now();
    let mut s = Session::new(SessionConfig::default(), u16::from(control) * 41);
    s.start(command, Duration::from_secs(3), now).unwrap();
    let mut ours = Vec::new();
    let mut fed = 0u64;
    let check = |s: &mut Session, ours: &mut Vec<u16>| {
        sent_tokens(s, ours);
        while let Some(e) = s.poll_event() {
            if let SessionEvent::Completed(Ok(f)) = e {
                assert_eq!(f.mnemonic.trim_start_matches('!'), base);
                assert_eq!(f.error_code, None);
                assert!(f.token.is_none_or(|t| ours.contains(&t)), "{f:?}");
            }
        }
    };
    check(&mut s, &mut ours);
    for (i, segment) in rest.split(|&b| b == 0x7F).enumerate() {
        if i > 0 {
            match s.poll_timeout() {
                Some(at) => {
                    now = now.max(at);
                    s.handle_timeout(now);
                }
                None => s.start(command, Duration::from_secs(3), now).unwrap(),
            }
            check(&mut s, &mut ours);
        }
        for piece in segment.chunks(chunk) {
            s.handle_input(piece, now);
            fed += piece.len() as u64;
            check(&mut s, &mut ours);
        }
    }
    assert_eq!(s.stats().bytes_in, fed);
});
