//! The model's documents beyond the plain receipt, driven by typed commands: discounts and
//! surcharges with both rounding orders, deposits, the footer and its codes, VAT invoices,
//! periodic reports and copies, and the printer's verification errors.
#![cfg(feature = "model")]

use chrono::{NaiveDate, NaiveDateTime};
use posnet::command::{
    Adjustment, Closing, Command, CopyOf, InvoiceBuyer, Line, Pack, PaymentKind,
};
use posnet::model::Printer;
use posnet::reply::Scnt;
use rust_decimal::Decimal;

fn now() -> NaiveDateTime {
    NaiveDateTime::parse_from_str("2026-11-20 12:00", "%Y-%m-%d %H:%M").unwrap()
}

/// Send a command; the command error code, if any.
fn send(p: &mut Printer, c: &Command) -> Option<u32> {
    let reply = p.handle(&c.to_frame(), now()).reply.expect("an answer");
    assert!(!reply.is_frame_error(), "{c:?} gave {reply:?}");
    reply.error_code
}

fn ok(p: &mut Printer, c: Command) {
    assert_eq!(send(p, &c), None, "{c:?}");
}

fn line(name: &str, slot: u8, price: u64, adjustment: Option<Adjustment>) -> Command {
    Command::TrLine(Line {
        name: name.into(),
        vat_slot: slot,
        unit_price: price,
        quantity: Decimal::ONE,
        amount: price,
        adjustment,
        ..Line::default()
    })
}

fn discount(percent: Option<u32>, amount: u64) -> Adjustment {
    Adjustment {
        surcharge: false,
        percent,
        amount,
        name: Some("Rabat".into()),
    }
}

fn pay(amount: u64) -> Command {
    Command::TrPayment {
        kind: PaymentKind::Cash,
        amount,
        name: None,
        change: false,
    }
}

fn pack(code: &str, quantity: u64, returned: bool) -> Command {
    Command::TrPack(Pack {
        code: code.into(),
        unit_price: 50,
        quantity,
        amount: 50 * quantity,
        returned,
        description: Some("Butelka PET 0,5 l".into()),
    })
}

fn scnt(p: &mut Printer) -> Scnt {
    let reply = p.handle(&Command::SCnt.to_frame(), now()).reply.unwrap();
    Scnt::from_frame(&reply).unwrap()
}

#[test]
fn the_full_basket_prints_with_the_printers_totals() {
    let mut p = Printer::new();
    ok(
        &mut p,
        Command::DiscountTypeSet {
            discount_first: false,
        },
    );
    ok(
        &mut p,
        Command::QrCode {
            text: "https://example.invalid/r/1".into(),
        },
    );
    ok(&mut p, Command::TrInit { block_mode: false });
    // 1000 with 10 % off = 900; 500 with 50 gr off = 450; 300 with a 5 % surcharge = 315.
    ok(
        &mut p,
        line("Kawa", 0, 1000, Some(discount(Some(1000), 100))),
    );
    ok(&mut p, line("Herbata", 1, 500, Some(discount(None, 50))));
    let surcharge = Adjustment {
        surcharge: true,
        percent: Some(500),
        amount: 15,
        name: None,
    };
    ok(&mut p, line("Ciastko", 0, 300, Some(surcharge)));
    // 1665 with 3 % off on the subtotal: dt0 rounds the value after it, 1615.05 → 1615.
    ok(&mut p, Command::TrDiscntBill(discount(Some(300), 50)));
    ok(&mut p, pack("1", 2, false));
    ok(&mut p, pack("1", 1, true));
    ok(&mut p, pay(2000));
    let closing = Closing {
        total: 1615,
        payments: Some(2000),
        change: 335,
        deposits_issued: 100,
        deposits_returned: 50,
        footer: true,
    };
    ok(&mut p, Command::TrEnd(closing));
    ok(
        &mut p,
        Command::TrFtrLn {
            text: "Nr zamówienia 12345".into(),
        },
    );
    ok(&mut p, Command::TrFtrEnd);

    let r = p.memory().receipts.last().unwrap().clone();
    assert_eq!(
        (
            r.total,
            r.deposits_issued,
            r.deposits_returned,
            r.amount_due
        ),
        (1615, 100, 50, 1665)
    );
    assert_eq!(r.change, 335);
    assert_eq!(r.footer, ["Nr zamówienia 12345"]);
    assert_eq!(r.qr.as_deref(), Some("https://example.invalid/r/1"));
    assert_eq!(r.deposits.len(), 2);
    assert_eq!(r.vat_totals.values().sum::<u64>(), 1615);
    assert!(!p.memory().footer_open);
    assert_eq!(p.memory().cash_in_drawer, 1665);
}

#[test]
fn percentages_round_by_the_discount_type() {
    // POT-I-DEV-37's example: 1350 at 15 % is 1148 with dt0 and 1147 with dt1.
    for (discount_first, after) in [(false, 1148), (true, 1147)] {
        let mut p = Printer::new();
        ok(&mut p, Command::DiscountTypeSet { discount_first });
        ok(&mut p, Command::TrInit { block_mode: false });
        ok(
            &mut p,
            line("Ser", 0, 1350, Some(discount(Some(1500), 1350 - after))),
        );
        ok(&mut p, pay(after));
        let closing = Closing {
            total: after,
            payments: Some(after),
            ..Closing::default()
        };
        ok(&mut p, Command::TrEnd(closing));
    }
}

