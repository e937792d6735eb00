//! End to end: bad input. A seeded generator sends at least 10,000 bad requests on one
//! keep-alive connection; every answer must be a 4xx with the `{"error": {...}}` body,
//! nothing may be queued, and a valid receipt must still print afterwards. Slow clients
//! must not hold up a printer.

mod common;

use common::{Client, Daemon, Sim};
use fiscald::document::{self, PrinterLimits};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// The generator's seed; override with `FISCALD_BAD_INPUT_SEED`.
const SEED: u64 = 0x0F15_CA1D_BAD1_4207;
/// Bad requests per run; override with `FISCALD_BAD_INPUT_REQUESTS`.
const REQUESTS: usize = 10_000;

fn setup() -> (tempfile::TempDir, Sim, Daemon) {
    common::printer_daemon()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// xorshift64: small, deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
}

/// The daemon's limits for `fp1` (the emulator's VAT table, `max_name_length` 40).
fn limits() -> PrinterLimits<'static> {
    PrinterLimits {
        max_name_length: 40,
        active_vat: Some(&['A', 'B', 'C', 'D', 'E']),
        support: fiscald::drivers::posnet::SUPPORT,
    }
}

const JSON: &str = "application/json";

/// One bad request.
struct Bad {
    kind: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
}

impl Bad {
    fn post(kind: &'static str, path: &str, body: impl Into<Vec<u8>>) -> Bad {
        Bad {
            kind,
            method: "POST",
            path: path.to_string(),
            headers: vec![("content-type", JSON.into())],
            body: Some(body.into()),
        }
    }
    fn receipt(kind: &'static str, body: impl Into<Vec<u8>>) -> Bad {
        Bad::post(kind, "/v1/receipts", body)
    }
    fn get(kind: &'static str, path: &str) -> Bad {
        Bad {
            kind,
            method: "GET",
            path: path.to_string(),
            headers: Vec::new(),
            body: None,
        }
    }
}

/// A valid receipt: 1–4 lines, paid exactly (cash or card) or with cash change.
fn valid_receipt(rng: &mut Rng) -> Value {
    let names = ["Chleb", "Mleko 2%", "Żółć gęślą jaźń", "Kawa", "Woda 0,5 l"];
    let quantities = ["1", "2", "0.5", "1.5", "0.333", "12.125"];
    let n = rng.range(1, 4) as usize;
    let mut total = 0;
    let mut lines = Vec::new();
    for i in 0..n {
        let q = *rng.pick(&quantities);
        let price = rng.range(100, 10_000);
        total += document::line_amount(q.parse().unwrap(), price).unwrap();
        let mut line = json!({
            "name": format!("{} {i}", rng.pick(&names)),
            "quantity": q,
            "unit_price": price,
            "vat": rng.pick(&["A", "B", "C", "D", "E"]),
        });
        if rng.below(2) == 0 {
            line["unit"] = json!("szt");
        }
        lines.push(line);
    }
    let payments = match rng.below(3) {
        0 => json!([{"method": "cash", "amount": total}]),
        1 => json!([{"method": "card", "amount": total}]),
        _ => json!([{"method": "cash", "amount": total + rng.range(1, 5000)}]),
    };
    json!({"lines": lines, "payments": payments})
}

/// `v` as text with the string `"@RAW@"` replaced by a raw JSON literal.
fn with_raw(v: &Value, raw: &str) -> String {
    v.to_string().replace("\"@RAW@\"", raw)
}

