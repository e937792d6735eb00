//! Typed messages: the reference's APDUs (§1.3.1, §1.7), real examples, redaction, and
//! round-trip properties.

use proptest::prelude::*;
use zvt::apdu::{Apdu, ApduError};
use zvt::error::describe;
use zvt::message::{
    EcrCommand, MessageError, PtMessage, TransactionResult, is_cp437, redacted_hex,
    text_from_cp437, text_to_cp437,
};
use zvt::{EUR, PLN, pan};

fn hex(s: &str) -> Vec<u8> {
    s.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn apdu(s: &str) -> Apdu {
    Apdu::decode(&hex(s)).unwrap()
}

/// Header, then ASCII text, then more hex.
fn with_text(head: &str, text: &str, tail: &str) -> Apdu {
    let mut v = hex(head);
    v.extend_from_slice(text.as_bytes());
    v.extend(hex(tail));
    Apdu::decode(&v).unwrap()
}

fn ecr(s: &str) -> EcrCommand {
    EcrCommand::from_apdu(&apdu(s)).unwrap()
}

fn pt(a: &Apdu) -> PtMessage {
    PtMessage::from_apdu(a).unwrap()
}

/// Commands whose typed form re-encodes byte for byte.
#[test]
fn ecr_commands_exact() {
    let cases = [
        (
            "06 00 06 12 34 56 BA 09 78",
            EcrCommand::Registration {
                password: 123456,
                config: 0xBA,
                currency: Some(EUR),
            },
        ),
        (
            "06 00 06 12 34 56 DE 09 78",
            EcrCommand::Registration {
                password: 123456,
                config: 0xDE,
                currency: Some(EUR),
            },
        ),
        (
            "06 00 04 00 00 00 86",
            EcrCommand::Registration {
                password: 0,
                config: 0x86,
                currency: None,
            },
        ),
        (
            "06 01 0A 04 00 00 00 01 10 00 49 09 78",
            EcrCommand::Authorization {
                amount: 11000,
                currency: EUR,
            },
        ),
        (
            "06 01 0A 04 00 00 00 00 01 00 49 09 85",
            EcrCommand::Authorization {
                amount: 100,
                currency: PLN,
            },
        ),
        (
            "06 01 0A 04 00 00 00 00 10 00 49 09 85",
            EcrCommand::Authorization {
                amount: 1000,
                currency: PLN,
            },
        ),
        (
            "06 30 06 00 00 00 87 00 01",
            EcrCommand::Reversal {
                password: 0,
                receipt_number: 1,
            },
        ),
        (
            "06 31 0D 00 00 00 04 00 00 00 00 01 00 49 09 85",
            EcrCommand::Refund {
                password: 0,
                amount: 100,
                currency: PLN,
            },
        ),
        ("06 50 03 00 00 00", EcrCommand::EndOfDay { password: 0 }),
        (
            "06 50 03 12 34 56",
            EcrCommand::EndOfDay { password: 123456 },
        ),
        (
            "05 01 03 12 34 56",
            EcrCommand::StatusEnquiry {
                password: Some(123456),
            },
        ),
        ("05 01 00", EcrCommand::StatusEnquiry { password: None }),
        (
            "06 20 05 00 00 00 03 01",
            EcrCommand::RepeatReceipt {
                password: 0,
                service: 1,
            },
        ),
        ("06 B0 00", EcrCommand::Abort),
        ("06 02 00", EcrCommand::LogOff),
        ("80 00 00", EcrCommand::Ack),
        ("84 9C 00", EcrCommand::Nack(0x9C)),
        ("84 CC 00", EcrCommand::Nack(0xCC)),
    ];
    for (bytes, cmd) in cases {
        assert_eq!(ecr(bytes), cmd, "{bytes}");
        assert_eq!(cmd.to_apdu().encode(), hex(bytes), "{cmd:?}");
    }
}

/// Commands with parts the type does not keep.
#[test]
fn ecr_commands_lossy() {
    // Refund without a currency (§1.3.1): EUR is assumed; re-encoding adds 49 09 78.
    assert_eq!(
        ecr("06 31 0A 00 00 00 04 00 00 00 00 01 00"),
        EcrCommand::Refund {
            password: 0,
            amount: 100,
            currency: EUR
        }
    );
    assert_eq!(
        ecr("06 01 07 04 00 00 00 00 01 00"),
        EcrCommand::Authorization {
            amount: 100,
            currency: EUR
        }
    );
    // Status enquiry with a service byte.
    assert_eq!(
        ecr("05 01 05 12 34 56 03 04"),
        EcrCommand::StatusEnquiry {
            password: Some(123456)
        }
    );
    // card complete registrations and the spec's example with a message sequence id.
    for s in [
        "06 00 0E 12 34 56 BE 09 78 06 06 26 04 0A 02 06 D3",
        "06 00 0E 12 34 56 8E 09 78 06 06 26 04 0A 02 06 D3",
    ] {
        assert!(matches!(
            ecr(s),
            EcrCommand::Registration {
                password: 123456,
                currency: Some(EUR),
                ..
            }
        ));
    }
    assert_eq!(
        ecr("06 00 14 00 00 00 9E 09 78 06 0C 26 04 0A 02 06 D3 1F 73 03 00 00 00"),
        EcrCommand::Registration {
            password: 0,
            config: 0x9E,
            currency: Some(EUR)
        }
    );
    assert_eq!(
        ecr("06 20 03 00 00 00"),
        EcrCommand::RepeatReceipt {
            password: 0,
            service: 0
        }
    );
    assert_eq!(ecr("84 00 00"), EcrCommand::Ack);
    assert_eq!(ecr("84 9D 07 04 00 00 00 00 01 00"), EcrCommand::Nack(0x9D));
    assert_eq!(ecr("06 B0 02 D2 01"), EcrCommand::Abort);
}

#[test]
fn ecr_commands_rejected() {
    // The spec's example with the LEN erratum (0C instead of 14).
    assert_eq!(
        Apdu::decode(&hex(
            "06 01 0C 04 00 00 00 00 01 00 49 09 78 19 44 06 06 1F 73 03 00 00 01"
        )),
        Err(ApduError::Length {
            declared: 12,
            actual: 20
        })
    );
    let bad = |s: &str| EcrCommand::from_apdu(&apdu(s));
    assert_eq!(bad("06 70 00"), Err(MessageError::Unknown(0x0670)));
    assert!(matches!(
        bad("06 50 02 12 34"),
        Err(MessageError::Malformed { .. })
    ));
    assert!(matches!(
        bad("06 50 03 12 3A 56"),
        Err(MessageError::Malformed { .. })
    ));
    assert!(matches!(
        bad("06 01 03 49 09 78"),
        Err(MessageError::Malformed { .. })
    ));
    assert!(matches!(
        bad("06 01 02 04 00"),
        Err(MessageError::Fields(_))
    ));
    assert!(matches!(
        bad("06 30 03 00 00 00"),
        Err(MessageError::Malformed { .. })
    ));
    assert!(matches!(
        bad("06 00 05 12 34 56 BA 09"),
        Err(MessageError::Malformed { .. })
    ));
}

#[test]
fn pt_messages_exact() {
    let cases = [
        (apdu("80 00 00"), PtMessage::Ack),
        (apdu("84 6F 00"), PtMessage::Nack(0x6F)),
        (
            apdu("04 FF 01 17"),
            PtMessage::IntermediateStatus {
                status: 0x17,
                timeout_minutes: None,
                text: None,
            },
        ),
        (
            apdu("04 FF 02 0A 03"),
            PtMessage::IntermediateStatus {
                status: 0x0A,
                timeout_minutes: Some(3),
                text: None,
            },
        ),
        (
            apdu("06 1E 01 6C"),
            PtMessage::Abort {
                result_code: 0x6C,
                text: None,
            },
        ),
        (
            apdu("06 0F 00"),
            PtMessage::Completion {
                terminal_status: None,
                terminal_id: None,
                sw_version: None,
            },
        ),
        (
            apdu("06 0F 01 DC"),
            PtMessage::Completion {
                terminal_status: Some(0xDC),
                terminal_id: None,
                sw_version: None,
            },
        ),
        (
            with_text("06 0F 0B F0 F0 F7", "2.14.15", "00"),
            PtMessage::Completion {
                terminal_status: Some(0),
                terminal_id: None,
                sw_version: Some("2.14.15".into()),
            },
        ),
        (
            apdu("06 0F 05 29 29 00 10 06"),
            PtMessage::Completion {
                terminal_status: None,
                terminal_id: Some("29001006".into()),
                sw_version: None,
            },
        ),
        (
            with_text("06 D1 19 00", "Gesamt      0       0,00", ""),
            PtMessage::PrintLine {
                attribute: 0,
                text: "Gesamt      0       0,00".into(),
            },
        ),
        (
            apdu("06 D1 01 81"),
            PtMessage::PrintLine {
                attribute: 0x81,
                text: String::new(),
            },
        ),
    ];
    for (a, msg) in cases {
        assert_eq!(pt(&a), msg, "{a:02X?}");
        assert_eq!(msg.to_apdu(), a, "{msg:?}");
    }
    assert_eq!(pt(&apdu("84 00 00")), PtMessage::Ack);
    assert_eq!(pt(&apdu("84 1E 03 6F 09 85")), PtMessage::Nack(0x1E));
    assert!(!PtMessage::Ack.needs_ack());
    assert!(!PtMessage::Nack(1).needs_ack());
    assert!(pt(&apdu("06 0F 00")).needs_ack());
}

#[test]
fn intermediate_status_with_text() {
    let a = with_text(
        "04 FF 19 17 03 06 15 24 0D 07 0B",
        "00 Approved",
        "1F 73 03 00 00 08",
    );
    assert_eq!(
        pt(&a),
        PtMessage::IntermediateStatus {
            status: 0x17,
            timeout_minutes: Some(3),
            text: Some("00 Approved".into())
        }
    );
    let a = with_text(
        "04 FF 2E 0A 01 06 2A 24 28 07 26",
        "Karte vorhalten\neinstecken/durchziehen",
        "",
    );
    assert_eq!(
        pt(&a),
        PtMessage::IntermediateStatus {
            status: 0x0A,
            timeout_minutes: Some(1),
            text: Some("Karte vorhalten\neinstecken/durchziehen".into()),
        }
    );
    // Without a timeout byte.
    let a = with_text("04 FF 08 0E 06 05 24 03 07 01", "x", "");
    assert_eq!(
        pt(&a),
        PtMessage::IntermediateStatus {
            status: 0x0E,
            timeout_minutes: None,
            text: Some("x".into())
        }
    );
    // Two lines encode as two 07 objects.
    let m = PtMessage::IntermediateStatus {
        status: 0x0A,
        timeout_minutes: None,
        text: Some("a\nb".into()),
    };
    assert_eq!(
        m.to_apdu().encode(),
        hex("04 FF 0B 0A 06 08 24 06 07 01 61 07 01 62")
    );
    assert_eq!(pt(&m.to_apdu()), m);
}

#[test]
fn completions() {
    let c = pt(&apdu("06 0F 0A 19 00 29 29 00 10 06 49 09 78"));
    assert_eq!(
        c,
        PtMessage::Completion {
            terminal_status: None,
            terminal_id: Some("29001006".into()),
            sw_version: None
        }
    );
    let c = pt(&apdu(
        "06 0F 12 19 00 29 65 00 00 28 49 09 78 06 06 26 04 0A 02 06 D3",
    ));
    assert_eq!(
        c,
        PtMessage::Completion {
            terminal_status: None,
            terminal_id: Some("65000028".into()),
            sw_version: None
        }
    );
    let c = pt(&apdu("06 0F 02 00 FF"));
    assert_eq!(
        c,
        PtMessage::Completion {
            terminal_status: None,
            terminal_id: None,
            sw_version: None
        }
    );
    // Terminal status 0x06 without a software version: the status byte looks like BMP 06,
    // and the bytes after it happen to parse as BMP fields too (found by the round-trip
    // property). The misread container is not valid TLV, so this is the status form.
    let c = pt(&apdu("06 0F 0A 06 06 07 1F 44 04 00 00 27 00"));
    assert_eq!(
        c,
        PtMessage::Completion {
            terminal_status: Some(6),
            terminal_id: Some("00002700".into()),
            sw_version: None
        }
    );
    let c = pt(&apdu("06 0F 07 F0 F0 F9 41 06 0F 00"));
    assert_eq!(
        c,
        PtMessage::Completion {
            terminal_status: None,
            terminal_id: None,
            sw_version: None
        }
    );
}

#[test]
fn aborts() {
    let a = with_text(
        "06 1E 2E 6C 06 2B 1F 16 05 FF 00 00 14 41 1F 17 20",
        "Abbruch durch externes Kommando!",
        "",
    );
    assert_eq!(
        pt(&a),
        PtMessage::Abort {
            result_code: 0x6C,
            text: Some("Abbruch durch externes Kommando!".into())
        }
    );
    assert_eq!(
        pt(&apdu("06 1E 04 B8 87 FF FF")),
        PtMessage::Abort {
            result_code: 0xB8,
            text: None
        }
    );
    let m = PtMessage::Abort {
        result_code: 0x6C,
        text: Some("x".into()),
    };
    assert_eq!(m.to_apdu().encode(), hex("06 1E 07 6C 06 04 1F 17 01 78"));
    assert!(PtMessage::from_apdu(&apdu("06 1E 00")).is_err());
}

#[test]
fn status_information_decline() {
    let a = with_text(
        "04 0F 31 27 05 29 29 00 10 06 3C F0 F1 F5",
        "Karte abgelehnt",
        &format!(
            "8A 0D 06 13 24 11 07 0F {}",
            "4B 61 72 74 65 20 61 62 67 65 6C 65 68 6E 74"
        ),
    );
    let PtMessage::StatusInformation(r) = pt(&a) else {
        panic!()
    };
    assert_eq!(r.result_code, 5);
    assert_eq!(describe(r.result_code).category, "card_declined");
    assert_eq!(r.terminal_id.as_deref(), Some("29001006"));
    assert_eq!(r.additional_text.as_deref(), Some("Karte abgelehnt"));
    assert_eq!(r.card_type, Some(0x0D));
    assert_eq!(r.amount, None);

    let PtMessage::StatusInformation(r) = pt(&apdu("04 0F 07 27 6C 29 29 00 10 06")) else {
        panic!()
    };
    assert_eq!(r.result_code, 0x6C);
    assert_eq!(describe(r.result_code).category, "cancelled");
}

#[test]
fn status_information_masks_and_drops() {
    // ecrterm's masked PAN, plus track 2 (23), CVV (3A), expiry (0E) and TLV 1F08–1F0A.
    let a = apdu(
        "04 0F 27 27 00 22 F0 F8 47 48 43 EE EE EE 77 43 23 F0 F3 47 48 43 \
         3A 12 34 0E 24 05 06 0C 1F 08 02 99 99 1F 0A 01 98 1F 2B 00",
    );
    let PtMessage::StatusInformation(r) = pt(&a) else {
        panic!()
    };
    assert_eq!(r.masked_pan.as_deref(), Some("474843******7743"));
    let shown = redacted_hex(&a);
    assert!(
        shown.contains("22 F0 F8 47 48 43 EE EE EE 77 43"),
        "{shown}"
    );
    assert!(shown.contains("23 F0 F3 **"), "{shown}");
    assert!(shown.contains("3A ** 0E **"), "{shown}");
    assert!(shown.contains("1F 08 02 ** 1F 0A 01 **"), "{shown}");
    assert!(!shown.contains("99 99") && !shown.contains("98"), "{shown}");
    // An unmasked PAN is masked when decoded and hidden in logs.
    let clear = apdu("04 0F 10 27 00 22 F0 F8 47 48 43 12 34 56 77 43 87 00 01");
    let PtMessage::StatusInformation(r) = pt(&clear) else {
        panic!()
    };
    assert_eq!(r.masked_pan.as_deref(), Some("474843******7743"));
    assert_eq!(r.receipt_number, Some(1));
    assert_eq!(redacted_hex(&clear), "04 0F 10 27 00 22 F0 F8 ** 87 00 01");
    // An unknown BMP ends the list; what came before stays.
    let PtMessage::StatusInformation(r) = pt(&apdu("04 0F 07 27 00 87 00 42 FE 01")) else {
        panic!()
    };
    assert_eq!((r.result_code, r.receipt_number), (0, Some(42)));
    assert_eq!(
        redacted_hex(&apdu("04 0F 07 27 00 87 00 42 FE 01")),
        "04 0F 07 27 00 87 00 42 ** (2 bytes)"
    );
    // Track data in a register's command is hidden too (offset after the password), and
    // so is the password.
    assert_eq!(
        redacted_hex(&apdu("06 31 0D 00 00 00 2D F0 F4 11 22 33 44 3A 12 34")),
        "06 31 0D ** ** ** 2D F0 F4 ** 3A **"
    );
}

#[test]
fn long_trace_number() {
    let r = TransactionResult {
        trace_number: Some(12_345_678),
        ..TransactionResult::default()
    };
    let a = PtMessage::StatusInformation(r.clone()).to_apdu();
    assert_eq!(
        a.encode(),
        hex("04 0F 10 27 00 0B 00 00 00 06 08 1F 2B 05 00 12 34 56 78")
    );
    assert_eq!(pt(&a), PtMessage::StatusInformation(r));
}

#[test]
fn print_text_block() {
    let m = PtMessage::PrintTextBlock {
        receipt_type: Some(2),
        lines: vec!["".into(), "Zahlung".into()],
    };
    let a = m.to_apdu();
    assert_eq!(
        a.encode(),
        hex("06 D3 13 06 11 1F 07 01 02 25 0B 07 00 07 07 5A 61 68 6C 75 6E 67")
    );
    assert_eq!(pt(&a), m);
    // Attribute objects (09) and charset (14) are read past.
    let a = apdu("06 D3 0D 06 0B 25 06 07 01 41 09 01 81 14 01 01");
    assert_eq!(
        pt(&a),
        PtMessage::PrintTextBlock {
            receipt_type: None,
            lines: vec!["A".into()]
        }
    );
    // A big block takes the extended length.
    let lines: Vec<String> = (0..40)
        .map(|i| format!("line {i:02} {}", "-".repeat(30)))
        .collect();
    let m = PtMessage::PrintTextBlock {
        receipt_type: Some(1),
        lines,
    };
    let wire = m.to_apdu().encode();
    assert_eq!(wire[2], 0xFF);
    assert_eq!(pt(&Apdu::decode(&wire).unwrap()), m);
}

#[test]
fn cp437() {
    let all: Vec<u8> = (0..=255).collect();
    let text = text_from_cp437(&all);
    assert_eq!(text.chars().count(), 256);
    assert_eq!(text_to_cp437(&text), all);
    assert_eq!(
        text_from_cp437(&[0x81, 0x84, 0x94, 0xE1, 0x9C]),
        "üäößœ".replace('œ', "£")
    );
    assert_eq!(text_to_cp437("Zażółć €"), b"Za?\xA2?? ?");
    assert!(is_cp437("Grüße"));
    assert!(!is_cp437("ł"));
}

#[test]
fn pan_helpers() {
    assert_eq!(
        pan::from_bcd(&hex("55 98 83 EE EE EE 80 74")),
        "559883******8074"
    );
    assert_eq!(
        pan::to_bcd("559883******8074"),
        hex("55 98 83 EE EE EE 80 74")
    );
}

// ---------------------------------------------------------------------------------------
// Properties

fn bcd_num(max: u64) -> impl Strategy<Value = u64> {
    0..=max
}

fn ecr_command() -> impl Strategy<Value = EcrCommand> {
    let pw = 0u32..=999_999;
    let amount = 0u64..=999_999_999_999;
    let cc = 0u16..=9999;
    prop_oneof![
        (pw.clone(), any::<u8>(), prop::option::of(cc.clone())).prop_map(
            |(password, config, currency)| EcrCommand::Registration {
                password,
                config,
                currency
            }
        ),
        (amount.clone(), cc.clone())
            .prop_map(|(amount, currency)| EcrCommand::Authorization { amount, currency }),
        (pw.clone(), bcd_num(9999)).prop_map(|(password, r)| EcrCommand::Reversal {
            password,
            receipt_number: r as u32
        }),
        (pw.clone(), amount, cc).prop_map(|(password, amount, currency)| EcrCommand::Refund {
            password,
            amount,
            currency
        }),
        pw.clone()
            .prop_map(|password| EcrCommand::EndOfDay { password }),
        prop::option::of(pw.clone()).prop_map(|password| EcrCommand::StatusEnquiry { password }),
        (pw, any::<u8>())
            .prop_map(|(password, service)| EcrCommand::RepeatReceipt { password, service }),
        Just(EcrCommand::Abort),
        Just(EcrCommand::LogOff),
        Just(EcrCommand::Ack),
        (1u8..=255).prop_map(EcrCommand::Nack),
    ]
}

/// Text that code page 437 can carry.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(any::<u8>(), 0..max).prop_map(|b| text_from_cp437(&b))
}

