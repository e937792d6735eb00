//! Documents → Thermal commands as pure functions, and the check the API runs before a job
//! for a Thermal printer is queued (what the protocol or the code page cannot print is a
//! 422, printing nothing).

use crate::config::PrinterConfig;
use crate::document::{Invalid, Method, Receipt};
use crate::job::records::JobRequest;
use thermal::command::{Command, Line, PaymentType};
use thermal::{Dialect, Encoding};

/// The cashier code sent with every close.
const CASHIER: &str = "POS";

/// The Thermal payment form of a neutral method. Posnet Thermal has no transfer or mobile
/// form: those print as "other".
pub fn payment_type(m: Method, dialect: Dialect) -> PaymentType {
    let t = match m {
        Method::Cash => PaymentType::Cash,
        Method::Card => PaymentType::Card,
        Method::Cheque => PaymentType::Cheque,
        Method::Voucher => PaymentType::Voucher,
        Method::Credit => PaymentType::Credit,
        Method::Transfer => PaymentType::Transfer,
        Method::Mobile => PaymentType::Mobile,
        Method::Other => PaymentType::Other,
    };
    if t.code(dialect).is_some() {
        t
    } else {
        PaymentType::Other
    }
}

/// What of a receipt this driver cannot print, if anything: `(field, why)`.
fn unsupported(r: &Receipt, dialect: Dialect) -> Option<(String, String)> {
    if let Some(extra) = super::super::receipt_extras(r, "Thermal", false) {
        return Some(extra);
    }
    if r.buyer_nip.is_some() && dialect == Dialect::Posnet {
        return Some((
            "buyer_nip".into(),
            "the Posnet Thermal dialect cannot print a buyer's NIP on a receipt".into(),
        ));
    }
    None
}

/// A receipt's commands: `$h`, one `$l` per line, one `$b` per payment, and the closing `$e`.
pub fn receipt(r: &Receipt, dialect: Dialect) -> Result<(Vec<Command>, Command), String> {
    if let Some((field, why)) = unsupported(r, dialect) {
        return Err(format!("{field}: {why}"));
    }
    let mut body = vec![Command::Begin {
        buyer_nip: r.buyer_nip.clone(),
    }];
    for (i, l) in r.lines.iter().enumerate() {
        body.push(Command::Line(Line {
            number: u16::try_from(i + 1).unwrap_or(u16::MAX),
            name: l.name.clone(),
            quantity: l.quantity,
            unit: l.unit.clone(),
            vat: l.vat,
            price: l.unit_price,
            gross: l.amount,
        }));
    }
    for p in &r.payments {
        body.push(Command::Payment {
            kind: payment_type(p.method, dialect),
            amount: p.amount,
        });
    }
    let closing = Command::Close {
        cashier: CASHIER.into(),
        paid: r.paid(),
        total: r.total,
    };
    Ok((body, closing))
}

fn check_text(field: String, text: &str, e: Encoding) -> Result<(), Invalid> {
    thermal::text::check(text, e).map_err(|err| Invalid {
        field,
        message: format!("{err}; the printer's code page is {}", e.as_str()),
    })
}

/// Refuse, before queuing, what a Thermal printer cannot print: the parts of a receipt the
/// driver does not send, non-fiscal printouts, and text the configured code page lacks.
pub fn check_request(config: &PrinterConfig, request: &JobRequest) -> Result<(), Invalid> {
    let (dialect, e) = (config.thermal_dialect(), config.thermal_encoding());
    match request {
        JobRequest::Receipt(r) => {
            if let Some((field, message)) = unsupported(r, dialect) {
                return Err(Invalid { field, message });
            }
            for (i, l) in r.lines.iter().enumerate() {
                check_text(format!("lines[{i}].name"), &l.name, e)?;
                if let Some(u) = &l.unit {
                    check_text(format!("lines[{i}].unit"), u, e)?;
                }
            }
            Ok(())
        }
        JobRequest::Printout(_) => Err(Invalid {
            field: "lines".into(),
            message: "non-fiscal printouts cannot be printed on a Thermal printer by fiscald"
                .into(),
        }),
        _ => Ok(()),
    }
}
