//! End to end: access levels. Roles over TCP and on the Unix socket, job ownership, 401 and
//! 403 with the error body, the audit log, and the modes of the files the daemon creates.

mod common;

use common::{Daemon, Sim, config_text};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

const TOKENS: &[(&str, &str, &str)] = &[
    ("cashier-secret-1", "pos-1", "cashier"),
    ("cashier-secret-2", "pos-2", ""),
    ("manager-secret", "boss", "manager"),
    ("technician-secret", "tech", "technician"),
];

/// A configuration with the token file, an optional TCP listener and `socket_role`
/// (None: the default).
fn config(dir: &Path, sim: &Sim, listen: Option<u16>, socket_role: Option<&str>) -> String {
    let tokens = common::token_file(dir, TOKENS);
    let mut api = format!("token_file = \"{}\"\n", tokens.display());
    if let Some(port) = listen {
        api.push_str(&format!("listen = \"127.0.0.1:{port}\"\n"));
    }
    if let Some(role) = socket_role {
        api.push_str(&format!("socket_role = \"{role}\"\n"));
    }
    config_text(dir, &sim.link.display().to_string(), "")
        .replace("socket_role = \"manager\"\n", "")
        .replace("[journal]", &format!("{api}\n[journal]"))
}

/// One request on TCP or the socket, with an optional bearer token and JSON body.
fn call(
    to: &Target,
    token: Option<&str>,
    method: &str,
    path: &str,
    body: Option<Value>,
    key: Option<&str>,
) -> (u16, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers: Vec<(&str, &str)> = Vec::new();
    if let Some(a) = &auth {
        headers.push(("authorization", a));
    }
    if body.is_some() || method == "POST" {
        headers.push(("content-type", "application/json"));
    }
    if let Some(k) = key {
        headers.push(("idempotency-key", k));
    }
    let body = body.map(|b| b.to_string().into_bytes());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut client = match to {
            Target::Tcp(addr) => common::Client::connect_tcp(*addr).await,
            Target::Socket(path) => common::Client::connect(path).await,
        }
        .expect("connect");
        client
            .send(method, path, &headers, body)
            .await
            .expect("response")
    })
}

enum Target {
    Tcp(SocketAddr),
    Socket(std::path::PathBuf),
}

fn receipt(name: &str) -> Value {
    json!({"lines": [{"name": name, "quantity": "1", "unit_price": 250, "vat": "A"}],
           "payments": [{"method": "cash", "amount": 250}]})
}

/// Assert a refusal: the status, the error body's code, and words in its message.
fn refused(r: (u16, Value), status: u16, code: &str, words: &[&str]) {
    let (s, v) = r;
    assert_eq!(s, status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    for w in words {
        assert!(msg.contains(w), "{msg:?} lacks {w:?}");
    }
}

/// Every audit entry, newest first, read page by page as `principal`.
fn audit_all(to: &Target, token: Option<&str>, page: u32) -> Vec<Value> {
    let mut all = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let path = match before {
            Some(b) => format!("/v1/audit?limit={page}&before={b}"),
            None => format!("/v1/audit?limit={page}"),
        };
        let (s, v) = call(to, token, "GET", &path, None, None);
        assert_eq!(s, 200, "{v}");
        let entries = v["entries"].as_array().unwrap();
        assert!(entries.len() <= page as usize);
        all.extend(entries.iter().cloned());
        match v["next_before"].as_i64() {
            Some(b) => before = Some(b),
            None => return all,
        }
    }
}

fn has_entry(audit: &[Value], principal: &str, operation: &str, outcome: &str) -> bool {
    audit.iter().any(|e| {
        e["principal"] == principal && e["operation"] == operation && e["outcome"] == outcome
    })
}

