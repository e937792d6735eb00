//! Codec tests: the reference CRC vectors, golden frames, and properties
//! (round trip, split invariance, no panics, decode→encode→decode identity).

use chrono::NaiveDate;
use posnet::command::{Adjustment, Closing, Command, Line, PaymentKind};
use posnet::crc::checksum;
use posnet::error::{Category, frame_error};
use posnet::frame::{DecodeError, Decoded, ETX, Frame, FrameDecoder, STX, decode_frame};
use posnet::text;
use proptest::prelude::*;
use rust_decimal::Decimal;

/// Windows-1250 bytes of a test payload (TABs and all).
fn cp(s: &str) -> Vec<u8> {
    s.chars().map(|c| text::byte_of(c).unwrap()).collect()
}

/// STX payload # CRC ETX, built independently of `Frame`.
fn wire(payload: &[u8], crc: &str) -> Vec<u8> {
    let mut v = vec![STX];
    v.extend_from_slice(payload);
    v.push(b'#');
    v.extend_from_slice(crc.as_bytes());
    v.push(ETX);
    v
}

fn with_crc(payload: &[u8]) -> Vec<u8> {
    wire(payload, &format!("{:04X}", checksum(payload)))
}

fn decode_all(bytes: &[u8]) -> Vec<Decoded> {
    FrameDecoder::new().feed(bytes)
}

/// Every CRC vector of the reference (§1.3).
const VECTORS: &[(&str, u16)] = &[
    ("123456789", 0x31C3),
    ("Ala ma kota.", 0x2432),
    ("trinit\tbm0\t", 0x4825),
    ("trline\tnaChleb\tvt1\tpr200\t", 0xB23A),
    ("trline\tnaMleko\tvt2\tpr245\t", 0x12C4),
    ("trline\tnaJabłka\tvt1\tpr200\twa200\t", 0xBFA6),
    ("trpayment\tty0\twa999\tnaGotówka\tre0\t", 0x25D8),
    ("trend\tto999\tfp999\t", 0xD595),
    ("trnipset\tni1112223344\t", 0x67F8),
    ("prncancel\t", 0x6B3B),
    ("dailyrep\tda2026-09-08\t", 0x51D1),
    ("cash\tkw5000\twp1\t", 0x2299),
    ("scomm\t", 0xC42B),
    ("!sdev\t", 0x5392),
    ("!sprn\t", 0xCEED),
    ("sid\t", 0x8A94),
    ("vatget\t", 0x86AC),
    ("rtcget\t", 0x7D61),
    ("trinit\t", 0x911D),
    ("trline\t", 0x56B5),
    ("trend\t", 0x2902),
    ("ERR\t?5\t", 0x7F84),
    ("rtcset\tda2016-09-22,12:05\t", 0x8534),
    ("trline\t?2000\t", 0x2F0E),
    ("trinit\t?2038\t", 0xA1CF),
];

#[test]
fn crc_vectors() {
    for (payload, want) in VECTORS {
        assert_eq!(checksum(&cp(payload)), *want, "{payload:?}");
    }
    // The trap vector: `test\t` is A5FB under XMODEM (B4F7 would be CCITT-FALSE).
    assert_eq!(checksum(b"test\t"), 0xA5FB);
}

#[test]
fn crc_vector_frames_decode_and_reencode() {
    for (payload, crc) in VECTORS.iter().skip(2) {
        let bytes = wire(&cp(payload), &format!("{crc:04X}"));
        let f = decode_frame(&bytes).unwrap_or_else(|e| panic!("{payload:?}: {e}"));
        assert_eq!(f.encode().unwrap(), bytes, "{payload:?}");
        assert_eq!(f.encode_raw(), bytes, "{payload:?}");
    }
}

