//! Typed commands, written as XML elements with quick-xml's writer: every attribute value is
//! escaped, so a name with `"`, `<` or `&` prints as typed. Amounts are integer grosze here
//! and decimal strings with two places on the wire (`"12.34"`); quantities are exact decimal
//! strings.

use crate::packet::Packet;
use crate::text::{self, TextError};
use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, Event};

/// Grosze as the protocol writes money: `1234` → `"12.34"`.
pub fn amount(grosze: u64) -> String {
    format!("{}.{:02}", grosze / 100, grosze % 100)
}

/// How a receipt is paid (the protocol's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentType {
    Cash,
    Card,
    Cheque,
    Voucher,
    Credit,
    Transfer,
    Account,
    Mobile,
    Bon,
}

impl PaymentType {
    /// The `type` attribute.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentType::Cash => "cash",
            PaymentType::Card => "card",
            PaymentType::Cheque => "cheque",
            PaymentType::Voucher => "voucher",
            PaymentType::Credit => "credit",
            PaymentType::Transfer => "transfer",
            PaymentType::Account => "account",
            PaymentType::Mobile => "mobile",
            PaymentType::Bon => "bon",
        }
    }
}

/// A sold line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Item {
    pub name: String,
    /// An exact decimal, e.g. `"1.5"`.
    pub quantity: String,
    pub unit: Option<String>,
    /// The VAT letter A..G.
    pub ptu: char,
    /// Gross unit price, grosze.
    pub price: u64,
    /// The line's gross value, grosze (the printer checks it).
    pub total: u64,
    /// A discount or markup on the line, as an amount (the daemon resolves percentages, so
    /// the printer's total is the daemon's).
    pub discount: Option<ItemDiscount>,
}

/// `<discount value="1.00" name action="discount|markup"/>` inside an `<item>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemDiscount {
    /// Grosze, positive.
    pub value: u64,
    /// A markup (surcharge) rather than a discount.
    pub markup: bool,
    pub name: Option<String>,
}

/// A payment of a receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payment {
    pub kind: PaymentType,
    /// Grosze.
    pub value: u64,
    /// Change given back in cash (`mode="rest"`).
    pub change: bool,
}

/// One command of a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `<dle/>`: printer state (online, paper, printer error); answered at any time.
    Dle,
    /// `<enq/>`: did the last command succeed, is a receipt open, was the last one closed.
    Enq,
    /// `<error action="set" value="silent"/>`: errors are read with `ErrorGet`, not shown.
    ErrorSilent,
    /// `<error action="get" value=""/>`: the last error's code.
    ErrorGet,
    /// `<info action="version"/>`.
    Version,
    /// `<info action="checkout" …="?"/>`: counters and state.
    Checkout,
    /// `<info action="lasttransaction"/>`: the last receipt's state, number and `systemno`.
    LastTransaction,
    /// `<taxrates action="get"/>`: the VAT table.
    TaxRates,
    /// `<receipt action="begin" mode="online"/>`.
    ReceiptBegin,
    Item(Item),
    Payment(Payment),
    /// `<receipt action="close" systemno total [nip]/>`: `systemno` is unique to the job, so
    /// `LastTransaction` can tell after a crash whether this receipt was closed.
    ReceiptClose {
        systemno: String,
        total: u64,
        nip: Option<String>,
    },
    /// `<receipt action="cancel"/>`.
    ReceiptCancel,
    /// `<cash action="payin|payout" value/>`.
    Cash {
        payin: bool,
        value: u64,
    },
    /// `<nonfiscalprintout nonfiscalheader="yes"><line>…</line>…</nonfiscalprintout>`: a
    /// non-fiscal printout (the element as the one public client sends it).
    Printout {
        lines: Vec<String>,
    },
    /// `<report type="daily" date="dd-mm-yyyy"/>`.
    DailyReport {
        day: u32,
        month: u32,
        year: i32,
    },
}

/// The attributes `info action="checkout"` asks for: what the driver and the probe read (the
/// others — `lasterror`, `lastreceipterror`, `resetcount`, `receiptcount`, `cash` — would only
/// lengthen every exchange on a slow line).
const CHECKOUT_FIELDS: [&str; 7] = [
    "isfiscal",
    "receiptopen",
    "date",
    "uniqueno",
    "lastreceipt",
    "lastinvoice",
    "lastprintout",
];

fn element<'a>(name: &'a str, attributes: &[(&'a str, &'a str)]) -> BytesStart<'a> {
    let mut e = BytesStart::new(name);
    for a in attributes {
        e.push_attribute(*a);
    }
    e
}

