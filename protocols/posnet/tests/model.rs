//! Behaviour of the printer model (`--features model`).
#![cfg(feature = "model")]

use chrono::NaiveDateTime;
use posnet::Frame;
use posnet::model::{FiscalMemory, Outcome, Printer};
use posnet::reply::{Rtc, Scnt, Scomm, Sdev, Sid, VatRate, VatTable};
use serde_json::json;

fn at(s: &str) -> NaiveDateTime {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap()
}

fn day1() -> NaiveDateTime {
    at("2026-09-08 10:00")
}

fn frame(mnemonic: &str, params: &[(&str, &str)]) -> Frame {
    params
        .iter()
        .fold(Frame::new(mnemonic), |f, (n, v)| f.with(n, *v))
}

fn line(name: &str, vt: &str, pr: &str) -> Frame {
    frame("trline", &[("na", name), ("vt", vt), ("pr", pr)])
}

fn reply(p: &mut Printer, f: Frame, now: NaiveDateTime) -> Frame {
    p.handle(&f, now).reply.expect("an answer")
}

/// Send and expect success.
fn ok(p: &mut Printer, f: Frame, now: NaiveDateTime) -> Frame {
    let r = reply(p, f.clone(), now);
    assert_eq!(r.error_code, None, "{f:?} gave {r:?}");
    assert_eq!(r.mnemonic, f.mnemonic);
    r
}

/// Send and return the command error code (panics on a frame error).
fn code(p: &mut Printer, f: Frame, now: NaiveDateTime) -> Option<u32> {
    let r = reply(p, f, now);
    assert!(!r.is_frame_error(), "{r:?}");
    r.error_code
}

/// A complete cash receipt of the given lines (name, vt, pr).
fn sell(p: &mut Printer, now: NaiveDateTime, lines: &[(&str, &str, u64)]) {
    ok(p, frame("trinit", &[("bm", "0")]), now);
    let mut total = 0;
    for (name, vt, pr) in lines {
        ok(p, line(name, vt, &pr.to_string()), now);
        total += pr;
    }
    let total = total.to_string();
    ok(p, frame("trpayment", &[("ty", "0"), ("wa", &total)]), now);
    ok(p, frame("trend", &[("to", &total), ("fp", &total)]), now);
}

fn scnt(p: &mut Printer) -> Scnt {
    Scnt::from_frame(&reply(p, Frame::new("scnt"), day1())).unwrap()
}

fn scomm(p: &mut Printer) -> Scomm {
    Scomm::from_frame(&reply(p, Frame::new("scomm"), day1())).unwrap()
}

#[test]
fn full_receipt_is_stored_intact() {
    let mut p = Printer::new();
    let now = at("2026-09-08 17:55");
    let start = p.handle(&frame("trinit", &[("bm", "0")]), now);
    assert!(start.fiscal_event);
    assert!(p.memory().open_receipt);
    let polish = [
        ("na", "Żółć gęślą jaźń"),
        ("vt", "0"),
        ("pr", "1000"),
        ("il", "1.5"),
        ("wa", "1500"),
    ];
    ok(&mut p, frame("trline", &polish), now);
    let bread = [
        ("na", "Chleb"),
        ("vt", "1"),
        ("pr", "333"),
        ("il", "2,5"),
        ("wa", "833"),
        ("jm", "szt"),
    ];
    ok(&mut p, frame("trline", &bread), now);
    // 10 % off the bill: 2333 → 2100 (233.3 rounds to 233).
    ok(
        &mut p,
        frame("trdiscntbill", &[("rp", "1000"), ("na", "Rabat")]),
        now,
    );
    ok(
        &mut p,
        frame("trpayment", &[("ty", "2"), ("wa", "1000")]),
        now,
    );
    ok(
        &mut p,
        frame(
            "trpayment",
            &[("ty", "0"), ("wa", "2000"), ("na", "Gotówka")],
        ),
        now,
    );
    ok(
        &mut p,
        frame("trpayment", &[("ty", "0"), ("wa", "900"), ("re", "1")]),
        now,
    );
    let end = p.handle(
        &frame("trend", &[("to", "2100"), ("fp", "3000"), ("re", "900")]),
        now,
    );
    assert_eq!(end.reply, Some(Frame::new("trend")));
    assert!(end.fiscal_event);

    let m = p.memory();
    assert!(!m.open_receipt);
    assert_eq!(m.receipts.len(), 1);
    let r = &m.receipts[0];
    assert_eq!((r.number, r.total, r.change), (1, 2100, 900));
    assert_eq!(r.printed_at, "2026-09-08T17:55:00");
    assert_eq!(m.cash_in_drawer, 1100);
    // The bill discount is spread over the rates in proportion (1500:833 of 233).
    assert_eq!(m.day.totals.get("A"), Some(&1350));
    assert_eq!(m.day.totals.get("B"), Some(&750));

    let json = serde_json::to_value(m).unwrap();
    let receipt = &json["receipts"][0];
    assert_eq!(
        receipt["lines"][0],
        json!({"name": "Żółć gęślą jaźń", "vat": "A", "quantity": "1.5", "unit_price": 1000, "amount": 1500})
    );
    assert_eq!(receipt["lines"][1]["quantity"], "2.5");
    assert_eq!(receipt["lines"][1]["amount"], 833);
    assert_eq!(
        receipt["payments"],
        json!([{"method": "card", "amount": 1000}, {"method": "cash", "amount": 2000}])
    );
    assert_eq!(receipt["total"], 2100);
    assert_eq!(receipt["buyer_nip"], serde_json::Value::Null);
    assert_eq!(
        receipt["discounts"],
        json!([{"kind": "discount", "amount": 233, "name": "Rabat"}])
    );
    assert_eq!(json["open_receipt"], false);
    for key in ["daily_reports", "cash_operations", "printouts"] {
        assert_eq!(json[key], json!([]), "{key}");
    }
    let c = scnt(&mut p);
    assert_eq!((c.last_receipt, c.receipts_total, c.cancelled), (1, 1, 0));
}

