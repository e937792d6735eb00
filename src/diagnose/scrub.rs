//! The bundle's scrubber: card numbers and secrets removed by structure (see the
//! `diagnose` module doc).

use super::REMOVED;

/// Keys whose values are secrets (`token_file`, a path, stays).
pub(super) fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("secret") || k == "token" || k == "tokens" || k == "pin"
}

/// What to remove from every text besides card numbers (see the module doc).
#[derive(Default)]
pub(super) struct Scrub {
    /// The token file's hashes, lower case.
    pub(super) hashes: Vec<String>,
}

impl Scrub {
    pub(super) fn apply(&self, text: &str) -> String {
        text.split_inclusive('\n')
            .map(|line| self.line(line))
            .collect()
    }

    /// One line: card numbers (a card number never spans log lines, and a number joined
    /// across a line break, e.g. a timestamp after a hex dump, is not one), then secrets.
    fn line(&self, line: &str) -> String {
        let out = match zvt_trace_line(line) {
            // The hex was masked by structure, as the recorder masks it; reading it as text
            // would hide digits of the hex itself and break the replay.
            Some((head, tail)) => format!("{head}{}", zvt::pan::mask_in_text(&tail)),
            None => zvt::pan::mask_in_text(&redact_apdus(line)),
        };
        let out = redact_bearer(&out);
        let out = redact_secret_pairs(&out);
        self.redact_hashes(&out)
    }

    /// A token hash standing as a whole hex word.
    fn redact_hashes(&self, text: &str) -> String {
        if self.hashes.is_empty() {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len());
        let mut word = String::new();
        let flush = |word: &mut String, out: &mut String| {
            if self.hashes.iter().any(|h| h.eq_ignore_ascii_case(word)) {
                out.push_str("<token hash removed>");
            } else {
                out.push_str(word);
            }
            word.clear();
        };
        for c in text.chars() {
            if c.is_ascii_hexdigit() {
                word.push(c);
            } else {
                flush(&mut word, &mut out);
                out.push(c);
            }
        }
        flush(&mut word, &mut out);
        out
    }
}