/// A receipt body (as text) that must fail validation, for the given aspect.
fn bad_receipt(rng: &mut Rng) -> (&'static str, String) {
    let mut r = valid_receipt(rng);
    let nlines = r["lines"].as_array().unwrap().len();
    let li = rng.below(nlines);
    match rng.below(11) {
        0 => {
            let bad = [
                "-1",
                "-0",
                "4.5",
                "450.0",
                "1e3",
                "1E3",
                "4.5e2",
                "\"450\"",
                "true",
                "[]",
                "{}",
                "0",
                "10000000000",
                "18446744073709551616",
                "1e400",
                "99999999999999999999999999",
            ];
            let raw = *rng.pick(&bad);
            match rng.below(3) {
                0 => r["lines"][li]["unit_price"] = json!("@RAW@"),
                1 => r["payments"][0]["amount"] = json!("@RAW@"),
                _ => r["total"] = json!("@RAW@"),
            }
            ("bad_grosze", with_raw(&r, raw))
        }
        1 => {
            let bad = [
                "\"1.2345\"",
                "1.2345",
                "\"0.0001\"",
                "\"1e3\"",
                "1e3",
                "1E-2",
                "\"2.5e1\"",
                "\"-1\"",
                "-1",
                "\"0\"",
                "0",
                "\"0.000\"",
                "\"+1\"",
                "\" \"",
                "\"\"",
                "\"1,5\"",
                "\"١\"",
                "\"0x10\"",
                "\"1_000\"",
                "true",
                "[]",
                "{}",
                "\"NaN\"",
                "\"Infinity\"",
                "\"1000000.001\"",
                "\"9999999999999\"",
                "\".5\"",
            ];
            r["lines"][li]["quantity"] = json!("@RAW@");
            let raw: &str = rng.pick::<&str>(&bad);
            ("bad_quantity", with_raw(&r, raw))
        }
        2 => {
            let case = rng.below(5);
            match case {
                0 => r["lines"][li]["unit_price"] = json!(10_000_000_000u64),
                1 => {
                    r["lines"][li]["quantity"] = json!("1000");
                    r["lines"][li]["unit_price"] = json!(99_999_999);
                }
                2 => {
                    r["lines"] = json!([
                        {"name": "Złoto 1", "quantity": "1", "unit_price": 9_000_000_000u64, "vat": "A"},
                        {"name": "Złoto 2", "quantity": "1", "unit_price": 9_000_000_000u64, "vat": "A"}
                    ]);
                }
                3 => r["total"] = json!(10_000_000_000u64),
                _ => {
                    r["payments"] = json!([
                        {"method": "cash", "amount": 9_999_999_999u64},
                        {"method": "cash", "amount": 9_999_999_999u64}
                    ]);
                }
            }
            ("beyond_range", r.to_string())
        }
        3 => {
            let bad = [
                "Ch\u{0}leb",
                "Tab\there",
                "new\nline",
                "c\rr",
                "bell\u{7}",
                "esc\u{1b}[2J",
                "del\u{7f}",
                "n\u{85}el",
                "Pizza 🍕",
                "漢字",
                "Хлеб",
                "zwj\u{200d}x",
                "rtl\u{202e}abc",
                "",
                "   ",
                "---",
                "Pierogi ruskie z cebulką i skwarkami, porcja duża",
            ];
            let mut name = rng.pick(&bad).to_string();
            if rng.below(4) == 0 {
                name = "x".repeat(rng.range(41, 200) as usize);
            }
            if rng.below(8) == 0 {
                // A unit may be empty or without letters: then the name carries the fault.
                r["lines"][li]["unit"] = json!(name);
                if is_valid(&r.to_string()) {
                    r["lines"][li]["name"] = json!(name);
                }
            } else {
                r["lines"][li]["name"] = json!(name);
            }
            ("bad_name", r.to_string())
        }
        4 => {
            let top = [
                "linez",
                "Lines",
                "print",
                "payment",
                "discount",
                "__proto__",
                "",
                "lines ",
            ];
            let line = ["prise", "Name", "amount", "vat_rate", "qty", "price"];
            let pay = ["currency", "kind", "Amount"];
            match rng.below(3) {
                0 => r[*rng.pick(&top)] = json!(1),
                1 => r["lines"][li][*rng.pick(&line)] = json!("x"),
                _ => r["payments"][0][*rng.pick(&pay)] = json!(0),
            }
            ("unknown_field", r.to_string())
        }
        5 => {
            let n = rng.range(501, 600) as usize;
            let lines: Vec<Value> = (0..n)
                .map(|i| json!({"name": format!("Pozycja {i}"), "quantity": "1", "unit_price": 1, "vat": "A"}))
                .collect();
            let body = json!({"lines": lines, "payments": [{"method": "cash", "amount": n}]});
            ("too_many_lines", body.to_string())
        }
        6 => {
            let v = *rng.pick(&["F", "G", "H", "a1", "", "23%", "AA"]);
            r["lines"][li]["vat"] = json!(v);
            ("bad_vat", r.to_string())
        }
        7 => {
            let case = rng.below(7);
            match case {
                0 => r["payments"] = json!([]),
                1 => r["payments"][0]["method"] = json!("bitcoin"),
                2 => r["payments"][0]["method"] = json!("CASH"),
                3 => {
                    let p = r["payments"][0].clone();
                    r["payments"] = Value::Array(vec![p; 17]);
                }
                4 => r["payments"] = json!([{"method": "card", "amount": 1}]),
                5 => r["payments"] = json!([{"method": "card", "amount": 9_999_999}]),
                _ => r["payments"] = json!({"method": "cash"}),
            }
            ("bad_payments", r.to_string())
        }
        8 => {
            let nip = [
                json!("1234567890"),
                json!("abc"),
                json!(5260001246u64),
                json!("526-000-12-47"),
                json!("52600012460"),
            ];
            r["buyer_nip"] = rng.pick(&nip).clone();
            ("bad_nip", r.to_string())
        }
        9 => {
            let p = [json!("fp9"), json!(1), json!([]), json!(true), json!("")];
            r["printer"] = rng.pick(&p).clone();
            ("bad_printer", r.to_string())
        }
        _ => mutate(rng, r),
    }
}

