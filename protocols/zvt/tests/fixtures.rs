//! The real captures in `fixtures/zvt/captures` (Feig cVEND, TCP; published as test data in
//! the `zvt` 0.1.0 crate by Qwello GmbH, MIT OR Apache-2.0 — see `fixtures/zvt/SOURCE.md`):
//! every file decodes and re-encodes byte for byte, frames the same from a TCP stream cut
//! anywhere, decodes to typed messages without panicking, and no full PAN survives.

use std::path::PathBuf;
use zvt::apdu::{Apdu, ApduDecoder};
use zvt::link::{LinkConfig, LinkEvent, SerialLink, encode_frame};
use zvt::message::{EcrCommand, PtMessage, TransactionResult, redacted_hex};
use zvt::{EUR, pan};

/// The one capture with a PAN in clear (a girocard, 19 digits).
const CLEAR_PAN: &str = "4711008005757038004";

fn captures() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/zvt/captures");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "blob"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(&p).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

fn capture(name: &str) -> Apdu {
    let (_, bytes) = captures().into_iter().find(|(n, _)| n == name).unwrap();
    Apdu::decode(&bytes).unwrap()
}

fn status_info(name: &str) -> TransactionResult {
    match PtMessage::from_apdu(&capture(name)).unwrap() {
        PtMessage::StatusInformation(r) => r,
        other => panic!("{name}: {other:?}"),
    }
}

#[test]
fn all_23_captures_round_trip_as_apdus() {
    let files = captures();
    assert_eq!(files.len(), 23);
    for (name, bytes) in &files {
        let a = Apdu::decode(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&a.encode(), bytes, "{name}");
        assert_eq!(Apdu::wire_len(bytes), Some(bytes.len()), "{name}");
    }
}

#[test]
fn tcp_stream_split_anywhere() {
    let files = captures();
    let stream: Vec<u8> = files.iter().flat_map(|(_, b)| b.clone()).collect();
    let expected: Vec<Apdu> = files
        .iter()
        .map(|(_, b)| Apdu::decode(b).unwrap())
        .collect();
    for chunk in [1, 2, 3, 4, 5, 7, 64, 1000, stream.len()] {
        let mut d = ApduDecoder::new();
        let mut got = Vec::new();
        for c in stream.chunks(chunk) {
            d.push(c);
            while let Some(a) = d.next_apdu() {
                got.push(a);
            }
        }
        assert_eq!(got, expected, "chunk {chunk}");
        assert_eq!(d.pending(), 0);
    }
}

#[test]
fn captures_survive_serial_framing() {
    let mut link = SerialLink::new(LinkConfig::default());
    let now = std::time::Instant::now();
    for (name, bytes) in captures() {
        link.handle_input(&encode_frame(&bytes), now);
        assert_eq!(
            link.poll_event(),
            Some(LinkEvent::Received(bytes)),
            "{name}"
        );
        assert_eq!(link.poll_transmit(), Some(vec![zvt::link::ACK]));
    }
}

/// Typed decoding never panics; messages that keep every field re-encode exactly.
#[test]
fn typed_decoding() {
    let lossless = [
        "1680728162.647465000_pt_ecr.blob",
        "1680728165.827009000_pt_ecr.blob",
        "1681273860.511128000_ecr_pt.blob",
        "1681282621.302434000_ecr_pt.blob",
    ];
    for (name, bytes) in captures() {
        let a = Apdu::decode(&bytes).unwrap();
        let pt = PtMessage::from_apdu(&a);
        let ecr = EcrCommand::from_apdu(&a);
        if lossless.contains(&name.as_str()) {
            let typed = match (&pt, &ecr) {
                (Ok(m), _) if name.contains("pt_ecr") => m.to_apdu(),
                (_, Ok(c)) => c.to_apdu(),
                _ => panic!("{name}: {pt:?} {ecr:?}"),
            };
            assert_eq!(typed.encode(), bytes, "{name}");
        }
        if let Ok(PtMessage::StatusInformation(r)) = &pt
            && let Some(p) = &r.masked_pan
        {
            assert_eq!(&pan::mask(p), p, "{name}");
        }
    }
}

#[test]
fn payment_status_information() {
    let r = status_info("1680728165.675509000_pt_ecr.blob");
    assert_eq!(
        r,
        TransactionResult {
            result_code: 0,
            amount: Some(2500),
            currency: Some(EUR),
            trace_number: Some(975),
            receipt_number: Some(231),
            terminal_id: Some("52523535".into()),
            masked_pan: Some("559883******8074".into()),
            card_name: Some("MasterCard".into()),
            card_type: Some(6),
            auth_code: Some("750071".into()),
            time: Some("225558".into()),
            date: Some("0405".into()),
            payment_type: Some(0x60),
            vu_number: Some("804011926".into()),
            ..TransactionResult::default()
        }
    );
    // The pre-authorisation's reversal: amount 0, receipt 232, additional text kept.
    let r = status_info("1680728215.659492000_pt_ecr.blob");
    assert_eq!(
        (r.amount, r.receipt_number, r.trace_number),
        (Some(0), Some(232), Some(977))
    );
    assert!(r.additional_text.is_some());
    // End of day: totals.
    let r = status_info("1680761828.489701000_pt_ecr.blob");
    assert_eq!(
        (r.result_code, r.amount, r.trace_number),
        (0, Some(958), Some(982))
    );
    assert_eq!(
        (r.time.as_deref(), r.date.as_deref()),
        (Some("081706"), Some("0406"))
    );
}