#[test]
fn block_mode_and_parameter_order() {
    let mut p = Printer::new();
    ok(&mut p, frame("trinit", &[("bm", "1")]), day1());
    let status = scomm(&mut p);
    assert_eq!(status.transaction, 17);
    assert!(status.fiscal);
    let shuffled = [
        ("wa", "400"),
        ("pr", "200"),
        ("il", "2"),
        ("vt", "1"),
        ("na", "Mleko"),
    ];
    ok(&mut p, frame("trline", &shuffled), day1());
    ok(
        &mut p,
        frame("trpayment", &[("re", "0"), ("wa", "400"), ("ty", "0")]),
        day1(),
    );
    ok(
        &mut p,
        frame("trend", &[("fp", "400"), ("to", "400")]),
        day1(),
    );
    assert_eq!(p.memory().receipts[0].lines[0].vat, "B");
    assert_eq!(p.memory().receipts[0].lines[0].quantity, "2");
}

#[test]
fn buyer_nip_before_and_after_lines() {
    let mut p = Printer::new();
    ok(&mut p, frame("trinit", &[]), day1());
    ok(&mut p, frame("trnipset", &[("ni", "1112223344")]), day1());
    ok(&mut p, line("Chleb", "1", "200"), day1());
    assert_eq!(
        code(
            &mut p,
            frame("trnipset", &[("ni", "111-222-33-44")]),
            day1()
        ),
        Some(2096)
    );
    ok(&mut p, frame("trnipset", &[("ni", "1234563218")]), day1());
    ok(
        &mut p,
        frame("trpayment", &[("ty", "0"), ("wa", "200")]),
        day1(),
    );
    ok(&mut p, frame("trnipset", &[("ni", "5556667788")]), day1());
    ok(
        &mut p,
        frame("trend", &[("to", "200"), ("fp", "200")]),
        day1(),
    );
    assert_eq!(
        p.memory().receipts[0].buyer_nip.as_deref(),
        Some("5556667788")
    );
    assert_eq!(
        code(&mut p, frame("trnipset", &[("ni", "1112223344")]), day1()),
        Some(2005)
    );
}

#[test]
fn line_checks() {
    let mut p = Printer::new();
    assert_eq!(code(&mut p, line("Chleb", "1", "200"), day1()), Some(2005));
    ok(&mut p, frame("trinit", &[]), day1());
    assert_eq!(code(&mut p, frame("trinit", &[]), day1()), Some(2038));
    assert_eq!(code(&mut p, line("Chleb", "5", "200"), day1()), Some(2000));
    assert_eq!(code(&mut p, line("Chleb", "7", "200"), day1()), Some(2000));
    assert_eq!(code(&mut p, line("Chleb", "1", "0"), day1()), Some(2006));
    let zero = [("na", "Chleb"), ("vt", "1"), ("pr", "200"), ("il", "0")];
    assert_eq!(code(&mut p, frame("trline", &zero), day1()), Some(2007));
    // 3.33 × 0.5 = 1.665 → 167 (half up); 166 is wrong.
    let half = |wa: &str| {
        frame(
            "trline",
            &[
                ("na", "Ser"),
                ("vt", "1"),
                ("pr", "333"),
                ("il", "0.5"),
                ("wa", wa),
            ],
        )
    };
    assert_eq!(code(&mut p, half("166"), day1()), Some(2008));
    ok(&mut p, half("167"), day1());
    assert_eq!(code(&mut p, line(" -- ", "1", "200"), day1()), Some(2104));
    let failed = p.handle(&line("Chleb", "5", "200"), day1());
    assert!(!failed.fiscal_event);
    assert_eq!(p.memory().transaction.as_ref().unwrap().lines.len(), 1);
}