/// Drop, replace or duplicate a field of a valid receipt so that it becomes invalid.
fn mutate(rng: &mut Rng, mut r: Value) -> (&'static str, String) {
    let li = rng.below(r["lines"].as_array().unwrap().len());
    let line_fields = ["name", "quantity", "unit_price", "vat"];
    let wrong = [
        json!(null),
        json!(true),
        json!([]),
        json!({}),
        json!("x"),
        json!(-7),
        json!(0.5),
    ];
    match rng.below(4) {
        0 => {
            // Drop a required field.
            match rng.below(4) {
                0 => drop(r.as_object_mut().unwrap().remove("lines")),
                1 => drop(r.as_object_mut().unwrap().remove("payments")),
                2 => {
                    let f = rng.pick(&line_fields);
                    r["lines"][li].as_object_mut().unwrap().remove(*f);
                }
                _ => {
                    let f = rng.pick(&["method", "amount"]);
                    r["payments"][0].as_object_mut().unwrap().remove(*f);
                }
            }
            ("mutation_drop", r.to_string())
        }
        1 => {
            // Replace a field with a wrong value.
            let v = rng.pick(&wrong).clone();
            match rng.below(5) {
                0 => r["lines"] = v,
                1 => r["payments"] = v,
                2 => r["lines"][li][*rng.pick(&line_fields)] = v,
                3 => r["payments"][0][*rng.pick(&["method", "amount"])] = v,
                _ => r["lines"][li] = v,
            }
            let text = r.to_string();
            if is_valid(&text) {
                // e.g. "x" as a name is a valid name: make it certainly wrong.
                r["lines"][li]["vat"] = json!([]);
                return ("mutation_replace", r.to_string());
            }
            ("mutation_replace", text)
        }
        2 => {
            // Duplicate a key in the text; the later, bad value wins.
            let text = r.to_string();
            let (key, raw) = *rng.pick(&[
                ("\"lines\":", "\"lines\":[],"),
                ("\"payments\":", "\"payments\":{},"),
                ("\"quantity\":", "\"quantity\":\"1e3\","),
                ("\"name\":", "\"name\":\"\","),
            ]);
            // Put the bad duplicate after the original: right before the object's end.
            let text = match key {
                "\"lines\":" | "\"payments\":" => {
                    let trimmed = text.strip_suffix('}').unwrap();
                    format!("{trimmed},{}}}", raw.trim_end_matches(','))
                }
                _ => text.replacen("\"vat\":", &format!("{raw}\"vat\":"), 1),
            };
            ("mutation_duplicate", text)
        }
        _ => {
            // Duplicate a line without paying for it (card pays exactly, no change).
            let total: u64 = r["lines"]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| {
                    document::line_amount(
                        l["quantity"].as_str().unwrap().parse().unwrap(),
                        l["unit_price"].as_u64().unwrap(),
                    )
                    .unwrap()
                })
                .sum();
            r["payments"] = json!([{"method": "card", "amount": total}]);
            let dup = r["lines"][li].clone();
            r["lines"].as_array_mut().unwrap().push(dup);
            ("mutation_duplicate", r.to_string())
        }
    }
}