/// Every ZVT APDU in a log line, decoded and written again masked: `apdu=<hex>` (the wire
/// log) and the hex word of a ZVT trace line (`<time> <device> <dir> <hex>  # ...`).
fn redact_apdus(line: &str) -> String {
    let remask = |hex: &str| -> String {
        if hex.contains('*') {
            return hex.to_string();
        }
        match hex::decode(hex)
            .ok()
            .and_then(|b| zvt::Apdu::decode(&b).ok())
        {
            Some(apdu) => crate::trace::masked_apdu_hex(&apdu),
            None => "<apdu removed>".to_string(),
        }
    };
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(i) = rest.find("apdu=") {
        let start = i + "apdu=".len();
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        let end = rest
            .find(|c: char| !(c.is_ascii_hexdigit() || c == '*'))
            .unwrap_or(rest.len());
        out.push_str(&remask(&rest[..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// A ZVT trace line (`<time> <device> <dir> <hex>  # <summary>`) with its hex masked again
/// by structure: the line up to the summary, and the summary.
fn zvt_trace_line(line: &str) -> Option<(String, String)> {
    // The fourth word is the hex, the device side marks it.
    let words: Vec<&str> = line.splitn(5, ' ').collect();
    if let [time, device, dir @ (">" | "<"), hex, tail] = words.as_slice()
        && time.contains('T')
        && hex.len() >= 2
        && hex.chars().all(|c| c.is_ascii_hexdigit() || c == '*')
        && tail.contains("# ")
    {
        let again = if zvt_name_in(tail) {
            Some(remask_trace_apdu(hex))
        } else if is_link_summary(tail) {
            Some(remask_trace_link(hex))
        } else {
            None
        };
        if let Some(hex) = again {
            return Some((format!("{time} {device} {dir} {hex} "), tail.to_string()));
        }
    }
    None
}

/// A ZVT trace line's APDU masked again the way the recorder masks it
/// ([`crate::trace::zvt_link::masked_apdu`]), so a bundle's trace still replays.
fn remask_trace_apdu(hex: &str) -> String {
    match hex::decode(hex)
        .ok()
        .and_then(|b| zvt::Apdu::decode(&b).ok())
    {
        Some(apdu) => hex::encode(crate::trace::zvt_link::masked_apdu(&apdu).encode()),
        None => "<apdu removed>".to_string(),
    }
}

/// A ZVT serial trace line's link bytes cut into items and masked again the way the
/// recorder masks them ([`crate::trace::zvt_link::masked_item_bytes`]).
fn remask_trace_link(hex: &str) -> String {
    let Ok(bytes) = hex::decode(hex) else {
        return "<link bytes removed>".to_string();
    };
    use crate::trace::zvt_link::{LinkItem, LinkSplitter, masked_item_bytes};
    let mut splitter = LinkSplitter::default();
    let items = splitter.push(&bytes);
    let mut out = Vec::with_capacity(bytes.len());
    for item in &items {
        out.extend(masked_item_bytes(item));
    }
    // What the line ends with and the splitter holds back: a frame that never ended is
    // hidden as the recorder hides one; stray bytes are masked as text.
    let held = &bytes[bytes.len() - splitter.pending()..];
    if !held.is_empty() {
        let item = if splitter.in_frame() {
            LinkItem::Broken(held.to_vec())
        } else {
            LinkItem::Other(held.to_vec())
        };
        out.extend(masked_item_bytes(&item));
    }
    hex::encode(out)
}

/// True for the summary of a ZVT serial trace line (see
/// [`crate::trace::zvt_link::describe_item`]).
fn is_link_summary(tail: &str) -> bool {
    let summary = tail.trim_start().trim_start_matches("# ");
    summary.starts_with("link ACK")
        || summary.starts_with("link NAK")
        || summary.starts_with("frame")
        || summary.starts_with("a frame that never ended")
        || summary.split_once(' ').is_some_and(|(n, rest)| {
            n.bytes().all(|b| b.is_ascii_digit()) && rest.starts_with("stray bytes")
        })
}

/// True for the summary of a ZVT trace line (`# 06 00 Registration ...`).
fn zvt_name_in(tail: &str) -> bool {
    let summary = tail.trim_start().trim_start_matches("# ");
    let b = summary.as_bytes();
    b.len() >= 5 && b[2] == b' ' && b[..2].iter().chain(&b[3..5]).all(u8::is_ascii_hexdigit)
}

/// `key=value`, `key="value"` and `"key": "value"` with a key naming a secret: the value
/// becomes `<removed>`.
fn redact_secret_pairs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        // A key: a run of word characters.
        if chars[i].is_alphanumeric() || chars[i] == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            let key: String = chars[start..i].iter().collect();
            out.push_str(&key);
            // `=` or `": ` after it.
            let mut j = i;
            if chars.get(j) == Some(&'"') {
                j += 1;
            }
            let sep_start = j;
            while j < chars.len() && (chars[j] == ' ' || chars[j] == ':' || chars[j] == '=') {
                j += 1;
            }
            let has_sep = chars[sep_start..j].iter().any(|c| *c == ':' || *c == '=');
            if is_secret_key(&key) && has_sep {
                out.extend(&chars[i..j]);
                i = j;
                let quoted = chars.get(i) == Some(&'"');
                if quoted {
                    out.push('"');
                    i += 1;
                }
                while i < chars.len()
                    && !(if quoted {
                        chars[i] == '"'
                    } else {
                        chars[i].is_whitespace() || chars[i] == ',' || chars[i] == '}'
                    })
                {
                    i += 1;
                }
                out.push_str(REMOVED);
            }
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// `Bearer <anything>` → `Bearer <removed>`.
fn redact_bearer(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("Bearer ") {
        out.push_str(&rest[..i + "Bearer ".len()]);
        rest = &rest[i + "Bearer ".len()..];
        let end = rest
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'' || c == ',')
            .unwrap_or(rest.len());
        if end > 0 {
            out.push_str(REMOVED);
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scrub() -> Scrub {
        Scrub {
            hashes: vec!["ab".repeat(32)],
        }
    }

    #[test]
    fn scrubbing() {
        let text = format!(
            "pan 5454545454545454 Authorization: Bearer s3cr3t-token, {} 000000",
            "AB".repeat(32)
        );
        let out = scrub().apply(&text);
        assert!(!out.contains("5454545454545454"), "{out}");
        assert!(out.contains("545454******5454"), "{out}");
        assert!(!out.contains("s3cr3t"), "{out}");
        assert!(out.contains("Bearer <removed>,"), "{out}");
        assert!(
            !out.to_ascii_lowercase().contains(&"ab".repeat(32)),
            "{out}"
        );
        assert!(out.contains("<token hash removed>"), "{out}");
        assert!(out.ends_with("000000"), "{out}");
    }

    /// The finding: the substring scrubber turned `ABC 12345678` into
    /// `ABC <password removed>78` for the password 123456.
    #[test]
    fn a_serial_number_that_contains_the_password_is_kept() {
        let line = "frame=scomm nu=\"ABC 12345678\" td=\"N\" @3239\n";
        assert_eq!(scrub().apply(line), line);
        let json = "{\"serial_number\": \"ABC 12345678\", \"id\": \"ab12\"}";
        assert_eq!(scrub().apply(json), json);
    }

    #[test]
    fn passwords_are_removed_by_structure() {
        // The wire log of an older version, with the password in the registration.
        let out = scrub().apply("DEBUG fiscald::wire: zvt dir=\"out\" apdu=060006123456ba0985\n");
        assert_eq!(
            out,
            "DEBUG fiscald::wire: zvt dir=\"out\" apdu=060006******ba0985\n"
        );
        let out = scrub().apply("zvt apdu=050103123456 and apdu=zz\n");
        assert!(out.contains("apdu=050103******"), "{out}");
        // A trace line.
        let out = scrub().apply(
            "2026-01-01T00:00:00.000000Z t1 > 060006123456ba0985  # 06 00 Registration (6 data bytes)\n",
        );
        assert!(!out.contains("123456"), "{out}");
        let masked = hex::encode(
            crate::trace::zvt_link::masked_apdu(
                &zvt::Apdu::decode(&hex::decode("060006123456ba0985").unwrap()).unwrap(),
            )
            .encode(),
        );
        assert!(out.contains(&format!("> {masked}  # 06 00")), "{out}");
        // Key-value pairs.
        for (text, want) in [
            ("password=123456 x", "password=<removed> x"),
            (
                "terminal_password=\"123456\"",
                "terminal_password=\"<removed>\"",
            ),
            (
                "{\"password\": \"123456\", \"a\": 1}",
                "{\"password\": \"<removed>\", \"a\": 1}",
            ),
            ("pin: 1234,", "pin: <removed>,"),
            (
                "token_file=/etc/fiscald/tokens",
                "token_file=/etc/fiscald/tokens",
            ),
        ] {
            assert_eq!(scrub().apply(text), want, "{text}");
        }
    }

    /// A bundle's ZVT traces (over TCP: one APDU a line; on a serial line: one link item a
    /// line) come out as the recorder writes them, so they still replay: what the
    /// recorder masked stays as it is, and what it did not is masked the same way.
    #[test]
    fn zvt_trace_lines_stay_replayable() {
        use crate::trace::zvt_link::{LinkItem, LinkSplitter, masked_apdu, masked_item_bytes};
        use zvt::message::PtMessage;
        let print = PtMessage::PrintLine {
            attribute: 0x00,
            text: "Karta 5454545454545454".into(),
        }
        .to_apdu();
        let time = "2026-12-02T10:00:00.000000Z";
        // Over TCP.
        let raw = format!(
            "{time} t1 < {}  # 06 D1 Print line\n",
            hex::encode(print.encode())
        );
        let recorded = format!(
            "{time} t1 < {}  # 06 D1 Print line\n",
            hex::encode(masked_apdu(&print).encode())
        );
        assert_eq!(scrub().apply(&raw), recorded);
        assert_eq!(scrub().apply(&recorded), recorded);
        // On a serial line: a frame, an ACK, stray bytes and a frame that never ended.
        let framed = zvt::link::encode_frame(&print.encode());
        let items = LinkSplitter::default().push(&framed);
        assert!(
            matches!(items.as_slice(), [LinkItem::Frame { crc_ok: true, .. }]),
            "{items:?}"
        );
        let lines = [
            (framed.clone(), "frame: 06 D1 Print line"),
            (vec![zvt::link::ACK], "link ACK"),
            (b"5454545454545454".to_vec(), "16 stray bytes"),
            (
                framed[..framed.len() - 4].to_vec(),
                "a frame that never ended (hidden)",
            ),
        ];
        for (bytes, summary) in lines {
            let raw = format!("{time} t1 < {}  # {summary}\n", hex::encode(&bytes));
            let out = scrub().apply(&raw);
            assert!(!out.contains(&hex::encode("5454545454545454")), "{out}");
            assert!(!out.contains("545454545454"), "{out}");
            let hex_word = out.split(' ').nth(3).unwrap();
            let again = hex::decode(hex_word).expect("still hex");
            let mut s = LinkSplitter::default();
            let items = s.push(&again);
            if let [item] = LinkSplitter::default().push(&bytes).as_slice() {
                assert_eq!(again, masked_item_bytes(item), "{summary}");
                assert_eq!(items.len(), 1, "{summary}");
            }
            assert_eq!(
                scrub().apply(&out),
                out,
                "{summary}: masking twice changes nothing"
            );
        }
    }

    #[test]
    fn hashes_are_removed_only_as_whole_words() {
        let h = "ab".repeat(32);
        let out = scrub().apply(&format!("x {h} y{h}z 0{h}"));
        assert_eq!(
            out,
            format!("x <token hash removed> y<token hash removed>z 0{h}")
        );
    }
}