#[test]
fn trend_checks() {
    let mut p = Printer::new();
    ok(&mut p, frame("trinit", &[]), day1());
    assert_eq!(
        code(&mut p, frame("trend", &[("to", "0")]), day1()),
        Some(1992)
    );
    ok(&mut p, line("Chleb", "1", "500"), day1());
    assert_eq!(
        code(
            &mut p,
            frame("trpayment", &[("ty", "1"), ("wa", "100")]),
            day1()
        ),
        Some(2705)
    );
    assert_eq!(
        code(
            &mut p,
            frame("trpayment", &[("ty", "0"), ("wa", "0")]),
            day1()
        ),
        Some(1962)
    );
    ok(
        &mut p,
        frame("trpayment", &[("ty", "7"), ("wa", "300")]),
        day1(),
    );
    assert_eq!(
        code(
            &mut p,
            frame("trend", &[("to", "499"), ("fp", "300")]),
            day1()
        ),
        Some(2805)
    );
    assert_eq!(
        code(
            &mut p,
            frame("trend", &[("to", "500"), ("fp", "300")]),
            day1()
        ),
        Some(2054)
    );
    assert_eq!(
        code(
            &mut p,
            frame("trend", &[("to", "500"), ("fp", "999")]),
            day1()
        ),
        Some(2808)
    );
    ok(
        &mut p,
        frame("trpayment", &[("ty", "0"), ("wa", "500")]),
        day1(),
    );
    // Overpaid without declared change: the printer computes the change itself.
    let wrong_change = [("to", "500"), ("fp", "800"), ("re", "1")];
    assert_eq!(
        code(&mut p, frame("trend", &wrong_change), day1()),
        Some(2809)
    );
    ok(
        &mut p,
        frame("trend", &[("to", "500"), ("fp", "800"), ("re", "300")]),
        day1(),
    );
    let r = &p.memory().receipts[0];
    assert_eq!(r.payments[0].method, "voucher");
    assert_eq!(r.change, 300);
    assert_eq!(p.memory().cash_in_drawer, 200);
}

#[test]
fn discount_must_leave_a_positive_total() {
    let mut p = Printer::new();
    ok(&mut p, frame("trinit", &[]), day1());
    assert_eq!(
        code(&mut p, frame("trdiscntbill", &[("rw", "100")]), day1()),
        Some(1980)
    );
    ok(&mut p, line("Chleb", "1", "500"), day1());
    assert_eq!(
        code(&mut p, frame("trdiscntbill", &[("rw", "500")]), day1()),
        Some(1981)
    );
    ok(
        &mut p,
        frame("trdiscntbill", &[("rw", "100"), ("rd", "0")]),
        day1(),
    );
    ok(&mut p, frame("trdiscntbill", &[("rw", "50")]), day1());
    ok(
        &mut p,
        frame("trpayment", &[("ty", "0"), ("wa", "550")]),
        day1(),
    );
    ok(&mut p, frame("trend", &[("to", "550")]), day1());
    assert_eq!(p.memory().day.totals.get("B"), Some(&550));
}

#[test]
fn name_rate_lock() {
    let mut p = Printer::new();
    sell(&mut p, day1(), &[("Coca-Cola", "1", 500)]);
    ok(&mut p, frame("trinit", &[]), day1());
    assert_eq!(
        code(&mut p, line("COCA COLA", "0", "500"), day1()),
        Some(2106)
    );
    // Lower is allowed and becomes the limit; exempt is the lowest rate.
    ok(&mut p, line("coca:cola", "4", "500"), day1());
    assert_eq!(
        code(&mut p, line("Coca Cola", "3", "500"), day1()),
        Some(2106)
    );
    ok(&mut p, line("Coca Cola 0,5", "0", "500"), day1());
    ok(&mut p, frame("prncancel", &[]), day1());
    // The cancelled receipt locked nothing: 8 % is still the limit.
    ok(&mut p, frame("trinit", &[]), day1());
    ok(&mut p, line("Coca-Cola", "1", "500"), day1());
    assert_eq!(
        code(&mut p, line("Coca-Cola", "0", "500"), day1()),
        Some(2106)
    );
    // Lines of the open receipt count too: after 5 %, 8 % is refused.
    ok(&mut p, line("Coca-Cola", "2", "500"), day1());
    assert_eq!(
        code(&mut p, line("Coca-Cola", "1", "500"), day1()),
        Some(2106)
    );
}

#[test]
fn daily_report_and_zero_reports() {
    let mut p = Printer::new();
    sell(&mut p, day1(), &[("Chleb", "1", 250), ("Piwo", "0", 499)]);
    let wrong_day = p.handle(&frame("dailyrep", &[("da", "2026-09-07")]), day1());
    assert_eq!(wrong_day.reply.unwrap().error_code, Some(2023));
    let z = p.handle(&frame("dailyrep", &[("da", "2026-09-08")]), day1());
    assert!(z.fiscal_event);
    assert_eq!(z.reply, Some(Frame::new("dailyrep")));
    let json = serde_json::to_value(&p.memory().daily_reports).unwrap();
    let expected = json!([{"number": 1, "date": "2026-09-08", "totals": {"A": 499, "B": 250}, "receipts": 1, "cancelled": 0}]);
    assert_eq!(json, expected);
    ok(&mut p, frame("dailyrep", &[("da", "2026-09-08")]), day1());
    assert_eq!(p.memory().daily_reports[1].totals.len(), 0);
    assert_eq!(
        code(&mut p, frame("dailyrep", &[("da", "2026-09-08")]), day1()),
        Some(382)
    );
    assert_eq!(scnt(&mut p).daily_reports, 2);
    // A transaction must be closed first.
    sell(&mut p, day1(), &[("Chleb", "1", 250)]);
    ok(&mut p, frame("trinit", &[]), day1());
    assert_eq!(
        code(&mut p, frame("dailyrep", &[("da", "2026-09-08")]), day1()),
        Some(2038)
    );
}