impl Command {
    /// The command's element.
    fn write(&self, w: &mut Writer<Vec<u8>>) -> std::io::Result<()> {
        let empty = |w: &mut Writer<Vec<u8>>, name: &str, attrs: &[(&str, &str)]| {
            w.write_event(Event::Empty(element(name, attrs)))
        };
        match self {
            Command::Dle => empty(w, "dle", &[]),
            Command::Enq => empty(w, "enq", &[]),
            Command::ErrorSilent => empty(w, "error", &[("action", "set"), ("value", "silent")]),
            Command::ErrorGet => empty(w, "error", &[("action", "get"), ("value", "")]),
            Command::Version => empty(w, "info", &[("action", "version")]),
            Command::Checkout => {
                let mut attrs = vec![("action", "checkout"), ("type", "receipt")];
                attrs.extend(CHECKOUT_FIELDS.iter().map(|f| (*f, "?")));
                empty(w, "info", &attrs)
            }
            Command::LastTransaction => empty(w, "info", &[("action", "lasttransaction")]),
            Command::TaxRates => empty(w, "taxrates", &[("action", "get")]),
            Command::ReceiptBegin => empty(
                w,
                "receipt",
                &[
                    ("action", "begin"),
                    ("mode", "online"),
                    ("pharmaceutical", "no"),
                ],
            ),
            Command::Item(i) => {
                let (ptu, price, total) = (i.ptu.to_string(), amount(i.price), amount(i.total));
                let mut attrs = vec![
                    ("action", "sale"),
                    ("name", i.name.as_str()),
                    ("quantity", i.quantity.as_str()),
                ];
                if let Some(u) = &i.unit {
                    attrs.push(("quantityunit", u.as_str()));
                }
                attrs.extend([
                    ("ptu", ptu.as_str()),
                    ("price", price.as_str()),
                    ("total", total.as_str()),
                ]);
                let Some(d) = &i.discount else {
                    return empty(w, "item", &attrs);
                };
                w.write_event(Event::Start(element("item", &attrs)))?;
                let value = amount(d.value);
                let mut da = vec![("value", value.as_str())];
                if let Some(n) = &d.name {
                    da.push(("name", n.as_str()));
                }
                da.push(("action", if d.markup { "markup" } else { "discount" }));
                empty(w, "discount", &da)?;
                w.write_event(Event::End(BytesEnd::new("item")))
            }
            Command::Payment(p) => {
                let value = amount(p.value);
                let mode = if p.change { "rest" } else { "payment" };
                empty(
                    w,
                    "payment",
                    &[
                        ("type", p.kind.as_str()),
                        ("action", "add"),
                        ("value", value.as_str()),
                        ("mode", mode),
                    ],
                )
            }
            Command::ReceiptClose {
                systemno,
                total,
                nip,
            } => {
                let total = amount(*total);
                let mut attrs = vec![
                    ("action", "close"),
                    ("systemno", systemno.as_str()),
                    ("total", total.as_str()),
                ];
                if let Some(n) = nip {
                    attrs.push(("nip", n.as_str()));
                }
                empty(w, "receipt", &attrs)
            }
            Command::ReceiptCancel => empty(w, "receipt", &[("action", "cancel")]),
            Command::Cash { payin, value } => {
                let value = amount(*value);
                let action = if *payin { "payin" } else { "payout" };
                empty(w, "cash", &[("action", action), ("value", value.as_str())])
            }
            Command::Printout { lines } => {
                use quick_xml::events::{BytesEnd, BytesText};
                w.write_event(Event::Start(element(
                    "nonfiscalprintout",
                    &[("nonfiscalheader", "yes")],
                )))?;
                for line in lines {
                    w.write_event(Event::Start(BytesStart::new("line")))?;
                    w.write_event(Event::Text(BytesText::new(line)))?;
                    w.write_event(Event::End(BytesEnd::new("line")))?;
                }
                w.write_event(Event::End(BytesEnd::new("nonfiscalprintout")))
            }
            Command::DailyReport { day, month, year } => {
                let date = format!("{day:02}-{month:02}-{year:04}");
                empty(w, "report", &[("type", "daily"), ("date", date.as_str())])
            }
        }
    }

    /// The commands as one packet's body, in Windows-1250 (text the code page cannot hold
    /// is refused, nothing is sent).
    pub fn body(commands: &[Command]) -> Result<Vec<u8>, TextError> {
        let mut w = Writer::new(Vec::new());
        for c in commands {
            // Writing to a Vec cannot fail.
            let _ = c.write(&mut w);
        }
        let xml = String::from_utf8(w.into_inner()).unwrap_or_default();
        text::encode(&xml)
    }

    /// The commands as one packet with its CRC.
    pub fn packet(commands: &[Command]) -> Result<Vec<u8>, TextError> {
        Ok(Packet::new(Self::body(commands)?).encode(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_markup_characters_are_escaped_and_read_back_as_typed() {
        let name = "Sok \"Tymbark\" <1 l> & Syn";
        let body = Command::body(&[Command::Item(Item {
            name: name.into(),
            quantity: "1.5".into(),
            unit: Some("szt".into()),
            ptu: 'A',
            price: 450,
            total: 675,
            discount: None,
        })])
        .unwrap();
        let text = crate::text::decode(&body);
        assert!(!text.contains("<1 l>"), "{text}");
        let elements = crate::reply::parse(&body).unwrap();
        assert_eq!(elements[0].attr("name"), Some(name));
        assert_eq!(elements[0].attr("price"), Some("4.50"));
        assert_eq!(elements[0].attr("total"), Some("6.75"));
    }

    #[test]
    fn a_packet_carries_the_crc_of_its_body() {
        let p = Command::packet(&[Command::Dle]).unwrap();
        assert_eq!(p, b"<packet crc=\"4259D34E\"><dle/></packet>");
        assert!(
            Command::body(&[Command::ReceiptClose {
                systemno: "漢".into(),
                total: 1,
                nip: None
            }])
            .is_err()
        );
    }
}