#[test]
fn clear_pan_is_masked() {
    let r = status_info("1682066249.409078000_pt_ecr.blob");
    assert_eq!(r.masked_pan.as_deref(), Some("471100*********8004"));
    assert_eq!(r.card_name.as_deref(), Some("girocard"));
    assert_eq!((r.receipt_number, r.trace_number), (Some(249), Some(1012)));
    let shown = redacted_hex(&capture("1682066249.409078000_pt_ecr.blob"));
    assert!(shown.contains("22 F1 F0 ** 17 00 02"), "{shown}");
}

#[test]
fn other_messages() {
    let m = |n: &str| PtMessage::from_apdu(&capture(n)).unwrap();
    assert_eq!(
        m("1680728162.647465000_pt_ecr.blob"),
        PtMessage::IntermediateStatus {
            status: 0x17,
            timeout_minutes: None,
            text: None
        }
    );
    assert_eq!(
        m("partial_reversal.blob"),
        PtMessage::Abort {
            result_code: 0xB8,
            text: None
        }
    );
    assert_eq!(
        m("1680761818.641601000_pt_ecr.blob"),
        PtMessage::Completion {
            terminal_status: None,
            terminal_id: Some("52523535".into()),
            sw_version: None
        }
    );
    assert_eq!(
        m("1680728219.054216000_pt_ecr.blob"),
        PtMessage::Completion {
            terminal_status: Some(0),
            terminal_id: Some("52523535".into()),
            sw_version: Some("GER-APP-v2.0.9;cS02.01.01-10.10-2-2;CC26".into()),
        }
    );
    let PtMessage::PrintTextBlock {
        receipt_type,
        lines,
    } = m("1680728215.585561000_pt_ecr.blob")
    else {
        panic!()
    };
    assert_eq!((receipt_type, lines.len()), (Some(2), 33));
    assert!(lines.iter().any(|l| l.ends_with("xxxxxxxxxxxx8074")));
    let PtMessage::PrintTextBlock {
        receipt_type,
        lines,
    } = m("print_system_configuration_reply.blob")
    else {
        panic!()
    };
    assert_eq!((receipt_type, lines.len()), (Some(3), 118));
    let e = |n: &str| EcrCommand::from_apdu(&capture(n)).unwrap();
    assert_eq!(
        e("1681273860.511128000_ecr_pt.blob"),
        EcrCommand::Registration {
            password: 123456,
            config: 0xDE,
            currency: Some(EUR)
        }
    );
    assert_eq!(
        e("1681282621.302434000_ecr_pt.blob"),
        EcrCommand::EndOfDay { password: 123456 }
    );
}

/// Maximal runs of ASCII digits.
fn digit_runs(s: &str) -> Vec<&str> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter(|r| !r.is_empty())
        .collect()
}

#[test]
fn no_full_pan_in_any_decoded_output() {
    let mut outputs = Vec::new();
    for (name, bytes) in captures() {
        let a = Apdu::decode(&bytes).unwrap();
        outputs.push((name.clone(), format!("{:?}", PtMessage::from_apdu(&a))));
        outputs.push((name.clone(), format!("{:?}", EcrCommand::from_apdu(&a))));
        if let Ok(PtMessage::StatusInformation(r)) = PtMessage::from_apdu(&a) {
            outputs.push((name.clone(), serde_json::to_string(&r).unwrap()));
        }
        // The log form, with the hex digits run together.
        outputs.push((name.clone(), redacted_hex(&a).replace(' ', "")));
    }
    for (name, text) in &outputs {
        assert!(!text.contains(CLEAR_PAN), "{name}: {text}");
    }
    // No Luhn-valid run of 13 to 19 digits in any decoded (non-hex) output.
    for (name, text) in outputs
        .iter()
        .filter(|(_, t)| t.starts_with("Ok") || t.starts_with('{'))
    {
        for run in digit_runs(text) {
            assert!(
                !((13..=19).contains(&run.len())
                    && zvt::pan::luhn_valid(run)
                    && run.chars().any(|c| c != '0')),
                "{name}: {run}"
            );
        }
    }
    assert!(zvt::pan::luhn_valid("4111111111111111"));
}