#[test]
fn roles_over_tcp_ownership_and_the_audit_log() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let port = common::free_port();
    let d = Daemon::start(dir.path(), &config(dir.path(), &sim, Some(port), None));
    let tcp = Target::Tcp(format!("127.0.0.1:{port}").parse().unwrap());
    let (cashier, cashier2, manager, tech) = (
        Some("cashier-secret-1"),
        Some("cashier-secret-2"),
        Some("manager-secret"),
        Some("technician-secret"),
    );
    common::wait_until(Duration::from_secs(20), "the printer", || {
        let (_, v) = call(&tcp, tech, "GET", "/v1/devices", None, None);
        (v["devices"][0]["state"] == "ready").then_some(())
    });

    // 401 without a valid token, with the error body.
    refused(
        call(&tcp, None, "GET", "/v1/health", None, None),
        401,
        "unauthorized",
        &["Bearer"],
    );
    refused(
        call(
            &tcp,
            Some("nope"),
            "POST",
            "/v1/receipts",
            Some(receipt("X")),
            None,
        ),
        401,
        "unauthorized",
        &["token file"],
    );

    // A cashier sells, and sees status.
    let (s, mine) = call(
        &tcp,
        cashier,
        "POST",
        "/v1/receipts?wait=20",
        Some(receipt("Chleb")),
        Some("pos1-0001"),
    );
    assert_eq!((s, mine["state"].as_str()), (200, Some("done")), "{mine}");
    assert_eq!(mine["owner"], "pos-1");
    let mine_id = mine["id"].as_i64().unwrap();
    for path in ["/v1/health", "/v1/devices"] {
        assert_eq!(
            call(&tcp, cashier, "GET", path, None, None).0,
            200,
            "{path}"
        );
    }
    let (s, p) = call(
        &tcp,
        cashier,
        "POST",
        "/v1/printouts?wait=20",
        Some(json!({"lines": ["Dzień dobry"]})),
        None,
    );
    assert_eq!((s, p["state"].as_str()), (200, Some("done")), "{p}");

    // ...but nothing above its role: 403 naming the role needed.
    for (path, body) in [
        ("/v1/cash", json!({"direction": "out", "amount": 1000})),
        ("/v1/reports/daily", json!({})),
        (
            "/v1/payments",
            json!({"type": "refund", "amount": 250, "reference": "r"}),
        ),
        ("/v1/jobs/1/cancel", json!(null)),
        ("/v1/terminals/t1/end-of-day", json!({})),
        ("/v1/sales/1/reverse", json!(null)),
    ] {
        refused(
            call(&tcp, cashier, "POST", path, Some(body), None),
            403,
            "forbidden",
            &["pos-1", "cashier", "needs the manager role"],
        );
    }
    refused(
        call(&tcp, cashier, "GET", "/v1/audit", None, None),
        403,
        "forbidden",
        &["manager"],
    );
    // A refused cash operation printed nothing.
    assert!(
        sim.memory()["cash_operations"]
            .as_array()
            .is_none_or(|a| a.is_empty())
    );
    // A validation refusal of a fiscal operation is audited too.
    let mut bad = receipt("Zły VAT");
    bad["lines"][0]["vat"] = json!("F");
    assert_eq!(
        call(&tcp, cashier, "POST", "/v1/receipts", Some(bad), None).0,
        422
    );

    // A second cashier: its own jobs only; another's job is "not found".
    let (s, theirs) = call(
        &tcp,
        cashier2,
        "POST",
        "/v1/receipts?wait=20",
        Some(receipt("Mleko")),
        None,
    );
    assert_eq!(s, 200, "{theirs}");
    assert_eq!(theirs["owner"], "pos-2");
    refused(
        call(
            &tcp,
            cashier2,
            "GET",
            &format!("/v1/jobs/{mine_id}"),
            None,
            None,
        ),
        404,
        "not_found",
        &[],
    );
    let (_, list) = call(&tcp, cashier2, "GET", "/v1/jobs", None, None);
    let owners: Vec<&Value> = list["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| &j["owner"])
        .collect();
    assert_eq!(owners, [&json!("pos-2")], "{list}");
    let (_, list) = call(&tcp, cashier, "GET", "/v1/jobs", None, None);
    assert_eq!(
        list["jobs"].as_array().unwrap().len(),
        2,
        "receipt + printout"
    );
    // An Idempotency-Key is the caller's own: the same cashier replays it. (The same key
    // from another token is that token's own job: tests/e2e_audit_keys.rs.)
    let (s, again) = call(
        &tcp,
        cashier,
        "POST",
        "/v1/receipts",
        Some(receipt("Chleb")),
        Some("pos1-0001"),
    );
    assert_eq!((s, again["id"].as_i64()), (200, Some(mine_id)), "{again}");
    assert_eq!(sim.receipts().len(), 2, "one receipt per cashier, no more");

    // A technician reads everything and sells nothing.
    refused(
        call(&tcp, tech, "POST", "/v1/receipts", Some(receipt("X")), None),
        403,
        "forbidden",
        &["tech", "technician", "needs the cashier or manager role"],
    );
    refused(
        call(
            &tcp,
            tech,
            "POST",
            "/v1/cash",
            Some(json!({"direction": "in", "amount": 1})),
            None,
        ),
        403,
        "forbidden",
        &["manager"],
    );
    let (s, dev) = call(&tcp, tech, "GET", "/v1/devices", None, None);
    assert_eq!((s, dev["devices"][0]["id"].as_str()), (200, Some("fp1")));
    let (_, list) = call(&tcp, tech, "GET", "/v1/jobs", None, None);
    assert_eq!(list["jobs"].as_array().unwrap().len(), 3);
    assert_eq!(
        call(
            &tcp,
            tech,
            "GET",
            &format!("/v1/jobs/{mine_id}"),
            None,
            None
        )
        .0,
        200
    );
    refused(
        call(&tcp, tech, "GET", "/v1/audit", None, None),
        403,
        "forbidden",
        &["manager"],
    );

    // A manager does it all.
    let (s, cash) = call(
        &tcp,
        manager,
        "POST",
        "/v1/cash?wait=20",
        Some(json!({"direction": "in", "amount": 10000})),
        None,
    );
    assert_eq!((s, cash["state"].as_str()), (200, Some("done")), "{cash}");
    let (s, z) = call(
        &tcp,
        manager,
        "POST",
        "/v1/reports/daily?wait=60",
        Some(json!({})),
        None,
    );
    assert_eq!((s, z["state"].as_str()), (200, Some("done")), "{z}");
    assert_eq!(sim.memory()["daily_reports"].as_array().unwrap().len(), 1);
    // Cancelling: a finished job is a conflict, but the manager may ask.
    refused(
        call(
            &tcp,
            manager,
            "POST",
            &format!("/v1/jobs/{mine_id}/cancel"),
            None,
            None,
        ),
        409,
        "not_cancellable",
        &[],
    );
    let (_, list) = call(&tcp, manager, "GET", "/v1/jobs", None, None);
    assert_eq!(list["jobs"].as_array().unwrap().len(), 5);

    // The audit log, page by page, newest first.
    let audit = audit_all(&tcp, manager, 3);
    let ids: Vec<i64> = audit.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    for (principal, op, outcome) in [
        ("pos-1", "POST /v1/receipts", "accepted"),
        ("pos-1", "POST /v1/printouts", "accepted"),
        ("pos-1", "POST /v1/cash", "refused:403"),
        ("pos-1", "POST /v1/reports/daily", "refused:403"),
        ("pos-1", "POST /v1/payments", "refused:403"),
        ("pos-1", "POST /v1/jobs/{id}/cancel", "refused:403"),
        ("pos-1", "GET /v1/audit", "refused:403"),
        ("pos-1", "POST /v1/receipts", "invalid:422"),
        ("pos-1", "POST /v1/receipts", "replayed"),
        ("pos-2", "POST /v1/receipts", "accepted"),
        ("tech", "POST /v1/receipts", "refused:403"),
        ("boss", "POST /v1/cash", "accepted"),
        ("boss", "POST /v1/reports/daily", "accepted"),
        ("boss", "POST /v1/jobs/{id}/cancel", "invalid:409"),
    ] {
        assert!(
            has_entry(&audit, principal, op, outcome),
            "no {principal} {op} {outcome} in {audit:#?}"
        );
    }
    // The 401s (no token, bad tokens) are counted in one row per minute, not a row each.
    let unauthenticated: Vec<&Value> = audit
        .iter()
        .filter(|e| e["principal"] == "tcp" && e["outcome"] == "refused:401")
        .collect();
    assert!(
        (1..=2).contains(&unauthenticated.len()),
        "{unauthenticated:#?}"
    );
    let counted: i64 = unauthenticated
        .iter()
        .map(|e| e["count"].as_i64().unwrap())
        .sum();
    assert!(counted >= 2, "{unauthenticated:#?}");
    let cash_entry = audit
        .iter()
        .find(|e| e["principal"] == "boss" && e["operation"] == "POST /v1/cash")
        .unwrap();
    assert_eq!(cash_entry["role"], "manager");
    assert_eq!(cash_entry["job"], cash["id"]);
    assert!(cash_entry["at"].as_str().unwrap().ends_with('Z'));
    let refusal = audit
        .iter()
        .find(|e| e["principal"] == "pos-1" && e["outcome"] == "refused:403")
        .unwrap();
    assert_eq!(
        (refusal["role"].as_str(), refusal["detail"].as_str()),
        (Some("cashier"), Some("forbidden"))
    );
    let cancel = audit
        .iter()
        .find(|e| e["principal"] == "pos-1" && e["operation"] == "POST /v1/jobs/{id}/cancel")
        .unwrap();
    assert_eq!(cancel["job"], 1, "the job a refused cancel was about");
    // Status reads are not fiscal operations and are not logged.
    assert!(!audit.iter().any(|e| e["operation"] == "GET /v1/devices"));
    refused(
        call(&tcp, manager, "GET", "/v1/audit?limit=x", None, None),
        400,
        "invalid_request",
        &["limit"],
    );
    drop(d);
}

