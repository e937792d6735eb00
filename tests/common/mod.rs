//! End-to-end test harness: the real `fiscald` binary, the emulator in its own process
//! on a real pseudo-terminal, and an HTTP client on the daemon's Unix socket.
#![allow(dead_code)]

pub mod browser;
pub mod kill_stream;
pub mod nats;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_fiscald");

/// Poll `f` until it returns Some or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_file(dir: &Path, name: &str) -> Stdio {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(name))
        .expect("log file");
    Stdio::from(f)
}

/// The POSNET emulator as its own process.
pub struct Sim {
    pub dir: PathBuf,
    pub link: PathBuf,
    pub state: PathBuf,
    child: Option<Child>,
    args: Vec<String>,
    /// The emulator: `posnet` (`fiscald sim posnet`) or `thermal`.
    family: &'static str,
}

impl Sim {
    pub fn start(dir: &Path, extra: &[&str]) -> Sim {
        Sim::start_family(dir, "posnet", extra)
    }

    /// An emulator of another printer family (`fiscald sim <family>`).
    pub fn start_family(dir: &Path, family: &'static str, extra: &[&str]) -> Sim {
        let mut sim = Sim {
            dir: dir.to_path_buf(),
            link: dir.join("printer.tty"),
            state: dir.join("printer.json"),
            child: None,
            args: extra.iter().map(|s| s.to_string()).collect(),
            family,
        };
        sim.spawn();
        sim
    }

    fn spawn(&mut self) {
        let _ = std::fs::remove_file(&self.link);
        let child = Command::new(BIN)
            .args(["sim", self.family, "--link"])
            .arg(&self.link)
            .arg("--state")
            .arg(&self.state)
            .args(&self.args)
            .env("FISCALD_LOG", "debug")
            .stdout(log_file(&self.dir, "sim.log"))
            .stderr(log_file(&self.dir, "sim.log"))
            .spawn()
            .expect("start the emulator");
        self.child = Some(child);
        let link = self.link.clone();
        wait_until(
            Duration::from_secs(10),
            "the emulator's device link",
            || std::fs::symlink_metadata(&link).ok(),
        );
    }

    pub fn control_path(&self) -> PathBuf {
        let mut p = self.link.clone().into_os_string();
        p.push(".ctl");
        p.into()
    }

    /// Send a control command; panics unless the emulator answers `ok`.
    pub fn control(&self, cmd: &str) -> String {
        let answer =
            fiscald::sim::posnet::send_control(&self.control_path(), cmd).expect("control socket");
        assert!(
            answer.starts_with("ok"),
            "emulator refused {cmd:?}: {answer}"
        );
        answer
    }

    /// The emulator's fiscal memory file.
    pub fn memory(&self) -> Value {
        let text = std::fs::read_to_string(&self.state).expect("state file");
        serde_json::from_str(&text).expect("state JSON")
    }

    pub fn receipts(&self) -> Vec<Value> {
        self.list("receipts")
    }

    /// A list in the emulator's memory file (`receipts`, `invoices`, `copies`, ...).
    pub fn list(&self, name: &str) -> Vec<Value> {
        self.memory()[name].as_array().cloned().unwrap_or_default()
    }

    /// Stop the emulator, let `edit` change its memory file, and start it again on the same
    /// link (a printer whose memory changed while the daemon runs).
    pub fn restart_with(&mut self, edit: impl FnOnce(&mut Value)) {
        stop_child(self.child.take());
        let mut memory = self.memory();
        edit(&mut memory);
        std::fs::write(&self.state, memory.to_string()).expect("write the memory file");
        self.spawn();
    }
}

/// SIGTERM a child process, wait up to 3 s, then SIGKILL it.
fn stop_child(child: Option<Child>) {
    if let Some(mut c) = child {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        stop_child(self.child.take());
    }
}

/// The daemon as its own process.
pub struct Daemon {
    pub dir: PathBuf,
    pub socket: PathBuf,
    pub config: PathBuf,
    /// The daemon's open-file limit (RLIMIT_NOFILE), when a test sets one.
    pub nofile: Option<u64>,
    child: Option<Child>,
}

