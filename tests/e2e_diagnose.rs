//! End to end: `fiscald diagnose` against a running daemon with a token file and a card
//! terminal that sends full card numbers. The bundle holds the expected files and no
//! token (nor its hash), no terminal password and no full card number.

mod common;

use common::{BIN, Daemon, Sim, ZvtSim, config_text, request, terminal_config};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const TOKENS: [(&str, &str, &str); 2] = [
    ("diag-cashier-token-7f3a9c", "till-1", "cashier"),
    ("diag-manager-token-b21e44", "boss", "manager"),
];
const PASSWORD: &str = "123456";
const FULL_PAN: &str = "5454545454545454";

fn token_file(dir: &Path) -> (std::path::PathBuf, Vec<String>) {
    use sha2::Digest;
    use std::os::unix::fs::PermissionsExt;
    let mut text = String::from("# sha256 name role\n");
    let mut hashes = Vec::new();
    for (token, name, role) in TOKENS {
        let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
        text.push_str(&format!("{hash} {name} {role}\n"));
        hashes.push(hash);
    }
    let path = dir.join("tokens");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    (path, hashes)
}

/// Run `fiscald diagnose` and unpack the archive: file name (without the top directory)
/// → text.
fn diagnose(config: &Path, out: &Path, log: &Path) -> BTreeMap<String, String> {
    let run = Command::new(BIN)
        .args(["diagnose", "--config"])
        .arg(config)
        .arg("--out")
        .arg(out)
        .arg("--log")
        .arg(log)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the bundle is readable by others");
    }
    let gz = flate2::read::GzDecoder::new(std::fs::File::open(out).unwrap());
    let mut archive = tar::Archive::new(gz);
    let mut files = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().into_owned();
        let mut parts = path.components();
        let top = parts
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .into_owned();
        assert!(top.starts_with("fiscald-diagnose-"), "{}", path.display());
        let name = parts.as_path().display().to_string();
        let mut text = String::new();
        std::io::Read::read_to_string(&mut entry, &mut text).unwrap();
        files.insert(name, text);
    }
    files
}

fn check_no_secrets(files: &BTreeMap<String, String>, hashes: &[String]) {
    for (name, text) in files {
        let lower = text.to_ascii_lowercase();
        for (token, _, _) in TOKENS {
            assert!(!text.contains(token), "{name} holds a token");
        }
        for hash in hashes {
            assert!(!lower.contains(hash.as_str()), "{name} holds a token hash");
        }
        // The serial number `ABC 12345678` holds the password's digits on purpose.
        assert!(
            !text.replace("ABC 12345678", "").contains(PASSWORD),
            "{name} holds the terminal password"
        );
        assert!(
            !text.contains(FULL_PAN),
            "{name} holds the full card number"
        );
        // Digits joined across separators within a stretch without letters, as a reader
        // would read them.
        for stretch in text.split(|c: char| c.is_alphabetic()) {
            let digits: String = stretch.chars().filter(char::is_ascii_digit).collect();
            assert!(
                !digits.contains(FULL_PAN),
                "{name} holds an unmasked card number in {stretch:?}"
            );
        }
    }
}