#[test]
fn the_socket_has_socket_role_and_takes_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    // The default: a request without a token on the socket is a cashier.
    let d = Daemon::start(dir.path(), &config(dir.path(), &sim, None, None));
    d.wait_ready();
    let sock = Target::Socket(d.socket.clone());
    let (s, j) = call(
        &sock,
        None,
        "POST",
        "/v1/receipts?wait=20",
        Some(receipt("Bułka")),
        None,
    );
    assert_eq!((s, j["owner"].as_str()), (200, Some("socket")), "{j}");
    refused(
        call(
            &sock,
            None,
            "POST",
            "/v1/cash",
            Some(json!({"direction": "in", "amount": 100})),
            None,
        ),
        403,
        "forbidden",
        &["socket", "cashier", "manager"],
    );
    refused(
        call(&sock, None, "GET", "/v1/audit", None, None),
        403,
        "forbidden",
        &[],
    );
    // A token on the socket gives its role; a wrong one is 401, not the socket's role.
    let (s, c) = call(
        &sock,
        Some("manager-secret"),
        "POST",
        "/v1/cash?wait=20",
        Some(json!({"direction": "in", "amount": 100})),
        None,
    );
    assert_eq!((s, c["owner"].as_str()), (200, Some("boss")), "{c}");
    refused(
        call(&sock, Some("wrong"), "GET", "/v1/health", None, None),
        401,
        "unauthorized",
        &[],
    );
    refused(
        call(
            &sock,
            Some("technician-secret"),
            "POST",
            "/v1/receipts",
            Some(receipt("X")),
            None,
        ),
        403,
        "forbidden",
        &["technician"],
    );
    // The socket's cashier sees its own jobs, not the manager's.
    let (_, list) = call(&sock, None, "GET", "/v1/jobs", None, None);
    assert_eq!(list["jobs"].as_array().unwrap().len(), 1, "{list}");
    let audit = audit_all(&sock, Some("manager-secret"), 50);
    assert!(has_entry(&audit, "socket", "POST /v1/receipts", "accepted"));
    assert!(has_entry(&audit, "socket", "POST /v1/cash", "refused:403"));
    assert!(has_entry(&audit, "socket", "GET /v1/health", "refused:401"));
    assert!(has_entry(&audit, "boss", "POST /v1/cash", "accepted"));
    assert!(has_entry(
        &audit,
        "tech",
        "POST /v1/receipts",
        "refused:403"
    ));
    drop(d);

    // socket_role = "manager": the socket may run everything, audited as `socket`.
    let d = Daemon::start(dir.path(), &config(dir.path(), &sim, None, Some("manager")));
    d.wait_ready();
    let (s, z) = call(
        &sock,
        None,
        "POST",
        "/v1/reports/daily?wait=60",
        Some(json!({})),
        None,
    );
    assert_eq!((s, z["state"].as_str()), (200, Some("done")), "{z}");
    let (_, list) = call(&sock, None, "GET", "/v1/jobs", None, None);
    assert_eq!(list["jobs"].as_array().unwrap().len(), 3, "every job");
    let (s, a) = call(&sock, None, "GET", "/v1/audit?limit=1", None, None);
    assert_eq!(s, 200, "{a}");
    assert_eq!(
        (
            a["entries"][0]["principal"].as_str(),
            a["entries"][0]["role"].as_str()
        ),
        (Some("socket"), Some("manager")),
        "{a}"
    );
    assert!(a["next_before"].as_i64().is_some(), "{a}");
}

