//! Behaviour of the model terminal, driven message by message like a register would.
#![cfg(feature = "model")]

use proptest::prelude::*;
use std::time::{Duration, Instant};
use zvt::apdu::Apdu;
use zvt::bmp::parse_fields;
use zvt::model::{Event, REPEAT_INTERVAL, Terminal, TerminalMemory};
use zvt::{EcrCommand, PLN, PtMessage, TransactionResult};

/// A register talking to a model terminal with a fake clock.
struct Ecr {
    t: Terminal,
    now: Instant,
}

impl Ecr {
    fn new() -> Ecr {
        Ecr::with(Terminal::new())
    }
    fn with(t: Terminal) -> Ecr {
        Ecr {
            t,
            now: Instant::now(),
        }
    }
    fn send(&mut self, cmd: EcrCommand) {
        self.t.handle_apdu(&cmd.to_apdu(), self.now);
    }
    fn ack(&mut self) {
        self.send(EcrCommand::Ack);
    }
    /// The next APDU the terminal sends now, decoded.
    fn recv(&mut self) -> Option<PtMessage> {
        self.t
            .poll_send()
            .map(|a| PtMessage::from_apdu(&a).expect("the terminal sends valid messages"))
    }
    fn recv_raw(&mut self) -> Option<Apdu> {
        self.t.poll_send()
    }
    fn expect(&mut self) -> PtMessage {
        self.recv().expect("a message from the terminal")
    }
    fn advance(&mut self, d: Duration) {
        let until = self.now + d;
        while let Some(t) = self.t.poll_timeout() {
            if t > until {
                break;
            }
            self.now = self.now.max(t);
            self.t.handle_timeout(self.now);
        }
        self.now = until;
        self.t.handle_timeout(self.now);
    }
    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.t.poll_event()).collect()
    }
    /// Send a command, ack everything, advance time when nothing is due; all messages
    /// received until the terminal is idle again.
    fn run(&mut self, cmd: EcrCommand) -> Vec<PtMessage> {
        self.run_raw(cmd)
            .iter()
            .map(|a| PtMessage::from_apdu(a).expect("the terminal sends valid messages"))
            .collect()
    }
    /// [`Ecr::run`], returning the APDUs as sent.
    fn run_raw(&mut self, cmd: EcrCommand) -> Vec<Apdu> {
        self.send(cmd);
        let mut got = Vec::new();
        for _ in 0..1000 {
            while let Some(a) = self.recv_raw() {
                if PtMessage::from_apdu(&a).is_ok_and(|m| m.needs_ack()) {
                    self.ack();
                }
                got.push(a);
            }
            match self.t.poll_timeout() {
                Some(t) => {
                    self.now = self.now.max(t);
                    self.t.handle_timeout(self.now);
                }
                None => break,
            }
        }
        assert!(!self.t.is_busy());
        got
    }
    fn sale(&mut self, amount: u64) -> Vec<PtMessage> {
        self.run(EcrCommand::Authorization {
            amount,
            currency: PLN,
        })
    }
}

fn status_of(msgs: &[PtMessage]) -> TransactionResult {
    msgs.iter()
        .find_map(|m| match m {
            PtMessage::StatusInformation(r) => Some(r.clone()),
            _ => None,
        })
        .expect("a Status-Information")
}

fn print_lines(msgs: &[PtMessage]) -> Vec<(u8, String)> {
    msgs.iter()
        .filter_map(|m| match m {
            PtMessage::PrintLine { attribute, text } => Some((*attribute, text.clone())),
            _ => None,
        })
        .collect()
}

fn no_full_pan(s: &str) {
    let mut run = 0;
    for c in s.chars() {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        assert!(run < 13, "a run of 13+ digits (a PAN?) in {s}");
    }
}

