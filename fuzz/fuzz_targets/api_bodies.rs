//! Fuzz the API body validators: arbitrary bytes → JSON → every validator in
//! `fiscald::document`. None may panic, and a receipt that validates must keep the
//! invariants the printer relies on, checked here independently of the validator.
#![no_main]

use fiscald::document::{
    self, MAX_AMOUNT, MAX_LINES, MAX_PAYMENTS, Method, PrinterLimits, Receipt,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// quantity × unit_price rounded half up, in integers: q = m / 10^s.
fn amount_half_up(q: rust_decimal::Decimal, price: u64) -> u128 {
    let m = u128::try_from(q.mantissa()).expect("quantity is positive");
    let den = 10u128.pow(q.scale());
    (2 * m * u128::from(price) + den) / (2 * den)
}

fn check(r: &Receipt, limits: &PrinterLimits<'_>) {
    assert!(!r.lines.is_empty() && r.lines.len() <= MAX_LINES);
    assert!(!r.payments.is_empty() && r.payments.len() <= MAX_PAYMENTS);
    let mut sum: u128 = 0;
    for l in &r.lines {
        assert!(
            l.quantity > rust_decimal::Decimal::ZERO && l.quantity.scale() <= 3,
            "{l:?}"
        );
        assert!((1..=MAX_AMOUNT).contains(&l.unit_price), "{l:?}");
        assert_eq!(
            u128::from(l.amount),
            amount_half_up(l.quantity, l.unit_price),
            "{l:?}"
        );
        assert!((1..=MAX_AMOUNT).contains(&l.amount), "{l:?}");
        let name_len = l.name.chars().count();
        assert!(name_len >= 1 && name_len <= limits.max_name_length, "{l:?}");
        assert!(!l.name.chars().any(char::is_control), "{l:?}");
        assert!(('A'..='G').contains(&l.vat), "{l:?}");
        if let Some(active) = limits.active_vat {
            assert!(active.contains(&l.vat), "{l:?}");
        }
        sum += u128::from(l.amount);
    }
    assert_eq!(u128::from(r.total), sum, "total = sum of line amounts");
    assert!(r.total <= MAX_AMOUNT);
    let paid: u128 = r.payments.iter().map(|p| u128::from(p.amount)).sum();
    let cash: u128 = r
        .payments
        .iter()
        .filter(|p| p.method == Method::Cash)
        .map(|p| u128::from(p.amount))
        .sum();
    assert!(paid >= sum, "payments cover the total");
    assert!(paid - sum <= cash, "change only from cash");
    assert!(paid <= u128::from(MAX_AMOUNT));
    if let Some(nip) = &r.buyer_nip {
        assert!(nip.len() == 10 && nip.bytes().all(|b| b.is_ascii_digit()));
    }
    // The journaled form reads back to the same receipt.
    let journaled = serde_json::to_value(r).expect("serialise");
    let back: Receipt = serde_json::from_value(journaled).expect("deserialise");
    assert_eq!(&back, r);
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let vat: &[char] = &['A', 'B', 'C', 'D', 'E'];
    for limits in [
        PrinterLimits {
            max_name_length: 40,
            active_vat: Some(vat),
        },
        PrinterLimits {
            max_name_length: 80,
            active_vat: None,
        },
    ] {
        if let Ok(r) = document::receipt(&body, &limits, &["printer"]) {
            check(&r, &limits);
            let _ = document::sale_card_amount(&r);
        }
    }
    if let Ok(c) = document::cash(&body, &["printer"]) {
        assert!((1..=MAX_AMOUNT).contains(&c.amount));
    }
    if let Ok(p) = document::printout(&body, &["printer"]) {
        assert!(!p.lines.is_empty() && p.lines.len() <= document::MAX_PRINTOUT_LINES);
        for l in &p.lines {
            assert!(l.chars().count() <= document::MAX_PRINTOUT_LINE_LEN);
            assert!(!l.chars().any(char::is_control));
        }
    }
    if let Ok(p) = document::card_payment(&body, 985, &["terminal"]) {
        assert!((1..=MAX_AMOUNT).contains(&p.amount));
        assert!(matches!(p.kind.as_str(), "sale" | "refund" | "reversal"));
        assert_eq!(p.kind == "reversal", p.original_receipt_number.is_some());
    }
    let _ = document::empty(&body, &["printer"]);
});
