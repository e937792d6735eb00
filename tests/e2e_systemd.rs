//! systemd conventions without systemd: the daemon under `systemd-socket-activate` takes
//! its API socket from LISTEN_FDS, notifies readiness, watchdog pings and stopping on a
//! test `NOTIFY_SOCKET`; and the shipped production configuration is valid.

mod common;

use common::{BIN, Sim, config_text, request, wait_until};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ACTIVATE: &str = "/usr/bin/systemd-socket-activate";

/// Read notification datagrams until one contains `want` (each datagram is kept).
fn wait_for(notify: &UnixDatagram, want: &str, timeout: Duration, seen: &mut Vec<String>) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let mut buf = [0u8; 4096];
        match notify.recv(&mut buf) {
            Ok(n) => {
                let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
                let found = msg.lines().any(|l| l == want);
                seen.push(msg);
                if found {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("notify socket: {e}"),
        }
    }
    panic!("no {want} within {timeout:?}; received {seen:?}");
}

fn daemon_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}

#[test]
fn socket_activation_and_readiness_notification() {
    if !Path::new(ACTIVATE).exists() {
        eprintln!(
            "SKIPPED socket_activation_and_readiness_notification: {ACTIVATE} is not installed \
             (Debian package systemd)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let config = dir.path().join("fiscald.toml");
    std::fs::write(
        &config,
        config_text(dir.path(), &sim.link.display().to_string(), ""),
    )
    .unwrap();
    let configured = dir.path().join("api.sock");
    let activated = dir.path().join("act.sock");
    let notify_path = dir.path().join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();

    let log = std::fs::File::create(dir.path().join("daemon.log")).unwrap();
    let mut child = Command::new(ACTIVATE)
        .arg("-l")
        .arg(&activated)
        .arg("-E")
        .arg(format!("NOTIFY_SOCKET={}", notify_path.display()))
        .args(["-E", "WATCHDOG_USEC=1000000", "-E", "FISCALD_LOG=debug"])
        .arg(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .expect("start systemd-socket-activate");
    wait_until(Duration::from_secs(10), "the activation socket", || {
        activated.exists().then_some(())
    });

    // The first request starts the daemon, which must answer it on the inherited socket.
    let (status, health) = request(&activated, "GET", "/v1/health", &[], None);
    assert_eq!(status, 200, "{health}\n{}", daemon_log(dir.path()));

    let mut seen = Vec::new();
    wait_for(&notify, "READY=1", Duration::from_secs(30), &mut seen);
    let ready = seen.last().unwrap().clone();
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=") && l.contains("fp1")),
        "READY=1 without a STATUS naming the printer: {ready:?}"
    );
    println!("readiness: {ready:?}");
    // The devices were tried before READY=1: the printer has left "not connected yet".
    let (_, devices) = request(&activated, "GET", "/v1/devices", &[], None);
    assert_ne!(
        devices["devices"][0]["last_error"], "not connected yet",
        "{devices}"
    );
    // WATCHDOG_USEC=1 s: pings every half second.
    let before = seen.len();
    wait_for(&notify, "WATCHDOG=1", Duration::from_secs(3), &mut seen);
    wait_for(&notify, "WATCHDOG=1", Duration::from_secs(3), &mut seen);
    assert!(seen.len() >= before + 2);

    let log = daemon_log(dir.path());
    assert!(log.contains("LISTEN_FDS"), "{log}");
    assert!(
        !configured.exists(),
        "the configured socket path was created under socket activation"
    );

    // SIGTERM: STOPPING=1, a clean exit, and the activated socket is left in place.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    wait_for(&notify, "STOPPING=1", Duration::from_secs(10), &mut seen);
    let code = wait_until(Duration::from_secs(20), "the daemon to exit", || {
        child.try_wait().unwrap().map(|s| s.code())
    });
    assert_eq!(code, Some(0), "{}", daemon_log(dir.path()));
    assert!(
        activated.exists(),
        "the daemon removed the socket systemd owns"
    );
    assert!(!configured.exists());
}

#[test]
fn without_notify_socket_the_daemon_runs_as_before() {
    // No NOTIFY_SOCKET and no LISTEN_FDS: the configured socket is bound, and removed on exit.
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let mut d = common::Daemon::start(
        dir.path(),
        &config_text(dir.path(), &sim.link.display().to_string(), ""),
    );
    d.wait_ready();
    assert!(d.socket.exists());
    assert_eq!(d.terminate(), Some(0));
    assert!(!d.socket.exists());
}

fn repo_file(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(name)
}

#[test]
fn the_production_configuration_is_valid() {
    let path = repo_file("config/fiscald.toml");
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every commented-out option is a real key with a valid example value: uncomment them
    // all (sim_state needs port = "sim", so it stays out) and check again.
    let text = std::fs::read_to_string(&path).unwrap();
    let mut uncommented = 0;
    let all: String = text
        .lines()
        .map(|l| {
            let Some(rest) = l.strip_prefix("# ") else {
                return l.to_string();
            };
            let key = rest.split(" = ").next().unwrap_or("");
            let is_option = rest.contains(" = ")
                && !key.is_empty()
                && key.chars().all(|c| c.is_ascii_lowercase() || c == '_');
            if (is_option && key != "sim_state") || rest == "[[terminal]]" {
                uncommented += 1;
                rest.to_string()
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert!(uncommented >= 19, "only {uncommented} commented options");
    let dir = tempfile::tempdir().unwrap();
    let all_path = dir.path().join("all.toml");
    std::fs::write(&all_path, &all).unwrap();
    let config = fiscald::config::Config::load(&all_path).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.terminals.len(), 1);
    assert!(config.api.listen.is_some() && config.api.token_file.is_some());

    // The socket unit listens where the configuration says.
    let config = fiscald::config::Config::load(&path).unwrap();
    let socket_unit = std::fs::read_to_string(repo_file("config/fiscald.socket")).unwrap();
    assert!(
        socket_unit
            .lines()
            .any(|l| l == format!("ListenStream={}", config.api.socket.display())),
        "fiscald.socket and [api] socket disagree"
    );
    assert!(socket_unit.contains("SocketMode=0660"));
    let service = std::fs::read_to_string(repo_file("config/fiscald.service")).unwrap();
    for want in [
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "RuntimeDirectory=fiscald",
        "StateDirectory=fiscald",
        "SupplementaryGroups=dialout",
    ] {
        assert!(service.contains(want), "fiscald.service lacks {want}");
    }
    assert!(
        config.journal.path.starts_with("/var/lib/fiscald"),
        "the journal is outside StateDirectory"
    );
}
