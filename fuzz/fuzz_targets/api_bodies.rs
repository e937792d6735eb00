//! Fuzz the API body validators: arbitrary bytes → JSON → every validator in
//! `fiscald::document`. None may panic, and a receipt that validates must keep the
//! invariants the printer relies on, checked here independently of the validator.
#![no_main]

use fiscald::document::{
    self, Invoice, Line, MAX_AMOUNT, MAX_INVOICE_LINES, MAX_LINES, MAX_PAYMENTS, Method, Payment,
    PrinterLimits, Receipt,
};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// quantity × unit_price rounded half up, in integers: q = m / 10^s.
fn amount_half_up(q: rust_decimal::Decimal, price: u64) -> u128 {
    let m = u128::try_from(q.mantissa()).expect("quantity is positive");
    let den = 10u128.pow(q.scale());
    (2 * m * u128::from(price) + den) / (2 * den)
}

/// The invariants of validated lines; returns the sum of their final values.
fn check_lines(lines: &[Line], max: usize, limits: &PrinterLimits<'_>) -> u128 {
    assert!(!lines.is_empty() && lines.len() <= max);
    let mut sum: u128 = 0;
    for l in lines {
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
        assert!(l.value() >= 1, "a discount leaves its line above zero: {l:?}");
        let name_len = l.name.chars().count();
        assert!(name_len >= 1 && name_len <= limits.max_name_length, "{l:?}");
        assert!(!l.name.chars().any(char::is_control), "{l:?}");
        assert!(('A'..='G').contains(&l.vat), "{l:?}");
        if let Some(active) = limits.active_vat {
            assert!(active.contains(&l.vat), "{l:?}");
        }
        sum += u128::from(l.value());
    }
    sum
}

/// Payments cover `due`, and change comes only from cash.
fn check_payments(payments: &[Payment], due: u128) {
    assert!(payments.len() <= MAX_PAYMENTS);
    assert!(!payments.is_empty() || due == 0);
    let paid: u128 = payments.iter().map(|p| u128::from(p.amount)).sum();
    let cash: u128 = payments
        .iter()
        .filter(|p| p.method == Method::Cash)
        .map(|p| u128::from(p.amount))
        .sum();
    assert!(paid >= due, "payments cover the amount due");
    assert!(paid - due <= cash, "change only from cash");
    assert!(paid <= u128::from(MAX_AMOUNT));
}

/// The subtotal adjustments applied in order to `sum`.
fn after_discounts(mut sum: u128, discounts: &[document::Adjustment]) -> u128 {
    for d in discounts {
        sum = u128::try_from(d.apply(u64::try_from(sum).expect("in range")))
            .expect("a discount leaves the total above zero");
    }
    sum
}

fn check(r: &Receipt, limits: &PrinterLimits<'_>) {
    let sum = check_lines(&r.lines, MAX_LINES, limits);
    assert_eq!(u128::from(r.total), after_discounts(sum, &r.discounts));
    assert!(r.total <= MAX_AMOUNT);
    check_payments(&r.payments, u128::from(r.amount_due()));
    assert_eq!(r.vat_totals().values().sum::<u64>(), r.total, "the VAT split sums to the total");
    if let Some(nip) = &r.buyer_nip {
        assert!(nip.len() == 10 && nip.bytes().all(|b| b.is_ascii_digit()));
    }
    // The journaled form reads back to the same receipt.
    let journaled = serde_json::to_value(r).expect("serialise");
    let back: Receipt = serde_json::from_value(journaled).expect("deserialise");
    assert_eq!(&back, r);
}

fn check_invoice(i: &Invoice, limits: &PrinterLimits<'_>) {
    let sum = check_lines(&i.lines, MAX_INVOICE_LINES, limits);
    assert_eq!(u128::from(i.total), after_discounts(sum, &i.discounts));
    assert!(i.discounts.is_empty() || limits.support.invoice_subtotal_adjustments);
    check_payments(&i.payments, u128::from(i.total));
    assert!(!i.number.trim().is_empty() && i.number.chars().count() <= 40);
    assert!(i.buyer.nip.len() == 10 && i.buyer.nip.bytes().all(|b| b.is_ascii_digit()));
    assert!(i.copies <= 9);
    assert_eq!(i.vat_totals().values().sum::<u64>(), i.total);
    let back: Invoice = serde_json::from_value(serde_json::to_value(i).expect("serialise"))
        .expect("deserialise");
    assert_eq!(&back, i);
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
            support: fiscald::drivers::posnet::SUPPORT,
        },
        PrinterLimits {
            max_name_length: 80,
            active_vat: None,
            support: document::DocumentSupport {
                invoice_subtotal_adjustments: true,
                ..fiscald::drivers::posnet::SUPPORT
            },
        },
    ] {
        if let Ok(r) = document::receipt(&body, &limits, &["printer"]) {
            check(&r, &limits);
            let _ = document::sale_card_amount(&r);
        }
        if let Ok(i) = document::invoice(&body, &limits, &["printer"]) {
            check_invoice(&i, &limits);
        }
    }
    if let Ok(p) = document::periodic_report(&body, &["printer"], &fiscald::drivers::posnet::SUPPORT) {
        assert!(p.from <= p.to);
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