#[test]
fn new_day_needs_the_daily_report() {
    let mut p = Printer::new();
    sell(&mut p, at("2026-09-08 21:00"), &[("Chleb", "1", 250)]);
    let next = at("2026-09-09 08:00");
    assert_eq!(code(&mut p, frame("trinit", &[]), next), Some(383));
    ok(&mut p, frame("dailyrep", &[("da", "2026-09-09")]), next);
    sell(&mut p, next, &[("Chleb", "1", 250)]);
    assert_eq!(p.memory().receipts.len(), 2);
    assert_eq!(p.memory().receipts[1].number, 2, "bn is monotonic");
}

#[test]
fn cash_in_and_out() {
    let mut p = Printer::new();
    ok(
        &mut p,
        frame("cash", &[("kw", "5000"), ("wp", "1")]),
        day1(),
    );
    ok(
        &mut p,
        frame("cash", &[("kw", "2000"), ("wp", "N")]),
        day1(),
    );
    assert_eq!(
        code(
            &mut p,
            frame("cash", &[("kw", "3001"), ("wp", "0")]),
            day1()
        ),
        Some(503)
    );
    ok(&mut p, frame("cash", &[("wp", "T"), ("kw", "50")]), day1());
    let json = serde_json::to_value(&p.memory().cash_operations).unwrap();
    let expected = json!([
        {"direction": "in", "amount": 5000},
        {"direction": "out", "amount": 2000},
        {"direction": "in", "amount": 50}
    ]);
    assert_eq!(json, expected);
    assert_eq!(p.memory().cash_in_drawer, 3050);
}

#[test]
fn form_printout() {
    let mut p = Printer::new();
    let early = frame("formline", &[("fn", "42"), ("fl", "1"), ("s1", "x")]);
    assert_eq!(code(&mut p, early, day1()), Some(2504));
    ok(
        &mut p,
        frame("formstart", &[("fn", "42"), ("fh", "1")]),
        day1(),
    );
    assert_eq!(
        code(&mut p, frame("formstart", &[("fn", "42")]), day1()),
        Some(2505)
    );
    assert_eq!(code(&mut p, frame("trinit", &[]), day1()), Some(2038));
    ok(
        &mut p,
        frame(
            "formline",
            &[("fn", "42"), ("fl", "1"), ("s1", "Zamówienie 17")],
        ),
        day1(),
    );
    ok(
        &mut p,
        frame("formline", &[("s1", "Stolik 4"), ("fl", "2"), ("fn", "42")]),
        day1(),
    );
    let before = scnt(&mut p).next_printout;
    ok(&mut p, frame("formend", &[("fn", "42")]), day1());
    let json = serde_json::to_value(&p.memory().printouts).unwrap();
    assert_eq!(
        json,
        json!([{"number": before, "lines": ["Zamówienie 17", "Stolik 4"]}])
    );
    assert_eq!(scnt(&mut p).next_printout, before + 1);
    assert_eq!(
        code(&mut p, frame("formstart", &[("fn", "1")]), day1()),
        Some(2501)
    );
}

#[test]
fn paper_out_mid_receipt_holds_and_resumes() {
    let mut p = Printer::new();
    ok(&mut p, frame("trinit", &[]), day1());
    p.paper_out(Some(1));
    ok(&mut p, line("Chleb", "1", "200"), day1());
    let held = p.handle(&line("Mleko", "1", "300"), day1());
    assert_eq!(
        held,
        Outcome {
            reply: None,
            fiscal_event: false
        }
    );
    assert_eq!(p.memory().transaction.as_ref().unwrap().lines.len(), 1);
    // Immediate status queries are answered; further commands queue, a plain status query
    // too (only `!sdev` and `!sprn` jump the queue).
    assert_eq!(
        reply(&mut p, Frame::new("!sprn"), day1()).get("pr"),
        Some("5")
    );
    assert_eq!(
        reply(&mut p, Frame::new("!sdev"), day1()).get("ds"),
        Some("3")
    );
    let payment = frame("trpayment", &[("ty", "0"), ("wa", "500")]);
    assert_eq!(p.handle(&payment, day1()).reply, None);
    assert_eq!(p.resume(day1()), None, "still out of paper");
    p.paper_back();
    let first = p.resume(day1()).unwrap();
    assert_eq!(first.reply, Some(Frame::new("trline")));
    assert!(
        !first.fiscal_event,
        "a line inside an open receipt is not a fiscal event"
    );
    assert_eq!(
        p.resume(day1()).unwrap().reply,
        Some(Frame::new("trpayment"))
    );
    assert_eq!(p.resume(day1()), None);
    ok(
        &mut p,
        frame("trend", &[("to", "500"), ("fp", "500")]),
        day1(),
    );
    let m = p.memory();
    assert_eq!(m.receipts.len(), 1);
    assert_eq!(m.receipts[0].lines.len(), 2);
    assert_eq!(m.receipts[0].total, 500);
}

