//! End to end: the emulators and `replay` never delete or replace a file at `--link` (or
//! `--control`) that is not theirs, and an old symlink is replaced as before.

mod common;

use common::BIN;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Run with a deadline: a refusal must come at once, not after the emulator started.
fn run(args: &[&std::ffi::OsStr]) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "still running: it accepted the path ({})",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn trace() -> std::path::PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/traces/posnet");
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "trace"))
        .expect("a POSNET trace fixture")
}

#[test]
fn link_refuses_an_existing_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("precious");
    let state = dir.path().join("state.json");
    let trace = trace();
    let cases: Vec<(&str, Vec<&std::ffi::OsStr>)> = vec![
        (
            "sim posnet",
            vec![
                "sim".as_ref(),
                "posnet".as_ref(),
                "--link".as_ref(),
                file.as_os_str(),
            ],
        ),
        (
            "sim zvt",
            vec![
                "sim".as_ref(),
                "zvt".as_ref(),
                "--link".as_ref(),
                file.as_os_str(),
                "--state".as_ref(),
                state.as_os_str(),
            ],
        ),
        (
            "replay",
            vec![
                "replay".as_ref(),
                trace.as_os_str(),
                "--link".as_ref(),
                file.as_os_str(),
            ],
        ),
    ];
    for (what, args) in cases {
        std::fs::write(&file, "do not delete").unwrap();
        let out = run(&args);
        assert!(!out.status.success(), "{what} accepted a regular file");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("not a symlink"), "{what}: {err}");
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "do not delete",
            "{what} touched the file"
        );
    }
}

#[test]
fn control_refuses_an_existing_regular_file() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("printer.tty");
    let ctl = dir.path().join("printer.ctl");
    std::fs::write(&ctl, "do not delete").unwrap();
    let out = run(&[
        "sim".as_ref(),
        "posnet".as_ref(),
        "--link".as_ref(),
        link.as_os_str(),
        "--control".as_ref(),
        ctl.as_os_str(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a socket"), "{err}");
    assert_eq!(std::fs::read_to_string(&ctl).unwrap(), "do not delete");
    assert!(std::fs::symlink_metadata(&link).is_err(), "a link was left");
}

#[test]
fn link_replaces_an_old_symlink() {
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("printer.tty");
    std::os::unix::fs::symlink("/nonexistent/old-device", &link).unwrap();
    let mut child = Command::new(BIN)
        .args(["sim", "posnet", "--link"])
        .arg(&link)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let target = loop {
        let t = std::fs::read_link(&link).ok();
        if let Some(t) = t.filter(|t| t.starts_with("/dev/")) {
            break t;
        }
        assert!(Instant::now() < deadline, "the link was not replaced");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(target.starts_with("/dev/pts/"), "{}", target.display());
    let _ = child.kill();
    let _ = child.wait();
}
