//! The printer model: the receipt flow and what the exactly-once rule reads (TRF, PAR_NUM),
//! refusals, paper and power.
#![cfg(feature = "model")]

use chrono::NaiveDate;
use rust_decimal::Decimal;
use thermal::command::{Command, ErrorMode, Line, PaymentType};
use thermal::model::{Memory, Printer};
use thermal::reply::{Dle, Enq, Status};
use thermal::{DLE, Decoder, Dialect, ENQ, Encoding, Item};

fn today() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 12, 2).unwrap()
}

struct Host {
    p: Printer,
}

impl Host {
    fn new(d: Dialect) -> Host {
        Host {
            p: Printer::new(Memory::default(), d, Encoding::Mazovia),
        }
    }
    fn send(&mut self, c: &Command) -> Vec<u8> {
        let f = c.to_frame(self.p.dialect, self.p.encoding).unwrap();
        self.p.input(Item::Frame(f), today()).reply
    }
    fn enq(&mut self) -> Enq {
        let r = self.p.input(Item::Byte(ENQ), today()).reply;
        Enq::from_byte(r[0]).unwrap()
    }
    fn dle(&mut self) -> Dle {
        Dle::from_byte(self.p.input(Item::Byte(DLE), today()).reply[0]).unwrap()
    }
    fn error(&mut self) -> u32 {
        let r = self.send(&Command::ErrorQuery);
        let mut d = Decoder::new();
        d.push(&r);
        let Some(Item::Frame(f)) = d.next_item() else {
            panic!()
        };
        thermal::reply::parse_error(&f).unwrap()
    }
    fn status(&mut self) -> Status {
        let r = self.send(&Command::Status { mode: 23 });
        let mut d = Decoder::new();
        d.push(&r);
        let Some(Item::Frame(f)) = d.next_item() else {
            panic!()
        };
        Status::from_frame(&f, Encoding::Mazovia).unwrap()
    }
}

fn line(n: u16, name: &str, price: u64, vat: char) -> Command {
    Command::Line(Line {
        number: n,
        name: name.into(),
        quantity: Decimal::ONE,
        unit: None,
        vat,
        price,
        gross: price,
    })
}

#[test]
fn a_receipt_sets_trf_and_moves_par_num_by_one() {
    let mut h = Host::new(Dialect::Posnet);
    h.send(&Command::SetErrorMode(ErrorMode::Silent));
    let before = h.status();
    h.send(&Command::Begin { buyer_nip: None });
    assert!(!h.enq().transaction_ok, "$h clears TRF");
    assert!(h.enq().in_transaction);
    h.send(&line(1, "Żółć", 250, 'A'));
    h.send(&line(2, "Chleb", 400, 'B'));
    h.send(&Command::Payment {
        kind: PaymentType::Cash,
        amount: 650,
    });
    h.send(&Command::Close {
        cashier: "Jan".into(),
        paid: 650,
        total: 650,
    });
    let e = h.enq();
    assert!(e.command_ok && e.transaction_ok && !e.in_transaction);
    let after = h.status();
    assert_eq!(after.receipts, before.receipts + 1);
    assert!(after.trf);
    assert_eq!(after.totals[0], 250);
    let r = &h.p.memory().receipts[0];
    assert_eq!(r.lines[0].name, "Żółć");
    assert_eq!(r.total, 650);
}

#[test]
fn a_wrong_total_is_refused_with_27_and_the_receipt_stays_open() {
    let mut h = Host::new(Dialect::Novitus);
    h.send(&Command::Begin {
        buyer_nip: Some("5260250274".into()),
    });
    h.send(&line(1, "A", 100, 'A'));
    h.send(&Command::Close {
        cashier: "x".into(),
        paid: 0,
        total: 101,
    });
    assert!(!h.enq().command_ok);
    assert_eq!(h.error(), 27);
    assert_eq!(h.error(), 27, "#n does not clear the code");
    assert_eq!(h.status().last_error, 27);
    assert_eq!(h.status().last_error, 0, "#s clears it");
    assert!(h.enq().in_transaction);
    h.send(&Command::Cancel);
    let e = h.enq();
    assert!(
        !e.in_transaction && !e.transaction_ok,
        "a cancel leaves PAR = TRF = 0"
    );
    assert!(h.p.memory().receipts.is_empty());
}

#[test]
fn bad_lines_are_refused_with_their_codes() {
    let mut h = Host::new(Dialect::Posnet);
    h.send(&line(1, "A", 100, 'A'));
    assert_eq!(h.error(), 21, "no transaction");
    h.send(&Command::Begin { buyer_nip: None });
    h.send(&line(1, "A", 100, 'G'));
    assert_eq!(h.error(), 18, "inactive VAT slot");
    let mut bad = Line {
        number: 1,
        name: "A".into(),
        quantity: Decimal::new(15, 1),
        unit: None,
        vat: 'A',
        price: 333,
        gross: 499,
    };
    h.send(&Command::Line(bad.clone()));
    assert_eq!(h.error(), 20, "gross is not round(price × quantity)");
    bad.gross = 500;
    h.send(&Command::Line(bad));
    assert_eq!(h.error(), 0);
}

#[test]
fn paper_out_holds_printing_but_dle_answers() {
    let mut h = Host::new(Dialect::Posnet);
    h.send(&Command::Begin { buyer_nip: None });
    h.p.paper_out(Some(1));
    h.send(&line(1, "A", 100, 'A'));
    h.send(&line(2, "B", 100, 'A'));
    assert!(h.dle().paper_end);
    // ENQ waits behind the held line.
    assert!(h.p.input(Item::Byte(ENQ), today()).reply.is_empty());
    h.p.paper_back();
    let out = h.p.resume(today());
    assert_eq!(out.len(), 2, "the held line and the ENQ ran");
    assert!(Enq::from_byte(out[1].reply[0]).unwrap().command_ok);
    assert_eq!(h.p.memory().open.as_ref().unwrap().lines.len(), 2);
}

#[test]
fn a_power_cycle_cancels_the_open_receipt() {
    let mut h = Host::new(Dialect::Posnet);
    h.send(&Command::Begin { buyer_nip: None });
    h.send(&line(1, "A", 100, 'A'));
    h.p.power_cycle();
    let s = h.status();
    assert!(!s.in_transaction && !s.trf);
    assert_eq!(s.receipts, 0);
}

#[test]
fn daily_report_for_today_only_once() {
    let mut h = Host::new(Dialect::Posnet);
    h.send(&Command::DailyReport {
        date: today().pred_opt().unwrap(),
    });
    assert_eq!(h.error(), 7);
    h.send(&Command::DailyReport { date: today() });
    assert_eq!(h.error(), 0);
    h.send(&Command::DailyReport { date: today() });
    assert_eq!(h.error(), 36);
    h.send(&Command::CashIn(1000));
    h.send(&Command::CashOut(2000));
    assert_eq!(h.error(), 30);
    assert_eq!(h.p.memory().last_document, 2);
}