#[test]
fn cover_open_holds_printing_commands_only() {
    let mut p = Printer::new();
    p.set_cover_open(true);
    assert_eq!(
        reply(&mut p, Frame::new("sprn"), day1()).get("pr"),
        Some("3")
    );
    assert_eq!(
        p.handle(&frame("cash", &[("kw", "100"), ("wp", "1")]), day1())
            .reply,
        None
    );
    // Not printing, but queued behind the held command (order is kept); so is a plain
    // status query, while `!sdev` is answered at once.
    assert_eq!(p.handle(&frame("prncancel", &[]), day1()).reply, None);
    assert_eq!(p.handle(&Frame::new("scnt"), day1()).reply, None);
    assert_eq!(
        reply(&mut p, Frame::new("!sdev"), day1()).get("qe"),
        Some("N")
    );
    p.set_cover_open(false);
    assert_eq!(p.resume(day1()).unwrap().reply, Some(Frame::new("cash")));
    assert_eq!(
        p.resume(day1()).unwrap().reply,
        Some(Frame::new("prncancel"))
    );
    let counters = p.resume(day1()).unwrap().reply.unwrap();
    assert_eq!(
        counters.mnemonic, "scnt",
        "answered after the cash it queued behind"
    );
    assert_eq!(counters.get("hn"), Some("2"));
    assert_eq!(p.resume(day1()), None);
    assert_eq!(p.memory().cash_operations.len(), 1);
}

#[test]
fn block_mode_receipt_runs_out_at_trend() {
    let mut p = Printer::new();
    ok(&mut p, frame("trinit", &[("bm", "1")]), day1());
    p.paper_out(Some(1));
    ok(&mut p, line("Chleb", "1", "200"), day1());
    ok(&mut p, line("Mleko", "1", "300"), day1());
    ok(
        &mut p,
        frame("trpayment", &[("ty", "0"), ("wa", "500")]),
        day1(),
    );
    assert_eq!(
        p.handle(&frame("trend", &[("to", "500")]), day1()).reply,
        None
    );
    assert!(p.memory().receipts.is_empty());
    p.paper_back();
    assert_eq!(p.resume(day1()).unwrap().reply, Some(Frame::new("trend")));
    assert_eq!(p.memory().receipts.len(), 1);
}

#[test]
fn power_cycle_cancels_the_open_receipt() {
    let mut p = Printer::new();
    ok(&mut p, frame("trinit", &[]), day1());
    ok(&mut p, line("Chleb", "1", "200"), day1());
    p.paper_out(None);
    assert_eq!(p.handle(&line("Mleko", "1", "300"), day1()).reply, None);
    assert!(p.power_cycle());
    assert!(!p.memory().open_receipt);
    assert_eq!(p.held_commands(), 0);
    assert!(p.is_paper_out(), "paper is physical");
    let c = scnt(&mut p);
    assert_eq!((c.last_receipt, c.cancelled, c.receipts_total), (0, 1, 1));
    assert!(!p.power_cycle());
    p.paper_back();
    assert_eq!(p.resume(day1()), None);
    // Nothing open: cancelling is a no-op that still answers OK.
    let cancel = p.handle(&Frame::new("trcancel"), day1());
    assert_eq!(
        cancel,
        Outcome {
            reply: Some(Frame::new("trcancel")),
            fiscal_event: false
        }
    );
}

#[test]
fn trcancel_counts_a_cancelled_receipt() {
    let mut p = Printer::new();
    ok(&mut p, frame("trinit", &[]), day1());
    assert_eq!(scomm(&mut p).transaction, 16);
    let out = p.handle(&Frame::new("trcancel"), day1());
    assert!(out.fiscal_event);
    assert_eq!(scomm(&mut p).transaction, 0);
    assert_eq!(scnt(&mut p).cancelled, 1);
}

