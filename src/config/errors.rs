//! Configuration errors as a technician reads them: the key path, the line with a caret, what
//! is expected, and a "did you mean" for a name that is close.

pub(super) const REQUIRED_EXAMPLES: &[(&str, &str)] = &[
    (
        "api",
        "an [api] table with socket = \"/run/fiscald/fiscald.sock\"",
    ),
    (
        "journal",
        "a [journal] table with path = \"/var/lib/fiscald/journal.db\"",
    ),
    ("api.socket", "socket = \"/run/fiscald/fiscald.sock\""),
    ("journal.path", "path = \"/var/lib/fiscald/journal.db\""),
    ("printer.id", "id = \"fp1\""),
    ("printer.protocol", "protocol = \"posnet\""),
    ("printer.port", "port = \"/dev/ttyUSB0\" (or \"sim\")"),
    ("terminal.id", "id = \"t1\""),
    ("fleet.till", "till = \"shop17-till2\""),
    ("fleet.nats", "nats = \"nats://127.0.0.1:4222\""),
    ("terminal.protocol", "protocol = \"zvt\" (or \"ecr-eft\")"),
    (
        "terminal.port",
        "port = \"/dev/ttyUSB1\" (or \"tcp://IP:PORT\", or \"sim\")",
    ),
];

/// The key path and the message for a deserialization error at `path` (as
/// `serde_path_to_error` writes it, `.` for the top level). Adds the missing key to the
/// path, a "did you mean" to unknown keys and values, and plain words to type names.
pub(super) fn explain(path: &str, message: &str) -> (Option<String>, String) {
    let join = |name: &str| {
        if path == "." || path.is_empty() {
            name.to_string()
        } else {
            format!("{path}.{name}")
        }
    };
    let key = (path != "." && !path.is_empty()).then(|| path.to_string());
    if let Some(name) = message
        .strip_prefix("missing field `")
        .and_then(|r| r.strip_suffix('`'))
    {
        let full = join(name);
        let general: String = full
            .split('.')
            .map(|s| s.split('[').next().unwrap_or(s))
            .collect::<Vec<_>>()
            .join(".");
        let mut msg = format!("missing key `{name}`, which is required");
        if let Some((_, example)) = REQUIRED_EXAMPLES.iter().find(|(k, _)| *k == general) {
            msg.push_str(&format!("; expected e.g. {example}"));
        }
        return (Some(full), msg);
    }
    if let Some((given, expected)) = unknown_name(message) {
        let mut msg = message.to_string();
        if let Some(best) = closest(given, &expected) {
            msg.push_str(&format!("; did you mean `{best}`?"));
        }
        return (key, msg);
    }
    let mut msg = message.to_string();
    if let Some(rest) = message.rsplit_once(", expected ").map(|(_, e)| e) {
        let plain = match rest {
            "u8" | "u16" | "u32" | "u64" | "usize" | "i8" | "i16" | "i32" | "i64" => {
                Some("a whole number without quotes")
            }
            "f32" | "f64" => Some("a number without quotes, e.g. 5 or 2.5"),
            "a boolean" => Some("true or false without quotes"),
            _ => None,
        };
        if let Some(plain) = plain {
            msg.push_str(&format!(" ({plain})"));
        }
    }
    (key, msg)
}

/// From serde's "unknown field `x`, expected one of `a`, `b`" (or "unknown variant"): the
/// name given and the names expected.
pub(super) fn unknown_name(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (given, rest) = rest.split_once('`')?;
    let expected = rest
        .split_once("expected")
        .map(|(_, list)| list.split('`').skip(1).step_by(2).collect())
        .unwrap_or_default();
    Some((given, expected))
}

/// The expected name closest to `given` by edit distance, if it is close enough to be a
/// typo (one edit for short names, about a third of the letters for longer ones).
pub(super) fn closest<'a>(given: &str, expected: &[&'a str]) -> Option<&'a str> {
    let given = given.to_ascii_lowercase().replace('-', "_");
    let allowed = match given.chars().count() {
        0..=3 => 1,
        4..=7 => 2,
        n => n / 3,
    };
    expected
        .iter()
        .map(|e| (strsim::damerau_levenshtein(&given, e), *e))
        .filter(|(d, _)| *d <= allowed)
        .min_by_key(|(d, _)| *d)
        .map(|(_, e)| e)
}

/// The span of a key path such as `printer[1].id` or `api.listen` in the document: the
/// value's span, or the nearest enclosing table's when the key itself is absent.
pub(super) fn span_of(text: &str, key: &str) -> Option<std::ops::Range<usize>> {
    let root = toml::de::DeTable::parse(text).ok()?;
    let mut span = root.span();
    let mut table = root.get_ref();
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let (name, index) = match part.split_once('[') {
            Some((n, i)) => (n, i.strip_suffix(']').and_then(|i| i.parse::<usize>().ok())),
            None => (part, None),
        };
        let Some((_, mut value)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == name) else {
            break;
        };
        if let Some(i) = index {
            match value.get_ref().as_array().and_then(|a| a.get(i)) {
                Some(v) => value = v,
                None => break,
            }
        }
        span = value.span();
        match value.get_ref().as_table() {
            Some(t) if parts.peek().is_some() => table = t,
            _ => break,
        }
    }
    Some(span)
}

/// `FILE:LINE:COL: KEY: MESSAGE` and the offending line with carets under `span`, as the
/// toml crate draws it; `FILE: KEY: MESSAGE` when there is no place to show.
pub(super) fn render(
    file: &str,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    key: Option<&str>,
    message: &str,
) -> String {
    let key = key.map(|k| format!("{k}: ")).unwrap_or_default();
    let Some(span) = span else {
        return format!("{file}: {key}{message}");
    };
    let (line, col) = line_col(text, span.start);
    let content = text.split('\n').nth(line - 1).unwrap_or("");
    let content = content.strip_suffix('\r').unwrap_or(content);
    let gutter = " ".repeat(line.to_string().len());
    let shown = text
        .get(span.clone())
        .map_or(1, |s| s.split('\n').next().unwrap_or("").chars().count());
    let room = content.chars().count().saturating_sub(col - 1);
    let carets = "^".repeat(shown.min(room).max(1));
    let pad = " ".repeat(col - 1);
    format!(
        "{file}:{line}:{col}: {key}{message}\n{gutter} |\n{line} | {content}\n{gutter} | {pad}{carets}"
    )
}

/// 1-based line and column of a byte offset.
pub(super) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}
