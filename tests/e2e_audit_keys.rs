//! End to end: the audit log and idempotency keys under hostile clients. Unauthenticated
//! refusals are aggregated per listener and window; client keys are scoped per principal
//! and can never reach fiscald's internal keys; logins, refusals and HEAD requests are
//! audited as what they are; status page sessions are capped per principal.

mod common;

use common::{Daemon, Sim, ZvtSim, config_text, terminal_config, wait_until};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;

const CASHIER: &str = "cashier-secret-1";
const CASHIER2: &str = "cashier-secret-2";
const MANAGER: &str = "manager-secret";
const TECH: &str = "technician-secret";

/// A daemon with the token file, the loopback TCP listener and the printer emulator
/// (plus the terminal emulator when `terminal`).
struct Till {
    _dir: tempfile::TempDir,
    sim: Sim,
    _terminal: Option<ZvtSim>,
    daemon: Daemon,
    addr: SocketAddr,
}

fn till(terminal: bool, extra_top: &str) -> Till {
    let dir = tempfile::tempdir().unwrap();
    let tokens = common::write_token_file(
        dir.path(),
        &[
            (CASHIER, "pos-1", "cashier"),
            (CASHIER2, "pos-2", "cashier"),
            (MANAGER, "boss", "manager"),
            (TECH, "tech", "technician"),
        ],
    );
    let port = common::free_tcp_port();
    let sim = Sim::start(dir.path(), &[]);
    let api = format!(
        "token_file = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n",
        tokens.display()
    );
    let mut cfg = config_text(dir.path(), &sim.link.display().to_string(), "")
        .replace("[journal]", &format!("{api}[journal]"));
    let zvt = terminal.then(|| ZvtSim::start(dir.path(), false));
    if let Some(t) = &zvt {
        cfg.push_str(&terminal_config(&t.port, ""));
    }
    cfg.push_str(extra_top);
    let daemon = Daemon::start(dir.path(), &cfg);
    if terminal {
        daemon.wait_printer_and_terminal_ready();
    } else {
        daemon.wait_ready();
    }
    Till {
        _dir: dir,
        sim,
        _terminal: zvt,
        daemon,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

impl Till {
    /// One request on TCP with `token` (None: no Authorization), an optional JSON body and
    /// an optional `Idempotency-Key`.
    fn call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&Value>,
        key: Option<&str>,
    ) -> (u16, Value) {
        let auth = token.map(|t| format!("Bearer {t}"));
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if let Some(a) = &auth {
            headers.push(("authorization", a));
        }
        if method == "POST" {
            headers.push(("content-type", "application/json"));
        }
        if let Some(k) = key {
            headers.push(("idempotency-key", k));
        }
        let body = body.map(|b| b.to_string().into_bytes());
        common::request_tcp_with(self.addr, method, path, &headers, body)
    }

    /// Every audit entry, newest first, read as the manager.
    fn audit(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut before: Option<i64> = None;
        loop {
            let path = match before {
                Some(b) => format!("/v1/audit?limit=1000&before={b}"),
                None => "/v1/audit?limit=1000".to_string(),
            };
            let (s, v) = self.call(Some(MANAGER), "GET", &path, None, None);
            assert_eq!(s, 200, "{v}");
            all.extend(v["entries"].as_array().unwrap().iter().cloned());
            match v["next_before"].as_i64() {
                Some(b) => before = Some(b),
                None => return all,
            }
        }
    }
}

fn receipt(name: &str) -> Value {
    json!({"lines": [{"name": name, "quantity": "1", "unit_price": 250, "vat": "A"}],
           "payments": [{"method": "cash", "amount": 250}]})
}

fn sale(card: u64) -> Value {
    json!({
        "lines": [{"name": "Kawa", "quantity": "1", "unit_price": card, "vat": "A"}],
        "payments": [{"method": "card", "amount": card}]
    })
}

#[test]
fn client_keys_are_per_principal_and_never_reach_internal_keys() {
    let t = till(true, "\n[sales]\nprint_deadline = 2\n");
    // Two tills with the same key get two jobs; each replays its own.
    let (s1, a) = t.call(
        Some(CASHIER),
        "POST",
        "/v1/receipts",
        Some(&receipt("A")),
        Some("k1"),
    );
    let (s2, b) = t.call(
        Some(CASHIER2),
        "POST",
        "/v1/receipts",
        Some(&receipt("B")),
        Some("k1"),
    );
    assert_eq!((s1, s2), (202, 202), "{a} {b}");
    assert_ne!(a["id"], b["id"], "two tills, two jobs");
    let (s, again) = t.call(
        Some(CASHIER2),
        "POST",
        "/v1/receipts?wait=20",
        Some(&receipt("B")),
        Some("k1"),
    );
    assert_eq!((s, &again["id"]), (200, &b["id"]), "{again}");
    // The same key with another body from the same till is still 409.
    let (s, v) = t.call(
        Some(CASHIER2),
        "POST",
        "/v1/receipts",
        Some(&receipt("C")),
        Some("k1"),
    );
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (409, Some("idempotency_conflict")),
        "{v}"
    );
    t.daemon
        .wait_job(a["id"].as_i64().unwrap(), Duration::from_secs(30));
    wait_until(Duration::from_secs(20), "both receipts", || {
        (t.sim.receipts().len() == 2).then_some(())
    });

    // A cashier's sale whose receipt cannot print; the cashier plants the reversal's key.
    t.sim.control("power cycle 30000");
    let (s, job) = t.call(Some(CASHIER), "POST", "/v1/sales", Some(&sale(1400)), None);
    assert_eq!(s, 202, "{job}");
    let id = job["id"].as_i64().unwrap();
    for planted in [
        format!("fiscald:reverse-sale:{id}"),
        format!("internal:reverse-sale:{id}"),
        format!("reverse-sale:{id}"),
    ] {
        let (s, v) = t.call(
            Some(CASHIER),
            "POST",
            "/v1/receipts",
            Some(&receipt("X")),
            Some(&planted),
        );
        assert_eq!(s, 202, "{planted}: {v}");
    }
    let job = t.daemon.wait_job(id, Duration::from_secs(40));
    assert_eq!(job["state"], "needs_attention", "{job}");
    // The manager's reversal is not blocked by any of them.
    let (s, rev) = t.call(
        Some(MANAGER),
        "POST",
        &format!("/v1/sales/{id}/reverse?wait=30"),
        None,
        None,
    );
    assert_eq!(s, 200, "{rev}");
    assert_eq!(rev["state"], "done", "{rev}");
}

