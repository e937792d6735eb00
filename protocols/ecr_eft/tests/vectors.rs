//! The example frames of the reference (frobd `ut.t`, LRC recomputed) as test vectors:
//! each must decode to the expected message and encode back to the same bytes.

use ecr_eft::frame::{Decoder, Frame, Item, Token, lrc};
use ecr_eft::message::{DeviceInfo, ERROR_BUSY, Message, Transaction, TransactionType};

fn frame_bytes(parts: &[&[u8]], lrc: u8) -> Vec<u8> {
    let mut v = vec![0x02];
    for p in parts {
        v.extend_from_slice(p);
        v.push(0x1C);
    }
    v.push(0x03);
    v.push(lrc);
    v
}

fn decode_one(bytes: &[u8]) -> Frame {
    let mut d = Decoder::new();
    let mut out = Vec::new();
    d.push(bytes, &mut out);
    match out.as_slice() {
        [
            Item::Frame {
                frame,
                lrc_ok: true,
            },
        ] => frame.clone(),
        other => panic!("expected one good frame, got {other:?}"),
    }
}

fn check(bytes: &[u8], token: &[u8], expected: Message) {
    let frame = decode_one(bytes);
    assert_eq!(frame.token, Token::parse(token).unwrap());
    assert_eq!(Message::decode(&frame).unwrap(), expected);
    let again = expected.to_frame(frame.token).unwrap().encode().unwrap();
    assert_eq!(again, bytes);
}

#[test]
fn t1_vector() {
    let bytes = frame_bytes(&[b"000102", b"T1"], 0x65);
    check(&bytes, b"000102", Message::T1);
}

#[test]
fn t2_vector() {
    let bytes = frame_bytes(
        &[b"23AB", b"T2", b"170", b"COMPANY", b"SAMPLE MESSAGE", b"02"],
        0x79,
    );
    check(
        &bytes,
        b"23AB",
        Message::T2(DeviceInfo {
            version: "170".into(),
            vendor: "COMPANY".into(),
            device_type: "SAMPLE MESSAGE".into(),
            device_id: "02".into(),
        }),
    );
}

#[test]
fn s1_vector() {
    let bytes = frame_bytes(
        &[
            b"123456", b"S1", b"S", b"ECR123", b"PAY123", b"5001", b"4001", b"1000", b"EUR", b"0",
            b"0",
        ],
        0x77,
    );
    check(
        &bytes,
        b"123456",
        Message::S1(Transaction {
            kind: TransactionType::Sale,
            ecr_id: "ECR123".into(),
            payment_id: "PAY123".into(),
            gross: 5001,
            net: Some(4001),
            vat: Some(1000),
            currency: "EUR".into(),
            cashback: Some(0),
            max_cashback: Some(0),
        }),
    );
}

/// frobd's busy answer (the reference gives no LRC for it: it is computed here).
#[test]
fn s2_busy_fields() {
    let parts: [&[u8]; 11] = [
        b"1",
        b"S2",
        b"993",
        b"",
        b"M000",
        b"T000",
        b"N/A",
        b"",
        b"",
        b"NONE",
        b"Payment endpoint busy",
    ];
    let mut body = Vec::new();
    for p in &parts {
        body.extend_from_slice(p);
        body.push(0x1C);
    }
    body.push(0x03);
    let bytes = frame_bytes(&parts, lrc(&body));
    let m = Message::decode(&decode_one(&bytes)).unwrap();
    let Message::S2(r) = &m else { panic!("{m:?}") };
    assert_eq!(r.error, ERROR_BUSY);
    assert!(!r.approved());
    assert_eq!(r.mid, "M000");
    assert_eq!(r.tid, "T000");
    assert_eq!(r.transaction_id, "N/A");
    assert_eq!(r.amount, None);
    assert_eq!(r.payment_method, "NONE");
    assert_eq!(r.message, "Payment endpoint busy");
    check(&bytes, b"1", m);
}

#[test]
fn lrc_is_xor_after_stx_through_etx() {
    // T1 vector: XOR of "000102" FS "T1" FS ETX.
    let mut body = b"000102\x1cT1\x1c\x03".to_vec();
    assert_eq!(lrc(&body), 0x65);
    body.push(0x65);
    assert_eq!(lrc(&body), 0);
}

#[test]
fn bad_lrc_and_nul_and_garbage() {
    let mut good = frame_bytes(&[b"000102", b"T1"], 0x65);
    let mut bad = good.clone();
    *bad.last_mut().unwrap() ^= 1;
    let mut stream = b"\xff\x02zz".to_vec();
    stream.extend_from_slice(&bad);
    stream.push(0x00);
    stream.append(&mut good);
    stream.push(0x00);
    let mut d = Decoder::new();
    let mut out = Vec::new();
    d.push(&stream, &mut out);
    let frames: Vec<bool> = out
        .iter()
        .filter_map(|i| match i {
            Item::Frame { lrc_ok, .. } => Some(*lrc_ok),
            _ => None,
        })
        .collect();
    assert_eq!(frames, vec![false, true]);
    assert!(!d.in_frame());
}

#[test]
fn terminal_text_is_masked() {
    let parts: [&[u8]; 11] = [
        b"7",
        b"S2",
        b"000",
        b"5454545454545454",
        b"M1",
        b"T1",
        b"X1",
        b"100",
        b"",
        b"CARD",
        b"KARTA 5454 5454 5454 5454",
    ];
    let frame = Frame::new(
        Token::parse(parts[0]).unwrap(),
        *b"S2",
        parts[2..].iter().map(|p| p.to_vec()).collect(),
    );
    let Message::S2(r) = Message::decode(&frame).unwrap() else {
        panic!()
    };
    assert_eq!(r.card_token, "545454******5454");
    assert_eq!(r.message, "KARTA 5454 54** **** 5454");
    let d6 = Frame::new(
        Token::new(8, 6),
        *b"D6",
        vec![b"PAN 4111111111111111\x1fDZIEKUJEMY".to_vec()],
    );
    assert_eq!(
        Message::decode(&d6).unwrap(),
        Message::D6 {
            lines: vec!["PAN 411111******1111".into(), "DZIEKUJEMY".into()]
        }
    );
}

/// Found by the `frames` fuzz target: a token that is not a card number as a whole but
/// holds a Luhn-valid 13-digit window is masked like free text.
#[test]
fn card_token_windows_are_masked() {
    let frame = Frame::new(
        Token::new(1, 1),
        *b"S2",
        vec![b"000".to_vec(), b"5454455454545353".to_vec()],
    );
    let Message::S2(r) = Message::decode(&frame).unwrap() else {
        panic!()
    };
    assert!(r.card_token.contains('*'), "{}", r.card_token);
    assert_eq!(r.card_token.len(), 16);
    // A genuine hex token is left alone.
    let frame = Frame::new(
        Token::new(1, 1),
        *b"S2",
        vec![b"000".to_vec(), b"9F3A00C0DE12AB".to_vec()],
    );
    let Message::S2(r) = Message::decode(&frame).unwrap() else {
        panic!()
    };
    assert_eq!(r.card_token, "9F3A00C0DE12AB");
}