#[test]
fn approved_sale_message_by_message() {
    let mut e = Ecr::new();
    e.t.set_clock(1_714_566_896); // 2024-05-01 12:34:56
    e.send(EcrCommand::Authorization {
        amount: 1234,
        currency: PLN,
    });
    assert_eq!(e.expect(), PtMessage::Ack);
    let raw = e.recv_raw().expect("04 0F");
    assert_eq!(raw.control(), 0x040F);
    // Only one message at a time: nothing more before the ack.
    assert!(e.recv().is_none());
    assert_eq!(e.events(), vec![Event::Persist]);
    let fields = parse_fields(&raw.data).unwrap();
    let order: Vec<u8> = fields.iter().map(|f| f.bmp).collect();
    for bmp in [
        0x27, 0x04, 0x49, 0x0B, 0x87, 0x29, 0x22, 0x8B, 0x3B, 0x0C, 0x0D, 0x19,
    ] {
        assert!(
            order.contains(&bmp),
            "BMP {bmp:02X} missing in {order:02X?}"
        );
    }
    let pan = fields.iter().find(|f| f.bmp == 0x22).unwrap();
    assert!(
        pan.value.iter().any(|b| b >> 4 == 0xE || b & 0x0F == 0xE),
        "BMP 22 masked with E nibbles"
    );
    let PtMessage::StatusInformation(r) = PtMessage::from_apdu(&raw).unwrap() else {
        panic!("not a status information")
    };
    assert_eq!(r.result_code, 0);
    assert_eq!(r.amount, Some(1234));
    assert_eq!(r.currency, Some(PLN));
    assert_eq!(r.trace_number, Some(1));
    assert_eq!(r.receipt_number, Some(1));
    assert_eq!(r.terminal_id.as_deref(), Some("52500001"));
    assert_eq!(r.time.as_deref(), Some("123456"));
    assert_eq!(r.date.as_deref(), Some("0501"));
    let masked = r.masked_pan.clone().unwrap();
    assert!(masked.contains("******"), "{masked}");
    assert!(r.card_name.is_some());
    let auth = r.auth_code.clone().unwrap();
    assert_eq!(auth.len(), 6);
    assert!(auth.bytes().all(|b| b.is_ascii_digit()));
    // The stored transaction matches.
    let tx = e.t.memory().transactions[0].clone();
    assert_eq!(tx.status, "approved");
    assert_eq!(tx.kind, "sale");
    assert_eq!(tx.masked_pan, masked);
    assert_eq!(tx.auth_code.as_deref(), Some(auth.as_str()));
    assert_eq!(tx.time, "2024-05-01 12:34:56");

    e.ack();
    let mut lines = Vec::new();
    loop {
        match e.expect() {
            PtMessage::PrintLine { attribute, text } => {
                assert!(e.recv().is_none(), "one message at a time");
                lines.push((attribute, text));
                e.ack();
            }
            PtMessage::Completion { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(e.t.is_busy(), "master until the completion is acked");
    e.ack();
    assert!(!e.t.is_busy());
    assert!(e.recv().is_none());
    let text: Vec<&str> = lines.iter().map(|(_, t)| t.as_str()).collect();
    let all = text.join("\n");
    assert!(all.contains("ZATWIERDZONO"), "{all}");
    assert!(all.contains("12,34 PLN"), "{all}");
    assert!(all.contains(&masked), "{all}");
    assert!(all.contains(&auth), "{all}");
    assert!(all.contains("PARAGON 0001"), "{all}");
    let (last_attr, _) = lines.last().unwrap();
    assert!(*last_attr & 0x80 != 0 && *last_attr != 0x80 && *last_attr != 0xFF);
    assert!(lines[..lines.len() - 1].iter().all(|(a, _)| *a & 0x80 == 0));
    // Numbers are monotonic.
    let r2 = status_of(&e.sale(500));
    assert_eq!(r2.trace_number, Some(2));
    assert_eq!(r2.receipt_number, Some(2));
}

#[test]
fn declined_51() {
    let mut e = Ecr::new();
    let msgs = e.sale(1051);
    assert_eq!(msgs[0], PtMessage::Ack);
    let r = status_of(&msgs);
    assert_eq!(r.result_code, 0x05);
    assert!(r.auth_code.is_none());
    assert!(r.additional_text.is_some());
    let lines = print_lines(&msgs);
    assert!(lines.iter().any(|(_, t)| t.contains("ODMOWA")));
    assert!(matches!(
        msgs.last(),
        Some(PtMessage::Abort {
            result_code: 0x05,
            ..
        })
    ));
    let tx = &e.t.memory().transactions[0];
    assert_eq!(tx.status, "declined");
    assert_eq!(tx.amount, 1051);
}

#[test]
fn silent_52_then_status_enquiry_and_repeat_receipt() {
    let mut e = Ecr::new();
    e.send(EcrCommand::Authorization {
        amount: 2052,
        currency: PLN,
    });
    assert_eq!(e.expect(), PtMessage::Ack);
    assert!(e.recv().is_none());
    assert!(!e.t.is_busy());
    assert_eq!(e.events(), vec![Event::Persist]);
    let tx = e.t.memory().transactions[0].clone();
    assert_eq!(tx.status, "approved");
    e.advance(Duration::from_secs(120));
    assert!(e.recv().is_none());
    assert_eq!(e.t.memory().transactions[0].status, "approved");

    let msgs = e.run(EcrCommand::StatusEnquiry { password: None });
    assert_eq!(msgs[0], PtMessage::Ack);
    assert!(matches!(
        msgs[1],
        PtMessage::Completion {
            terminal_status: Some(0),
            ..
        }
    ));

    let msgs = e.run(EcrCommand::RepeatReceipt {
        password: 0,
        service: 0x01,
    });
    assert_eq!(msgs[0], PtMessage::Ack);
    let r = status_of(&msgs);
    assert_eq!(r.result_code, 0);
    assert_eq!(r.amount, Some(2052));
    assert_eq!(r.receipt_number, Some(tx.receipt_number));
    assert_eq!(r.masked_pan.as_deref(), Some(tx.masked_pan.as_str()));
    assert!(!print_lines(&msgs).is_empty());
    assert!(matches!(msgs.last(), Some(PtMessage::Completion { .. })));
    // Service bit 1: no printout.
    let msgs = e.run(EcrCommand::RepeatReceipt {
        password: 0,
        service: 0x03,
    });
    assert!(print_lines(&msgs).is_empty());
    assert_eq!(status_of(&msgs).receipt_number, Some(tx.receipt_number));
}

#[test]
fn repeat_receipt_with_nothing_stored() {
    let mut e = Ecr::new();
    let msgs = e.run(EcrCommand::RepeatReceipt {
        password: 0,
        service: 1,
    });
    assert_eq!(msgs[0], PtMessage::Ack);
    assert!(matches!(
        msgs[1],
        PtMessage::Abort {
            result_code: 0x83,
            ..
        }
    ));
}

#[test]
fn slow_card_53() {
    let mut e = Ecr::new();
    let start = e.now;
    e.send(EcrCommand::Authorization {
        amount: 153,
        currency: PLN,
    });
    assert_eq!(e.expect(), PtMessage::Ack);
    assert!(matches!(
        e.expect(),
        PtMessage::IntermediateStatus { status: 0x0A, .. }
    ));
    e.ack();
    let mut waits = 0;
    let result = loop {
        let t = e.t.poll_timeout().expect("a timer while waiting");
        e.now = t;
        e.t.handle_timeout(t);
        match e.recv() {
            Some(PtMessage::IntermediateStatus { status: 0x17, .. }) => {
                waits += 1;
                e.ack();
            }
            Some(PtMessage::StatusInformation(r)) => break r,
            None => {}
            Some(other) => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(result.result_code, 0);
    assert!(e.now - start >= Duration::from_secs(20));
    assert!((8..=10).contains(&waits), "{waits} intermediate statuses");
    assert!(e.t.memory().transactions[0].status == "approved");
}

#[test]
fn drop_54_keeps_the_payment_approved() {
    let mut e = Ecr::new();
    e.send(EcrCommand::Authorization {
        amount: 9954,
        currency: PLN,
    });
    assert_eq!(e.expect(), PtMessage::Ack);
    assert_eq!(e.events(), vec![Event::Persist]);
    let r = match e.expect() {
        PtMessage::StatusInformation(r) => r,
        other => panic!("{other:?}"),
    };
    assert_eq!(r.result_code, 0);
    // The drop comes after the Status-Information went out.
    assert_eq!(e.events(), vec![Event::DropConnection]);
    e.t.connection_lost(e.now);
    assert!(!e.t.is_busy());
    e.advance(Duration::from_secs(120));
    let tx = e.t.memory().transactions[0].clone();
    assert_eq!(tx.status, "approved");
    // Recovery finds it.
    let msgs = e.run(EcrCommand::RepeatReceipt {
        password: 0,
        service: 1,
    });
    assert_eq!(status_of(&msgs).receipt_number, Some(tx.receipt_number));
}

#[test]
fn ask_again_84_9c() {
    let mut e = Ecr::new();
    e.send(EcrCommand::Authorization {
        amount: 1000,
        currency: PLN,
    });
    assert_eq!(e.expect(), PtMessage::Ack);
    let first = e.recv_raw().unwrap();
    e.send(EcrCommand::Nack(0x9C));
    assert!(e.recv().is_none());
    e.advance(Duration::from_millis(1900));
    assert!(e.recv().is_none());
    e.advance(Duration::from_millis(100));
    assert_eq!(e.recv_raw(), Some(first.clone()));
    e.send(EcrCommand::Nack(0x9C));
    e.advance(Duration::from_secs(2));
    assert_eq!(e.recv_raw(), Some(first));
    e.ack();
    assert!(matches!(e.expect(), PtMessage::PrintLine { .. }));
    assert_eq!(e.t.memory().transactions[0].status, "approved");
}

#[test]
fn no_ack_within_30_s_auto_reverses() {
    let mut e = Ecr::new();
    e.send(EcrCommand::Authorization {
        amount: 1000,
        currency: PLN,
    });
    assert_eq!(e.expect(), PtMessage::Ack);
    assert!(matches!(e.expect(), PtMessage::StatusInformation(_)));
    e.events();
    e.advance(Duration::from_secs(29));
    assert_eq!(e.t.memory().transactions[0].status, "approved");
    // Meanwhile it was repeated every 5 s, as a real terminal does.
    let repeats: Vec<_> = std::iter::from_fn(|| e.t.poll_message()).collect();
    assert_eq!(repeats.len(), 5, "{repeats:?}");
    assert!(repeats.iter().all(|m| m.repeat
        && matches!(
            PtMessage::from_apdu(&m.apdu),
            Ok(PtMessage::StatusInformation(_))
        )));
    e.advance(Duration::from_secs(2));
    assert_eq!(e.t.memory().transactions[0].status, "reversed");
    assert_eq!(e.events(), vec![Event::Persist]);
    assert!(!e.t.is_busy());
    // Repeat receipt reports it as not paid.
    let msgs = e.run(EcrCommand::RepeatReceipt {
        password: 0,
        service: 1,
    });
    assert_ne!(status_of(&msgs).result_code, 0);
}

#[test]
fn goods_not_issued_reverses() {
    let mut e = Ecr::new();
    e.send(EcrCommand::Authorization {
        amount: 1000,
        currency: PLN,
    });
    e.expect();
    e.expect();
    e.send(EcrCommand::Nack(0x66));
    assert!(matches!(e.expect(), PtMessage::Abort { .. }));
    e.ack();
    assert!(!e.t.is_busy());
    assert_eq!(e.t.memory().transactions[0].status, "reversed");
}

#[test]
fn reversal_then_already_reversed() {
    let mut e = Ecr::new();
    let sale = status_of(&e.sale(4200));
    let receipt = sale.receipt_number.unwrap();
    let msgs = e.run(EcrCommand::Reversal {
        password: 0,
        receipt_number: receipt,
    });
    assert_eq!(msgs[0], PtMessage::Ack);
    let r = status_of(&msgs);
    assert_eq!(r.result_code, 0);
    assert_eq!(r.amount, Some(4200));
    assert_eq!(r.original_trace, sale.trace_number);
    assert!(
        print_lines(&msgs)
            .iter()
            .any(|(_, t)| t.contains("ANULOWANIE"))
    );
    assert!(matches!(msgs.last(), Some(PtMessage::Completion { .. })));
    let m = e.t.memory();
    assert_eq!(m.transactions.len(), 2);
    assert_eq!(m.transactions[0].status, "reversed");
    assert_eq!(m.transactions[1].kind, "reversal");
    assert_eq!(m.transactions[1].status, "approved");
    assert_eq!(m.transactions[1].original_receipt, Some(receipt));

    let again = e.run(EcrCommand::Reversal {
        password: 0,
        receipt_number: receipt,
    });
    assert!(matches!(
        again.as_slice(),
        [
            PtMessage::Ack,
            PtMessage::Abort {
                result_code: 0xB4,
                ..
            }
        ]
    ));
    let unknown = e.run(EcrCommand::Reversal {
        password: 0,
        receipt_number: 999,
    });
    assert!(matches!(
        unknown[1],
        PtMessage::Abort {
            result_code: 0xB5,
            ..
        }
    ));
    assert_eq!(e.t.memory().transactions.len(), 2);
}

#[test]
fn refund() {
    let mut e = Ecr::new();
    let msgs = e.run(EcrCommand::Refund {
        password: 0,
        amount: 700,
        currency: PLN,
    });
    assert_eq!(status_of(&msgs).result_code, 0);
    assert!(print_lines(&msgs).iter().any(|(_, t)| t.contains("ZWROT")));
    let tx = &e.t.memory().transactions[0];
    assert_eq!(tx.kind, "refund");
    assert_eq!(tx.status, "approved");
    assert_eq!(tx.amount, 700);
}

#[test]
fn end_of_day_totals() {
    let mut e = Ecr::new();
    e.sale(1000);
    e.sale(2000);
    e.sale(1051); // declined
    let reversed = status_of(&e.sale(3000)).receipt_number.unwrap();
    e.run(EcrCommand::Reversal {
        password: 0,
        receipt_number: reversed,
    });
    e.run(EcrCommand::Refund {
        password: 0,
        amount: 500,
        currency: PLN,
    });
    let msgs = e.run(EcrCommand::EndOfDay { password: 0 });
    assert_eq!(msgs[0], PtMessage::Ack);
    let r = status_of(&msgs);
    assert_eq!(r.result_code, 0);
    assert_eq!(r.amount, Some(2500));
    assert!(!print_lines(&msgs).is_empty());
    assert!(matches!(msgs.last(), Some(PtMessage::Completion { .. })));
    let m = e.t.memory();
    assert_eq!(m.batches.len(), 1);
    assert_eq!(
        (m.batches[0].number, m.batches[0].count, m.batches[0].total),
        (1, 3, 2500)
    );
    // A payment from a closed batch cannot be reversed.
    let msgs = e.run(EcrCommand::Reversal {
        password: 0,
        receipt_number: 1,
    });
    assert!(matches!(
        msgs[1],
        PtMessage::Abort {
            result_code: 0xB5,
            ..
        }
    ));
    e.sale(100);
    e.run(EcrCommand::EndOfDay { password: 0 });
    let b = &e.t.memory().batches[1];
    assert_eq!((b.number, b.count, b.total), (2, 1, 100));
}

#[test]
fn status_enquiry_idle_and_busy() {
    let mut e = Ecr::new();
    let msgs = e.run(EcrCommand::StatusEnquiry { password: Some(0) });
    assert_eq!(msgs.len(), 2);
    e.send(EcrCommand::Authorization {
        amount: 153,
        currency: PLN,
    });
    assert_eq!(e.expect(), PtMessage::Ack);
    e.expect(); // 04 FF
    e.send(EcrCommand::StatusEnquiry { password: None });
    assert_eq!(e.expect(), PtMessage::Nack(0x83));
    e.send(EcrCommand::Authorization {
        amount: 100,
        currency: PLN,
    });
    assert_eq!(e.expect(), PtMessage::Nack(0x83));
    assert!(e.t.is_busy());
}

#[test]
fn abort_during_slow_card() {
    let mut e = Ecr::new();
    e.send(EcrCommand::Authorization {
        amount: 153,
        currency: PLN,
    });
    e.expect();
    e.expect();
    e.ack();
    e.advance(Duration::from_secs(5));
    while let Some(m) = e.recv() {
        assert!(matches!(m, PtMessage::IntermediateStatus { .. }));
        e.ack();
    }
    e.send(EcrCommand::Abort);
    assert_eq!(e.expect(), PtMessage::Ack);
    assert!(matches!(
        e.expect(),
        PtMessage::Abort {
            result_code: 0x6C,
            ..
        }
    ));
    e.ack();
    assert!(!e.t.is_busy());
    e.advance(Duration::from_secs(60));
    assert!(e.recv().is_none());
    assert!(e.t.memory().transactions.is_empty());
    assert!(e.events().is_empty());
}

#[test]
fn abort_after_the_card_is_read_is_refused() {
    let mut e = Ecr::new();
    e.send(EcrCommand::Authorization {
        amount: 100,
        currency: PLN,
    });
    e.expect();
    e.expect(); // 04 0F
    e.send(EcrCommand::Abort);
    assert_eq!(e.expect(), PtMessage::Nack(0x83));
    e.ack();
    assert!(matches!(e.expect(), PtMessage::PrintLine { .. }));
}

#[test]
fn connection_lost_during_slow_card() {
    let mut e = Ecr::new();
    e.send(EcrCommand::Authorization {
        amount: 153,
        currency: PLN,
    });
    e.expect();
    e.expect();
    e.ack();
    e.advance(Duration::from_secs(3));
    e.t.connection_lost(e.now);
    assert!(!e.t.is_busy());
    assert!(e.recv().is_none());
    assert_eq!(e.t.poll_timeout(), None);
    e.advance(Duration::from_secs(60));
    assert!(e.t.memory().transactions.is_empty());
    assert_eq!(status_of(&e.sale(100)).trace_number, Some(1));
}

#[test]
fn registration_currency_and_log_off() {
    let mut e = Ecr::new();
    let msgs = e.run(EcrCommand::Registration {
        password: 0x123456,
        config: 0xBA,
        currency: Some(PLN),
    });
    assert_eq!(msgs[0], PtMessage::Ack);
    assert!(matches!(msgs[1], PtMessage::Completion { .. }));
    assert_eq!(e.t.memory().registration.as_ref().unwrap().config, 0xBA);
    e.send(EcrCommand::Authorization {
        amount: 100,
        currency: 840,
    });
    assert_eq!(e.expect(), PtMessage::Nack(0x6F));
    assert!(!e.t.is_busy());
    e.send(EcrCommand::Registration {
        password: 0,
        config: 0,
        currency: Some(840),
    });
    assert_eq!(e.expect(), PtMessage::Nack(0x6F));
    e.send(EcrCommand::LogOff);
    assert_eq!(e.expect(), PtMessage::Ack);
    assert!(e.recv().is_none());
    assert!(e.t.memory().registration.is_none());
}

#[test]
fn registration_completion_carries_tid() {
    let mut e = Ecr::new();
    e.send(EcrCommand::Registration {
        password: 0,
        config: 0x86,
        currency: Some(PLN),
    });
    e.expect();
    let raw = e.recv_raw().unwrap();
    assert_eq!(raw.control(), 0x060F);
    let fields = parse_fields(&raw.data).unwrap();
    let tid = fields.iter().find(|f| f.bmp == 0x29).unwrap();
    assert_eq!(tid.value, vec![0x52, 0x50, 0x00, 0x01]);
    let cc = fields.iter().find(|f| f.bmp == 0x49).unwrap();
    assert_eq!(cc.value, vec![0x09, 0x85]);
}

#[test]
fn memory_serde_round_trip() {
    let mut e = Ecr::new();
    e.sale(1000);
    e.sale(1051);
    let r = status_of(&e.sale(2000)).receipt_number.unwrap();
    e.run(EcrCommand::Reversal {
        password: 0,
        receipt_number: r,
    });
    e.run(EcrCommand::EndOfDay { password: 0 });
    let json = serde_json::to_string_pretty(e.t.memory()).unwrap();
    no_full_pan(&json);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["transactions"][0]["type"], "sale");
    assert_eq!(v["transactions"][0]["status"], "approved");
    assert_eq!(v["transactions"][1]["status"], "declined");
    assert_eq!(v["transactions"][3]["type"], "reversal");
    assert_eq!(v["batches"][0]["total"], 1000);
    let back: TerminalMemory = serde_json::from_str(&json).unwrap();
    assert_eq!(&back, e.t.memory());
    // Counters continue after a restart.
    let mut e2 = Ecr::with(Terminal::from_memory(back));
    assert_eq!(status_of(&e2.sale(100)).trace_number, Some(5));
    // A minimal file still loads.
    let min: TerminalMemory = serde_json::from_str(r#"{"transactions":[],"batches":[]}"#).unwrap();
    assert_eq!(min, TerminalMemory::default());
}

#[test]
fn unknown_and_malformed_commands_are_refused() {
    let mut e = Ecr::new();
    e.t.handle_apdu(&Apdu::new(0x06, 0x77, vec![]), e.now);
    assert!(matches!(e.expect(), PtMessage::Nack(_)));
    e.t.handle_apdu(&Apdu::new(0x06, 0x01, vec![0x04, 0x00]), e.now);
    assert!(matches!(e.expect(), PtMessage::Nack(_)));
    assert!(!e.t.is_busy());
}

#[derive(Debug, Clone)]
enum Op {
    Cmd(EcrCommand),
    Raw(Vec<u8>),
    Ack,
    Nack(u8),
    Wait(u64),
    Lost,
}

fn op() -> impl Strategy<Value = Op> {
    let amount = prop_oneof![
        (0u64..2000).prop_map(|n| n * 100 + 51),
        (0u64..2000).prop_map(|n| n * 100 + 52),
        (0u64..2000).prop_map(|n| n * 100 + 53),
        (0u64..2000).prop_map(|n| n * 100 + 54),
        0u64..1_000_000,
    ];
    let currency = prop_oneof![Just(PLN), Just(zvt::EUR), any::<u16>()];
    prop_oneof![
        (amount.clone(), currency.clone())
            .prop_map(|(amount, currency)| Op::Cmd(EcrCommand::Authorization { amount, currency })),
        (amount, currency).prop_map(|(amount, currency)| Op::Cmd(EcrCommand::Refund {
            password: 0,
            amount,
            currency
        })),
        (0u32..12).prop_map(|r| Op::Cmd(EcrCommand::Reversal {
            password: 0,
            receipt_number: r
        })),
        Just(Op::Cmd(EcrCommand::EndOfDay { password: 0 })),
        Just(Op::Cmd(EcrCommand::StatusEnquiry { password: None })),
        (0u8..4).prop_map(|s| Op::Cmd(EcrCommand::RepeatReceipt {
            password: 0,
            service: s
        })),
        Just(Op::Cmd(EcrCommand::Abort)),
        Just(Op::Cmd(EcrCommand::LogOff)),
        Just(Op::Cmd(EcrCommand::Registration {
            password: 0,
            config: 0xBA,
            currency: Some(PLN)
        })),
        prop::collection::vec(any::<u8>(), 0..20).prop_map(Op::Raw),
        Just(Op::Ack),
        Just(Op::Ack),
        Just(Op::Ack),
        prop_oneof![Just(0x9Cu8), Just(0xCC), any::<u8>()].prop_map(Op::Nack),
        (0u64..40_000).prop_map(Op::Wait),
        Just(Op::Lost),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_sessions_never_panic_or_leak_a_pan(ops in prop::collection::vec(op(), 0..80)) {
        let mut e = Ecr::new();
        for op in ops {
            match op {
                Op::Cmd(c) => e.send(c),
                Op::Raw(bytes) => {
                    if bytes.len() >= 2 {
                        e.t.handle_apdu(&Apdu::new(bytes[0], bytes[1], bytes[2..].to_vec()), e.now);
                    }
                }
                Op::Ack => e.ack(),
                Op::Nack(c) => e.send(EcrCommand::Nack(c)),
                Op::Wait(ms) => e.advance(Duration::from_millis(ms)),
                Op::Lost => e.t.connection_lost(e.now),
            }
            while let Some(a) = e.t.poll_send() {
                let m = PtMessage::from_apdu(&a);
                prop_assert!(m.is_ok(), "invalid PT message {a:?}");
                match m.unwrap() {
                    PtMessage::StatusInformation(r) => {
                        if let Some(p) = r.masked_pan {
                            prop_assert!(p.contains('*'));
                        }
                    }
                    PtMessage::PrintLine { text, .. } => no_full_pan(&text),
                    _ => {}
                }
            }
            e.events();
            let _ = e.t.poll_timeout();
        }
        let m = e.t.memory();
        for t in &m.transactions {
            prop_assert!(t.masked_pan.contains("******"));
            prop_assert!(["sale", "refund", "reversal"].contains(&t.kind.as_str()));
            prop_assert!(["approved", "declined", "reversed"].contains(&t.status.as_str()));
        }
        let json = serde_json::to_string(m).unwrap();
        no_full_pan(&json);
        let back: TerminalMemory = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(&back, m);
    }
}

/// The `pan clear` fault sends the number in clear in every text field and in every
/// separator style, and the flow still ends as usual (the extra text block is a step).
#[test]
fn clear_pan_fault_leaks_into_every_text_field() {
    use zvt::model::hostile::{STYLES, TEST_PAN_13};
    let mut ecr = Ecr::new();
    ecr.t.set_clear_pan(true);
    let mut raw = Vec::new();
    for amount in [1000, 1051, 1053] {
        raw.extend(ecr.run_raw(EcrCommand::Authorization {
            amount,
            currency: PLN,
        }));
    }
    let wire: Vec<u8> = raw.iter().flat_map(|a| a.encode()).collect();
    let has = |s: &str| wire.windows(s.len()).any(|w| w == s.as_bytes());
    for s in STYLES {
        assert!(has(s), "{s} is not sent");
    }
    assert!(has(TEST_PAN_13));
    let kinds: Vec<(u8, u8)> = raw.iter().map(|a| (a.class, a.instr)).collect();
    for k in [
        (0x04, 0x0F),
        (0x04, 0xFF),
        (0x06, 0xD1),
        (0x06, 0xD3),
        (0x06, 0x1E),
    ] {
        assert!(kinds.contains(&k), "{k:02X?} not sent: {kinds:02X?}");
    }
    // Every APDU carrying text has the number in clear.
    for a in &raw {
        if matches!(
            (a.class, a.instr),
            (0x04, 0xFF) | (0x06, 0xD3) | (0x06, 0x1E) | (0x04, 0x0F)
        ) {
            let text = String::from_utf8_lossy(&a.data).into_owned();
            let digits: String = text.chars().filter(char::is_ascii_digit).collect();
            assert!(
                digits.contains("5454545454545454") || a.data.windows(8).any(|w| w == [0x54; 8]),
                "{a:02X?}"
            );
        }
    }
    // Its memory stays masked.
    let mem = serde_json::to_string(ecr.t.memory()).unwrap();
    assert!(!mem.contains("5454545454545454"), "{mem}");
}

#[test]
fn an_unacknowledged_message_is_repeated_until_acknowledged() {
    let mut e = Ecr::new();
    e.send(EcrCommand::Authorization {
        amount: 1000,
        currency: PLN,
    });
    assert_eq!(e.expect(), PtMessage::Ack);
    let first = e.t.poll_message().expect("the status information");
    assert!(!first.repeat);
    // Nothing before the repeat timer.
    e.advance(REPEAT_INTERVAL - Duration::from_millis(1));
    assert_eq!(e.t.poll_message(), None);
    e.advance(Duration::from_millis(1));
    let again = e.t.poll_message().expect("a repetition");
    assert!(again.repeat);
    assert_eq!(again.apdu, first.apdu);
    // The serial link gave up on the frame: sent again at once.
    e.t.link_failed(e.now);
    assert_eq!(e.t.poll_message().map(|m| m.apdu), Some(first.apdu));
    // Busy meanwhile: a command is refused with 84 83.
    e.send(EcrCommand::StatusEnquiry { password: None });
    assert_eq!(e.expect(), PtMessage::Nack(0x83));
    // Once acknowledged, the flow goes on (the slip) and nothing repeats.
    e.ack();
    assert!(matches!(e.expect(), PtMessage::PrintLine { .. }));
    e.ack();
    e.advance(Duration::from_secs(1));
    assert!(matches!(e.expect(), PtMessage::PrintLine { .. }));
}