#[test]
fn a_bad_token_file_stops_the_daemon_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens");
    let hash = "ab".repeat(32);
    for (text, want) in [
        (
            format!("{hash} pos-1 cashier\n{hash}x pos-2\n"),
            ":2: expected a SHA-256",
        ),
        (
            format!("# x\n{hash} pos-1 admin\n"),
            ":2: unknown role \"admin\"",
        ),
        (
            format!("{hash} pos-1\n{} pos-1 manager\n", "cd".repeat(32)),
            ":2: token name \"pos-1\" is already used on line 1",
        ),
    ] {
        std::fs::write(&tokens, text).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tokens, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = config_text(dir.path(), "sim", "").replace(
            "[journal]",
            &format!("token_file = \"{}\"\n[journal]", tokens.display()),
        );
        let path = dir.path().join("f.toml");
        std::fs::write(&path, cfg).unwrap();
        let out = std::process::Command::new(common::BIN)
            .args(["serve", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{err}");
        assert!(err.contains(&format!("tokens{want}")), "{err}");
        assert!(!dir.path().join("api.sock").exists(), "nothing started");
    }
}

/// The socket inodes a process holds.
fn socket_inodes(pid: u32) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|rd| {
            rd.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The local addresses (hex, as in /proc/net/tcp) of listening TCP sockets with these inodes.
fn listening_addresses(inodes: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                out.push(f[1].to_string());
            }
        }
    }
    out
}

