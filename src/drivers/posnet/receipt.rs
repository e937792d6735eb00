//! The POSNET commands of a receipt or an invoice, built from the neutral document: what
//! goes before `trinit` (the footer's codes), the body up to the closing command, and `trend`
//! with the values the printer verifies. Pure functions, so the arithmetic can be checked
//! against the printer model.

use super::payment_kind;
use crate::document::{Adjustment, AdjustmentKind, Invoice, Line, Method, Receipt};
use posnet::Command;

/// The POSNET form of a neutral discount or surcharge.
pub fn adjustment(a: &Adjustment) -> posnet::Adjustment {
    posnet::Adjustment {
        surcharge: a.kind == AdjustmentKind::Surcharge,
        percent: a.percent_hundredths(),
        amount: a.amount,
        name: a.name.clone(),
    }
}

/// Before `trinit`: the QR code and barcode for this receipt's footer.
pub fn setup(r: &Receipt) -> Vec<Command> {
    let qr =
        r.qr.iter()
            .map(|text| Command::QrCode { text: text.clone() });
    let barcode = r
        .barcode
        .iter()
        .map(|b| Command::FtrCfg { barcode: b.clone() });
    qr.chain(barcode).collect()
}

/// After `trinit`, up to the closing command: the buyer's NIP, the lines with their
/// discounts, the bill discounts, the deposits, the payments and the change.
pub fn body(r: &Receipt) -> Vec<Command> {
    let mut out = Vec::new();
    if let Some(nip) = &r.buyer_nip {
        out.push(Command::TrNipSet { nip: nip.clone() });
    }
    out.extend(r.lines.iter().map(line));
    for d in &r.discounts {
        out.push(Command::TrDiscntBill(adjustment(d)));
    }
    for d in &r.deposits {
        out.push(Command::TrPack(posnet::Pack {
            code: d.code.clone(),
            unit_price: d.unit_price,
            quantity: d.quantity,
            amount: d.amount,
            returned: d.returned,
            description: d.name.clone(),
        }));
    }
    for p in &r.payments {
        out.push(Command::TrPayment {
            kind: payment_kind(p.method),
            amount: p.amount,
            name: None,
            change: false,
        });
    }
    let change = r.change();
    if change > 0 {
        out.push(Command::TrPayment {
            kind: posnet::PaymentKind::Cash,
            amount: change,
            name: None,
            change: true,
        });
    }
    out
}

/// One sold line, with its discount or surcharge (and an invoice line's PKWiU and code).
fn line(l: &Line) -> Command {
    Command::TrLine(posnet::Line {
        name: l.name.clone(),
        vat_slot: (l.vat as u8).saturating_sub(b'A'),
        unit_price: l.unit_price,
        quantity: l.quantity,
        amount: l.amount,
        unit: l.unit.clone(),
        pkwiu: l.pkwiu.clone(),
        code: l.code.clone(),
        adjustment: l.discount.as_ref().map(adjustment),
    })
}

/// How a payment method is named on an invoice's payment lines.
fn method_name(m: Method) -> &'static str {
    match m {
        Method::Cash => "gotówka",
        Method::Card => "karta",
        Method::Cheque => "czek",
        Method::Voucher => "bon",
        Method::Credit => "kredyt",
        Method::Transfer => "przelew",
        Method::Mobile => "płatność mobilna",
        Method::Other => "inna",
    }
}

/// Grosze as the printer shows them: `22,50`.
fn zloty(grosze: u64) -> String {
    format!("{},{:02}", grosze / 100, grosze % 100)
}

/// `trfvinit`, the buyer and the number: the invoice's opening, in place of `trinit`.
pub fn invoice_opening(i: &Invoice) -> Vec<Command> {
    vec![
        Command::TrFvInit { copies: i.copies },
        Command::TrFvBuyer(posnet::InvoiceBuyer {
            name: i.buyer.name.clone(),
            nip: i.buyer.nip.clone(),
            address: i.buyer.address.clone(),
        }),
        Command::TrFvNumber {
            number: i.number.clone(),
        },
    ]
}