fn is_valid(text: &str) -> bool {
    serde_json::from_str::<Value>(text)
        .ok()
        .is_some_and(|v| document::receipt(&v, &limits(), &["printer"]).is_ok())
}

/// Nesting of `depth` levels of arrays or objects, closed or not.
fn nested(rng: &mut Rng, depth: usize) -> String {
    let (open, close) = if rng.below(2) == 0 {
        ("[", "]")
    } else {
        ("{\"a\":", "}")
    };
    let mut s = open.repeat(depth);
    s.push('1');
    if rng.below(4) != 0 {
        s.push_str(&close.repeat(depth));
    }
    s
}

fn generate(rng: &mut Rng) -> Bad {
    let roll = rng.below(1000);
    match roll {
        // Not JSON.
        0..=59 => {
            let samples: [&[u8]; 10] = [
                b"lines=1&payments=2",
                b"{",
                b"{\"lines\": [",
                b"<receipt/>",
                b"{'lines': []}",
                b"{\"lines\": [],}",
                b"\"\\ud800\"",
                b"{\"a\":1}{\"b\":2}",
                b"NaN",
                b"\x00\x00\x00",
            ];
            let body: Vec<u8> = if rng.below(3) == 0 {
                (0..rng.range(1, 200))
                    .map(|_| rng.range(0x20, 0x7e) as u8)
                    .chain(*b"{")
                    .collect()
            } else {
                rng.pick(&samples).to_vec()
            };
            let path = *rng.pick(&["/v1/receipts", "/v1/cash", "/v1/printouts"]);
            Bad::post("not_json", path, body)
        }
        // Not UTF-8.
        60..=109 => {
            let mut body = valid_receipt(rng).to_string().into_bytes();
            let at = body.iter().position(|b| *b == b'C').unwrap_or(2);
            let junk: [&[u8]; 5] = [
                b"\xff",
                b"\xfe\xfe",
                b"\xc3\x28",
                b"\xed\xa0\x80",
                b"\xf8\x88",
            ];
            let j = rng.pick(&junk);
            body.splice(at..at, j.iter().copied());
            if rng.below(4) == 0 {
                body = (0..rng.range(1, 64))
                    .map(|_| rng.next() as u8 | 0x80)
                    .collect();
            }
            Bad::receipt("not_utf8", body)
        }
        // Deeply nested.
        110..=149 => {
            let depth = *rng.pick(&[129, 1000, 10_000, 50_000]);
            let body = if rng.below(3) == 0 {
                // Within serde_json's limit, but where a line should be.
                let mut r = valid_receipt(rng);
                r["lines"][0] = json!("@RAW@");
                with_raw(&r, &nested(rng, 100))
            } else {
                nested(rng, depth)
            };
            Bad::receipt("deep_nesting", body)
        }
        // Oversized (over 256 KiB).
        150..=154 => {
            let size = rng.range(256 * 1024 + 1, 400 * 1024) as usize;
            let name = "A".repeat(size);
            let body = json!({"lines": [{"name": name, "quantity": "1", "unit_price": 1, "vat": "A"}],
                "payments": [{"method": "cash", "amount": 1}]});
            Bad::receipt("oversized", body.to_string())
        }
        // Wrong content type (with a valid receipt body).
        155..=219 => {
            let cts = [
                Some("text/plain"),
                Some("application/x-www-form-urlencoded"),
                Some("multipart/form-data; boundary=x"),
                Some("application/jsonp"),
                Some("application/xml"),
                Some("text/json"),
                Some("json"),
                None,
            ];
            let mut bad = Bad::receipt("content_type", valid_receipt(rng).to_string());
            bad.headers = rng
                .pick(&cts)
                .map(|ct| vec![("content-type", ct.to_string())])
                .unwrap_or_default();
            bad
        }
        // Unknown paths.
        220..=289 => {
            let paths = [
                "/index.html",
                "/v1",
                "/v1/",
                "/v2/receipts",
                "/v1/receipts/",
                "/v1/receipt",
                "/V1/receipts",
                "/v1//receipts",
                "/v1/receipts/1",
                "/v1/jobs/abc",
                "/v1/jobs/-1",
                "/v1/jobs/99999999999999999999",
                "/v1/jobs/123456789",
                "/v1/jobs/1/cancel/x",
                "/v1/health/..",
                "/v1/%2e%2e/etc/passwd",
                "/v1/terminals/t9/end-of-day",
                "/v1/sales/77/reverse",
                "/v1/jobs/123456/cancel",
                "/v1/jobs/abc/cancel",
            ];
            let path = *rng.pick(&paths);
            let method = if path.ends_with("end-of-day")
                || path.ends_with("reverse")
                || path.ends_with("/cancel")
            {
                "POST"
            } else {
                *rng.pick(&["GET", "POST"])
            };
            let mut bad = if method == "GET" {
                Bad::get("unknown_path", path)
            } else {
                Bad::post("unknown_path", path, "{}")
            };
            if rng.below(3) == 0 {
                let seg: String = (0..rng.range(1, 30))
                    .map(|_| *rng.pick(b"az0-_.~") as char)
                    .collect();
                bad.path = format!("/v1/x{seg}");
            }
            bad
        }
        // Wrong methods.
        290..=349 => {
            let (method, path) = *rng.pick(&[
                ("GET", "/v1/receipts"),
                ("PUT", "/v1/receipts"),
                ("DELETE", "/v1/receipts"),
                ("PATCH", "/v1/cash"),
                ("GET", "/v1/printouts"),
                ("GET", "/v1/reports/daily"),
                ("POST", "/v1/health"),
                ("DELETE", "/v1/devices"),
                ("PUT", "/v1/jobs"),
                ("DELETE", "/v1/jobs/1"),
                ("GET", "/v1/jobs/1/cancel"),
                ("OPTIONS", "/v1/receipts"),
                ("TRACE", "/v1/health"),
                ("BREW", "/v1/receipts"),
            ]);
            Bad {
                kind: "wrong_method",
                method,
                path: path.to_string(),
                headers: vec![("content-type", JSON.into())],
                body: Some(valid_receipt(rng).to_string().into_bytes()),
            }
        }
        // Wrong query parameters.
        350..=419 => {
            let (post, path) = *rng.pick(&[
                (true, "/v1/receipts?wait=abc"),
                (true, "/v1/receipts?wait=61"),
                (true, "/v1/receipts?wait=-1"),
                (true, "/v1/receipts?wait=nan"),
                (true, "/v1/receipts?wait=inf"),
                (true, "/v1/receipts?wiat=5"),
                (true, "/v1/receipts?wait=1&x"),
                (true, "/v1/cash?wait=1e9"),
                (true, "/v1/printouts?printer=fp1"),
                (false, "/v1/jobs?limit=abc"),
                (false, "/v1/jobs?limit=-5"),
                (false, "/v1/jobs?limit=99999999999"),
                (false, "/v1/jobs?state=bogus"),
                (false, "/v1/jobs?wait=5"),
                (false, "/v1/jobs?limit=1&foo=2"),
                (false, "/v1/jobs/1?wait=99"),
                (false, "/v1/jobs/1?wait=x"),
            ]);
            if post {
                // A valid receipt: the query alone must refuse it.
                Bad::post("bad_query", path, valid_receipt(rng).to_string())
            } else {
                Bad::get("bad_query", path)
            }
        }
        // A bad Idempotency-Key (with a bad body, in case the order of checks changes).
        420..=439 => {
            let (_, body) = bad_receipt(rng);
            let mut bad = Bad::receipt("bad_idempotency_key", body);
            let key = if rng.below(2) == 0 {
                "k".repeat(rng.range(256, 400) as usize)
            } else {
                "   ".to_string()
            };
            bad.headers.push(("idempotency-key", key));
            bad
        }
        // Other document endpoints.
        440..=519 => {
            let (path, body) = match rng.below(3) {
                0 => (
                    "/v1/cash",
                    rng.pick(&[
                        json!({"direction": "up", "amount": 100}),
                        json!({"direction": "in", "amount": -1}),
                        json!({"direction": "in", "amount": 1.5}),
                        json!({"direction": "in"}),
                        json!({"amount": 100}),
                        json!({"direction": "out", "amount": 10_000_000_000u64}),
                        json!({"direction": "in", "amount": 1, "x": 1}),
                        json!([]),
                    ])
                    .clone(),
                ),
                1 => {
                    let line = rng
                        .pick(&[
                            json!("x".repeat(57)),
                            json!("Pizza 🍕"),
                            json!("bell\u{7}"),
                            json!(1),
                            json!(null),
                        ])
                        .clone();
                    let body = match rng.below(4) {
                        0 => json!({"lines": []}),
                        1 => json!({"lines": vec!["ok"; 201]}),
                        2 => json!({"lines": "text"}),
                        _ => json!({"lines": ["ok", line]}),
                    };
                    ("/v1/printouts", body)
                }
                _ => (
                    "/v1/reports/daily",
                    rng.pick(&[
                        json!({"x": 1}),
                        json!({"printer": "fp9"}),
                        json!({"printer": 1}),
                        json!([]),
                        json!("daily"),
                        json!(5),
                        json!({"printer": "fp1", "date": "2026-01-01"}),
                    ])
                    .clone(),
                ),
            };
            Bad::post("other_documents", path, body.to_string())
        }
        // Card endpoints (no terminal is configured here).
        520..=539 => {
            let path = *rng.pick(&["/v1/payments", "/v1/sales"]);
            let body = if path == "/v1/payments" {
                json!({"type": "sale", "amount": 100})
            } else {
                valid_receipt(rng)
            };
            Bad::post("card_without_terminal", path, body.to_string())
        }
        // Receipts that fail validation, including mutations of a valid one.
        _ => {
            let (kind, body) = bad_receipt(rng);
            Bad::receipt(kind, body)
        }
    }
}

