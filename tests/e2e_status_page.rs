//! End to end: the status page (`GET /`) in headless Chromium, over loopback TCP with a
//! technician's token. The token is typed into the page's sign-in form, which posts it
//! to `/login` (so it never enters an address or the history); the answer sets a session
//! cookie and redirects to `/`. Then paper runs out in the emulator and the page must show
//! it from the event stream, without a reload.
//!
//! Chromium is driven over the DevTools protocol (a WebSocket). Without Chromium the test
//! prints SKIP and passes, except in CI (`CI=true`), where it fails.

mod common;

use common::browser::{Browser, Cdp, chromium_or_skip};
use common::nats::{Broker, nats_server};
use common::{Daemon, Sim, ZvtSim, config_text, request_tcp, terminal_config};
use serde_json::json;
use std::path::{Path, PathBuf};

const TOKEN: &str = "technician-secret";

fn token_file(dir: &Path) -> PathBuf {
    use sha2::Digest;
    use std::os::unix::fs::PermissionsExt;
    let hash = hex::encode(sha2::Sha256::digest(TOKEN.as_bytes()));
    let path = dir.join("tokens");
    std::fs::write(&path, format!("{hash} tech technician\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_status_page_shows_paper_out_live() {
    let Some(exe) = chromium_or_skip("the_status_page_shows_paper_out_live") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let port = free_port();
    let tokens = token_file(dir.path());
    let api = format!(
        "token_file = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n",
        tokens.display()
    );
    let terminal = ZvtSim::start(dir.path(), false);
    let mut config = config_text(
        dir.path(),
        &sim.link.display().to_string(),
        "status_poll = 0.2",
    )
    .replace("[journal]", &format!("{api}\n[journal]"));
    config.push_str(&terminal_config(&terminal.port, ""));
    let d = Daemon::start(dir.path(), &config);
    d.wait_printer_and_terminal_ready();
    let (status, job) = d.post(
        "/v1/receipts?wait=20",
        &json!({"lines": [{"name": "Kawa", "quantity": 1, "unit_price": 990, "vat": "A"}],
                "payments": [{"method": "cash", "amount": 990}]}),
    );
    assert_eq!(status, 200, "{job}");
    let (status, job) = d.post(
        "/v1/sales?wait=60",
        &json!({"lines": [{"name": "Herbata", "quantity": 2, "unit_price": 505, "vat": "B"}],
                "payments": [{"method": "card", "amount": 1010}]}),
    );
    assert_eq!((status, &job["state"]), (200, &json!("done")), "{job}");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // Without a token or session, TCP shows how to sign in; a wrong token is refused.
    let (status, page) = request_tcp(addr, "GET", "/", &[]);
    assert_eq!(status, 401);
    assert!(page.as_str().unwrap_or("").contains("token"), "{page}");
    assert!(
        page.as_str()
            .unwrap_or("")
            .contains("method=post action=\"/login\""),
        "{page}"
    );
    // A token in the address is refused, even a valid one: it would stay in the history.
    for token in ["wrong", TOKEN] {
        let (status, page) = request_tcp(addr, "GET", &format!("/?token={token}"), &[]);
        assert_eq!(status, 400, "{page}");
        assert!(page.as_str().unwrap_or("").contains("form"), "{page}");
    }
    // The API does not take a session cookie it never gave.
    let (status, _) = request_tcp(
        addr,
        "GET",
        "/v1/devices",
        &[("cookie", "fiscald_session=00")],
    );
    assert_eq!(status, 401);

    let profile = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let browser = Browser::start(&exe, &profile, &format!("http://127.0.0.1:{port}/"));
    let mut cdp = Cdp::connect(&browser.page_ws());
    // A wrong token first: the form answers 401 and stays.
    for (token, title) in [("wrong", "401"), (TOKEN, "ok")] {
        cdp.sign_in(token);
        if title == "401" {
            cdp.wait_for(
                "the refusal",
                "document.body ? document.body.innerText : ''",
                |v| v.as_str().unwrap_or("").contains("not in the token file"),
            );
        }
    }
    cdp.wait_for(
        "the printer row to show ready",
        "(document.getElementById('dev-fp1') || {getAttribute: () => null}).getAttribute('data-state')",
        |v| v == "ready",
    );
    cdp.wait_for(
        "the live indicator",
        "document.getElementById('live').textContent",
        |v| v == "live",
    );
    // The token never was in the address bar or the history, and the session cookie is
    // not readable by script.
    assert_eq!(cdp.eval("location.pathname + location.search"), json!("/"));
    let history = cdp.call("Page.getNavigationHistory", json!({}));
    let urls = history.to_string();
    assert!(
        urls.contains("127.0.0.1") && !urls.contains(TOKEN),
        "{urls}"
    );
    assert_eq!(cdp.eval("document.cookie"), json!(""));
    // The last jobs list shows the receipt.
    let jobs = cdp.eval("document.getElementById('jobs').innerText");
    assert!(jobs.as_str().unwrap_or("").contains("receipt"), "{jobs}");
    // Each device with its model and number; the terminal with its terminal id.
    let printer_row = cdp.eval("document.getElementById('dev-fp1').innerText");
    assert!(
        printer_row.as_str().unwrap_or("").contains("no. "),
        "{printer_row}"
    );
    let terminal_id = d.get("/v1/devices").1["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "t1")
        .map(|t| t["terminal_id"].as_str().unwrap_or("").to_string())
        .unwrap_or_default();
    assert!(!terminal_id.is_empty());
    let terminal_row = cdp.eval("document.getElementById('dev-t1').innerText");
    assert!(
        terminal_row
            .as_str()
            .unwrap_or("")
            .contains(&format!("terminal id {terminal_id}")),
        "{terminal_row}"
    );
    // The day at a glance: two receipts (one of them the sale's), the card takings, the
    // totals by VAT letter, the daily report due, and the chart of documents per hour.
    cdp.wait_for(
        "the today panel",
        "document.getElementById('t-receipts').textContent",
        |v| v == "2 · 20,00 zł",
    );
    assert_eq!(
        cdp.eval("document.getElementById('t-card').textContent + ' | ' + document.getElementById('t-card-l').textContent"),
        json!("10,10 zł | card takings (net): 1 sale, 0 refunds")
    );
    assert_eq!(
        cdp.eval("document.getElementById('vat-A').innerText"),
        json!("A\t9,90 zł")
    );
    assert_eq!(
        cdp.eval("document.getElementById('vat-B').innerText"),
        json!("B\t10,10 zł")
    );
    assert_eq!(
        cdp.eval("document.getElementById('report-fp1').getAttribute('data-due')"),
        json!("true")
    );
    assert_eq!(
        cdp.eval(
            "[...document.querySelectorAll('#chart rect')].reduce((s, r) => s + Number(r.getAttribute('data-count')), 0)"
        ),
        json!(2)
    );
    assert_eq!(
        cdp.eval("document.querySelectorAll('#chart rect').length"),
        json!(24)
    );
    // The page must update from the event stream, not by being loaded again.
    cdp.eval("window.__sameDocument = true");

    sim.control("paper out");
    cdp.wait_for(
        "the printer row to show paper out",
        "document.getElementById('dev-fp1').getAttribute('data-state')",
        |v| v == "paper_out",
    );
    let row = cdp.eval("document.getElementById('dev-fp1').innerText");
    let row = row.as_str().unwrap_or("");
    assert!(row.contains("paper out"), "{row}");
    assert_eq!(cdp.eval("window.__sameDocument === true"), json!(true));
    let log = cdp.eval("document.getElementById('log').innerText");
    assert!(log.as_str().unwrap_or("").contains("paper out"), "{log}");

    cdp.wait_for(
        "the health summary to follow",
        "document.getElementById('health').textContent",
        |v| v == "needs attention",
    );
    // A screenshot for people (kept when FISCALD_SCREENSHOT names a file).
    let shot = match std::env::var_os("FISCALD_SCREENSHOT") {
        Some(p) => PathBuf::from(p),
        None => dir.path().join("status-page.png"),
    };
    cdp.screenshot(&shot);
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1000)
            .unwrap_or(false)
    );

    sim.control("paper back");
    cdp.wait_for(
        "the printer row to show ready again",
        "document.getElementById('dev-fp1').getAttribute('data-state')",
        |v| v == "ready",
    );
    drop(browser);
}

/// The header's fleet pill follows the link to head office: connected, then (broker
/// stopped, a receipt printed meanwhile) disconnected with the events still to send, then
/// connected again with nothing left once the backlog drained.
#[test]
fn the_status_page_shows_the_fleet_link() {
    let Some(exe) = chromium_or_skip("the_status_page_shows_the_fleet_link") else {
        return;
    };
    let Some(nats) = nats_server("the_status_page_shows_the_fleet_link") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(nats, dir.path());
    let sim = Sim::start(dir.path(), &[]);
    let port = free_port();
    let tokens = token_file(dir.path());
    let api = format!(
        "token_file = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n",
        tokens.display()
    );
    let mut config = config_text(dir.path(), &sim.link.display().to_string(), "")
        .replace("[journal]", &format!("{api}\n[journal]"));
    config.push_str(&format!(
        "\n[fleet]\nnats = \"{}\"\ntill = \"shop17-till2\"\n",
        broker.url()
    ));
    let d = Daemon::start(dir.path(), &config);
    d.wait_ready();

    let profile = dir.path().join("chromium-profile");
    std::fs::create_dir_all(&profile).unwrap();
    let browser = Browser::start(&exe, &profile, &format!("http://127.0.0.1:{port}/"));
    let mut cdp = Cdp::connect(&browser.page_ws());
    cdp.sign_in(TOKEN);
    let pill = "(e => e && !e.hidden ? e.className + ' | ' + e.textContent : null)(document.getElementById('fleet'))";
    cdp.wait_for("the fleet pill to show connected", pill, |v| {
        v == "pill ok | fleet connected"
    });

    broker.stop();
    let (status, job) = d.post(
        "/v1/receipts?wait=20",
        &json!({"lines": [{"name": "Kawa", "quantity": 1, "unit_price": 990, "vat": "A"}],
                "payments": [{"method": "cash", "amount": 990}]}),
    );
    assert_eq!((status, &job["state"]), (200, &json!("done")), "{job}");
    let shown = cdp.wait_for("the fleet pill to show the backlog", pill, |v| {
        let t = v.as_str().unwrap_or("");
        t.starts_with("pill warn | fleet disconnected, ") && t.contains(" to send (oldest ")
    });
    let backlog = d.get("/v1/health").1["fleet"]["backlog"].as_u64().unwrap();
    assert!(backlog > 0, "{shown}");

    broker.spawn();
    cdp.wait_for("the fleet pill to show connected again", pill, |v| {
        v == "pill ok | fleet connected"
    });
    assert_eq!(d.get("/v1/health").1["fleet"]["backlog"], json!(0));
    let title = cdp.eval("document.getElementById('fleet').title");
    assert!(
        title.as_str().unwrap_or("").starts_with("last ack "),
        "{title}"
    );
    drop(browser);
}