/// A configuration for one printer on `port`, with short timeouts for tests. The socket
/// has the manager role, so tests can run every operation on it (the line numbers of the
/// printer's keys are unchanged: tests check them in error messages).
pub fn config_text(dir: &Path, port: &str, extra_printer: &str) -> String {
    format!(
        r#"[api]
socket = "{sock}"
socket_role = "manager"
[journal]
path = "{journal}"

[[printer]]
id = "fp1"
protocol = "posnet"
port = "{port}"
baud = 115200
command_timeout = 1.5
paper_wait = 60
{extra_printer}
"#,
        sock = dir.join("api.sock").display(),
        journal = dir.join("journal.db").display(),
    )
}

impl Daemon {
    pub fn start(dir: &Path, config: &str) -> Daemon {
        let path = dir.join("fiscald.toml");
        std::fs::write(&path, config).expect("write config");
        let mut d = Daemon {
            dir: dir.to_path_buf(),
            socket: dir.join("api.sock"),
            config: path,
            nofile: None,
            child: None,
        };
        d.spawn();
        d
    }

    /// Like [`Daemon::start`], with at most `nofile` open files, as on a till with the
    /// default limit of 1,024.
    pub fn start_with_nofile(dir: &Path, config: &str, nofile: u64) -> Daemon {
        let path = dir.join("fiscald.toml");
        std::fs::write(&path, config).expect("write config");
        let mut d = Daemon {
            dir: dir.to_path_buf(),
            socket: dir.join("api.sock"),
            config: path,
            nofile: Some(nofile),
            child: None,
        };
        d.spawn();
        d
    }

    pub fn spawn(&mut self) {
        let mut command = Command::new(BIN);
        if let Some(limit) = self.nofile {
            use std::os::unix::process::CommandExt;
            // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
            unsafe {
                command.pre_exec(move || {
                    let l = libc::rlimit {
                        rlim_cur: limit,
                        rlim_max: limit,
                    };
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &l) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command
            .args(["serve", "--config"])
            .arg(&self.config)
            .env("FISCALD_LOG", "debug")
            .stdout(log_file(&self.dir, "daemon.log"))
            .stderr(log_file(&self.dir, "daemon.log"))
            .spawn()
            .expect("start the daemon");
        self.child = Some(child);
        let sock = self.socket.clone();
        wait_until(Duration::from_secs(20), "the API socket", || {
            std::os::unix::net::UnixStream::connect(&sock).ok()
        });
    }

    /// Wait until the printer is identified and ready.
    pub fn wait_ready(&self) {
        wait_until(Duration::from_secs(20), "the printer to be ready", || {
            let (_, v) = self.get("/v1/devices");
            (v["devices"][0]["state"] == "ready").then_some(())
        });
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait; returns the exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(c.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = c.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        None
    }

    pub fn get(&self, path: &str) -> (u16, Value) {
        request(&self.socket, "GET", path, &[], None)
    }

    pub fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        request(
            &self.socket,
            "POST",
            path,
            &[("content-type", "application/json")],
            Some(body.to_string().into_bytes()),
        )
    }

    pub fn post_with(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Value) {
        request(&self.socket, "POST", path, headers, Some(body.to_vec()))
    }

    /// POST a JSON body with an `Idempotency-Key`.
    pub fn post_keyed(&self, path: &str, key: &str, body: &Value) -> (u16, Value) {
        let headers = [
            ("content-type", "application/json"),
            ("idempotency-key", key),
        ];
        self.post_with(path, &headers, body.to_string().as_bytes())
    }

    /// Wait until the printer and the (first) card terminal are ready.
    pub fn wait_printer_and_terminal_ready(&self) {
        self.wait_ready();
        wait_until(Duration::from_secs(20), "the terminal to be ready", || {
            let (_, v) = self.get("/v1/devices");
            let ready = v["devices"]
                .as_array()?
                .iter()
                .any(|d| d["kind"] == "payment_terminal" && d["state"] == "ready");
            ready.then_some(())
        });
    }

    /// Poll a job until it reaches a terminal state.
    pub fn wait_job(&self, id: i64, timeout: Duration) -> Value {
        wait_until(timeout, &format!("job {id} to end"), || {
            let (_, job) = self.get(&format!("/v1/jobs/{id}?wait=5"));
            let s = job["state"].as_str().unwrap_or("");
            (!matches!(s, "queued" | "running" | "")).then_some(job)
        })
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.terminate();
        }
        if std::thread::panicking() {
            for log in ["daemon.log", "sim.log"] {
                if let Ok(text) = std::fs::read_to_string(self.dir.join(log)) {
                    let tail: Vec<&str> = text.lines().rev().take(60).collect();
                    eprintln!("---- last lines of {log} ----");
                    for l in tail.iter().rev() {
                        eprintln!("{l}");
                    }
                }
            }
        }
    }
}

/// One HTTP/1.1 request on loopback TCP.
pub fn request_tcp(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Value) {
    request_tcp_with(addr, method, path, headers, None)
}

/// One HTTP/1.1 request on a Unix socket, with hyper's client.
pub fn request(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    one_request(Client::connect(socket), method, path, headers, body)
}

/// Connect with `connect`, send one request and read its answer, on a runtime of its own.
fn one_request(
    connect: impl std::future::Future<Output = std::io::Result<Client>>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut client = connect.await.expect("connect to the API");
        client
            .send(method, path, headers, body)
            .await
            .expect("response")
    })
}