#[test]
fn tokens_and_rpt() {
    let mut p = Printer::new();
    let mut init = frame("trinit", &[]);
    init.token = Some(17);
    let first = reply(&mut p, init.clone(), day1());
    assert_eq!(first.token, Some(17));
    let mut bad = line("Chleb", "5", "100");
    bad.token = Some(18);
    assert_eq!(reply(&mut p, bad, day1()).error_code, Some(2000));
    let mut rpt = Frame::new("rpt");
    rpt.token = Some(17);
    let again = p.handle(&rpt, day1());
    assert_eq!(
        again,
        Outcome {
            reply: Some(first),
            fiscal_event: false
        }
    );
    rpt.token = Some(18);
    assert_eq!(reply(&mut p, rpt.clone(), day1()).error_code, Some(2000));
    rpt.token = Some(99);
    let unknown = reply(&mut p, rpt.clone(), day1());
    assert!(unknown.is_frame_error());
    assert_eq!(unknown.error_code, Some(13));
    assert_eq!(unknown.token, Some(99));
    // A held command's token: rpt waits for it instead of calling it unknown.
    p.paper_out(None);
    let mut held = line("Chleb", "1", "100");
    held.token = Some(20);
    assert_eq!(p.handle(&held, day1()).reply, None);
    rpt.token = Some(20);
    assert_eq!(p.handle(&rpt, day1()).reply, None);
    p.paper_back();
    let done = p.resume(day1()).unwrap().reply.unwrap();
    assert_eq!(done.token, Some(20));
    assert_eq!(p.resume(day1()).unwrap().reply.unwrap(), done);
    // The buffer keeps only the last answers.
    for t in 100..140 {
        let mut f = Frame::new("sid");
        f.token = Some(t);
        reply(&mut p, f, day1());
    }
    rpt.token = Some(17);
    assert_eq!(reply(&mut p, rpt.clone(), day1()).error_code, Some(13));
    rpt.token = Some(139);
    assert_eq!(
        reply(&mut p, rpt, day1()).get("nm"),
        Some("POSNET Thermal HD Online")
    );
}

#[test]
fn frame_errors() {
    let mut p = Printer::new();
    let unknown = reply(&mut p, Frame::new("frobnicate"), day1());
    assert_eq!(
        unknown,
        Frame::error_reply("ERR", 1).with("cm", "frobnicate")
    );
    let immediate = reply(&mut p, Frame::new("!trinit"), day1());
    assert_eq!(immediate.error_code, Some(12));
    ok(&mut p, frame("trinit", &[]), day1());
    let missing = reply(
        &mut p,
        frame("trline", &[("na", "Chleb"), ("pr", "100")]),
        day1(),
    );
    assert_eq!(
        missing,
        Frame::error_reply("ERR", 2)
            .with("cm", "trline")
            .with("fd", "vt")
    );
    let bad_values = [
        ("pr", "12,34"),
        ("pr", "-5"),
        ("pr", "1x"),
        ("vt", "A"),
        ("il", "1.2.3"),
        ("wa", "9999999999999"),
    ];
    for (field, value) in bad_values {
        let mut f = line("Chleb", "1", "100");
        f.params.retain(|p| p.name != field);
        let r = reply(&mut p, f.with(field, value), day1());
        assert_eq!(
            r,
            Frame::error_reply("ERR", 3)
                .with("cm", "trline")
                .with("fd", field),
            "{field}{value}"
        );
    }
    assert_eq!(p.memory().transaction.as_ref().unwrap().lines.len(), 0);
}

#[test]
fn status_replies() {
    let mut p = Printer::new();
    let vat = VatTable::from_frame(&reply(&mut p, Frame::new("vatget"), day1())).unwrap();
    use VatRate::*;
    assert_eq!(
        vat.0,
        [
            Percent(2300),
            Percent(800),
            Percent(500),
            Percent(0),
            Exempt,
            Inactive,
            Inactive
        ]
    );
    assert_eq!(
        reply(&mut p, Frame::new("vatget"), day1()).get("vb"),
        Some("8,00")
    );
    let clock = at("2026-09-08 17:55");
    let rtc = Rtc::from_frame(&reply(&mut p, Frame::new("rtcget"), clock)).unwrap();
    assert_eq!(rtc.datetime, clock);
    let sid = Sid::from_frame(&reply(&mut p, Frame::new("sid"), day1())).unwrap();
    assert_eq!(sid.name, "POSNET Thermal HD Online");
    let sdev = Sdev::from_frame(&reply(&mut p, Frame::new("!sdev"), day1())).unwrap();
    assert_eq!((sdev.state, sdev.queue_empty), (0, true));
    let status = scomm(&mut p);
    assert_eq!(status.unique_number.as_deref(), Some("ABC 12345678"));
    assert!(status.totalizers_zero && !status.read_only);
    sell(&mut p, day1(), &[("Chleb", "1", 250)]);
    assert!(!scomm(&mut p).totalizers_zero);
}