/// Text without NUL, newline or trailing space.
fn plain(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(0x21u8..=0xFE, 0..max).prop_map(|b| text_from_cp437(&b))
}

fn digits(n: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(0u8..10, n).prop_map(|d| d.iter().map(|x| char::from(b'0' + x)).collect())
}

fn transaction_result() -> impl Strategy<Value = TransactionResult> {
    (
        (
            any::<u8>(),
            prop::option::of(bcd_num(999_999_999_999)),
            prop::option::of(bcd_num(9999).prop_map(|v| v as u16)),
            prop::option::of(any::<u32>()),
            prop::option::of(bcd_num(999_999).prop_map(|v| v as u32)),
            prop::option::of(bcd_num(9999).prop_map(|v| v as u32)),
            prop::option::of(bcd_num(999_999).prop_map(|v| v as u32)),
            prop::option::of(digits(8)),
        ),
        (
            prop::option::of(
                (12usize..=19)
                    .prop_flat_map(digits)
                    .prop_map(|p| pan::mask(&p)),
            ),
            prop::option::of(plain(40)),
            prop::option::of(any::<u8>()),
            prop::option::of(plain(9)),
            prop::option::of(digits(6)),
            prop::option::of(digits(4)),
            prop::option::of(any::<u8>()),
            prop::option::of(plain(16)),
            prop::option::of(text(200)),
        ),
    )
        .prop_map(
            |((rc, amount, currency, trace, orig, receipt, turnover, tid), rest)| {
                let (pan, name, card_type, auth, time, date, pay, vu, add) = rest;
                TransactionResult {
                    result_code: rc,
                    amount,
                    currency,
                    trace_number: trace,
                    original_trace: orig,
                    receipt_number: receipt,
                    turnover_number: turnover,
                    terminal_id: tid,
                    masked_pan: pan,
                    card_name: name,
                    card_type,
                    auth_code: auth
                        .map(|a| a.chars().take(8).collect::<String>())
                        .filter(|a| text_to_cp437(a).len() <= 8),
                    time,
                    date,
                    payment_type: pay,
                    vu_number: vu.map(|v| v.chars().take(15).collect()),
                    additional_text: add,
                }
            },
        )
}