#[test]
fn typed_commands_match_the_vectors() {
    let cases: Vec<(Command, &str)> = vec![
        (
            Command::TrInit { block_mode: false },
            "\x02trinit\tbm0\t#4825\x03",
        ),
        (
            Command::TrNipSet {
                nip: "1112223344".into(),
            },
            "\x02trnipset\tni1112223344\t#67F8\x03",
        ),
        (
            Command::TrPayment {
                kind: PaymentKind::Cash,
                amount: 999,
                name: Some("Gotówka".into()),
                change: false,
            },
            "\x02trpayment\tty0\twa999\tnaGotówka\tre0\t#25D8\x03",
        ),
        (
            Command::TrEnd(Closing {
                total: 999,
                payments: Some(999),
                change: 0,
                ..Closing::default()
            }),
            "\x02trend\tto999\tfp999\t#D595\x03",
        ),
        (Command::PrnCancel, "\x02prncancel\t#6B3B\x03"),
        (
            Command::DailyRep {
                date: NaiveDate::from_ymd_opt(2026, 9, 8).unwrap(),
            },
            "\x02dailyrep\tda2026-09-08\t#51D1\x03",
        ),
        (
            Command::Cash {
                amount: 5000,
                deposit: true,
            },
            "\x02cash\tkw5000\twp1\t#2299\x03",
        ),
        (Command::SComm, "\x02scomm\t#C42B\x03"),
        (Command::SDev { immediate: true }, "\x02!sdev\t#5392\x03"),
        (Command::SPrn { immediate: true }, "\x02!sprn\t#CEED\x03"),
        (Command::SId, "\x02sid\t#8A94\x03"),
        (Command::VatGet, "\x02vatget\t#86AC\x03"),
        (Command::RtcGet, "\x02rtcget\t#7D61\x03"),
    ];
    for (cmd, want) in cases {
        assert_eq!(cmd.to_frame().encode().unwrap(), cp(want), "{cmd:?}");
        assert_eq!(cmd.to_frame().mnemonic, cmd.mnemonic());
    }
}

#[test]
fn hand_built_trline_frames_match_the_vectors() {
    let f = Frame::new("trline")
        .with("na", "Chleb")
        .with("vt", "1")
        .with("pr", "200");
    assert_eq!(
        f.encode().unwrap(),
        with_crc(b"trline\tnaChleb\tvt1\tpr200\t")
    );
    assert!(f.encode().unwrap().ends_with(b"#B23A\x03"));
    let f = Frame::new("trline")
        .with("na", "Mleko")
        .with("vt", "2")
        .with("pr", "245");
    assert!(f.encode().unwrap().ends_with(b"#12C4\x03"));
    let f = Frame::new("trline")
        .with("na", "Jabłka")
        .with("vt", "1")
        .with("pr", "200")
        .with("wa", "200");
    assert_eq!(
        f.encode().unwrap(),
        wire(&cp("trline\tnaJabłka\tvt1\tpr200\twa200\t"), "BFA6")
    );
    let f = Frame::new("rtcset").with("da", "2016-09-22,12:05");
    assert_eq!(
        f.encode().unwrap(),
        b"\x02rtcset\tda2016-09-22,12:05\t#8534\x03".to_vec()
    );
}

