//! End to end: connection limits. A daemon with the default 1,024 open files, flooded with
//! 1,100 idle TCP connections and 200 event-stream requests, still prints a receipt asked
//! for on the Unix socket at once, and its card terminal stays online.

mod common;

use common::{Daemon, Sim, ZvtSim, config_text, terminal_config};
use serde_json::json;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const MANAGER_TOKEN: &str = "manager-secret";

/// Ask for the event stream on `stream` and read the status code of the answer.
fn open_events(stream: &mut (impl Read + Write), token: Option<&str>) -> u16 {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET /v1/events HTTP/1.1\r\nHost: localhost\r\n{auth}\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n") && head.len() < 64 {
        if stream.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn floods_of_idle_connections_and_event_streams_do_not_starve_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let sim = Sim::start(dir.path(), &[]);
    let zvt = ZvtSim::start(dir.path(), false);
    let port = common::free_port();
    let tokens = common::token_file(dir.path(), &[(MANAGER_TOKEN, "boss", "manager")]);
    let config = config_text(dir.path(), &sim.link.display().to_string(), "").replace(
        "[journal]",
        &format!(
            "token_file = \"{}\"\nlisten = \"127.0.0.1:{port}\"\n\n[journal]",
            tokens.display()
        ),
    ) + &terminal_config(&zvt.port, "");
    let daemon = Daemon::start_with_nofile(dir.path(), &config, 1024);
    daemon.wait_printer_and_terminal_ready();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // 100 event streams on TCP and 100 on the socket: each principal gets a few, the rest
    // a 429 (and those clients hang up, as clients do after an answer).
    let mut streams = Vec::new();
    let (mut live, mut refused) = (0, 0);
    for _ in 0..100 {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        match open_events(&mut s, Some(MANAGER_TOKEN)) {
            200 => {
                live += 1;
                streams.push(Box::new(s) as Box<dyn Send>);
            }
            429 => refused += 1,
            other => panic!("event stream on TCP answered {other}"),
        }
    }
    for _ in 0..100 {
        let mut s = std::os::unix::net::UnixStream::connect(&daemon.socket).unwrap();
        match open_events(&mut s, None) {
            200 => {
                live += 1;
                streams.push(Box::new(s) as Box<dyn Send>);
            }
            429 => refused += 1,
            other => panic!("event stream on the socket answered {other}"),
        }
    }
    println!("event streams: {live} open, {refused} refused with 429");
    assert_eq!(live, 16, "8 per principal (the token and the socket)");

    // 1,100 idle TCP connections from a local user without a token.
    let started = Instant::now();
    let idle: Vec<std::net::TcpStream> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..20)
            .map(|_| {
                scope.spawn(|| {
                    (0..55)
                        .filter_map(|_| {
                            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300))
                                .ok()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    println!(
        "idle TCP connections held: {} (made in {:.1} s)",
        idle.len(),
        started.elapsed().as_secs_f64()
    );

    assert_eq!(
        idle.len(),
        1100,
        "the kernel keeps them waiting for the daemon"
    );

    // A receipt on the socket prints at once, and the terminal still takes a payment.
    let t0 = Instant::now();
    let (status, job) = daemon.post(
        "/v1/receipts",
        &json!({"lines": [{"name": "Woda", "quantity": "1", "unit_price": 250, "vat": "A"}],
                "payments": [{"method": "cash", "amount": 250}]}),
    );
    assert!(status == 200 || status == 202, "{status} {job}");
    let job = daemon.wait_job(job["id"].as_i64().unwrap(), Duration::from_secs(10));
    let took = t0.elapsed();
    println!(
        "receipt on the socket during the flood, asked to printed: {} ms",
        took.as_millis()
    );
    assert_eq!(job["state"], "done", "{job}");
    assert!(
        took < Duration::from_secs(3),
        "the receipt took {took:?} (a starved socket takes 10 s or more)"
    );
    let (_, devices) = daemon.get("/v1/devices");
    let terminal = devices["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["kind"] == "payment_terminal")
        .cloned()
        .unwrap();
    assert_eq!(terminal["state"], "ready", "{terminal}");
    let (status, pay) = daemon.post(
        "/v1/payments?wait=30",
        &json!({"type": "sale", "amount": 1234}),
    );
    assert!(status == 200 || status == 202, "{status} {pay}");
    let pay = daemon.wait_job(pay["id"].as_i64().unwrap(), Duration::from_secs(30));
    assert_eq!(
        pay["state"], "done",
        "the terminal works during the flood: {pay}"
    );
    drop(idle);
    drop(streams);
    assert_eq!(zvt.transactions().len(), 1);
}