fn pt_message() -> impl Strategy<Value = PtMessage> {
    let line = prop::collection::vec(
        any::<u8>().prop_filter("no newline", |b| *b != b'\n'),
        0..50,
    )
    .prop_map(|b| text_from_cp437(&b));
    prop_oneof![
        Just(PtMessage::Ack),
        (1u8..=255).prop_map(PtMessage::Nack),
        (
            any::<u8>(),
            prop::option::of(0u8..=99),
            prop::option::of(prop::collection::vec(line.clone(), 1..4))
        )
            .prop_map(
                |(status, timeout_minutes, lines)| PtMessage::IntermediateStatus {
                    status,
                    timeout_minutes,
                    text: lines.map(|l| l.join("\n")),
                }
            ),
        transaction_result().prop_map(PtMessage::StatusInformation),
        (any::<u8>(), text(120))
            .prop_map(|(attribute, text)| PtMessage::PrintLine { attribute, text }),
        (
            prop::option::of(any::<u8>()),
            prop::collection::vec(line, 0..30)
        )
            .prop_map(|(receipt_type, lines)| PtMessage::PrintTextBlock {
                receipt_type,
                lines
            }),
        (
            any::<u8>(),
            prop::option::of(digits(8)),
            prop::option::of(plain(60))
        )
            .prop_map(|(s, tid, sw)| {
                PtMessage::Completion {
                    terminal_status: Some(s),
                    terminal_id: tid,
                    sw_version: sw,
                }
            }),
        prop::option::of(digits(8)).prop_map(|tid| PtMessage::Completion {
            terminal_status: None,
            terminal_id: tid,
            sw_version: None
        }),
        (any::<u8>(), prop::option::of(text(80)))
            .prop_map(|(result_code, text)| PtMessage::Abort { result_code, text }),
    ]
}