#[test]
fn typed_commands_parameter_order() {
    let line = Command::TrLine(Line {
        name: "Mąka".into(),
        vat_slot: 0,
        unit_price: 250,
        quantity: Decimal::new(1500, 3),
        amount: 375,
        unit: Some("kg".into()),
        ..Line::default()
    });
    assert_eq!(
        line.to_frame().payload().unwrap(),
        cp("trline\tnaMąka\tvt0\tpr250\til1.5\twa375\tjmkg\t")
    );
    let whole = Command::TrLine(Line {
        name: "Chleb".into(),
        vat_slot: 1,
        unit_price: 200,
        quantity: Decimal::from(2),
        amount: 400,
        unit: None,
        ..Line::default()
    });
    assert_eq!(
        whole.to_frame().payload().unwrap(),
        b"trline\tnaChleb\tvt1\tpr200\til2\twa400\t".to_vec()
    );
    let cases: Vec<(Command, &str)> = vec![
        (
            Command::TrDiscntBill(Adjustment {
                surcharge: false,
                percent: None,
                amount: 100,
                name: Some("Rabat".into()),
            }),
            "trdiscntbill\trd1\tnaRabat\trw100\t",
        ),
        (
            Command::TrDiscntBill(Adjustment {
                surcharge: true,
                percent: None,
                amount: 50,
                name: None,
            }),
            "trdiscntbill\trd0\trw50\t",
        ),
        (
            Command::TrPayment {
                kind: PaymentKind::Card,
                amount: 500,
                name: None,
                change: false,
            },
            "trpayment\tty2\twa500\tre0\t",
        ),
        (
            Command::TrPayment {
                kind: PaymentKind::Cash,
                amount: 300,
                name: None,
                change: true,
            },
            "trpayment\tty0\twa300\tre1\t",
        ),
        (
            Command::TrEnd(Closing {
                total: 200,
                payments: Some(500),
                change: 300,
                ..Closing::default()
            }),
            "trend\tto200\tfp500\tre300\t",
        ),
        (
            Command::Cash {
                amount: 50,
                deposit: false,
            },
            "cash\tkw50\twp0\t",
        ),
        (
            Command::FormStart {
                form: 42,
                header: None,
            },
            "formstart\tfn42\t",
        ),
        (
            Command::FormStart {
                form: 200,
                header: Some(3),
            },
            "formstart\tfn200\tfh3\t",
        ),
        (
            Command::FormLine {
                form: 42,
                line: 1,
                text: "a\nb".into(),
            },
            "formline\tfn42\tfl1\ts1a\nb\t",
        ),
        (Command::FormEnd { form: 42 }, "formend\tfn42\t"),
        (Command::TrInit { block_mode: true }, "trinit\tbm1\t"),
        (Command::SCnt, "scnt\t"),
        (Command::SDev { immediate: false }, "sdev\t"),
        (Command::SPrn { immediate: false }, "sprn\t"),
    ];
    for (cmd, want) in cases {
        assert_eq!(cmd.to_frame().payload().unwrap(), cp(want), "{cmd:?}");
    }
    assert_eq!(
        Command::rpt_frame(42).payload().unwrap(),
        b"rpt\t@0042\t".to_vec()
    );
}

#[test]
fn fiscal_flags() {
    assert!(Command::TrInit { block_mode: false }.is_fiscal());
    assert!(Command::PrnCancel.is_fiscal());
    assert!(
        Command::DailyRep {
            date: NaiveDate::from_ymd_opt(2026, 1, 1).unwrap()
        }
        .is_fiscal()
    );
    assert!(Command::FormEnd { form: 42 }.is_fiscal());
    assert!(!Command::SComm.is_fiscal());
    assert!(!Command::SDev { immediate: true }.is_fiscal());
    assert!(!Command::VatGet.is_fiscal());
}

#[test]
fn litex_frames() {
    let f = decode_frame(b"\x02rtcset\tda2016-09-22,12:05\t#8534\x03").unwrap();
    assert_eq!(f, Frame::new("rtcset").with("da", "2016-09-22,12:05"));
    let e = decode_frame(b"\x02ERR\t?5\t#7F84\x03").unwrap();
    assert!(e.is_frame_error());
    assert_eq!(e.error_code, Some(5));
    let info = frame_error(e.error_code.unwrap());
    assert_eq!(info.category, Category::Protocol);
}

#[test]
fn lower_case_crc_is_accepted() {
    let f = decode_frame(b"\x02ERR\t?5\t#7f84\x03").unwrap();
    assert_eq!(f, Frame::error_reply("ERR", 5));
    // Re-encoding normalises to upper case.
    assert_eq!(f.encode().unwrap(), b"\x02ERR\t?5\t#7F84\x03".to_vec());
}

