//! Replies: a packet's body read with quick-xml's reader into [`Element`]s, and the typed
//! answers the driver needs (`enq`, `dle`, the error code, `lasttransaction`). Attribute
//! values are unescaped; a printer that sends malformed XML gets an error, never a panic.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

/// Why a reply could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("the reply is not well-formed XML: {0}")]
    Xml(String),
    #[error("the reply has no <{0}> element")]
    Missing(&'static str),
    #[error("<{element}> has a bad {attribute}: {value:?}")]
    BadValue {
        element: &'static str,
        attribute: &'static str,
        value: String,
    },
}

/// One element of a reply: its name, attributes (unescaped) and children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    pub name: String,
    pub attributes: Vec<(String, String)>,
    pub children: Vec<Element>,
    /// The text inside the element (unescaped, trimmed), e.g. `<ptu name="A">23.00</ptu>`.
    pub text: String,
}

impl Element {
    /// An element called `name` with `attributes`.
    pub fn new(name: &str, attributes: &[(&str, &str)]) -> Element {
        Element {
            name: name.to_string(),
            attributes: attributes
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Element::default()
        }
    }

    /// Set (or add) an attribute.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.attributes.iter_mut().find(|(k, _)| k == name) {
            Some((_, v)) => *v = value,
            None => self.attributes.push((name.to_string(), value)),
        }
    }

    /// This element with `text` inside.
    pub fn with_text(mut self, text: impl Into<String>) -> Element {
        self.text = text.into();
        self
    }

    /// An attribute's value.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// A `yes`/`no` attribute.
    pub fn flag(&self, name: &str) -> Option<bool> {
        match self.attr(name)? {
            "yes" | "tak" => Some(true),
            "no" | "nie" => Some(false),
            _ => None,
        }
    }
}

fn start(e: &BytesStart<'_>) -> Result<Element, ReplyError> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attributes = Vec::new();
    for a in e.attributes() {
        let a = a.map_err(|err| ReplyError::Xml(err.to_string()))?;
        let key = String::from_utf8_lossy(a.key.as_ref()).into_owned();
        let raw = crate::text::decode(&a.value);
        let value = quick_xml::escape::unescape(&raw)
            .map_err(|err| ReplyError::Xml(err.to_string()))?
            .into_owned();
        attributes.push((key, value));
    }
    Ok(Element {
        name,
        attributes,
        children: Vec::new(),
        text: String::new(),
    })
}

fn write_element(w: &mut quick_xml::Writer<Vec<u8>>, e: &Element) -> std::io::Result<()> {
    use quick_xml::events::{BytesEnd, BytesText};
    let mut start = BytesStart::new(e.name.as_str());
    for (k, v) in &e.attributes {
        start.push_attribute((k.as_str(), v.as_str()));
    }
    if e.children.is_empty() && e.text.is_empty() {
        return w.write_event(Event::Empty(start));
    }
    w.write_event(Event::Start(start))?;
    if !e.text.is_empty() {
        w.write_event(Event::Text(BytesText::new(&e.text)))?;
    }
    for c in &e.children {
        write_element(w, c)?;
    }
    w.write_event(Event::End(BytesEnd::new(e.name.as_str())))
}

/// Elements written as XML with quick-xml's writer (attributes and text escaped), in
/// Windows-1250; text the code page cannot hold is refused.
pub fn write(elements: &[Element]) -> Result<Vec<u8>, crate::text::TextError> {
    let mut w = quick_xml::Writer::new(Vec::new());
    for e in elements {
        // Writing to a Vec cannot fail.
        let _ = write_element(&mut w, e);
    }
    let xml = String::from_utf8(w.into_inner()).unwrap_or_default();
    crate::text::encode(&xml)
}

/// The elements of a packet body (Windows-1250), in order, with their children.
pub fn parse(body: &[u8]) -> Result<Vec<Element>, ReplyError> {
    let mut reader = Reader::from_reader(body);
    let mut buf = Vec::new();
    let mut stack: Vec<Element> = Vec::new();
    let mut top = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| ReplyError::Xml(e.to_string()))?;
        match event {
            Event::Start(e) => stack.push(start(&e)?),
            Event::Empty(e) => {
                let el = start(&e)?;
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => top.push(el),
                }
            }
            Event::End(_) => {
                let mut el = stack
                    .pop()
                    .ok_or_else(|| ReplyError::Xml("a closing tag without its opening".into()))?;
                el.text = el.text.trim().to_string();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(el),
                    None => top.push(el),
                }
            }
            Event::Text(t) => {
                if let Some(parent) = stack.last_mut() {
                    let raw = crate::text::decode(t.as_ref());
                    let text = quick_xml::escape::unescape(&raw)
                        .map_err(|err| ReplyError::Xml(err.to_string()))?;
                    parent.text.push_str(&text);
                }
            }
            Event::GeneralRef(r) => {
                if let Some(parent) = stack.last_mut() {
                    let name = crate::text::decode(r.as_ref());
                    let entity = format!("&{name};");
                    let text = quick_xml::escape::unescape(&entity)
                        .map_err(|err| ReplyError::Xml(err.to_string()))?;
                    parent.text.push_str(&text);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !stack.is_empty() {
        return Err(ReplyError::Xml("an element is not closed".into()));
    }
    Ok(top)
}

/// The first element called `name` (English) or `polish` (the Polish dialect).
pub fn find<'a>(
    elements: &'a [Element],
    name: &'static str,
    polish: &str,
) -> Result<&'a Element, ReplyError> {
    elements
        .iter()
        .find(|e| e.name == name || e.name == polish)
        .ok_or(ReplyError::Missing(name))
}

