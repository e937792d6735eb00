//! `fiscald diagnose`: one tar.gz for support with the version, the configuration without
//! its secrets, the devices as the running daemon sees them, queue and job statistics, the
//! last jobs with their errors, and recent logs, with card numbers masked.
//!
//! What never goes in: terminal passwords, the token file's contents (neither tokens nor
//! their hashes), `Authorization` headers, the jobs' request bodies, and full card numbers
//! (every text passes through [`zvt::pan::mask_in_text`]; card transactions are reduced to
//! masked fields).
//!
//! Secrets are removed by structure, never by searching for their values (which once
//! turned a serial number `ABC 12345678` into `ABC <password removed>78`):
//! - the configuration: the value of every key named like a secret (`password`, `secret`,
//!   `token`, `pin`);
//! - the token file: never read into the bundle; its hashes are removed where they stand
//!   as a whole hex word;
//! - log lines: `Bearer <token>`, `key=value` and `"key": "value"` pairs whose key names a
//!   secret, and every ZVT APDU in the wire log format (`apdu=<hex>`) or the trace format,
//!   which is decoded and written again with [`crate::trace::masked_apdu_hex`] (so a
//!   password or card number in a log from an older version is hidden too).
//!
//! The archive is written to a new temporary file next to `--out` (mode 0600), then linked
//! into place: an existing path at `--out` (a file, a symlink, anything) is refused, so a
//! planted symlink or a file someone else prepared is never followed or reused. With
//! `--force` an existing regular file owned by the user running `diagnose` is replaced
//! (by rename, so it is never written through); a symlink or any other kind of file is
//! still refused.

use anyhow::Context;
use clap::Args;
use rusqlite::OpenFlags;
use serde_json::{Map, Value, json};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod out;
mod scrub;

use out::{check_out, create_temp};
use scrub::{Scrub, is_secret_key};

/// `fiscald diagnose`.
#[derive(Args, Debug)]
pub struct DiagnoseArgs {
    /// The daemon's configuration file.
    #[arg(long, env = "FISCALD_CONFIG")]
    pub config: PathBuf,
    /// Where to write the archive (tar.gz).
    #[arg(long)]
    pub out: PathBuf,
    /// A log file to include (its last 2000 lines) instead of `journalctl -u fiscald`.
    #[arg(long)]
    pub log: Option<PathBuf>,
    /// Replace an existing regular file at `--out` that belongs to you (never a symlink).
    #[arg(long)]
    pub force: bool,
}

/// How many of the last jobs (and audit entries, card transactions) go in.
const LAST_JOBS: u32 = 200;
/// How many log lines go in.
const LOG_LINES: usize = 2000;
const REMOVED: &str = "<removed>";