#[test]
fn bad_crc_is_reported() {
    let raw = b"\x02trinit\tbm0\t#4826\x03".to_vec();
    assert_eq!(
        decode_all(&raw),
        vec![Decoded::Invalid {
            error: DecodeError::BadCrc {
                received: 0x4826,
                computed: 0x4825
            },
            raw
        }]
    );
}

#[test]
fn checksum_syntax_errors() {
    assert_eq!(
        decode_frame(b"\x02!break\x03"),
        Err(DecodeError::MissingChecksum)
    );
    assert_eq!(
        decode_frame(b"\x02scomm\t#C42\x03"),
        Err(DecodeError::BadChecksumSyntax)
    );
    assert_eq!(
        decode_frame(b"\x02scomm\t#C42G\x03"),
        Err(DecodeError::BadChecksumSyntax)
    );
    assert_eq!(
        decode_frame(b"\x02scomm\t#C42B1\x03"),
        Err(DecodeError::BadChecksumSyntax)
    );
    assert!(matches!(
        decode_frame(b"scomm\t#C42B\x03"),
        Err(DecodeError::Syntax(_))
    ));
    assert!(matches!(decode_frame(b""), Err(DecodeError::Syntax(_))));
}

#[test]
fn garbage_then_frame() {
    let mut input = b"\xff\x00noise\x03".to_vec();
    input.extend(with_crc(b"trinit\t"));
    assert_eq!(
        decode_all(&input),
        vec![
            Decoded::Garbage(b"\xff\x00noise\x03".to_vec()),
            Decoded::Frame(Frame::new("trinit"))
        ]
    );
}

#[test]
fn garbage_waits_for_its_end() {
    let mut d = FrameDecoder::new();
    d.push(b"abc");
    assert_eq!(d.next_item(), None);
    d.push(b"def\x02");
    assert_eq!(d.next_item(), Some(Decoded::Garbage(b"abcdef".to_vec())));
    assert_eq!(d.next_item(), None);
    assert_eq!(d.pending(), 1);
    d.clear();
    assert_eq!(d.pending(), 0);
}

#[test]
fn stx_restarts_a_frame() {
    let mut input = b"\x02trli".to_vec();
    input.extend(with_crc(b"trline\t"));
    assert_eq!(
        decode_all(&input),
        vec![
            Decoded::Garbage(b"\x02trli".to_vec()),
            Decoded::Frame(Frame::new("trline"))
        ]
    );
}

#[test]
fn reply_field_forms() {
    // No TAB between the last field and '#'.
    let f = decode_frame(&with_crc(b"trline\t?2005")).unwrap();
    assert_eq!(f, Frame::error_reply("trline", 2005));
    let f = decode_frame(&with_crc(b"scomm")).unwrap();
    assert_eq!(f, Frame::new("scomm"));
    // Legacy `erNN` in ERR frames, token and command echo.
    let f = decode_frame(&with_crc(b"ERR\t@0042\ter13\tcmrpt\t")).unwrap();
    assert_eq!(f.error_code, Some(13));
    assert_eq!(f.token, Some(42));
    assert_eq!(f.get("cm"), Some("rpt"));
    // `er` outside ERR frames is an ordinary parameter.
    let f = decode_frame(&with_crc(b"foo\ter13\t")).unwrap();
    assert_eq!(f.get("er"), Some("13"));
    assert_eq!(f.error_code, None);
    // Token anywhere.
    let f = decode_frame(&with_crc(b"trinit\t@0001\tbm0\t")).unwrap();
    assert_eq!(f, Frame::new("trinit").with("bm", "0").with_token(1));
    // The last '#' is the checksum marker.
    let f = decode_frame(&with_crc(b"trline\tnaNr #5\t")).unwrap();
    assert_eq!(f.get("na"), Some("Nr #5"));
    // Polish text decodes from Windows-1250.
    let f = decode_frame(&with_crc(&cp("trpayment\tnaGotówka\t"))).unwrap();
    assert_eq!(f.get("na"), Some("Gotówka"));
}