/// A generated request must never be one the daemon would queue.
fn assert_not_queueable(bad: &Bad) {
    let json_ct = bad
        .headers
        .iter()
        .any(|(k, v)| *k == "content-type" && v == JSON);
    let plain = bad.method == "POST" && json_ct && !bad.path.contains('?');
    let Some(body) = bad.body.as_deref().filter(|_| plain) else {
        return;
    };
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let printer_ok =
        matches!(v.get("printer"), None | Some(Value::Null)) || v["printer"] == json!("fp1");
    let ok = printer_ok
        && match bad.path.as_str() {
            "/v1/receipts" => document::receipt(&v, &limits(), &["printer"]).is_ok(),
            "/v1/cash" => document::cash(&v, &["printer"]).is_ok(),
            "/v1/printouts" => document::printout(&v, &["printer"]).is_ok(),
            "/v1/reports/daily" => document::empty(&v, &["printer"]).is_ok(),
            _ => false,
        };
    let bad_key = bad.headers.iter().any(|(k, _)| *k == "idempotency-key");
    assert!(
        !ok || bad_key,
        "generator bug: a {} request is valid: {}",
        bad.kind,
        String::from_utf8_lossy(body)
    );
}

/// Largest body the API reads (`src/api.rs`).
const MAX_BODY: usize = 256 * 1024;

