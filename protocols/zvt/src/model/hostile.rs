//! The `pan clear` fault: a terminal that breaks PCI rules and sends the full card number
//! in clear, in every field that can carry text and in every separator style a real
//! slip uses, so tests can prove the register masks all of them.
//!
//! With the fault on, every message the terminal sends is rewritten on its way out:
//! - `04 0F`: BMP 22 carries [`TEST_PAN`] in clear; BMP 8B (card name) and 3C (additional
//!   text) carry it in one of [`STYLES`]; BMP 2A (15 bytes, too short for 16 digits)
//!   carries the 13-digit [`TEST_PAN_13`];
//! - `04 FF`: a display text (TLV 24, lines 07) with the number;
//! - `06 D1`: the line with the masked number becomes `A 5454545454545454 1228`; the
//!   other lines but the last get a style appended (the line cut at 40 characters);
//! - after the masked-number line, a `06 D3` text block (TLV 25) with every style and
//!   the number split over two lines;
//! - `06 1E`: an error text (TLV 1F17) with the number.
//!
//! The styles rotate from message to message. The terminal's stored transactions stay
//! masked.

use super::{ATTR_LAST_LINE, TEST_PAN};
use crate::apdu::Apdu;
use crate::bmp::{Field, encode_fields, parse_fields};
use crate::message::{PtMessage, text_to_cp437};

/// A 13-digit Luhn-valid test number, for BMP 2A (15 bytes).
pub const TEST_PAN_13: &str = "4222222222222";

/// The separator styles the number is sent in (all hold [`TEST_PAN`]).
pub const STYLES: [&str; 10] = [
    "A 5454545454545454 1228",
    "5454  5454  5454  5454",
    "5454.5454.5454.5454",
    "5454_5454_5454_5454",
    "5454/5454/5454/5454",
    "5454-5454-5454-5454",
    "5454 5454 5454 5454",
    "00012 5454545454545454 000123",
    "PAN 5454545454545454 EXP 12/28",
    "5454545454545454",
];

/// The state of the fault: which style comes next.
#[derive(Debug, Default)]
pub(super) struct Leaker {
    next: usize,
}

impl Leaker {
    fn style(&mut self) -> &'static str {
        let s = STYLES[self.next % STYLES.len()];
        self.next += 1;
        s
    }

    /// The messages to send instead of `apdu` (one or two).
    pub(super) fn leak(&mut self, apdu: Apdu) -> Vec<Apdu> {
        match (apdu.class, apdu.instr) {
            (0x04, 0x0F) => vec![self.status(apdu)],
            (0x04, 0xFF) => match PtMessage::from_apdu(&apdu) {
                Ok(PtMessage::IntermediateStatus {
                    status,
                    timeout_minutes,
                    ..
                }) => vec![
                    PtMessage::IntermediateStatus {
                        status,
                        timeout_minutes,
                        text: Some(format!("KARTA\n{}", self.style())),
                    }
                    .to_apdu(),
                ],
                _ => vec![apdu],
            },
            (0x06, 0xD1) => self.print_line(apdu),
            (0x06, 0x1E) => {
                let code = apdu.data.first().copied().unwrap_or(0);
                vec![
                    PtMessage::Abort {
                        result_code: code,
                        text: Some(format!("ODMOWA {}", self.style())),
                    }
                    .to_apdu(),
                ]
            }
            _ => vec![apdu],
        }
    }

    fn status(&mut self, apdu: Apdu) -> Apdu {
        let Ok(mut fields) = parse_fields(&apdu.data) else {
            return apdu;
        };
        fields.retain(|f| !matches!(f.bmp, 0x8B | 0x3C | 0x2A));
        for f in fields.iter_mut().filter(|f| f.bmp == 0x22) {
            f.value = crate::pan::to_bcd(TEST_PAN);
        }
        let mut name = text_to_cp437(&format!("Maestro {}", self.style()));
        name.push(0);
        fields.push(Field::new(0x8B, name));
        let mut vu = text_to_cp437(TEST_PAN_13);
        vu.resize(15, b' ');
        fields.push(Field::new(0x2A, vu));
        fields.push(Field::new(
            0x3C,
            text_to_cp437(&format!("PAN {} EXP 12/28", self.style())),
        ));
        Apdu::new(apdu.class, apdu.instr, encode_fields(&fields))
    }

    fn print_line(&mut self, apdu: Apdu) -> Vec<Apdu> {
        let Some((&attribute, text)) = apdu.data.split_first() else {
            return vec![apdu];
        };
        if text.windows(6).any(|w| w == b"******") {
            let mut data = vec![attribute];
            data.extend_from_slice(STYLES[0].as_bytes());
            let mut lines: Vec<String> = STYLES.iter().map(|s| s.to_string()).collect();
            lines.extend(["5454 5454".to_string(), "5454 5454".to_string()]);
            let block = PtMessage::PrintTextBlock {
                receipt_type: None,
                lines,
            };
            return vec![Apdu::new(apdu.class, apdu.instr, data), block.to_apdu()];
        }
        if attribute == ATTR_LAST_LINE {
            return vec![apdu];
        }
        let mut line = String::from_utf8_lossy(text).into_owned();
        line.push(' ');
        line.push_str(self.style());
        let mut data = vec![attribute];
        data.extend(text_to_cp437(&line).into_iter().take(40));
        vec![Apdu::new(apdu.class, apdu.instr, data)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_style_holds_the_test_pan_and_is_luhn_valid() {
        for s in STYLES {
            let digits: String = s.chars().filter(char::is_ascii_digit).collect();
            assert!(digits.contains(TEST_PAN), "{s}");
        }
        assert!(crate::pan::luhn_valid(TEST_PAN));
        assert!(crate::pan::luhn_valid(TEST_PAN_13));
    }
}