#[test]
fn syntax_errors() {
    for payload in [
        &b"trinit\t\tbm0\t"[..],
        b"\ttrinit\t",
        b"",
        b"\t",
        b"trinit\tb\t",
        b"trinit\t@12\t",
        b"trinit\t@12345\t",
        b"trinit\t@00a1\t",
        b"trinit\t?\t",
        b"trinit\t?12x\t",
        b"trinit\t?99999999999\t",
        b"trinit\t?1\t?2\t",
        b"trinit\t@0001\t@0002\t",
        b"ERR\t?1\ter2\t",
    ] {
        assert!(
            matches!(
                decode_frame(&with_crc(payload)),
                Err(DecodeError::Syntax(_))
            ),
            "{:?}",
            String::from_utf8_lossy(payload)
        );
    }
}

#[test]
fn strict_encode_refuses_bad_text() {
    assert!(matches!(
        Frame::new("trline").with("na", "Tab\there").encode(),
        Err(text::TextError::Control {
            ch: '\t',
            position: 3
        })
    ));
    assert!(matches!(
        Frame::new("trline").with("na", "茶").encode(),
        Err(text::TextError::Unprintable {
            ch: '茶',
            position: 0
        })
    ));
    assert!(matches!(
        Frame::new("trline").with_token(10_000).encode(),
        Err(text::TextError::BadName { .. })
    ));
    // A frame the decoder accepted may still be refused by the strict encoder …
    let f = decode_frame(&with_crc(b"trline\tna\x01x\t")).unwrap();
    assert!(f.encode().is_err());
    // … but the raw encoder reproduces it.
    assert_eq!(f.encode_raw(), with_crc(b"trline\tna\x01x\t"));
}

#[test]
fn corpus_fixtures_decode() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/posnet/corpus");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(&path).unwrap();
        let items = decode_all(&bytes);
        if name.starts_with("ok_") {
            assert_eq!(items.len(), 1, "{name}");
            let Decoded::Frame(f) = &items[0] else {
                panic!("{name}: {items:?}")
            };
            assert_eq!(decode_frame(&f.encode_raw()).as_ref(), Ok(f), "{name}");
        } else if name.starts_with("bad_") {
            assert!(
                items.iter().all(|i| matches!(i, Decoded::Invalid { .. })),
                "{name}: {items:?}"
            );
        } else {
            assert!(
                items.iter().any(|i| matches!(i, Decoded::Frame(_))),
                "{name}"
            );
        }
        seen += 1;
    }
    assert!(seen >= 30, "corpus has {seen} files");
}

// ---------------------------------------------------------------- properties

/// Every char the strict encoder accepts (printable Windows-1250), Polish letters included.
fn printable_chars() -> Vec<char> {
    (0x20u8..=0xFF)
        .filter_map(|b| text::decode(&[b]).chars().next())
        .filter(|&c| !text::is_control(c))
        .collect()
}

fn value_strategy() -> impl Strategy<Value = String> {
    let chars = printable_chars();
    let polish: Vec<char> = "ąćęłńóśźżĄĆĘŁŃÓŚŹŻ€#@?".chars().collect();
    prop::collection::vec(
        prop_oneof![prop::sample::select(chars), prop::sample::select(polish)],
        0..24,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn frame_strategy() -> impl Strategy<Value = Frame> {
    (
        "!?[a-z]{1,12}",
        prop::collection::vec(("[a-z][a-z0-9]", value_strategy()), 0..6),
        prop::option::of(0u16..=9999),
        prop::option::of(any::<u32>()),
    )
        .prop_map(|(mnemonic, params, token, error_code)| {
            let mut f = Frame::new(mnemonic);
            for (name, value) in params {
                f = f.with(&name, value);
            }
            f.token = token;
            f.error_code = error_code;
            f
        })
}

/// Bytes that hit the decoder's interesting paths often.
fn noisy_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<u8>(),
            1 => prop::sample::select(vec![STX, ETX, b'\t', b'#', b'?', b'@', b'0', b'9', b'a', b'F', b'e', b'r']),
        ],
        0..max,
    )
}