/// One request on its own raw connection: written whole even when the daemon answers
/// early and closes, then the answer is read back.
fn send_raw(socket: &std::path::Path, bad: &Bad) -> (u16, Value) {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = bad.body.as_deref().unwrap_or_default();
    let mut head = format!(
        "{} {} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\ncontent-length: {}\r\n",
        bad.method,
        bad.path,
        body.len()
    );
    for (k, v) in &bad.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    // The daemon may answer and close before the body is written: ignore write errors.
    let _ = s.write_all(head.as_bytes()).and_then(|_| s.write_all(body));
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer);
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer to {} ({}): {text:?}", bad.path, bad.kind));
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}

/// Send on the keep-alive connection; when the daemon closed it, reconnect once and resend.
/// A body over the limit goes on its own connection ([`send_raw`]): the daemon answers 413
/// without reading it and closes, so the client may see a broken pipe instead of the answer.
async fn send(
    client: &mut Client,
    socket: &std::path::Path,
    bad: &Bad,
    reconnects: &mut usize,
) -> (u16, Value) {
    if bad.body.as_ref().is_some_and(|b| b.len() > MAX_BODY) {
        return send_raw(socket, bad);
    }
    let headers: Vec<(&str, &str)> = bad.headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut last = None;
    for _ in 0..2 {
        match client
            .send(bad.method, &bad.path, &headers, bad.body.clone())
            .await
        {
            Ok(answer) => return answer,
            Err(e) => {
                last = Some(e);
                *reconnects += 1;
                *client = Client::connect(socket).await.expect("reconnect to the API");
            }
        }
    }
    panic!(
        "{} {} ({}): no answer twice: {last:?}",
        bad.method, bad.path, bad.kind
    );
}