/// `<enq …/>`: the printer's state after the last command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enq {
    pub fiscal: bool,
    /// The last command failed (read its code with `error action="get"`). The specification's
    /// prose says the opposite of what its one public client does; we follow the client.
    pub last_command_error: bool,
    pub in_transaction: bool,
    pub last_transaction_correct: bool,
}

impl Enq {
    pub fn from_elements(elements: &[Element]) -> Result<Enq, ReplyError> {
        let e = find(elements, "enq", "enq")?;
        let flag = |attribute: &'static str| {
            e.flag(attribute).ok_or_else(|| ReplyError::BadValue {
                element: "enq",
                attribute,
                value: e.attr(attribute).unwrap_or("").to_string(),
            })
        };
        Ok(Enq {
            fiscal: flag("fiscal")?,
            last_command_error: flag("lastcommanderror")?,
            in_transaction: flag("intransaction")?,
            last_transaction_correct: flag("lasttransactioncorrect")?,
        })
    }
}

/// `<error value="N"/>`: the last error's code (0: none).
pub fn error_code(elements: &[Element]) -> Result<u32, ReplyError> {
    let e = find(elements, "error", "blad")?;
    let v = e.attr("value").unwrap_or("0");
    v.trim().parse().map_err(|_| ReplyError::BadValue {
        element: "error",
        attribute: "value",
        value: v.to_string(),
    })
}

/// The state of the last receipt (`<info action="lasttransaction">`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastTransaction {
    /// `open`, `close` or `canceled`.
    pub state: String,
    pub number: Option<u64>,
    pub systemno: Option<String>,
}

impl LastTransaction {
    pub fn from_elements(elements: &[Element]) -> Result<LastTransaction, ReplyError> {
        let e = elements
            .iter()
            .find(|e| e.name == "info" && e.attr("action") == Some("lasttransaction"))
            .ok_or(ReplyError::Missing("info action=\"lasttransaction\""))?;
        Ok(LastTransaction {
            state: e.attr("state").unwrap_or("").to_string(),
            number: e.attr("number").and_then(|n| n.trim().parse().ok()),
            systemno: e.attr("systemno").map(str::to_string),
        })
    }
}

/// `<dle …/>`: the mechanism's state (answered at any time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dle {
    pub online: bool,
    pub paper_error: bool,
    pub printer_error: bool,
}

impl Dle {
    pub fn from_elements(elements: &[Element]) -> Result<Dle, ReplyError> {
        let e = find(elements, "dle", "dle")?;
        Ok(Dle {
            online: e.flag("online").unwrap_or(true),
            paper_error: e.flag("papererror").unwrap_or(false),
            printer_error: e.flag("printererror").unwrap_or(false),
        })
    }
}

fn number(e: &Element, element: &'static str, attribute: &'static str) -> Result<u64, ReplyError> {
    let v = e.attr(attribute).unwrap_or("");
    v.trim().parse().map_err(|_| ReplyError::BadValue {
        element,
        attribute,
        value: v.to_string(),
    })
}

/// The counters and state of `<info action="checkout" …/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub last_receipt: u64,
    pub last_printout: u64,
    pub last_invoice: u64,
    pub receipt_open: bool,
    pub unique_number: Option<String>,
    /// The printer's date and time as it writes them.
    pub date: Option<String>,
}

impl Checkout {
    pub fn from_elements(elements: &[Element]) -> Result<Checkout, ReplyError> {
        let e = elements
            .iter()
            .find(|e| e.name == "info" && e.attr("action") == Some("checkout"))
            .ok_or(ReplyError::Missing("info action=\"checkout\""))?;
        Ok(Checkout {
            last_receipt: number(e, "info", "lastreceipt")?,
            last_printout: number(e, "info", "lastprintout")?,
            last_invoice: e
                .attr("lastinvoice")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0),
            receipt_open: e.flag("receiptopen").unwrap_or(false),
            unique_number: e
                .attr("uniqueno")
                .filter(|v| !v.is_empty())
                .map(str::to_string),
            date: e.attr("date").map(str::to_string),
        })
    }
}