/// A keep-alive HTTP/1.1 connection to the API socket.
pub struct Client {
    sender: hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>>,
}

impl Client {
    pub async fn connect(socket: &Path) -> std::io::Result<Client> {
        let stream = tokio::net::UnixStream::connect(socket).await?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(Client { sender })
    }

    pub async fn connect_tcp(addr: std::net::SocketAddr) -> std::io::Result<Client> {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Ok(Client { sender })
    }

    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> std::io::Result<(u16, Value)> {
        use http_body_util::{BodyExt, Full};
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(format!("http://localhost{path}"));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(bytes::Bytes::from(body.unwrap_or_default())))
            .map_err(std::io::Error::other)?;
        let resp = tokio::time::timeout(Duration::from_secs(90), self.sender.send_request(req))
            .await
            .map_err(std::io::Error::other)?
            .map_err(std::io::Error::other)?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(std::io::Error::other)?
            .to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Ok((status, value))
    }
}

/// The ZVT terminal emulator as its own process, on TCP or on a serial PTY.
pub struct ZvtSim {
    pub dir: PathBuf,
    pub state: PathBuf,
    pub control: PathBuf,
    /// `tcp://127.0.0.1:PORT` or the PTY link path: what a `[[terminal]] port` points at.
    pub port: String,
    child: Option<Child>,
}

impl ZvtSim {
    /// Start on loopback TCP (`serial = false`) or on a PTY link (`serial = true`).
    pub fn start(dir: &Path, serial: bool) -> ZvtSim {
        Self::start_with(dir, serial, &[])
    }

    /// [`ZvtSim::start`] with extra emulator arguments (e.g. `--baud`).
    pub fn start_with(dir: &Path, serial: bool, extra: &[&str]) -> ZvtSim {
        Self::start_protocol(dir, "zvt", serial, extra)
    }

    /// [`ZvtSim::start_with`] for the emulator of `protocol` (`zvt` or `ecr-eft`): both
    /// take the same options and keep the same state-file shape.
    pub fn start_protocol(dir: &Path, protocol: &str, serial: bool, extra: &[&str]) -> ZvtSim {
        let state = dir.join("terminal.json");
        let control = dir.join("terminal.ctl");
        let mut cmd = Command::new(BIN);
        cmd.args(["sim", protocol, "--state"])
            .arg(&state)
            .arg("--control")
            .arg(&control);
        let port = if serial {
            let link = dir.join("terminal.tty");
            let _ = std::fs::remove_file(&link);
            cmd.arg("--link").arg(&link);
            link.display().to_string()
        } else {
            let p = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            cmd.args(["--listen", &format!("127.0.0.1:{p}")]);
            format!("tcp://127.0.0.1:{p}")
        };
        let child = cmd
            .args(extra)
            .env("FISCALD_LOG", "debug")
            .stdout(log_file(dir, "zvt-sim.log"))
            .stderr(log_file(dir, "zvt-sim.log"))
            .spawn()
            .expect("start the terminal emulator");
        let ctl = control.clone();
        wait_until(
            Duration::from_secs(10),
            "the terminal emulator's control socket",
            || std::os::unix::net::UnixStream::connect(&ctl).ok(),
        );
        // The control socket comes up before the line: wait for the device link or listener.
        let p = port.clone();
        wait_until(
            Duration::from_secs(10),
            "the terminal emulator's port",
            || match p.strip_prefix("tcp://") {
                Some(addr) => std::net::TcpStream::connect(addr).ok().map(drop),
                None => std::fs::symlink_metadata(&p).ok().map(drop),
            },
        );
        ZvtSim {
            dir: dir.to_path_buf(),
            state,
            control,
            port,
            child: Some(child),
        }
    }

