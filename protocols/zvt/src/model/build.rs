//! The model's message builders and receipt text: the APDUs a terminal sends, and the
//! deterministic card data and slip lines of the emulated acquirer.

use super::*;

pub(super) fn ack() -> Apdu {
    Apdu::new(0x80, 0x00, Vec::new())
}

pub(super) fn nack(code: u8) -> Apdu {
    Apdu::new(0x84, code, Vec::new())
}

pub(super) fn plain(apdu: Apdu) -> Step {
    Step {
        apdu,
        commit: None,
        drop_after: false,
        retry_on_nack: false,
    }
}

pub(super) fn bcd(value: u64, len: usize) -> Vec<u8> {
    u64_to_bcd(value, len).unwrap_or_else(|| vec![0; len])
}

pub(super) fn currency_ok(c: u16) -> bool {
    c == crate::PLN || c == crate::EUR
}

pub(super) fn intermediate(status: u8) -> Apdu {
    PtMessage::IntermediateStatus {
        status,
        timeout_minutes: None,
        text: None,
    }
    .to_apdu()
}

pub(super) fn completion() -> Apdu {
    PtMessage::Completion {
        terminal_status: None,
        terminal_id: None,
        sw_version: None,
    }
    .to_apdu()
}

pub(super) fn abort_apdu(result_code: u8, text: Option<String>) -> Apdu {
    PtMessage::Abort { result_code, text }.to_apdu()
}

/// The Status-Information of a stored transaction.
pub(super) fn status_apdu(tx: &StoredTransaction) -> Apdu {
    let auto_reversed = tx.status == "reversed" && tx.reversed_by.is_none();
    let result_code = if auto_reversed { 0x6C } else { tx.result_code };
    let (time, date) = bmp_time_date_of(&tx.time);
    let result = TransactionResult {
        result_code,
        amount: Some(tx.amount),
        currency: Some(tx.currency),
        trace_number: Some(tx.trace_number),
        original_trace: tx.original_trace,
        receipt_number: Some(tx.receipt_number),
        terminal_id: Some(tx.terminal_id.clone()).filter(|t| !t.is_empty()),
        masked_pan: Some(tx.masked_pan.clone()),
        card_name: Some(tx.card_brand.clone()),
        card_type: tx.card_type,
        auth_code: tx.auth_code.clone(),
        time,
        date,
        payment_type: Some(0x60),
        additional_text: (result_code != 0).then(|| {
            if auto_reversed {
                "Transakcja anulowana".to_string()
            } else {
                "Karta odrzucona".to_string()
            }
        }),
        ..TransactionResult::default()
    };
    PtMessage::StatusInformation(result).to_apdu()
}

/// BMP 0C/0D values from a stored `yyyy-mm-dd hh:mm:ss`.
pub(super) fn bmp_time_date_of(text: &str) -> (Option<String>, Option<String>) {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 14 {
        return (None, None);
    }
    (
        Some(digits[8..14].to_string()),
        Some(digits[4..8].to_string()),
    )
}

pub(super) fn print_steps(lines: Vec<String>) -> Vec<Step> {
    let n = lines.len();
    lines
        .into_iter()
        .enumerate()
        .map(|(i, text)| Step {
            apdu: PtMessage::PrintLine {
                attribute: if i + 1 == n { ATTR_LAST_LINE } else { 0x00 },
                text,
            }
            .to_apdu(),
            commit: None,
            drop_after: false,
            retry_on_nack: true,
        })
        .collect()
}

/// The customer slip of a transaction as print lines.
pub(super) fn receipt_steps(tx: &StoredTransaction) -> Vec<Step> {
    let title = match tx.kind.as_str() {
        "refund" => "ZWROT",
        "reversal" => "ANULOWANIE",
        _ => "SPRZEDAZ",
    };
    let mut lines = vec![
        "  fiscald sim terminal".to_string(),
        format!("TID {}", tx.terminal_id),
        tx.time.clone(),
        title.to_string(),
        tx.card_brand.clone(),
        tx.masked_pan.clone(),
        format!("KWOTA {}", money(tx.amount, tx.currency)),
    ];
    if let Some(code) = &tx.auth_code {
        lines.push(format!("KOD AUT. {code}"));
    }
    lines.push(
        if tx.result_code == 0 {
            "ZATWIERDZONO"
        } else {
            "ODMOWA - TRANSAKCJA ODRZUCONA"
        }
        .to_string(),
    );
    lines.push(format!(
        "TRACE {:06}  PARAGON {:04}",
        tx.trace_number, tx.receipt_number
    ));
    print_steps(lines)
}

/// `12,34 PLN`.
pub(super) fn money(amount: u64, currency: u16) -> String {
    let code = match currency {
        crate::PLN => "PLN",
        crate::EUR => "EUR",
        _ => "",
    };
    format!("{},{:02} {code}", amount / 100, amount % 100)
}

/// A card for a transaction, varied by trace number; the PAN exists only masked.
pub(super) fn card_for(trace: u32) -> (&'static str, String, u8) {
    const CARDS: [(&str, &str, u8); 3] = [
        ("Mastercard", "545454", 0x06),
        ("Visa", "476173", 0x0A),
        ("Maestro", "675964", 0x2E),
    ];
    let h = mix(u64::from(trace));
    let (brand, bin, card_type) = CARDS[(h % 3) as usize];
    (
        brand,
        format!("{bin}******{:04}", (h >> 8) % 10_000),
        card_type,
    )
}

pub(super) fn auth_code_for(trace: u32) -> String {
    format!("{:06}", mix(u64::from(trace) ^ 0xA5A5) % 1_000_000)
}

/// A small integer hash (splitmix64 finaliser).
pub(super) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
pub(super) fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_844), (2024, 5, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }

    #[test]
    fn cards_are_masked() {
        for t in 0..1000 {
            let (_, pan, _) = card_for(t);
            assert_eq!(pan.len(), 16);
            assert_eq!(&pan[6..12], "******");
        }
    }
}
