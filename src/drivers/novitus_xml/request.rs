//! Documents → Novitus XML commands as pure functions, the printer's error codes in neutral
//! terms, and the check the API runs before a job for a Novitus XML printer is queued (what
//! the driver cannot print, or Windows-1250 cannot hold, is a 422 that prints nothing).

use crate::config::PrinterConfig;
use crate::device::ErrorCategory;
use crate::document::{AdjustmentKind, Invalid, Method, Receipt};
use crate::job::records::JobRequest;
use novitus_xml::{Command, Item, ItemDiscount, Payment, PaymentType};

/// The protocol's name in messages.
pub const FAMILY: &str = "Novitus XML";
/// The payment form for the neutral `other`: the protocol has no "other"; `account` is the
/// closest (our choice, not confirmed on a device).
pub const OTHER_PAYMENT: PaymentType = PaymentType::Account;
/// The error code for "no paper" (also given for an open cover by the emulator).
pub const NO_PAPER: u32 = 1037;

/// The protocol's payment form of a neutral method.
pub fn payment_type(m: Method) -> PaymentType {
    match m {
        Method::Cash => PaymentType::Cash,
        Method::Card => PaymentType::Card,
        Method::Cheque => PaymentType::Cheque,
        Method::Voucher => PaymentType::Voucher,
        Method::Credit => PaymentType::Credit,
        Method::Transfer => PaymentType::Transfer,
        Method::Mobile => PaymentType::Mobile,
        Method::Other => OTHER_PAYMENT,
    }
}

/// A receipt's commands: begin, its items, its payments (and the change given, when paid
/// over the total), and the close with `systemno` and the `total` the printer checks.
pub fn receipt(r: &Receipt, systemno: &str) -> Result<Vec<Command>, String> {
    if let Some((field, why)) = super::super::receipt_extras(r, FAMILY, true) {
        return Err(format!("{field}: {why}"));
    }
    let mut out = vec![Command::ReceiptBegin];
    for l in &r.lines {
        out.push(Command::Item(Item {
            name: l.name.clone(),
            quantity: l.quantity.normalize().to_string(),
            unit: l.unit.clone().filter(|u| !u.is_empty()),
            ptu: l.vat,
            price: l.unit_price,
            total: l.amount,
            discount: l.discount.as_ref().map(|d| ItemDiscount {
                value: d.amount,
                markup: d.kind == AdjustmentKind::Surcharge,
                name: d.name.clone(),
            }),
        }));
    }
    for p in &r.payments {
        out.push(Command::Payment(Payment {
            kind: payment_type(p.method),
            value: p.amount,
            change: false,
        }));
    }
    let paid = r.paid();
    if !r.payments.is_empty() && paid > r.total {
        out.push(Command::Payment(Payment {
            kind: PaymentType::Cash,
            value: paid - r.total,
            change: true,
        }));
    }
    out.push(Command::ReceiptClose {
        systemno: systemno.to_string(),
        total: r.total,
        nip: r.buyer_nip.clone(),
    });
    Ok(out)
}

/// The neutral category of a printer error code and what it means, in our words. Codes not
/// listed are `Unknown` (the printer's own code still travels with the error).
pub fn error_info(code: u32) -> (ErrorCategory, &'static str) {
    use ErrorCategory as C;
    match code {
        4 => (C::InvalidField, "a parameter is out of range"),
        7 => (C::Clock, "the date does not match the printer's clock"),
        16 => (C::InvalidField, "an item name is empty or too long"),
        17 => (C::InvalidField, "a quantity is not valid"),
        18 => (C::InvalidVat, "the VAT letter is not active on the printer"),
        19 => (C::InvalidField, "a price is not valid"),
        20 => (C::TotalMismatch, "a line's value is not price × quantity"),
        21 | 1002 | 1031 => (
            C::TransactionState,
            "the printer is in the wrong state for this command (a receipt open, or none)",
        ),
        22 => (C::InvalidField, "a storno was refused"),
        23 => (C::InvalidField, "too many lines on one receipt"),
        26 => (C::TotalMismatch, "the payments do not cover the total"),
        27 => (C::TotalMismatch, "the total does not match the lines"),
        51 => (
            C::InvalidField,
            "the amount is not valid (more cash out than in the drawer?)",
        ),
        1004 => (C::InvalidField, "a discount was refused"),
        1022 => (C::Protocol, "the printer does not know the command"),
        NO_PAPER => (C::PaperOut, "no paper, or the cover is open"),
        1092 => (
            C::TransactionState,
            "a receipt without items cannot be closed",
        ),
        1098 => (C::InvalidField, "the buyer's NIP is not valid"),
        _ => (C::Unknown, "see the printer's manual for this code"),
    }
}