fn feed_split(bytes: &[u8], cuts: &[prop::sample::Index]) -> Vec<Decoded> {
    let mut points: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut d = FrameDecoder::new();
    let mut items = Vec::new();
    let mut at = 0;
    for p in points.into_iter().chain(std::iter::once(bytes.len())) {
        items.extend(d.feed(&bytes[at..p]));
        at = p;
    }
    items
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn encode_decode_round_trip(f in frame_strategy()) {
        let bytes = f.encode().unwrap();
        prop_assert_eq!(decode_frame(&bytes), Ok(f.clone()));
        prop_assert_eq!(f.encode_raw(), bytes.clone());
        prop_assert_eq!(decode_all(&bytes), vec![Decoded::Frame(f)]);
    }

    #[test]
    fn decode_is_split_invariant(
        parts in prop::collection::vec((noisy_bytes(12), frame_strategy()), 0..6),
        tail in noisy_bytes(12),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut stream = Vec::new();
        for (garbage, frame) in &parts {
            stream.extend_from_slice(garbage);
            stream.extend(frame.encode().unwrap());
        }
        stream.extend_from_slice(&tail);
        let whole = decode_all(&stream);
        prop_assert_eq!(feed_split(&stream, &cuts), whole.clone());
        // Byte by byte, too.
        let mut d = FrameDecoder::new();
        let mut one = Vec::new();
        for b in &stream {
            one.extend(d.feed(std::slice::from_ref(b)));
        }
        prop_assert_eq!(one, whole);
    }

    #[test]
    fn frames_survive_clean_garbage(
        parts in prop::collection::vec((prop::collection::vec(4u8..=255, 0..12), frame_strategy()), 1..6),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        // Garbage without STX/ETX never hides a frame.
        let mut stream = Vec::new();
        for (garbage, frame) in &parts {
            stream.extend_from_slice(garbage);
            stream.extend(frame.encode().unwrap());
        }
        let frames: Vec<Frame> = feed_split(&stream, &cuts)
            .into_iter()
            .filter_map(|i| match i { Decoded::Frame(f) => Some(f), _ => None })
            .collect();
        let want: Vec<Frame> = parts.into_iter().map(|(_, f)| f).collect();
        prop_assert_eq!(frames, want);
    }

    #[test]
    fn never_panics(bytes in noisy_bytes(2048), raw in prop::collection::vec(any::<u8>(), 0..2048)) {
        for input in [&bytes, &raw] {
            let items = decode_all(input);
            prop_assert!(items.len() <= input.len());
            let _ = decode_frame(input);
            let mut framed = vec![STX];
            framed.extend_from_slice(input);
            framed.push(ETX);
            let _ = decode_frame(&framed);
        }
    }

    #[test]
    fn decoded_frames_reencode_identically(payload in noisy_bytes(64).prop_map(|v| {
        v.into_iter().filter(|&b| b != STX && b != ETX).collect::<Vec<u8>>()
    })) {
        // Any payload with a valid CRC: if it decodes, encode_raw gives back the same frame.
        if let Ok(f) = decode_frame(&with_crc(&payload)) {
            prop_assert_eq!(decode_frame(&f.encode_raw()), Ok(f));
        }
    }

    #[test]
    fn bad_crc_is_invalid(f in frame_strategy(), flip in 1u16..) {
        let payload = f.payload().unwrap();
        let crc = checksum(&payload) ^ flip;
        let bytes = wire(&payload, &format!("{crc:04x}"));
        prop_assert_eq!(
            decode_all(&bytes),
            vec![Decoded::Invalid {
                error: DecodeError::BadCrc { received: crc, computed: checksum(&payload) },
                raw: bytes,
            }]
        );
    }

    #[test]
    fn text_round_trip(s in value_strategy()) {
        let bytes = text::encode(&s, false).unwrap();
        prop_assert_eq!(text::decode(&bytes), s);
    }
}