/// The aggregated rows of unauthenticated refusals on `listener`.
fn windows<'a>(audit: &'a [Value], listener: &str, outcome: &str) -> Vec<&'a Value> {
    audit
        .iter()
        .filter(|e| e["principal"] == listener && e["outcome"] == outcome && e["count"].is_i64())
        .collect()
}

#[test]
fn unauthenticated_refusals_are_one_row_per_window_with_a_count() {
    let t = till(false, "");
    let started = std::time::Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let long = format!("/v1/{}", "\u{41}".repeat(300));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..10 {
            let addr = t.addr;
            let long = long.clone();
            tasks.push(tokio::spawn(async move {
                let mut client = common::Client::connect_tcp(addr).await.unwrap();
                for i in 0..500 {
                    let path = if i % 2 == 0 {
                        "/v1/devices"
                    } else {
                        long.as_str()
                    };
                    let bad = format!("Bearer attacker-{c}-{i}");
                    let (s, _) = client
                        .send("GET", path, &[("authorization", &bad)], None)
                        .await
                        .unwrap();
                    assert_eq!(s, 401);
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    let minutes = started.elapsed().as_secs() / 60 + 2;
    // An authenticated principal's refusal is still a row of its own.
    let (s, _) = t.call(
        Some(CASHIER),
        "POST",
        "/v1/cash",
        Some(&json!({"direction": "in", "amount": 1})),
        None,
    );
    assert_eq!(s, 403);
    let audit = t.audit();
    let rows = windows(&audit, "tcp", "refused:401");
    assert!(
        !rows.is_empty() && rows.len() as u64 <= minutes,
        "{} rows for 5000 refusals in {minutes} windows",
        rows.len()
    );
    let counted: i64 = rows.iter().map(|r| r["count"].as_i64().unwrap()).sum();
    assert_eq!(counted, 5000, "the counts add up");
    for r in &rows {
        assert!(r["window_start"].as_str() < r["window_end"].as_str(), "{r}");
        assert!(r["role"].is_null() && r["detail"] == "unauthorized", "{r}");
        let sample = r["operation"].as_str().unwrap();
        assert!(
            sample.chars().count() <= 65 && sample.starts_with("GET /v1/"),
            "{sample}"
        );
    }
    assert!(audit.len() < 20, "{} rows in all", audit.len());
    let own: Vec<&Value> = audit
        .iter()
        .filter(|e| e["principal"] == "pos-1" && e["outcome"] == "refused:403")
        .collect();
    assert_eq!(own.len(), 1);
    assert!(own[0].get("count").is_none(), "{}", own[0]);
}

/// `POST /login` with `token` as the form, from the page's own origin; the answer's
/// status, its `Set-Cookie` and its body.
fn login(t: &Till, token: &str) -> (u16, Option<String>, String) {
    let origin = format!("http://{}", t.addr);
    let (s, headers, body) = common::request_tcp_raw(
        t.addr,
        "POST",
        "/login",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("origin", &origin),
        ],
        format!("token={token}").as_bytes(),
    );
    let cookie = headers
        .iter()
        .find(|(k, _)| k == "set-cookie")
        .map(|(_, v)| v.clone());
    (s, cookie, body)
}

/// The `name=value` part of a `Set-Cookie`.
fn cookie_pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap_or("").to_string()
}

#[test]
fn the_status_page_login_is_a_same_origin_post_form() {
    let t = till(false, "");
    let (s, _, page) = common::request_tcp_raw(t.addr, "GET", "/", &[], b"");
    assert_eq!(s, 401);
    assert!(
        page.contains("<form method=post action=\"/login\">"),
        "{page}"
    );
    // The token in the address is refused, even a valid one.
    let (s, _, page) = common::request_tcp_raw(t.addr, "GET", &format!("/?token={TECH}"), &[], b"");
    assert_eq!(s, 400, "{page}");
    assert!(page.contains("form"), "{page}");
    // The form answers 303 to / with the session cookie.
    let (s, headers, _) = common::request_tcp_raw(
        t.addr,
        "POST",
        "/login",
        &[("content-type", "application/x-www-form-urlencoded")],
        format!("token={TECH}").as_bytes(),
    );
    assert_eq!(s, 303);
    let get = |k: &str| {
        headers
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(get("location"), Some("/"));
    let cookie = get("set-cookie").unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let (s, _, page) =
        common::request_tcp_raw(t.addr, "GET", "/", &[("cookie", &cookie_pair(cookie))], b"");
    assert_eq!(s, 200);
    assert!(page.contains("<script>"), "the status page itself");
    // A wrong token, another site's form, or another content type opens nothing.
    let (s, cookie, _) = login(&t, "wrong");
    assert_eq!((s, cookie), (401, None));
    for (origin, ct) in [
        (
            Some("http://evil.test"),
            "application/x-www-form-urlencoded",
        ),
        (None, "text/plain"),
    ] {
        let mut h = vec![("content-type", ct)];
        if let Some(o) = origin {
            h.push(("origin", o));
        }
        let (s, headers, _) = common::request_tcp_raw(
            t.addr,
            "POST",
            "/login",
            &h,
            format!("token={TECH}").as_bytes(),
        );
        assert!(s == 403 || s == 415, "{origin:?} {ct}: {s}");
        assert!(!headers.iter().any(|(k, _)| k == "set-cookie"));
    }
}

fn row<'a>(
    audit: &'a [Value],
    principal: &str,
    operation: &str,
    outcome: &str,
) -> Option<&'a Value> {
    audit.iter().find(|e| {
        e["principal"] == principal && e["operation"] == operation && e["outcome"] == outcome
    })
}

#[test]
fn logins_refusals_405s_and_head_requests_are_audited_as_what_they_are() {
    let t = till(false, "");
    // 405s on fiscal paths, from a cashier and a manager.
    let (s, _) = t.call(Some(CASHIER), "GET", "/v1/receipts", None, None);
    assert_eq!(s, 405);
    let (s, _) = t.call(Some(MANAGER), "PUT", "/v1/cash", None, None);
    assert_eq!(s, 405);
    // HEAD is the GET it mirrors: a cashier may HEAD the health, not the audit log.
    let (s, _) = t.call(Some(CASHIER), "HEAD", "/v1/health", None, None);
    assert_eq!(s, 200, "a cashier may read the health");
    let (s, _) = t.call(Some(CASHIER), "HEAD", "/v1/audit", None, None);
    assert_eq!(s, 403);
    let (s, _) = t.call(Some(CASHIER), "HEAD", "/v1/receipts", None, None);
    assert_eq!(s, 405);
    let (s, _) = t.call(Some(MANAGER), "HEAD", "/v1/devices", None, None);
    assert_eq!(s, 200);
    let (s, _) = t.call(Some(TECH), "GET", "/v1/audit", None, None);
    assert_eq!(s, 403);

    // Logins: a success is the principal's own row; a failure is counted with the 401s.
    let (s, _, _) = login(&t, TECH);
    assert_eq!(s, 303);
    let (s, _, _) = login(&t, "wrong");
    assert_eq!(s, 401);
    // The 401 of the status page without a session.
    let (s, _, _) = common::request_tcp_raw(t.addr, "GET", "/", &[], b"");
    assert_eq!(s, 401);
    let audit = t.audit();
    let login_row = row(&audit, "tech", "POST /login", "accepted").expect("the login");
    assert_eq!(login_row["role"], "technician");
    for (op, outcome) in [("POST /login", "refused:401"), ("GET /", "refused:401")] {
        let w =
            row(&audit, "tcp", op, outcome).unwrap_or_else(|| panic!("{op} {outcome}: {audit:?}"));
        assert_eq!(w["count"], 1, "{w}");
    }
    for (who, role, op, outcome) in [
        ("pos-1", "cashier", "GET /v1/receipts", "refused:405"),
        ("boss", "manager", "PUT /v1/cash", "refused:405"),
        ("pos-1", "cashier", "HEAD /v1/audit", "refused:403"),
        ("pos-1", "cashier", "HEAD /v1/receipts", "refused:405"),
        ("tech", "technician", "GET /v1/audit", "refused:403"),
    ] {
        let r = row(&audit, who, op, outcome)
            .unwrap_or_else(|| panic!("{who} {op} {outcome}: {audit:?}"));
        assert_eq!(r["role"], role, "{r}");
        assert!(
            r.get("count").is_none(),
            "a principal's row is its own: {r}"
        );
    }
    // Reads are not fiscal operations: a HEAD that is answered is not in the log.
    assert!(!audit.iter().any(|e| {
        e["operation"]
            .as_str()
            .is_some_and(|o| o.starts_with("HEAD"))
            && e["outcome"] == "accepted"
    }));
}

#[test]
fn one_principals_logins_cannot_end_anothers_session() {
    let t = till(false, "");
    let session = |token: &str| {
        let (s, cookie, body) = login(&t, token);
        assert_eq!(s, 303, "{body}");
        cookie_pair(&cookie.expect("a session cookie"))
    };
    let with = |cookie: &str| {
        common::request_tcp_raw(t.addr, "GET", "/v1/devices", &[("cookie", cookie)], b"").0
    };
    let tech = session(TECH);
    let cashier: Vec<String> = (0..64).map(|_| session(CASHIER)).collect();
    assert_eq!(
        with(&tech),
        200,
        "the technician's session outlived 64 cashier logins"
    );
    let live = cashier.iter().filter(|c| with(c) == 200).count();
    assert_eq!(live, 8, "a principal keeps its 8 newest sessions");
    assert_eq!(with(&cashier[0]), 401, "its oldest went first");
    assert_eq!(with(cashier.last().unwrap()), 200);
}