#[test]
fn an_amount_discount_is_spread_over_the_rates_by_the_annex_rule() {
    let mut p = Printer::new();
    ok(&mut p, Command::TrInit { block_mode: false });
    ok(&mut p, line("Woda", 0, 100, None));
    ok(&mut p, line("Chleb", 1, 200, None));
    ok(&mut p, Command::TrDiscntBill(discount(None, 1)));
    ok(&mut p, pay(299));
    ok(
        &mut p,
        Command::TrEnd(Closing {
            total: 299,
            payments: Some(299),
            ..Closing::default()
        }),
    );
    let totals = &p.memory().receipts[0].vat_totals;
    assert_eq!((totals["A"], totals["B"]), (99, 200));
}

#[test]
fn the_printer_checks_what_the_host_sends() {
    let mut p = Printer::new();
    ok(&mut p, Command::TrInit { block_mode: false });
    // rw disagrees with rp: 2801.
    assert_eq!(
        send(
            &mut p,
            &line("Kawa", 0, 1000, Some(discount(Some(1000), 99)))
        ),
        Some(2801)
    );
    // A discount as large as its line.
    assert_eq!(
        send(&mut p, &line("Kawa", 0, 1000, Some(discount(None, 1000)))),
        Some(1981)
    );
    ok(&mut p, line("Kawa", 0, 1000, None));
    ok(&mut p, pack("7", 1, false));
    ok(&mut p, pay(1050));
    let good = Closing {
        total: 1000,
        payments: Some(1050),
        deposits_issued: 50,
        ..Closing::default()
    };
    for (closing, code) in [
        (Closing { total: 999, ..good }, 2805),
        (
            Closing {
                deposits_issued: 0,
                ..good
            },
            2806,
        ),
        (
            Closing {
                deposits_returned: 10,
                ..good
            },
            2807,
        ),
        (
            Closing {
                payments: Some(1000),
                ..good
            },
            2808,
        ),
        (Closing { change: 5, ..good }, 2809),
    ] {
        assert_eq!(
            send(&mut p, &Command::TrEnd(closing)),
            Some(code),
            "{closing:?}"
        );
    }
    ok(&mut p, Command::TrEnd(good));
    assert_eq!(p.memory().receipts[0].amount_due, 1050);
}

fn invoice(p: &mut Printer, number: &str) {
    ok(p, Command::TrFvInit { copies: 1 });
    let buyer = InvoiceBuyer {
        name: "Hurtownia Sp. z o.o.".into(),
        nip: "5260001246".into(),
        address: Some("ul. Prosta 1\n00-001 Warszawa".into()),
    };
    ok(p, Command::TrFvBuyer(buyer));
    ok(
        p,
        Command::TrFvNumber {
            number: number.into(),
        },
    );
    ok(p, line("Kawa", 0, 1000, Some(discount(None, 100))));
    ok(
        p,
        Command::TrEnd(Closing {
            total: 900,
            ..Closing::default()
        }),
    );
}

#[test]
fn an_invoice_counts_on_its_own_counter_and_refuses_receipt_parts() {
    let mut p = Printer::new();
    assert_eq!(send(&mut p, &Command::TrFvInit { copies: 10 }), Some(2532));
    ok(&mut p, Command::TrFvInit { copies: 2 });
    ok(&mut p, line("Kawa", 0, 1000, None));
    assert_eq!(
        send(&mut p, &pay(1000)),
        Some(2060),
        "no payments on an invoice"
    );
    assert_eq!(
        send(&mut p, &pack("1", 1, false)),
        Some(2060),
        "no packaging on an invoice"
    );
    assert_eq!(
        send(&mut p, &Command::TrDiscntBill(discount(None, 10))),
        Some(2060)
    );
    let end = Command::TrEnd(Closing {
        total: 1000,
        ..Closing::default()
    });
    assert_eq!(send(&mut p, &end), Some(2535), "no buyer yet");
    ok(
        &mut p,
        Command::TrFvBuyer(InvoiceBuyer {
            name: "Firma".into(),
            nip: "5260001246".into(),
            address: None,
        }),
    );
    assert_eq!(send(&mut p, &end), Some(2533), "no number yet");
    ok(&mut p, Command::PrnCancel);
    assert_eq!(p.memory().counters.cancelled_invoices, 1);

    let before = scnt(&mut p);
    invoice(&mut p, "FV 12/11/2026");
    let after = scnt(&mut p);
    assert_eq!(after.invoices, before.invoices + 1);
    assert_eq!(
        after.last_receipt, before.last_receipt,
        "an invoice is not a receipt"
    );
    let inv = p.memory().invoices.last().unwrap();
    assert_eq!(
        (inv.invoice_number.as_str(), inv.total, inv.copies),
        ("FV 12/11/2026", 900, 1)
    );
    assert_eq!(p.memory().day.totals["A"], 900);
}

#[test]
fn periodic_reports_and_copies_take_a_document_number() {
    let mut p = Printer::new();
    invoice(&mut p, "FV 1/2026");
    let day = NaiveDate::from_ymd_opt(2026, 11, 20).unwrap();
    ok(&mut p, Command::DailyRep { date: day });
    let before = scnt(&mut p).next_printout;
    let first = NaiveDate::from_ymd_opt(2026, 11, 1).unwrap();
    ok(
        &mut p,
        Command::PeriodicRep {
            from: first,
            to: day,
            summary: false,
        },
    );
    let report = p.memory().periodic_reports.last().unwrap();
    assert_eq!((report.daily_reports, report.totals["A"]), (1, 900));
    let copy = Command::EcPrnDoc {
        of: CopyOf::Invoices,
        from: 1,
        to: 1,
    };
    ok(&mut p, copy);
    assert_eq!(p.memory().copies.last().unwrap().documents, [1]);
    assert_eq!(scnt(&mut p).next_printout, before + 2);
    let missing = Command::EcPrnDoc {
        of: CopyOf::Receipts,
        from: 5,
        to: 5,
    };
    assert_eq!(
        send(&mut p, &missing),
        Some(posnet::model::DOCUMENT_NOT_FOUND)
    );
}