/// A PTU slot's rate as `<taxrates>` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaxRate {
    /// Basis points of a percent (2300 = 23 %).
    BasisPoints(u32),
    /// Exempt (`free`).
    Exempt,
}

/// The VAT table of `<taxrates action="get">`: `(letter, rate)` for each slot listed; a
/// slot not listed (or with a value that is no rate) is not in use.
pub fn tax_rates(elements: &[Element]) -> Result<Vec<(char, TaxRate)>, ReplyError> {
    let t = find(elements, "taxrates", "stawki")?;
    let mut out = Vec::new();
    for p in &t.children {
        let Some(letter) = p.attr("name").and_then(|n| n.trim().chars().next()) else {
            continue;
        };
        let text = p.text.trim();
        let rate = if text.eq_ignore_ascii_case("free") || text.eq_ignore_ascii_case("zw") {
            TaxRate::Exempt
        } else {
            let Some(bp) = basis_points(text) else {
                continue;
            };
            if bp > 10_000 {
                continue;
            }
            TaxRate::BasisPoints(bp)
        };
        out.push((letter.to_ascii_uppercase(), rate));
    }
    Ok(out)
}

/// `"23.00"`, `"23"`, `"5.5"` → basis points.
fn basis_points(text: &str) -> Option<u32> {
    let text = text.trim_end_matches('%');
    let (whole, frac) = text.split_once('.').unwrap_or((text, ""));
    if frac.len() > 2 || whole.is_empty() || !frac.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let frac: u32 = format!("{frac:0<2}").parse().ok()?;
    whole.checked_mul(100)?.checked_add(frac)
}

/// The identity of `<info action="version" version="…"/>` (or the Polish `wersja`).
pub fn version(elements: &[Element]) -> Result<String, ReplyError> {
    let e = elements
        .iter()
        .find(|e| {
            (e.name == "info" && e.attr("action") == Some("version"))
                || (e.name == "informacja" && e.attr("akcja") == Some("wersja"))
        })
        .ok_or(ReplyError::Missing("info action=\"version\""))?;
    Ok(e.attr("version")
        .or(e.attr("wersja"))
        .unwrap_or("")
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enq_and_error_replies() {
        let body = br#"<enq fiscal="yes" lastcommanderror="no" intransaction="yes" lasttransactioncorrect="yes"/><error action="get" value="1001"/>"#;
        let els = parse(body).unwrap();
        let enq = Enq::from_elements(&els).unwrap();
        assert!(enq.fiscal && !enq.last_command_error && enq.in_transaction);
        assert_eq!(error_code(&els).unwrap(), 1001);
    }

    #[test]
    fn a_last_transaction_with_items_as_children() {
        let body = "<info action=\"lasttransaction\" state=\"close\" number=\"17\" systemno=\"fiscald-42\">\
                    <item name=\"Żółw &amp; syn\" total=\"1.00\"/></info>";
        let bytes = crate::text::encode(body).unwrap();
        let els = parse(&bytes).unwrap();
        let t = LastTransaction::from_elements(&els).unwrap();
        assert_eq!(
            (t.state.as_str(), t.number, t.systemno.as_deref()),
            ("close", Some(17), Some("fiscald-42"))
        );
        assert_eq!(els[0].children[0].attr("name"), Some("Żółw & syn"));
    }

    #[test]
    fn tax_rates_with_exempt_as_free_and_text_with_entities() {
        let body = br#"<taxrates action="get"><ptu name="A">23.00</ptu><ptu name="E">free</ptu><ptu name="F">x</ptu></taxrates><line>a &amp; b</line>"#;
        let els = parse(body).unwrap();
        assert_eq!(
            tax_rates(&els).unwrap(),
            [('A', TaxRate::BasisPoints(2300)), ('E', TaxRate::Exempt)]
        );
        assert_eq!(els[1].text, "a & b");
        let w = write(&[Element::new("line", &[]).with_text("<\"&>")]).unwrap();
        assert_eq!(parse(&w).unwrap()[0].text, "<\"&>");
    }

    #[test]
    fn malformed_replies_are_errors() {
        for bad in [&b"<enq fiscal=\"yes\""[..], b"<a><b></a>", b"</x>", b"<enq fiscal=\"maybe\" lastcommanderror=\"no\" intransaction=\"no\" lasttransactioncorrect=\"no\"/>"] {
            let r = parse(bad).and_then(|e| Enq::from_elements(&e).map(|_| ()));
            assert!(r.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