#[test]
fn ten_thousand_bad_requests_get_4xx_and_change_nothing() {
    let (_dir, sim, d) = setup();
    let seed = env_or("FISCALD_BAD_INPUT_SEED", SEED);
    let requests = env_or("FISCALD_BAD_INPUT_REQUESTS", REQUESTS);
    let mut rng = Rng(seed | 1);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let started = Instant::now();
    let mut per_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut per_kind: BTreeMap<&'static str, BTreeMap<u16, usize>> = BTreeMap::new();
    let mut reconnects = 0;
    rt.block_on(async {
        let mut client = Client::connect(&d.socket).await.expect("connect");
        for i in 0..requests {
            let bad = generate(&mut rng);
            assert_not_queueable(&bad);
            let (status, body) = send(&mut client, &d.socket, &bad, &mut reconnects).await;
            let what = || {
                let b = bad.body.as_deref().unwrap_or_default();
                let shown = String::from_utf8_lossy(&b[..b.len().min(300)]).into_owned();
                format!(
                    "request #{i} ({}) {} {} {:?} body {shown:?} → {status} {body}",
                    bad.kind, bad.method, bad.path, bad.headers
                )
            };
            assert!((400..500).contains(&status), "not a 4xx: {}", what());
            let err = &body["error"];
            assert!(
                err["code"].as_str().is_some_and(|c| !c.is_empty())
                    && err["message"].as_str().is_some_and(|m| !m.is_empty())
                    && err.get("field").is_some(),
                "not an error body: {}",
                what()
            );
            *per_status.entry(status).or_default() += 1;
            *per_kind
                .entry(bad.kind)
                .or_default()
                .entry(status)
                .or_default() += 1;
        }
    });
    let elapsed = started.elapsed();
    println!(
        "{requests} bad requests (seed {seed:#x}) in {:.1} s, {reconnects} reconnects",
        elapsed.as_secs_f64()
    );
    println!("per status: {per_status:?}");
    for (kind, statuses) in &per_kind {
        println!("  {kind:<22} {statuses:?}");
    }
    assert!(per_status.values().sum::<usize>() >= requests);

    // The daemon is up, nothing was queued, and a valid receipt still prints once.
    let (status, health) = d.get("/v1/health");
    assert_eq!(status, 200, "{health}");
    let (status, jobs) = d.get("/v1/jobs?limit=1000");
    assert_eq!(status, 200, "{jobs}");
    assert_eq!(jobs["jobs"], json!([]), "a bad request queued a job");
    let body = json!({
        "lines": [{"name": "Chleb po złym wejściu", "quantity": "1.5", "unit_price": 450, "vat": "A"}],
        "payments": [{"method": "cash", "amount": 1000}]
    });
    let (status, job) = d.post("/v1/receipts?wait=30", &body);
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "done", "{job}");
    assert_eq!(job["result"]["total"], 675, "{job}");
    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert_eq!(receipts[0]["total"], 675);
    let (_, jobs) = d.get("/v1/jobs?limit=1000");
    let ids: Vec<&Value> = jobs["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| &j["id"])
        .collect();
    assert_eq!(ids, vec![&job["id"]], "{jobs}");
}