#[test]
fn memory_round_trips_through_json() {
    let mut p = Printer::new();
    sell(&mut p, day1(), &[("Chleb", "1", 250)]);
    ok(&mut p, frame("cash", &[("kw", "100"), ("wp", "1")]), day1());
    ok(&mut p, frame("trinit", &[]), day1());
    ok(&mut p, frame("trnipset", &[("ni", "1112223344")]), day1());
    ok(&mut p, line("Mleko", "2", "300"), day1());
    let text = serde_json::to_string_pretty(p.memory()).unwrap();
    let back: FiscalMemory = serde_json::from_str(&text).unwrap();
    assert_eq!(&back, p.memory());
    // After an emulator restart the receipt is still open and can be finished.
    let mut q = Printer::from_memory(back);
    assert!(q.memory().open_receipt);
    assert_eq!(code(&mut q, line("Chleb", "0", "250"), day1()), Some(2106));
    ok(
        &mut q,
        frame("trpayment", &[("ty", "0"), ("wa", "300")]),
        day1(),
    );
    ok(
        &mut q,
        frame("trend", &[("to", "300"), ("fp", "300")]),
        day1(),
    );
    assert_eq!(
        q.memory().receipts[1].buyer_nip.as_deref(),
        Some("1112223344")
    );
    // The minimal documented shape still loads.
    let minimal = r#"{"receipts": [], "daily_reports": [], "cash_operations": [], "printouts": [], "open_receipt": true}"#;
    let mut r = Printer::from_memory(serde_json::from_str(minimal).unwrap());
    assert_eq!(code(&mut r, frame("trinit", &[]), day1()), Some(2038));
    ok(&mut r, Frame::new("prncancel"), day1());
    sell(&mut r, day1(), &[("Chleb", "1", 250)]);
}

mod fuzz {
    use super::*;
    use proptest::prelude::*;

    const MNEMONICS: &[&str] = &[
        "trinit",
        "trline",
        "trnipset",
        "trdiscntbill",
        "trpayment",
        "trend",
        "prncancel",
        "trcancel",
        "dailyrep",
        "cash",
        "formstart",
        "formline",
        "formend",
        "vatget",
        "rtcget",
        "scomm",
        "scnt",
        "sdev",
        "!sdev",
        "sprn",
        "!sprn",
        "sid",
        "rpt",
        "!trend",
        "bogus",
        "",
        // Not commands: physical events driven by the test.
        "#paper-out",
        "#paper-later",
        "#paper-back",
        "#cover",
        "#resume",
        "#power",
        "#next-day",
    ];
    const NAMES: &[&str] = &[
        "na", "vt", "pr", "il", "wa", "st", "rd", "rp", "rw", "rn", "ni", "ty", "re", "to", "fp",
        "bm", "da", "kw", "wp", "fn", "fl", "s1", "jm",
    ];

    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            (0u64..2000).prop_map(|n| n.to_string()),
            Just("0".to_string()),
            Just("1".to_string()),
            Just("42".to_string()),
            Just("2026-09-08".to_string()),
            Just("2026-09-09".to_string()),
            Just("1112223344".to_string()),
            Just("Coca-Cola".to_string()),
            Just("Żółć".to_string()),
            "[0-9.,-]{0,8}",
            ".{0,12}",
        ]
    }

    type Step = (usize, Vec<(usize, String)>, Option<u16>);

    fn step() -> impl Strategy<Value = Step> {
        (
            0..MNEMONICS.len(),
            proptest::collection::vec((0..NAMES.len(), value()), 0..7),
            proptest::option::of(0u16..4),
        )
    }

    fn check(p: &Printer) {
        let m = p.memory();
        assert_eq!(m.open_receipt, m.transaction.is_some());
        let sold: u64 = m.receipts.iter().map(|r| r.total).sum();
        let reported: u64 = m.daily_reports.iter().flat_map(|d| d.totals.values()).sum();
        let pending: u64 = m.day.totals.values().sum();
        assert_eq!(
            sold,
            reported + pending,
            "every grosz sold is in exactly one report or pending"
        );
        for r in &m.receipts {
            let paid: u64 = r.payments.iter().map(|p| p.amount).sum();
            assert_eq!(paid - r.change, r.total);
            assert!(r.total > 0 && !r.lines.is_empty());
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]
        #[test]
        fn never_panics_and_keeps_the_books(steps in proptest::collection::vec(step(), 0..60)) {
            let mut p = Printer::new();
            let mut now = day1();
            for (m, params, token) in steps {
                let mnemonic = MNEMONICS[m];
                match mnemonic {
                    "#paper-out" => p.paper_out(None),
                    "#paper-later" => p.paper_out(Some(params.len() as u32)),
                    "#paper-back" => p.paper_back(),
                    "#cover" => p.set_cover_open(!p.is_cover_open()),
                    "#power" => {
                        p.power_cycle();
                    }
                    "#next-day" => now += chrono::Duration::days(1),
                    "#resume" => {
                        while let Some(out) = p.resume(now) {
                            prop_assert!(out.reply.is_some());
                        }
                    }
                    _ => {
                        let mut f = Frame::new(mnemonic);
                        for (n, v) in params {
                            f = f.with(NAMES[n], v);
                        }
                        f.token = token;
                        let before = p.memory().clone();
                        let out = p.handle(&f, now);
                        if !out.fiscal_event {
                            // Only the open document's volatile content may have changed.
                            let strip = |m: &FiscalMemory| FiscalMemory { transaction: None, form: None, ..m.clone() };
                            prop_assert_eq!(strip(&before), strip(p.memory()));
                        }
                        if let Some(r) = &out.reply {
                            prop_assert_eq!(r.token, token);
                        }
                    }
                }
                check(&p);
            }
            let json = serde_json::to_string(p.memory()).unwrap();
            let back: FiscalMemory = serde_json::from_str(&json).unwrap();
            prop_assert_eq!(&back, p.memory());
        }
    }
}

