//! End to end: receipts with discounts, surcharges, deposits, a footer and codes, printed by
//! the daemon on the POSNET emulator (its own process) over a pseudo-terminal; and the
//! refusals that keep bad documents off the printer.

mod common;

use common::{Daemon, Sim};
use serde_json::{Value, json};

fn setup() -> (tempfile::TempDir, Sim, Daemon) {
    common::printer_daemon()
}

/// The basket of issue 10's "done when": line and receipt discounts, a surcharge, two
/// bottles' deposit issued and one returned, a footer line and a QR code.
fn basket() -> Value {
    json!({
        "lines": [
            {"name": "Kawa ziarnista", "quantity": "1", "unit_price": 3999, "vat": "A",
             "discount": {"kind": "discount", "percent": "10", "name": "Rabat"}},
            {"name": "Woda 0,5 l", "quantity": 2, "unit_price": 250, "vat": "B",
             "discount": {"kind": "discount", "amount": 50}},
            {"name": "Dostawa", "quantity": "1", "unit_price": 1000, "vat": "A",
             "discount": {"kind": "surcharge", "percent": "5"}}
        ],
        "discounts": [
            {"kind": "discount", "percent": "3", "name": "Stały klient"},
            {"kind": "surcharge", "amount": 20, "name": "Opakowanie"}
        ],
        "deposits": [
            {"code": "1", "name": "Butelka PET 0,5 l", "unit_price": 50, "quantity": 2},
            {"code": "1", "name": "Butelka PET 0,5 l", "unit_price": 50, "quantity": 1, "returned": true}
        ],
        "footer": ["Nr zamówienia 12345"],
        "qr": "https://example.invalid/zamowienie/12345",
        "payments": [{"method": "cash", "amount": 10000}]
    })
}

#[test]
fn a_full_basket_prints_as_one_receipt_with_the_printers_totals() {
    let (_dir, sim, d) = setup();
    let (status, job) = d.post("/v1/receipts?wait=30", &basket());
    assert_eq!(status, 200, "{job}");
    assert_eq!(job["state"], "done", "{job}");
    // Lines: 3999 − 10 % (dt0: 3599.1 → 3599) = 3599; 500 − 50 = 450; 1000 + 5 % = 1050.
    // Subtotal 5099 − 3 % (4946.03 → 4946) = 4946, + 20 = 4966.
    let result = &job["result"];
    assert_eq!(result["total"], 4966, "{result}");
    assert_eq!(result["deposits_issued"], 100);
    assert_eq!(result["deposits_returned"], 50);
    assert_eq!(result["amount_due"], 5016);
    let amounts: Vec<&Value> = result["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["amount"])
        .collect();
    assert_eq!(amounts, [&json!(3599), &json!(450), &json!(1050)]);

    let receipts = sim.receipts();
    assert_eq!(receipts.len(), 1, "one receipt");
    let r = &receipts[0];
    assert_eq!(r["number"], result["receipt_number"]);
    assert_eq!(r["total"], 4966);
    assert_eq!(r["amount_due"], 5016);
    assert_eq!(r["change"], 10000 - 5016);
    assert_eq!(r["deposits"].as_array().unwrap().len(), 2);
    assert_eq!(r["discounts"].as_array().unwrap().len(), 2);
    assert_eq!(r["lines"][0]["discount"]["amount"], 400);
    assert_eq!(r["lines"][2]["discount"]["kind"], "surcharge");
    assert_eq!(r["footer"], json!(["Nr zamówienia 12345"]));
    assert_eq!(r["qr"], "https://example.invalid/zamowienie/12345");
    let vat_sum: u64 = r["vat_totals"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(vat_sum, 4966);
    // The daemon splits the total over the VAT letters exactly as the printer does.
    assert_eq!(result["vat_totals"], r["vat_totals"], "{result}");

    // A POS that sends its own total is checked against the same arithmetic.
    let mut wrong = basket();
    wrong["total"] = json!(4967);
    let (status, body) = d.post("/v1/receipts", &wrong);
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["field"], "total", "{body}");
    let mut right = basket();
    right["total"] = json!(4966);
    let (status, job) = d.post("/v1/receipts?wait=30", &right);
    assert_eq!((status, &job["state"]), (200, &json!("done")), "{job}");
}

#[test]
fn bad_documents_are_refused_naming_the_field_and_nothing_is_printed() {
    let (_dir, sim, d) = setup();
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "/lines/0/discount/percent",
            json!(100),
            "lines[0].discount.percent",
        ),
        (
            "/lines/0/discount/percent",
            json!("12.345"),
            "lines[0].discount.percent",
        ),
        (
            "/lines/1/discount",
            json!({"kind": "discount", "amount": 500}),
            "lines[1].discount",
        ),
        (
            "/lines/1/discount",
            json!({"kind": "discount", "amount": 5, "percent": "1"}),
            "lines[1].discount",
        ),
        (
            "/lines/1/discount",
            json!({"kind": "rabat", "amount": 5}),
            "lines[1].discount.kind",
        ),
        ("/deposits/0/quantity", json!(1.5), "deposits[0].quantity"),
        ("/deposits/0/quantity", json!("2"), "deposits[0].quantity"),
        ("/deposits/0/code", json!("A1"), "deposits[0].code"),
        ("/deposits/1/quantity", json!(200), "deposits"),
        (
            "/discounts/0",
            json!({"kind": "discount", "amount": 999999}),
            "discounts[0]",
        ),
        ("/footer/0", json!("x".repeat(41)), "footer[0]"),
        ("/qr", json!("zażółć"), "qr"),
        ("/payments/0/amount", json!(5000), "payments"),
    ];
    for (pointer, value, field) in cases {
        let mut body = basket();
        *body
            .pointer_mut(pointer)
            .unwrap_or_else(|| panic!("{pointer}")) = value.clone();
        let (status, reply) = d.post("/v1/receipts", &body);
        assert_eq!(status, 422, "{pointer} = {value}: {reply}");
        assert_eq!(
            reply["error"]["field"], field,
            "{pointer} = {value}: {reply}"
        );
    }
    assert!(sim.receipts().is_empty(), "nothing reached the printer");
}
