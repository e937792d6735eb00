//! Fuzz the serial link state machine with arbitrary bytes, time steps and sends.
//!
//! Input: a stream of ops. `00..=7F n`: feed the next n+1 bytes at the current time;
//! `80..=BF`: advance time by (op & 3F) × 10 ms and fire due timers; `C0..=FF`: send an
//! APDU made of the next (op & 3F) bytes. Checked: no panic; every received APDU re-frames
//! to a frame that a fresh link decodes back to it; Delivered/Failed only answer a send;
//! `is_busy` agrees; nothing empty is transmitted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use zvt::link::{LinkConfig, LinkEvent, SerialLink, encode_frame};

fn check(link: &mut SerialLink, outstanding: &mut bool, now: Instant) {
    while let Some(t) = link.poll_transmit() {
        assert!(!t.is_empty());
    }
    while let Some(e) = link.poll_event() {
        match e {
            LinkEvent::Received(apdu) => {
                let mut fresh = SerialLink::new(LinkConfig::default());
                fresh.handle_input(&encode_frame(&apdu), now);
                assert_eq!(fresh.poll_event(), Some(LinkEvent::Received(apdu)));
                assert_eq!(fresh.poll_event(), None);
            }
            LinkEvent::Delivered | LinkEvent::Failed => {
                assert!(*outstanding);
                *outstanding = false;
            }
        }
    }
    assert_eq!(link.is_busy(), *outstanding);
}

fuzz_target!(|data: &[u8]| {
    let mut link = SerialLink::new(LinkConfig::default());
    let mut now = Instant::now();
    let mut outstanding = false;
    let mut i = 0;
    while i < data.len() {
        let op = data[i];
        i += 1;
        match op {
            0x00..=0x7F => {
                let end = (i + usize::from(op) + 1).min(data.len());
                link.handle_input(&data[i..end], now);
                i = end;
            }
            0x80..=0xBF => {
                now += Duration::from_millis(u64::from(op & 0x3F) * 10);
                if let Some(t) = link.poll_timeout()
                    && t <= now
                {
                    link.handle_timeout(now);
                }
            }
            _ => {
                let end = (i + usize::from(op & 0x3F)).min(data.len());
                match link.send(&data[i..end], now) {
                    Ok(()) => {
                        assert!(!outstanding);
                        outstanding = true;
                    }
                    Err(_) => assert!(outstanding),
                }
                i = end;
            }
        }
        check(&mut link, &mut outstanding, now);
        if let Some(t) = link.poll_timeout() {
            // A deadline is never more than T2 away.
            assert!(t <= now + LinkConfig::default().t2);
        }
    }
});