#[test]
fn files_are_private_the_socket_is_0660_and_only_loopback_listens() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let port = common::free_port();
    let d = Daemon::start(dir.path(), &config(dir.path(), &sim, Some(port), None));
    d.wait_ready();
    let sock = Target::Socket(d.socket.clone());
    let (s, _) = call(
        &sock,
        None,
        "POST",
        "/v1/receipts?wait=20",
        Some(receipt("Ser")),
        None,
    );
    assert_eq!(s, 200);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.path().join("journal.db")), 0o600, "journal");
    assert_eq!(mode(&d.socket), 0o660, "socket");
    assert_eq!(mode(&sim.state), 0o600, "emulator state");
    // Every TCP socket the daemon listens on is 127.0.0.1 (0100007F) on our port.
    let listening = listening_addresses(&socket_inodes(d.pid().unwrap()));
    assert_eq!(listening, [format!("0100007F:{port:04X}")], "{listening:?}");

    // A non-loopback listen address is refused before anything starts.
    for addr in ["0.0.0.0:8787", "[::]:8787", "192.168.1.10:8787"] {
        let cfg = config_text(dir.path(), "sim", "").replace(
            "[journal]",
            &format!("listen = \"{addr}\"\ntoken_file = \"t\"\n[journal]"),
        );
        let path = dir.path().join("open.toml");
        std::fs::write(&path, cfg).unwrap();
        let out = std::process::Command::new(common::BIN)
            .args(["check-config", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains("not a loopback"),
            "{addr}: {err}"
        );
    }
}