pub fn main(args: DiagnoseArgs) -> ExitCode {
    match run(&args) {
        Ok(files) => {
            println!(
                "wrote {} ({} files); it holds no tokens, no terminal passwords and no full card numbers",
                args.out.display(),
                files
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fiscald diagnose: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Collect everything and write the archive; returns the number of files in it.
pub fn run(args: &DiagnoseArgs) -> anyhow::Result<usize> {
    let collected_at = chrono::Utc::now();
    let mut bundle = Bundle::default();

    // The configuration: parsed as plain TOML so that an invalid file can still be shown,
    // re-serialised without comments (which could hold secrets) and without secret values.
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = crate::config::Config::parse(&text, &args.config);
    match text.parse::<toml::Table>() {
        Ok(mut table) => {
            redact(&mut table);
            let redacted = toml::to_string_pretty(&table).unwrap_or_default();
            bundle.add(
                "config.toml",
                format!(
                    "# {} with secrets removed and comments dropped\n{redacted}",
                    args.config.display()
                ),
            );
        }
        Err(e) => bundle.add(
            "config.toml",
            format!(
                "# {} is not valid TOML ({}); its text is left out because it may hold secrets\n",
                args.config.display(),
                e.message()
            ),
        ),
    }
    bundle.add(
        "config-check.txt",
        match &config {
            Ok(c) => format!(
                "ok: {} printer(s), {} terminal(s)\n",
                c.printers.len(),
                c.terminals.len()
            ),
            Err(e) => format!("invalid: {e}\n"),
        },
    );
    let config = config.ok();

    // The token file: where it is and what it looks like, never what it holds. Its hashes
    // are read only to scrub them from everything else.
    let token_file = config.as_ref().and_then(|c| c.api.token_file.clone());
    bundle.add("token-file.txt", describe_token_file(token_file.as_deref()));
    if let Some(path) = &token_file
        && let Ok(text) = std::fs::read_to_string(path)
    {
        for line in text.lines() {
            if let Some(hash) = line.split_whitespace().next()
                && hash.len() >= 16
                && !hash.starts_with('#')
            {
                bundle.scrub.hashes.push(hash.to_ascii_lowercase());
            }
        }
    }

    bundle.add(
        "version.txt",
        format!(
            "fiscald {}\ncollected at {}\nhost: {}\nkernel: {}\n",
            env!("CARGO_PKG_VERSION"),
            collected_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            read_trimmed("/proc/sys/kernel/hostname"),
            read_trimmed("/proc/sys/kernel/osrelease"),
        ),
    );
    bundle.add("serial-ports.txt", serial_ports());

    // The running daemon, over its socket.
    match &config {
        Some(c) => {
            let answers = ask_daemon(&c.api.socket);
            bundle.add("daemon.json", pretty(&answers));
        }
        None => bundle.add(
            "daemon.json",
            pretty(&json!({"running": null, "note": "the configuration is invalid, so the socket is unknown"})),
        ),
    }

    // The journal, read directly (read-only).
    match &config {
        Some(c) => match read_journal(&c.journal.path) {
            Ok(j) => {
                bundle.add("journal-stats.json", pretty(&j.stats));
                bundle.add("jobs.json", pretty(&j.jobs));
                bundle.add("card-transactions.json", pretty(&j.cards));
                bundle.add("audit.json", pretty(&j.audit));
            }
            Err(e) => bundle.add(
                "journal-stats.json",
                pretty(&json!({"error": format!("cannot read the journal {}: {e:#}", c.journal.path.display())})),
            ),
        },
        None => bundle.add(
            "journal-stats.json",
            pretty(&json!({"error": "the configuration is invalid, so the journal is unknown"})),
        ),
    }

    bundle.add("logs.txt", recent_logs(args.log.as_deref()));
    let names: Vec<String> = bundle.files.iter().map(|(n, _)| n.clone()).collect();
    bundle.add(
        "README.txt",
        format!(
            "fiscald support bundle, collected {}.\n\n\
             Files: {}.\n\n\
             Removed: terminal passwords, the token file's contents (tokens and their hashes),\n\
             Authorization headers, the jobs' request bodies. Card numbers are masked (first 6\n\
             and last 4 digits at most) in every file.\n",
            collected_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            names.join(", ")
        ),
    );
    let dir = format!("fiscald-diagnose-{}", collected_at.format("%Y%m%d-%H%M%S"));
    bundle.write(&args.out, &dir, args.force)?;
    Ok(bundle.files.len())
}

#[derive(Default)]
struct Bundle {
    files: Vec<(String, String)>,
    scrub: Scrub,
}

impl Bundle {
    fn add(&mut self, name: &str, text: String) {
        self.files.push((name.to_string(), text));
    }

    /// Write the tar.gz (mode 0600): every file goes through the scrubber on the way in.
    /// See the module doc for how `out` is created.
    fn write(&self, out: &Path, dir: &str, force: bool) -> anyhow::Result<()> {
        let existing = check_out(out, force)?;
        let parent = out
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let (file, tmp) = create_temp(parent, out)?;
        let result = (|| {
            let gz = flate2::write::GzEncoder::new(&file, flate2::Compression::default());
            let mut tar = tar::Builder::new(gz);
            let mtime = chrono::Utc::now().timestamp().max(0) as u64;
            for (name, text) in &self.files {
                let data = self.scrub.apply(text);
                let mut header = tar::Header::new_gnu();
                header.set_size(data.len() as u64);
                header.set_mode(0o600);
                header.set_mtime(mtime);
                header.set_cksum();
                tar.append_data(&mut header, format!("{dir}/{name}"), data.as_bytes())?;
            }
            tar.into_inner()?.finish()?;
            file.sync_all()?;
            if existing {
                // Replaces the directory entry; never writes through it.
                std::fs::rename(&tmp, out)
            } else {
                // Fails if anything appeared at `out` meanwhile.
                std::fs::hard_link(&tmp, out).and_then(|()| std::fs::remove_file(&tmp))
            }
            .with_context(|| format!("cannot create {}", out.display()))?;
            std::fs::File::open(parent)?.sync_all()?;
            anyhow::Ok(())
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default() + "\n"
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

fn redact(table: &mut toml::Table) {
    for (k, v) in table.iter_mut() {
        if is_secret_key(k) {
            *v = toml::Value::String(REMOVED.into());
            continue;
        }
        match v {
            toml::Value::Table(t) => redact(t),
            toml::Value::Array(a) => {
                for item in a {
                    if let toml::Value::Table(t) = item {
                        redact(t);
                    }
                }
            }
            _ => {}
        }
    }
}

fn describe_token_file(path: Option<&Path>) -> String {
    let Some(path) = path else {
        return "no token_file configured\n".into();
    };
    let mut s = format!(
        "token_file = {}\n(its contents are never included)\n",
        path.display()
    );
    match std::fs::metadata(path) {
        Ok(meta) => {
            use std::os::unix::fs::{MetadataExt, PermissionsExt};
            let mode = meta.permissions().mode() & 0o777;
            s.push_str(&format!(
                "mode {mode:04o}, owner uid {}, gid {}, {} bytes{}\n",
                meta.uid(),
                meta.gid(),
                meta.len(),
                if mode & 0o007 != 0 {
                    " - readable by others: the daemon refuses to start"
                } else {
                    ""
                }
            ));
            if let Ok(text) = std::fs::read_to_string(path) {
                let entries = text
                    .lines()
                    .filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
                    .count();
                s.push_str(&format!("{entries} token entries\n"));
            }
        }
        Err(e) => s.push_str(&format!("cannot stat: {e}\n")),
    }
    s
}

fn serial_ports() -> String {
    let mut s = String::new();
    for dir in ["/dev/serial/by-id", "/dev/serial/by-path"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let target = std::fs::read_link(e.path())
                    .map(|t| t.display().to_string())
                    .unwrap_or_default();
                s.push_str(&format!("{} -> {target}\n", e.path().display()));
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir("/dev") {
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n.starts_with("ttyUSB") || n.starts_with("ttyACM") || n.starts_with("fiscal")
            })
            .collect();
        names.sort();
        for n in names {
            s.push_str(&format!("/dev/{n}\n"));
        }
    }
    if s.is_empty() {
        s.push_str("no USB serial ports found\n");
    }
    s
}

/// `/v1/health` and `/v1/devices` from the daemon, or why it could not be asked.
fn ask_daemon(socket: &Path) -> Value {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return json!({"running": null, "error": e.to_string()}),
    };
    let mut out = Map::new();
    out.insert("socket".into(), json!(socket.display().to_string()));
    for path in ["/v1/health", "/v1/devices"] {
        match rt.block_on(get(socket, path)) {
            Ok((status, body)) => {
                out.insert("running".into(), json!(true));
                let body = serde_json::from_str::<Value>(&body).unwrap_or(Value::String(body));
                out.insert(path.into(), json!({"status": status, "body": body}));
            }
            Err(e) => {
                out.insert("running".into(), json!(false));
                out.insert(
                    "note".into(),
                    json!(format!(
                        "the daemon was not running or not reachable: {e:#}"
                    )),
                );
                break;
            }
        }
    }
    Value::Object(out)
}

async fn get(socket: &Path, path: &str) -> anyhow::Result<(u16, String)> {
    use http_body_util::{BodyExt, Empty};
    let fut = async {
        let stream = tokio::net::UnixStream::connect(socket)
            .await
            .with_context(|| format!("cannot connect to {}", socket.display()))?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
        tokio::spawn(conn);
        let req = hyper::Request::get(format!("http://localhost{path}"))
            .body(Empty::<bytes::Bytes>::new())?;
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await?.to_bytes();
        anyhow::Ok((status, String::from_utf8_lossy(&body).into_owned()))
    };
    tokio::time::timeout(Duration::from_secs(5), fut)
        .await
        .context("no answer within 5 s")?
}

struct JournalDump {
    stats: Value,
    jobs: Value,
    cards: Value,
    audit: Value,
}

fn read_journal(path: &Path) -> anyhow::Result<JournalDump> {
    if !path.exists() {
        anyhow::bail!("it does not exist");
    }
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let count_rows = |sql: &str| -> anyhow::Result<Value> {
        let mut stmt = conn.prepare(sql)?;
        let rows = stmt.query_map([], |r| {
            Ok(json!({
                "kind": r.get::<_, String>(0)?,
                "state": r.get::<_, String>(1)?,
                "count": r.get::<_, i64>(2)?,
            }))
        })?;
        Ok(Value::Array(rows.collect::<Result<_, _>>()?))
    };
    let by_kind_state = count_rows(
        "SELECT kind, state, COUNT(*) FROM jobs GROUP BY kind, state ORDER BY kind, state",
    )?;
    let mut stmt = conn.prepare(
        "SELECT device, COUNT(*), MIN(created_at) FROM jobs WHERE state IN ('queued', 'running')
         GROUP BY device ORDER BY device",
    )?;
    let queues: Vec<Value> = stmt
        .query_map([], |r| {
            Ok(json!({
                "device": r.get::<_, String>(0)?,
                "queued_or_running": r.get::<_, i64>(1)?,
                "oldest": r.get::<_, Option<String>>(2)?,
            }))
        })?
        .collect::<Result<_, _>>()?;
    let total: i64 = conn.query_row("SELECT COUNT(*) FROM jobs", [], |r| r.get(0))?;
    let stats = json!({
        "journal": path.display().to_string(),
        "jobs": total,
        "by_kind_and_state": by_kind_state,
        "queues": queues,
    });

    let mut stmt = conn.prepare(
        "SELECT id, kind, device, state, step, error, result, parent_id, attempts, idempotency_key,
                created_at, updated_at
         FROM jobs ORDER BY id DESC LIMIT ?1",
    )?;
    let mut jobs: Vec<Value> = stmt
        .query_map([LAST_JOBS], |r| {
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "kind": r.get::<_, String>(1)?,
                "device": r.get::<_, String>(2)?,
                "state": r.get::<_, String>(3)?,
                "step": r.get::<_, Option<String>>(4)?,
                "error": json_or_text(r.get::<_, Option<String>>(5)?),
                "result": json_or_text(r.get::<_, Option<String>>(6)?),
                "parent_id": r.get::<_, Option<i64>>(7)?,
                "attempts": r.get::<_, i64>(8)?,
                "idempotency_key": r.get::<_, Option<String>>(9)?,
                "created_at": r.get::<_, String>(10)?,
                "updated_at": r.get::<_, String>(11)?,
            }))
        })?
        .collect::<Result<_, _>>()?;
    let mut events = conn.prepare(
        "SELECT at, step, detail FROM job_events WHERE job_id = ?1 ORDER BY rowid LIMIT 100",
    )?;
    for job in &mut jobs {
        let id = job["id"].as_i64().unwrap_or(0);
        let list: Vec<Value> = events
            .query_map([id], |r| {
                Ok(json!({
                    "at": r.get::<_, String>(0)?,
                    "step": r.get::<_, String>(1)?,
                    "detail": r.get::<_, Option<String>>(2)?,
                }))
            })?
            .collect::<Result<_, _>>()?;
        job["events"] = Value::Array(list);
    }

    // Card transactions: only the masked fields of the terminal's result.
    let mut stmt = conn.prepare(
        "SELECT terminal, trace_number, receipt_number, job_id, result, at
         FROM card_transactions ORDER BY at DESC LIMIT ?1",
    )?;
    let cards: Vec<Value> = stmt
        .query_map([LAST_JOBS], |r| {
            let result: Value = serde_json::from_str(&r.get::<_, String>(4)?).unwrap_or_default();
            let pan = result["masked_pan"].as_str().map(zvt::pan::mask);
            Ok(json!({
                "terminal": r.get::<_, String>(0)?,
                "trace_number": r.get::<_, i64>(1)?,
                "receipt_number": r.get::<_, Option<i64>>(2)?,
                "job_id": r.get::<_, Option<i64>>(3)?,
                "at": r.get::<_, String>(5)?,
                "result_code": result["result_code"],
                "amount": result["amount"],
                "currency": result["currency"],
                "masked_pan": pan,
                "card_name": result["card_name"],
            }))
        })?
        .collect::<Result<_, _>>()?;

    let mut stmt = conn.prepare(
        "SELECT id, at, principal, role, operation, job_id, outcome, detail
         FROM audit ORDER BY id DESC LIMIT ?1",
    )?;
    let audit: Vec<Value> = stmt
        .query_map([LAST_JOBS], |r| {
            Ok(json!({
                "id": r.get::<_, i64>(0)?,
                "at": r.get::<_, String>(1)?,
                "principal": r.get::<_, String>(2)?,
                "role": r.get::<_, Option<String>>(3)?,
                "operation": r.get::<_, String>(4)?,
                "job_id": r.get::<_, Option<i64>>(5)?,
                "outcome": r.get::<_, String>(6)?,
                "detail": r.get::<_, Option<String>>(7)?,
            }))
        })?
        .collect::<Result<_, _>>()?;

    Ok(JournalDump {
        stats,
        jobs: Value::Array(jobs),
        cards: Value::Array(cards),
        audit: Value::Array(audit),
    })
}

fn json_or_text(s: Option<String>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
    }
}

/// The last [`LOG_LINES`] lines of `--log FILE`, else of `journalctl -u fiscald`.
fn recent_logs(log: Option<&Path>) -> String {
    if let Some(path) = log {
        return match std::fs::read(path) {
            Ok(bytes) => {
                let text = String::from_utf8_lossy(&bytes);
                let lines: Vec<&str> = text.lines().collect();
                let from = lines.len().saturating_sub(LOG_LINES);
                format!(
                    "# the last {} lines of {}\n{}\n",
                    lines.len() - from,
                    path.display(),
                    lines[from..].join("\n")
                )
            }
            Err(e) => format!("# cannot read {}: {e}\n", path.display()),
        };
    }
    let out = std::process::Command::new("journalctl")
        .args(["-u", "fiscald", "-n", &LOG_LINES.to_string(), "--no-pager"])
        .output();
    match out {
        Ok(o) if o.status.success() => format!(
            "# journalctl -u fiscald -n {LOG_LINES} --no-pager\n{}",
            String::from_utf8_lossy(&o.stdout)
        ),
        Ok(o) => format!(
            "# journalctl failed ({}): {}\n# give the log with --log FILE\n",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => format!("# journalctl is not available ({e}); give the log with --log FILE\n"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_removed_from_the_configuration() {
        let mut t: toml::Table = r#"
            [api]
            token_file = "/etc/fiscald/tokens"
            [[terminal]]
            id = "t1"
            password = "123456"
        "#
        .parse()
        .unwrap();
        redact(&mut t);
        let s = toml::to_string(&t).unwrap();
        assert!(!s.contains("123456"), "{s}");
        assert!(s.contains("/etc/fiscald/tokens"), "{s}");
    }
}