/// Sends `bytes` one per second on a raw connection until `stop`, the end of `bytes`,
/// or the daemon answers or closes. Returns when and how it ended.
fn trickle(
    socket: &std::path::Path,
    prefix: &[u8],
    bytes: &[u8],
    stop: &AtomicBool,
    give_up: Duration,
) -> Option<(Duration, String)> {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.write_all(prefix).expect("write the prefix");
    let started = Instant::now();
    for b in bytes {
        if stop.load(Ordering::Relaxed) || started.elapsed() > give_up {
            return None;
        }
        if let Err(e) = s.write_all(&[*b]) {
            return Some((started.elapsed(), format!("closed ({e})")));
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => return Some((started.elapsed(), "closed".into())),
            Ok(n) => {
                let head = String::from_utf8_lossy(&buf[..n]);
                let line = head.lines().next().unwrap_or("").to_string();
                return Some((started.elapsed(), format!("answered {line:?}")));
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Some((started.elapsed(), format!("closed ({e})"))),
        }
    }
    None
}

const SLOW_HEAD: &[u8] = b"POST /v1/receipts HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\ncontent-length: 179\r\n\r\n";
const SLOW_BODY: &[u8] = br#"{"lines": [{"name": "Powoli", "quantity": "1", "unit_price": 100, "vat": "A"}], "payments": [{"method": "cash", "amount": 100}], "total": 100}                                     "#;

#[test]
fn a_slow_client_does_not_hold_up_the_printer() {
    let (_dir, sim, d) = setup();
    let stop = Arc::new(AtomicBool::new(false));
    // One client trickles its headers, another its body, one byte a second.
    let slow: Vec<_> = [(&b""[..], SLOW_HEAD), (SLOW_HEAD, SLOW_BODY)]
        .into_iter()
        .map(|(prefix, bytes)| {
            let (socket, stop) = (d.socket.clone(), stop.clone());
            std::thread::spawn(move || {
                trickle(&socket, prefix, bytes, &stop, Duration::from_secs(60))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(3));
    let started = Instant::now();
    let body = json!({
        "lines": [{"name": "Obok wolnego klienta", "quantity": "1", "unit_price": 250, "vat": "B"}],
        "payments": [{"method": "card", "amount": 250}]
    });
    let (status, job) = d.post("/v1/receipts?wait=20", &body);
    let took = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "done", "{job}");
    assert!(
        took < Duration::from_secs(5),
        "a receipt next to slow clients took {took:?}"
    );
    assert_eq!(sim.receipts().len(), 1);
    for t in slow {
        t.join().expect("slow client thread");
    }
}

/// How long the daemon may let a client take over its request headers or its body
/// before it answers or closes the connection (see the README's API limits).
const SLOW_CLIENT_LIMIT: Duration = Duration::from_secs(10);

#[test]
fn a_slow_client_is_timed_out() {
    let (_dir, _sim, d) = setup();
    let stop = Arc::new(AtomicBool::new(false));
    let slow: Vec<_> = [(&b""[..], SLOW_HEAD), (SLOW_HEAD, SLOW_BODY)]
        .into_iter()
        .map(|(prefix, bytes)| {
            let (socket, stop) = (d.socket.clone(), stop.clone());
            std::thread::spawn(move || {
                trickle(&socket, prefix, bytes, &stop, SLOW_CLIENT_LIMIT * 2)
            })
        })
        .collect();
    let ends: Vec<_> = slow.into_iter().map(|t| t.join().unwrap()).collect();
    for (what, end) in ["headers", "body"].iter().zip(ends) {
        let (after, how) = end.unwrap_or_else(|| panic!("a slow {what} was never timed out"));
        assert!(
            after <= SLOW_CLIENT_LIMIT + Duration::from_secs(3),
            "a slow {what} was {how} only after {after:?}"
        );
        println!("slow {what}: {how} after {after:?}");
    }
}