fn check_text(field: String, text: &str) -> Result<(), Invalid> {
    novitus_xml::text::encode(text)
        .map(|_| ())
        .map_err(|e| Invalid {
            field,
            message: format!("{e}: a {FAMILY} printer prints Windows-1250 text only"),
        })
}

/// Refuse, before queuing, what this driver cannot print on a Novitus XML printer: the parts
/// of a receipt it does not send, and text Windows-1250 cannot hold.
pub fn check_request(_config: &PrinterConfig, request: &JobRequest) -> Result<(), Invalid> {
    match request {
        JobRequest::Receipt(r) => {
            if let Some((field, message)) = super::super::receipt_extras(r, FAMILY, true) {
                return Err(Invalid { field, message });
            }
            for (i, l) in r.lines.iter().enumerate() {
                check_text(format!("lines[{i}].name"), &l.name)?;
                if let Some(u) = &l.unit {
                    check_text(format!("lines[{i}].unit"), u)?;
                }
                if let Some(n) = l.discount.as_ref().and_then(|d| d.name.as_ref()) {
                    check_text(format!("lines[{i}].discount.name"), n)?;
                }
            }
            Ok(())
        }
        JobRequest::Printout(p) => {
            for (i, l) in p.lines.iter().enumerate() {
                check_text(format!("lines[{i}]"), l)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::{Line, Payment as Pay};
    use rust_decimal::Decimal;

    fn line(name: &str, q: &str, price: u64, amount: u64) -> Line {
        Line {
            name: name.into(),
            quantity: q.parse::<Decimal>().unwrap(),
            unit_price: price,
            amount,
            vat: 'A',
            unit: Some("kg".into()),
            discount: None,
            pkwiu: None,
            code: None,
        }
    }

    #[test]
    fn a_receipt_maps_to_begin_items_payments_change_and_a_checked_close() {
        let r = Receipt {
            lines: vec![line("Żółty ser", "0.250", 3999, 1000)],
            payments: vec![Pay {
                method: Method::Cash,
                amount: 2000,
            }],
            buyer_nip: Some("5260250274".into()),
            total: 1000,
            ..Receipt::default()
        };
        let c = receipt(&r, "fd7-1").unwrap();
        assert_eq!(c.len(), 5);
        let Command::Item(i) = &c[1] else { panic!() };
        assert_eq!(
            (i.quantity.as_str(), i.price, i.total),
            ("0.25", 3999, 1000)
        );
        assert!(matches!(
            c[3],
            Command::Payment(Payment {
                change: true,
                value: 1000,
                ..
            })
        ));
        assert_eq!(
            c[4],
            Command::ReceiptClose {
                systemno: "fd7-1".into(),
                total: 1000,
                nip: Some("5260250274".into())
            }
        );
    }

    #[test]
    fn codes_travel_with_a_neutral_category() {
        assert_eq!(error_info(18).0, ErrorCategory::InvalidVat);
        assert_eq!(error_info(NO_PAPER).0, ErrorCategory::PaperOut);
        assert_eq!(error_info(4242).0, ErrorCategory::Unknown);
    }

    #[test]
    fn a_line_discount_goes_out_as_the_resolved_amount() {
        let mut l = line("Kawa", "3", 1299, 3897);
        l.discount = Some(crate::document::Adjustment {
            kind: AdjustmentKind::Discount,
            percent: Some(Decimal::from(15)),
            amount: 585,
            name: Some("Rabat".into()),
        });
        let r = Receipt {
            lines: vec![l],
            payments: vec![Pay {
                method: Method::Cash,
                amount: 3312,
            }],
            total: 3312,
            ..Receipt::default()
        };
        let c = receipt(&r, "fd1-1").unwrap();
        let Command::Item(i) = &c[1] else { panic!() };
        assert_eq!(i.total, 3897);
        assert_eq!(
            i.discount,
            Some(ItemDiscount {
                value: 585,
                markup: false,
                name: Some("Rabat".into())
            })
        );
        let mut with_subtotal = r.clone();
        with_subtotal.discounts = r.lines[0].discount.clone().into_iter().collect();
        assert!(
            receipt(&with_subtotal, "fd1-1")
                .unwrap_err()
                .starts_with("discounts")
        );
    }
}