proptest! {
    #[test]
    fn ecr_command_round_trip(cmd in ecr_command()) {
        let wire = cmd.to_apdu().encode();
        let back = EcrCommand::from_apdu(&Apdu::decode(&wire).unwrap()).unwrap();
        prop_assert_eq!(back, cmd);
    }

    #[test]
    fn pt_message_round_trip(msg in pt_message()) {
        let wire = msg.to_apdu().encode();
        let a = Apdu::decode(&wire).unwrap();
        let back = PtMessage::from_apdu(&a).unwrap();
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(back.to_apdu(), a);
    }

    #[test]
    fn decoders_never_panic(class in any::<u8>(), instr in any::<u8>(), data in prop::collection::vec(any::<u8>(), 0..300)) {
        for (c, i) in [(class, instr), (0x04, 0x0F), (0x04, 0xFF), (0x06, 0x0F), (0x06, 0xD3), (0x06, 0x1E), (0x06, 0x01), (0x06, 0x00), (0x06, 0x30)] {
            let a = Apdu::new(c, i, data.clone());
            let _ = PtMessage::from_apdu(&a);
            let _ = EcrCommand::from_apdu(&a);
            let shown = redacted_hex(&a);
            let head = format!("{c:02X} {i:02X}");
            prop_assert!(shown.starts_with(&head));
            if let Ok(PtMessage::StatusInformation(r)) = PtMessage::from_apdu(&a)
                && let Some(p) = r.masked_pan
            {
                prop_assert_eq!(pan::mask(&p), p);
            }
        }
    }
}
