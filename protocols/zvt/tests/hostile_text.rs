//! A hostile terminal: card numbers in clear in every free-text field, in every separator
//! style, and the register's password in its commands. Nothing of them survives decoding
//! or the log form of an APDU.

#![cfg(feature = "model")]

use zvt::Apdu;
use zvt::message::{EcrCommand, PtMessage, TransactionResult, redacted_hex};
// The PAN in every style the review found, next to other numbers.
use zvt::model::hostile::STYLES;

const PAN: &str = "5454545454545454";

/// True if `text` holds the PAN in any form: digits only, or with the separators dropped.
fn leaks(text: &str) -> bool {
    let digits: String = text
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == '*')
        .collect();
    let plain: String = text.chars().filter(char::is_ascii_digit).collect();
    digits.contains(PAN) || plain.contains(PAN) || STYLES.iter().any(|s| text.contains(s))
}

/// True if the hex of an APDU holds the PAN's ASCII bytes in any style.
fn hex_leaks(hex: &str) -> bool {
    let compact: String = hex.split_whitespace().collect::<String>().to_lowercase();
    let pan_hex = hex::encode(PAN);
    compact.contains(&pan_hex)
        || STYLES
            .iter()
            .any(|s| compact.contains(&hex::encode(s)) || compact.contains(&hex::encode(&s[4..])))
}

fn pt(apdu: &Apdu) -> PtMessage {
    PtMessage::from_apdu(&Apdu::decode(&apdu.encode()).unwrap()).unwrap()
}

fn texts(m: &PtMessage) -> Vec<String> {
    match m {
        PtMessage::IntermediateStatus { text, .. } | PtMessage::Abort { text, .. } => {
            text.iter().cloned().collect()
        }
        PtMessage::StatusInformation(r) => [
            &r.card_name,
            &r.additional_text,
            &r.vu_number,
            &r.auth_code,
            &r.masked_pan,
        ]
        .into_iter()
        .flatten()
        .cloned()
        .collect(),
        PtMessage::PrintLine { text, .. } => vec![text.clone()],
        PtMessage::PrintTextBlock { lines, .. } => lines.clone(),
        PtMessage::Completion { sw_version, .. } => sw_version.iter().cloned().collect(),
        _ => vec![],
    }
}

fn hostile_messages(style: &str) -> Vec<PtMessage> {
    vec![
        PtMessage::IntermediateStatus {
            status: 0x0A,
            timeout_minutes: Some(1),
            text: Some(format!("KARTA\n{style}")),
        },
        PtMessage::StatusInformation(TransactionResult {
            amount: Some(1000),
            card_name: Some(format!("Maestro {style}")),
            additional_text: Some(format!("X {style} Y")),
            // BMP 2A is 15 bytes: a 13-digit number fits.
            vu_number: Some("4222222222222".into()),
            masked_pan: Some(PAN.into()),
            ..TransactionResult::default()
        }),
        PtMessage::PrintLine {
            attribute: 0,
            text: style.into(),
        },
        PtMessage::PrintTextBlock {
            receipt_type: Some(1),
            lines: vec![
                "SLIP".into(),
                style.into(),
                "5454 5454".into(),
                "5454 5454".into(),
            ],
        },
        PtMessage::Abort {
            result_code: 0x6C,
            text: Some(format!("ODMOWA {style}")),
        },
        PtMessage::Completion {
            terminal_status: Some(0),
            terminal_id: Some("12345678".into()),
            sw_version: Some(format!("v1 {style}")),
        },
    ]
}

#[test]
fn every_text_field_is_masked_at_decode_and_in_logs() {
    for style in STYLES {
        for msg in hostile_messages(style) {
            let apdu = msg.to_apdu();
            assert!(
                hex_leaks(&hex::encode(apdu.encode())),
                "the test itself must send the PAN: {msg:?}"
            );
            let got = pt(&apdu);
            let t = texts(&got);
            assert!(!t.is_empty(), "{got:?}");
            for text in t {
                assert!(!leaks(&text), "{style}: {text:?} from {got:?}");
                assert!(!text.contains("4222222222222"), "{text:?}");
            }
            let shown = redacted_hex(&apdu);
            assert!(!hex_leaks(&shown), "{style}: {shown}");
            assert!(
                !shown
                    .replace(' ', "")
                    .contains(&hex::encode("4222222222222").to_uppercase()),
                "{shown}"
            );
            // One token per wire byte: lengths stay true.
            assert_eq!(shown.split(' ').count(), apdu.encode().len(), "{shown}");
        }
    }
}

#[test]
fn a_number_split_over_two_lines_of_a_block_is_masked() {
    let got = pt(&PtMessage::PrintTextBlock {
        receipt_type: None,
        lines: vec!["5454 5454".into(), "5454 5454".into()],
    }
    .to_apdu());
    let PtMessage::PrintTextBlock { lines, .. } = got else {
        panic!()
    };
    assert!(!leaks(&lines.join("\n")), "{lines:?}");
    assert_eq!(lines[0].len(), 9);
}

#[test]
fn the_password_is_hidden_in_logs() {
    let pw = 123_456;
    for cmd in [
        EcrCommand::Registration {
            password: pw,
            config: 0x8E,
            currency: Some(985),
        },
        EcrCommand::StatusEnquiry { password: Some(pw) },
        EcrCommand::EndOfDay { password: pw },
        EcrCommand::Reversal {
            password: pw,
            receipt_number: 7,
        },
        EcrCommand::RepeatReceipt {
            password: pw,
            service: 1,
        },
    ] {
        let apdu = cmd.to_apdu();
        let shown = redacted_hex(&apdu);
        assert!(!shown.contains("12 34 56"), "{cmd:?}: {shown}");
        assert!(shown.contains("** ** **"), "{shown}");
        assert_eq!(shown.split(' ').count(), apdu.encode().len(), "{shown}");
    }
    // The registration keeps its config byte and currency readable.
    let shown = redacted_hex(
        &EcrCommand::Registration {
            password: pw,
            config: 0x8E,
            currency: Some(985),
        }
        .to_apdu(),
    );
    assert_eq!(shown, "06 00 06 ** ** ** 8E 09 85");
}