/// An invoice's lines, then its payments as free lines in the footer section (a POSNET
/// invoice takes no `trpayment`).
pub fn invoice_body(i: &Invoice) -> Vec<Command> {
    let mut out: Vec<Command> = i.lines.iter().map(line).collect();
    for p in &i.payments {
        out.push(Command::TrFvFreeData {
            text: format!(
                "Zapłacono: {} {} zł",
                method_name(p.method),
                zloty(p.amount)
            ),
            section: posnet::command::INVOICE_FOOTER,
        });
    }
    let change = i.paid().saturating_sub(i.total);
    if change > 0 {
        out.push(Command::TrFvFreeData {
            text: format!("Reszta: {} zł", zloty(change)),
            section: posnet::command::INVOICE_FOOTER,
        });
    }
    out
}

/// An invoice's closing `trend`: the total only.
pub fn invoice_closing(i: &Invoice) -> Command {
    Command::TrEnd(posnet::Closing {
        total: i.total,
        payments: None,
        change: 0,
        deposits_issued: 0,
        deposits_returned: 0,
        footer: false,
    })
}

/// The closing `trend`, with every value the printer checks against its own.
pub fn closing(r: &Receipt) -> Command {
    Command::TrEnd(posnet::Closing {
        total: r.total,
        payments: Some(r.paid()),
        change: r.change(),
        deposits_issued: r.deposits_issued(),
        deposits_returned: r.deposits_returned(),
        footer: !r.footer.is_empty(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{PrinterLimits, receipt};
    use posnet::model::Printer;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    fn adjustment_json() -> impl Strategy<Value = Option<Value>> {
        let kind = prop_oneof![Just("discount"), Just("surcharge")];
        let value = prop_oneof![
            (1u32..9999).prop_map(|p| json!(format!("{}.{:02}", p / 100, p % 100))),
            (1u64..400).prop_map(|a| json!(a)),
        ];
        proptest::option::weighted(0.6, (kind, value)).prop_map(|o| {
            o.map(|(kind, v)| {
                if v.is_string() {
                    json!({"kind": kind, "percent": v})
                } else {
                    json!({"kind": kind, "amount": v})
                }
            })
        })
    }

    fn basket() -> impl Strategy<Value = Value> {
        let line = (1u64..5000, 1u32..4000, 0usize..5, adjustment_json());
        let deposit = (1u64..3, 1u64..4, any::<bool>());
        (
            proptest::collection::vec(line, 1..8),
            proptest::collection::vec(adjustment_json(), 0..3),
            proptest::collection::vec(deposit, 0..4),
        )
            .prop_map(|(lines, discounts, deposits)| {
                let lines: Vec<Value> = lines
                    .into_iter()
                    .enumerate()
                    .map(|(i, (price, qty, vat, d))| {
                        let letter = ["A", "B", "C", "D", "E"][vat];
                        let mut l = json!({
                            "name": format!("Towar {i}"),
                            "quantity": format!("{}.{:03}", qty / 1000, qty % 1000),
                            "unit_price": price,
                            "vat": letter,
                        });
                        if let Some(d) = d {
                            l["discount"] = d;
                        }
                        l
                    })
                    .collect();
                let discounts: Vec<Value> = discounts.into_iter().flatten().collect();
                let deposits: Vec<Value> = deposits
                    .into_iter()
                    .map(|(code, q, returned)| {
                        json!({"code": code.to_string(), "unit_price": 50 * code, "quantity": q, "returned": returned})
                    })
                    .collect();
                json!({"lines": lines, "discounts": discounts, "deposits": deposits,
                       "payments": [{"method": "cash", "amount": 99_999_999}]})
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Whatever basket the daemon accepts, the printer model takes the daemon's commands
        /// without a verification error and arrives at the same total and amount due.
        #[test]
        fn the_daemons_totals_are_the_printers(basket_json in basket()) {
            let limits = PrinterLimits { max_name_length: 40, active_vat: None, support: super::super::SUPPORT };
            let Ok(r) = receipt(&basket_json, &limits, &[]) else {
                // Refused up front (a discount that would eat its line, say): nothing to print.
                return Ok(());
            };
            let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 20)
                .and_then(|d| d.and_hms_opt(12, 0, 0))
                .unwrap();
            let mut printer = Printer::new();
            let commands = std::iter::once(Command::DiscountTypeSet { discount_first: false })
                .chain(setup(&r))
                .chain(std::iter::once(Command::TrInit { block_mode: false }))
                .chain(body(&r))
                .chain(std::iter::once(closing(&r)));
            for c in commands {
                let reply = printer.handle(&c.to_frame(), now).reply.unwrap();
                prop_assert_eq!(reply.error_code, None, "{:?} refused: {:?}", c, reply);
                prop_assert!(!reply.is_frame_error(), "{:?}: {:?}", c, reply);
            }
            let printed = printer.memory().receipts.last().unwrap();
            prop_assert_eq!(printed.total, r.total);
            prop_assert_eq!(printed.amount_due, r.amount_due());
            prop_assert_eq!(printed.change, r.change());
            prop_assert_eq!(&printed.vat_totals, &r.vat_totals());
            for (line, mine) in printed.lines.iter().zip(&r.lines) {
                let theirs = line.discount.as_ref().map_or(0, |d| d.amount);
                prop_assert_eq!(theirs, mine.discount.as_ref().map_or(0, |d| d.amount));
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// An invoice of the same random lines: the model prints it with the daemon's total,
        /// under the invoice counter, with the daemon's payment lines.
        #[test]
        fn the_daemons_invoice_totals_are_the_printers(basket_json in basket(), copies in 0u8..3) {
            let lines = basket_json["lines"].clone();
            let body = json!({"number": "FV 1/2026", "copies": copies,
                              "buyer": {"name": "Firma", "nip": "5260001246"},
                              "lines": lines,
                              "payments": [{"method": "transfer", "amount": 99_999_999}]});
            let limits = PrinterLimits { max_name_length: 40, active_vat: None, support: super::super::SUPPORT };
            let Ok(i) = crate::document::invoice(&body, &limits, &[]) else {
                return Ok(());
            };
            let now = chrono::NaiveDate::from_ymd_opt(2026, 11, 20)
                .and_then(|d| d.and_hms_opt(12, 0, 0))
                .unwrap();
            let mut printer = Printer::new();
            let commands = invoice_opening(&i)
                .into_iter()
                .chain(invoice_body(&i))
                .chain(std::iter::once(invoice_closing(&i)));
            for c in commands {
                let reply = printer.handle(&c.to_frame(), now).reply.unwrap();
                prop_assert_eq!(reply.error_code, None, "{:?} refused: {:?}", c, reply);
                prop_assert!(!reply.is_frame_error(), "{:?}: {:?}", c, reply);
            }
            let m = printer.memory();
            prop_assert_eq!(m.counters.invoices, 1);
            let printed = m.invoices.last().unwrap();
            prop_assert_eq!(printed.total, i.total);
            prop_assert_eq!(&printed.vat_totals, &i.vat_totals());
            prop_assert_eq!(&printed.invoice_number, "FV 1/2026");
            prop_assert_eq!(printed.copies, copies);
            prop_assert!(printed.free_data.iter().any(|l| l.starts_with("Zapłacono: przelew")));
        }
    }

    /// The property above is not vacuous: most generated baskets are accepted.
    #[test]
    fn most_generated_baskets_are_valid() {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let limits = PrinterLimits {
            max_name_length: 40,
            active_vat: None,
            support: super::super::SUPPORT,
        };
        let accepted = (0..300)
            .filter(|_| {
                let b = basket().new_tree(&mut runner).unwrap().current();
                receipt(&b, &limits, &[]).is_ok()
            })
            .count();
        assert!(accepted >= 150, "only {accepted} of 300 baskets were valid");
    }
}