#[test]
fn the_support_bundle_has_no_secrets_and_no_card_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let printer = Sim::start(dir.path(), &[]);
    let terminal = ZvtSim::start(dir.path(), false);
    let (tokens, hashes) = token_file(dir.path());
    let mut cfg = config_text(dir.path(), &printer.link.display().to_string(), "").replace(
        "[journal]",
        &format!("token_file = \"{}\"\n[journal]", tokens.display()),
    );
    cfg.push_str(&terminal_config(&terminal.port, ""));
    assert!(cfg.contains(&format!("password = \"{PASSWORD}\"")));
    let mut daemon = Daemon::start(dir.path(), &cfg);
    daemon.wait_printer_and_terminal_ready();

    // A non-compliant terminal: it sends the full card number.
    terminal.control("pan clear");
    let (status, sale) = daemon.post(
        "/v1/sales?wait=30",
        &json!({
            "lines": [{"name": "Kawa", "quantity": "1", "unit_price": 1200, "vat": "A"}],
            "payments": [{"method": "card", "amount": 1200}]
        }),
    );
    assert_eq!(status, 200, "{sale}");
    assert_eq!(sale["state"], "done", "{sale}");
    assert_eq!(sale["result"]["payment"]["masked_pan"], "545454******5454");
    // A declined one, for an error in the last jobs; and requests with tokens.
    let (_, declined) = daemon.post(
        "/v1/sales?wait=30",
        &json!({
            "lines": [{"name": "Herbata", "quantity": "1", "unit_price": 851, "vat": "A"}],
            "payments": [{"method": "card", "amount": 851}]
        }),
    );
    assert_eq!(declined["state"], "failed", "{declined}");
    for (token, _, _) in TOKENS {
        let auth = format!("Bearer {token}");
        let (s, _) = request(
            &daemon.socket,
            "GET",
            "/v1/jobs",
            &[("authorization", &auth)],
            None,
        );
        assert_eq!(s, 200);
    }

    // The log handed over, with lines a careless component might have written.
    let log = dir.path().join("support.log");
    let mut text = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap();
    text.push_str(&format!(
        "2026-01-01T00:00:00Z DEBUG request authorization=\"Bearer {}\" card={FULL_PAN}\n\
         2026-01-01T00:00:01Z DEBUG token hash {} password={PASSWORD}\n\
         2026-01-01T00:00:02Z DEBUG fiscald::wire: zvt dir=\"out\" apdu=060006{PASSWORD}ba0985\n",
        TOKENS[0].0, hashes[1]
    ));
    std::fs::write(&log, text).unwrap();

    let files = diagnose(&daemon.config, &dir.path().join("bundle.tar.gz"), &log);
    let names: Vec<&str> = files.keys().map(String::as_str).collect();
    for want in [
        "README.txt",
        "version.txt",
        "config.toml",
        "config-check.txt",
        "token-file.txt",
        "daemon.json",
        "journal-stats.json",
        "jobs.json",
        "card-transactions.json",
        "audit.json",
        "logs.txt",
        "serial-ports.txt",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    check_no_secrets(&files, &hashes);

    assert!(files["version.txt"].contains(env!("CARGO_PKG_VERSION")));
    assert!(files["config.toml"].contains("password = \"<removed>\""));
    assert!(files["config.toml"].contains(&tokens.display().to_string()));
    assert!(files["token-file.txt"].contains("2 token entries"));
    assert!(files["config-check.txt"].starts_with("ok"));
    let daemon_json: Value = serde_json::from_str(&files["daemon.json"]).unwrap();
    assert_eq!(daemon_json["running"], true, "{daemon_json}");
    let devices = daemon_json["/v1/devices"]["body"]["devices"]
        .as_array()
        .unwrap();
    assert_eq!(devices.len(), 2, "{daemon_json}");
    let stats: Value = serde_json::from_str(&files["journal-stats.json"]).unwrap();
    assert!(stats["jobs"].as_i64().unwrap() >= 4, "{stats}");
    let jobs: Value = serde_json::from_str(&files["jobs.json"]).unwrap();
    let failed = jobs
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["id"] == declined["id"])
        .unwrap();
    assert_eq!(failed["state"], "failed");
    assert!(!failed["error"].is_null(), "{failed}");
    assert!(
        jobs.as_array()
            .unwrap()
            .iter()
            .all(|j| j.get("request").is_none()),
        "request bodies are in the bundle"
    );
    let cards: Value = serde_json::from_str(&files["card-transactions.json"]).unwrap();
    assert!(
        cards
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["masked_pan"] == "545454******5454"),
        "{cards}"
    );
    let logs = &files["logs.txt"];
    assert!(logs.contains("545454******5454") && logs.contains("Bearer <removed>"));
    assert!(logs.contains("<token hash removed>") && logs.contains("password=<removed>"));
    assert!(logs.contains("apdu=060006******ba0985"), "{logs}");
    // Structure, not substring: the printer's serial number holds the password's digits
    // and stays as it is (it was `ABC <password removed>78`).
    assert!(logs.contains("ABC 12345678"), "{logs}");
    assert!(!logs.contains("removed>78"), "{logs}");
    assert!(files["daemon.json"].contains("ABC 12345678"));

    // With the daemon stopped, the bundle says so and still has the journal.
    assert_eq!(daemon.terminate(), Some(0));
    let files = diagnose(&daemon.config, &dir.path().join("stopped.tar.gz"), &log);
    check_no_secrets(&files, &hashes);
    let daemon_json: Value = serde_json::from_str(&files["daemon.json"]).unwrap();
    assert_eq!(daemon_json["running"], false, "{daemon_json}");
    assert!(
        daemon_json["note"]
            .as_str()
            .unwrap()
            .contains("not running"),
        "{daemon_json}"
    );
    let stats: Value = serde_json::from_str(&files["journal-stats.json"]).unwrap();
    assert!(stats["jobs"].as_i64().unwrap() >= 4, "{stats}");
}

/// `diagnose --out` never follows a symlink, never reuses a file it did not create (unless
/// `--force` and the file is a regular file of the caller's), and writes through a
/// temporary file in the same directory: the result is 0600 whatever the umask, and a
/// refused run leaves nothing behind.
#[test]
fn diagnose_out_refuses_symlinks_and_existing_files() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fiscald.toml");
    std::fs::write(&config, config_text(dir.path(), "/dev/null-printer", "")).unwrap();
    let run = |out: &Path, extra: &[&str]| {
        Command::new(BIN)
            .args(["diagnose", "--config"])
            .arg(&config)
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };
    let listing = || {
        let mut v: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };

    // A planted symlink to a file the attacker wants overwritten.
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    let link = dir.path().join("bundle-link.tar.gz");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let before = listing();
    for extra in [&[][..], &["--force"][..]] {
        let r = run(&link, extra);
        assert!(!r.status.success(), "a symlink was accepted ({extra:?})");
        assert!(
            String::from_utf8_lossy(&r.stderr).contains("symlink"),
            "{}",
            String::from_utf8_lossy(&r.stderr)
        );
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(listing(), before, "a refused run left a file behind");

    // An existing (world-readable) file: refused without --force.
    let existing = dir.path().join("existing.tar.gz");
    std::fs::write(&existing, "old").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o644)).unwrap();
    let r = run(&existing, &[]);
    assert!(!r.status.success(), "an existing file was reused");
    assert_eq!(std::fs::read_to_string(&existing).unwrap(), "old");
    // With --force it is replaced by a new 0600 file (a new inode, never written through).
    let r = run(&existing, &["--force"]);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let meta = std::fs::metadata(&existing).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(meta.len() > 100);

    // A directory is refused even with --force.
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    assert!(!run(&sub, &["--force"]).status.success());

    // A new path under a permissive umask: still 0600.
    let fresh = dir.path().join("fresh.tar.gz");
    let r = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 000 && exec '{BIN}' diagnose --config '{}' --out '{}'",
            config.display(),
            fresh.display()
        ))
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let mode = std::fs::metadata(&fresh).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "{mode:o}");
    assert!(
        !listing().iter().any(|n| n.ends_with(".tmp")),
        "{:?}",
        listing()
    );
}