mod receipts_under_faults {
    use super::*;
    use proptest::prelude::*;
    use rust_decimal::{Decimal, RoundingStrategy};

    /// (unit price, quantity in thousandths, slot)
    type Item = (u64, u32, u8);

    #[derive(Debug, Clone)]
    struct Plan {
        items: Vec<Item>,
        discount_permille: u64,
        paper_after: Option<u32>,
        card_part: u64,
        power_cut_after: Option<usize>,
        report_after: bool,
    }

    fn plan() -> impl Strategy<Value = Plan> {
        (
            proptest::collection::vec((200u64..5000, 5u32..5000, 0u8..5), 1..6),
            0u64..500,
            proptest::option::of(0u32..4),
            0u64..1000,
            proptest::option::of(0usize..8),
            any::<bool>(),
        )
            .prop_map(
                |(
                    items,
                    discount_permille,
                    paper_after,
                    card_part,
                    power_cut_after,
                    report_after,
                )| Plan {
                    items,
                    discount_permille,
                    paper_after,
                    card_part,
                    power_cut_after,
                    report_after,
                },
            )
    }

    /// Send a command; if the printer holds it, the operator reloads paper at once.
    fn send(p: &mut Printer, f: Frame, now: NaiveDateTime) -> Frame {
        if let Some(r) = p.handle(&f, now).reply {
            return r;
        }
        p.paper_back();
        let mut last = None;
        while let Some(out) = p.resume(now) {
            last = out.reply;
        }
        last.expect("the held command's answer")
    }

    fn value((price, milli, _): Item) -> u64 {
        let v = Decimal::from(price) * Decimal::new(i64::from(milli), 3);
        let v = v.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
        u64::try_from(v).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn every_completed_receipt_is_recorded_once(plans in proptest::collection::vec(plan(), 1..6)) {
            let mut p = Printer::new();
            let now = day1();
            let mut expected = Vec::new();
            for plan in plans {
                p.paper_out(plan.paper_after);
                let mut cmds = vec![frame("trinit", &[("bm", "0")])];
                let mut total = 0;
                for (i, item) in plan.items.iter().enumerate() {
                    let il = Decimal::new(i64::from(item.1), 3).normalize().to_string();
                    let v = value(*item);
                    total += v;
                    let name = format!("Towar {i} {}", item.2);
                    cmds.push(frame("trline", &[
                        ("na", &name), ("vt", &item.2.to_string()), ("pr", &item.0.to_string()),
                        ("il", &il), ("wa", &v.to_string()),
                    ]));
                }
                let discount = total * plan.discount_permille / 1000;
                if discount > 0 {
                    cmds.push(frame("trdiscntbill", &[("rw", &discount.to_string())]));
                    total -= discount;
                }
                let card = (total * plan.card_part / 1000).min(total);
                if card > 0 {
                    cmds.push(frame("trpayment", &[("ty", "2"), ("wa", &card.to_string())]));
                }
                let cash = total - card + 50;
                cmds.push(frame("trpayment", &[("ty", "0"), ("wa", &cash.to_string())]));
                cmds.push(frame("trpayment", &[("ty", "0"), ("wa", "50"), ("re", "1")]));
                cmds.push(frame("trend", &[("to", &total.to_string()), ("fp", &(card + cash).to_string()), ("re", "50")]));
                let cut = plan.power_cut_after.filter(|&n| n < cmds.len());
                for (i, cmd) in cmds.into_iter().enumerate() {
                    if cut == Some(i) {
                        prop_assert_eq!(p.power_cycle(), i > 0);
                        break;
                    }
                    let r = send(&mut p, cmd.clone(), now);
                    prop_assert_eq!(r.error_code, None, "{:?} → {:?}", cmd, r);
                }
                if cut.is_none() {
                    expected.push(total);
                }
                if plan.report_after {
                    p.paper_back();
                    let r = send(&mut p, frame("dailyrep", &[("da", "2026-09-08")]), now);
                    prop_assert!(r.error_code.is_none() || r.error_code == Some(382));
                }
            }
            let m = p.memory();
            let totals: Vec<u64> = m.receipts.iter().map(|r| r.total).collect();
            prop_assert_eq!(&totals, &expected);
            let numbers: Vec<u64> = m.receipts.iter().map(|r| r.number).collect();
            prop_assert_eq!(numbers, (1..=expected.len() as u64).collect::<Vec<_>>());
            let reported: u64 = m.daily_reports.iter().flat_map(|d| d.totals.values()).sum::<u64>()
                + m.day.totals.values().sum::<u64>();
            prop_assert_eq!(reported, expected.iter().sum::<u64>());
            prop_assert!(!m.open_receipt);
        }
    }
}
