//! A real `nats-server` with JetStream on a loopback port, for the fleet tests.

use super::{free_tcp_port, wait_until};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

/// Debian's `nats-server`, or `None` after printing SKIP for `test`; in CI (`CI=true`)
/// a missing broker fails the test instead.
pub fn nats_server(test: &str) -> Option<PathBuf> {
    for p in ["/usr/sbin/nats-server", "/usr/bin/nats-server"] {
        if Path::new(p).exists() {
            return Some(p.into());
        }
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("nats-server is not installed, and CI=true: .ci/run must install it");
    }
    eprintln!("SKIP {test}: nats-server is not installed (apt-get install nats-server)");
    None
}

/// A JetStream broker on a loopback port, its store in `dir`.
pub struct Broker {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    pub fn start(bin: PathBuf, dir: &Path) -> Broker {
        let mut b = Broker {
            bin,
            dir: dir.join("nats"),
            port: free_tcp_port(),
            child: None,
        };
        b.spawn();
        b
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.with_extension("log"))
            .unwrap();
        let child = Command::new(&self.bin)
            .args([
                "-js",
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        let port = self.port;
        wait_until(Duration::from_secs(20), "nats-server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).ok()
        });
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}
