//! Fuzz the configuration parser: arbitrary text must never panic, and every error must
//! name the file and either a line and column or the table/field at fault.
#![no_main]

use fiscald::config::Config;
use libfuzzer_sys::fuzz_target;
use std::path::Path;

/// `f.toml:LINE:COL: ...` with LINE and COL at least 1.
fn has_line_col(rest: &str) -> bool {
    let mut parts = rest.splitn(3, ':');
    let num = |p: Option<&str>| {
        p.and_then(|s| s.parse::<usize>().ok())
            .is_some_and(|n| n >= 1)
    };
    num(parts.next()) && num(parts.next()) && parts.next().is_some()
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Err(e) = Config::parse(text, Path::new("f.toml")) else {
        return;
    };
    let msg = e.to_string();
    let rest = msg
        .strip_prefix("f.toml:")
        .unwrap_or_else(|| panic!("error does not start with the file name: {msg:?}"));
    let names_field = [
        "[api]",
        "[journal]",
        "[[printer]]",
        "[[terminal]]",
        "[sales]",
    ]
    .iter()
    .any(|t| rest.contains(t));
    assert!(
        has_line_col(rest) || names_field,
        "error has neither line:column nor a field: {msg:?}"
    );
});
