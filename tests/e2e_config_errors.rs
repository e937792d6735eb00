//! End to end: configuration errors through the real binary. `fiscald check-config` and a
//! failing `fiscald serve` print the same text: file, line, column, the key path, what is
//! expected, and the offending line with a caret.

mod common;

use common::{BIN, config_text};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Write `text` as `broken.toml`, run `check-config` and `serve` on it; both must exit
/// with 2 and the same message. Returns the message.
fn both_refuse(dir: &Path, text: &str) -> String {
    let path = dir.join("broken.toml");
    std::fs::write(&path, text).unwrap();
    let check = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    let check_err = String::from_utf8_lossy(&check.stderr).into_owned();
    assert_eq!(check.status.code(), Some(2), "check-config: {check_err}");
    let mut serve = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = common::wait_until(Duration::from_secs(20), "serve to refuse", || {
        serve.try_wait().unwrap()
    });
    let mut serve_err = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut serve_err).unwrap();
    assert_eq!(status.code(), Some(2), "serve: {serve_err}");
    assert!(
        serve_err.contains(check_err.trim()),
        "serve and check-config differ:\n{serve_err}\n---\n{check_err}"
    );
    check_err
}

#[test]
fn a_wrong_type_names_file_line_column_key_and_what_is_expected() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "/dev/null", "").replace("baud = 115200", "baud = \"fast\"");
    let err = both_refuse(dir.path(), &text);
    assert!(
        err.contains(
            "broken.toml:11:8: printer[0].baud: invalid type: string \"fast\", expected u32 (a whole number without quotes)"
        ),
        "{err}"
    );
    assert!(
        err.contains("\n11 | baud = \"fast\"\n   |        ^^^^^^\n"),
        "{err}"
    );
}

#[test]
fn an_unknown_key_says_did_you_mean() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "/dev/null", "").replace("protocol =", "protcol =");
    let err = both_refuse(dir.path(), &text);
    assert!(
        err.contains("broken.toml:9:1: printer[0].protcol: unknown field `protcol`"),
        "{err}"
    );
    assert!(err.contains("did you mean `protocol`?"), "{err}");
    assert!(
        err.contains("\n9 | protcol = \"posnet\"\n  | ^^^^^^^\n"),
        "{err}"
    );
    // A key in [api] too, with its own table's names.
    let text = config_text(dir.path(), "/dev/null", "").replace("socket_role", "socket_rol");
    let err = both_refuse(dir.path(), &text);
    assert!(
        err.contains("broken.toml:3:1: api.socket_rol: unknown field `socket_rol`")
            && err.contains("did you mean `socket_role`?"),
        "{err}"
    );
}

#[test]
fn a_missing_required_key_is_named_with_an_example() {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), "/dev/null", "").replace("protocol = \"posnet\"\n", "");
    let err = both_refuse(dir.path(), &text);
    assert!(
        err.contains(
            "broken.toml:7:1: printer[0].protocol: missing key `protocol`, which is required; expected e.g. protocol = \"posnet\""
        ),
        "{err}"
    );
    assert!(
        err.contains("\n7 | [[printer]]\n  | ^^^^^^^^^^^\n"),
        "{err}"
    );
}

#[test]
fn duplicate_ids_are_refused_with_both_places() {
    let dir = tempfile::tempdir().unwrap();
    let base = config_text(dir.path(), "/dev/null", "");
    let printer = "[[printer]]\nid = \"fp1\"\nprotocol = \"posnet\"\nport = \"/dev/null\"\n";
    let err = both_refuse(dir.path(), &format!("{base}{printer}"));
    assert!(
        err.contains(
            "broken.toml:16:6: printer[1].id: id \"fp1\" is already used by printer[0] (line 8)"
        ),
        "{err}"
    );
    assert!(
        err.contains("\n16 | id = \"fp1\"\n   |      ^^^^^\n"),
        "{err}"
    );

    let terminal = "[[terminal]]\nid = \"t1\"\nprotocol = \"zvt\"\nport = \"tcp://127.0.0.1:9\"\n";
    let err = both_refuse(dir.path(), &format!("{base}{terminal}{terminal}"));
    assert!(
        err.contains(
            "broken.toml:20:6: terminal[1].id: id \"t1\" is already used by terminal[0] (line 16)"
        ),
        "{err}"
    );

    // `/v1/health` lists devices by id, so a printer and a terminal may not share one.
    let err = both_refuse(
        dir.path(),
        &format!("{base}{}", terminal.replace("t1", "fp1")),
    );
    assert!(
        err.contains(
            "broken.toml:8:6: printer[0].id: id \"fp1\" is already used by terminal[0] (line 16)"
        ),
        "{err}"
    );
}