    /// The terminal's memory file.
    pub fn memory(&self) -> Value {
        std::fs::read_to_string(&self.state)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null)
    }

    pub fn transactions(&self) -> Vec<Value> {
        self.memory()["transactions"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Send a control command; panics unless the emulator answers `ok`.
    pub fn control(&self, cmd: &str) -> String {
        let answer =
            fiscald::sim::posnet::send_control(&self.control, cmd).expect("control socket");
        assert!(
            answer.starts_with("ok"),
            "terminal emulator refused {cmd:?}: {answer}"
        );
        answer
    }
}

impl Drop for ZvtSim {
    fn drop(&mut self) {
        stop_child(self.child.take());
    }
}

/// A `[[terminal]]` table for `port`, with short timeouts for tests.
pub fn terminal_config(port: &str, extra: &str) -> String {
    format!(
        "\n[[terminal]]\nid = \"t1\"\nprotocol = \"zvt\"\nport = \"{port}\"\npassword = \"123456\"\ncommand_timeout = 3\ntransaction_timeout = 4\n{extra}\n"
    )
}

/// Write a 0600 token file in `dir` with `(token, name, role)` lines; returns its path.
pub fn write_token_file(dir: &Path, tokens: &[(&str, &str, &str)]) -> PathBuf {
    use sha2::Digest;
    use std::os::unix::fs::PermissionsExt;
    let mut text = String::new();
    for (token, name, role) in tokens {
        let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
        text.push_str(&format!("{hash} {name} {role}\n"));
    }
    let path = dir.join("tokens");
    std::fs::write(&path, text).expect("write the token file");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .expect("chmod the token file");
    path
}

/// A loopback TCP port that was free a moment ago.
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One HTTP/1.1 request with a body on loopback TCP.
pub fn request_tcp_with(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Vec<u8>>,
) -> (u16, Value) {
    one_request(Client::connect_tcp(addr), method, path, headers, body)
}

/// One HTTP/1.1 request on loopback TCP; the status, the response headers (names
/// lowercased) and the body as text.
pub fn request_tcp_raw(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    use http_body_util::{BodyExt, Full};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .expect("connect to the API port");
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .expect("handshake");
        tokio::spawn(conn);
        let mut req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(Full::new(bytes::Bytes::from(body.to_vec())))
            .expect("request");
        let resp = sender.send_request(req).await.expect("response");
        let status = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        (status, headers, String::from_utf8_lossy(&body).into_owned())
    })
}

/// A loopback TCP port that is free now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Write a 0600 token file in `dir` with `(token, name, role)` lines; returns its path.
pub fn token_file(dir: &Path, tokens: &[(&str, &str, &str)]) -> PathBuf {
    use sha2::Digest;
    use std::os::unix::fs::PermissionsExt;
    let mut text = String::from("# sha256 name role\n");
    for (token, name, role) in tokens {
        let hash = hex::encode(sha2::Sha256::digest(token.as_bytes()));
        text.push_str(&format!("{hash} {name} {role}\n"));
    }
    let path = dir.join("tokens");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// A POSNET emulator in its own process and a daemon printing on it, ready; the emulator has
/// no faults.
pub fn printer_daemon() -> (tempfile::TempDir, Sim, Daemon) {
    let dir = tempfile::tempdir().expect("tempdir");
    let sim = Sim::start(dir.path(), &[]);
    let daemon = Daemon::start(
        dir.path(),
        &config_text(dir.path(), &sim.link.display().to_string(), ""),
    );
    daemon.wait_ready();
    (dir, sim, daemon)
}
