//! The POSNET error catalogue: device codes → plain-language messages and
//! vendor-neutral categories that the daemon's API exposes.

/// The answer when a copy (`ecprndoc`) asks for a document protected memory does not hold.
///
/// Not confirmed: the specification lists "document not found" among the protected-memory
/// errors 2900–2930; we use the end of that range. A correction is this one line.
pub const DOCUMENT_NOT_FOUND: u32 = 2930;

/// Vendor-neutral error category (serialised in snake_case in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    PaperOut,
    CoverOpen,
    DailyReportRequired,
    ItemLocked,
    TotalMismatch,
    InvalidVat,
    MemoryFull,
    TransactionState,
    InvalidField,
    DeviceBusy,
    DeviceFault,
    Clock,
    Blocked,
    Transport,
    Protocol,
    Unknown,
}

impl Category {
    /// The snake_case name used in the API (`paper_out`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Category::PaperOut => "paper_out",
            Category::CoverOpen => "cover_open",
            Category::DailyReportRequired => "daily_report_required",
            Category::ItemLocked => "item_locked",
            Category::TotalMismatch => "total_mismatch",
            Category::InvalidVat => "invalid_vat",
            Category::MemoryFull => "memory_full",
            Category::TransactionState => "transaction_state",
            Category::InvalidField => "invalid_field",
            Category::DeviceBusy => "device_busy",
            Category::DeviceFault => "device_fault",
            Category::Clock => "clock",
            Category::Blocked => "blocked",
            Category::Transport => "transport",
            Category::Protocol => "protocol",
            Category::Unknown => "unknown",
        }
    }

    /// Every category, in declaration order.
    pub const ALL: [Category; 16] = [
        Category::PaperOut,
        Category::CoverOpen,
        Category::DailyReportRequired,
        Category::ItemLocked,
        Category::TotalMismatch,
        Category::InvalidVat,
        Category::MemoryFull,
        Category::TransactionState,
        Category::InvalidField,
        Category::DeviceBusy,
        Category::DeviceFault,
        Category::Clock,
        Category::Blocked,
        Category::Transport,
        Category::Protocol,
        Category::Unknown,
    ];
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the catalogue knows about one code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorInfo {
    pub code: u32,
    /// The spec's mnemonic where it has one, e.g. `ERR_TR_FLD_VAT`.
    pub name: Option<&'static str>,
    /// Plain language: what happened and what to do.
    pub message: &'static str,
    pub category: Category,
}

/// Look up a command-error code (`?NNNN` in a reply to a command).
pub fn command_error(code: u32) -> ErrorInfo {
    PosnetError::from_code(code).info()
}

/// Look up a frame-error code (`ERR ?N`, 1..=15).
pub fn frame_error(code: u32) -> ErrorInfo {
    use Category::{DeviceBusy, Protocol, Unknown};
    let (message, category) = match code {
        1 => (
            "The printer does not know this command; check the mnemonic and the printer model.",
            Protocol,
        ),
        2 => (
            "A mandatory field of the command is missing; this is a driver bug, report it.",
            Protocol,
        ),
        3 => (
            "A field value could not be converted (wrong format or out of range, e.g. a comma in an amount); check the values sent.",
            Protocol,
        ),
        4 => (
            "The token field is malformed; it must be '@' and four digits.",
            Protocol,
        ),
        5 => (
            "The printer received a frame with a bad checksum (line noise or a driver bug); resend the command.",
            Protocol,
        ),
        6 => (
            "The frame has an empty field or a field without a name; this is a driver bug, report it.",
            Protocol,
        ),
        7..=9 => (
            "Reserved frame error (older devices: bad mnemonic, token or checksum length); check the framing.",
            Protocol,
        ),
        10 => (
            "A field is too long or too short for the printer; shorten the value.",
            Protocol,
        ),
        11 => (
            "The printer's receive buffer overflowed; slow down and resend.",
            Protocol,
        ),
        12 => (
            "This command cannot run in immediate ('!') mode; send it normally.",
            Protocol,
        ),
        13 => (
            "The printer has no stored answer for this token (rpt); the command was probably never received.",
            Protocol,
        ),
        14 => (
            "The printer's command queue is full; wait for it to drain and resend.",
            DeviceBusy,
        ),
        15 => (
            "The frame is malformed (e.g. no checksum); this is a driver bug, report it.",
            Protocol,
        ),
        _ => (
            "The printer reported a frame error code this driver does not know.",
            Unknown,
        ),
    };
    ErrorInfo {
        code,
        name: None,
        message,
        category,
    }
}

/// The catalogue entry for a reply's error code, if it has one: frame errors for `ERR`
/// frames, command errors otherwise.
pub fn reply_error(frame: &crate::Frame) -> Option<ErrorInfo> {
    let code = frame.error_code?;
    Some(if frame.is_frame_error() {
        frame_error(code)
    } else {
        command_error(code)
    })
}

/// Declares [`PosnetError`] from the catalogue: single codes first (so they win over
/// the ranges that contain them), then code patterns (ranges or sets) in order, the
/// first match winning.
macro_rules! catalogue {
    (
        singles { $( $sv:ident = $sc:literal, $sn:expr, $scat:ident, $smsg:literal; )* }
        ranges { $( $rv:ident = $rp:pat, $rn:expr, $rcat:ident, $rmsg:literal; )* }
    ) => {
        /// A POSNET command-error code as a variant: one per known code, one per known
        /// range (carrying the code), and [`PosnetError::Other`] for anything else, so
        /// every `u32` maps to exactly one variant and back.
        #[non_exhaustive]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum PosnetError {
            $( #[doc = $smsg] $sv, )*
            $( #[doc = $rmsg] $rv(u32), )*
            /// A code that is not in the catalogue.
            Other(u32),
        }

        impl PosnetError {
            /// The variant for a command-error code.
            pub fn from_code(code: u32) -> Self {
                match code {
                    $( $sc => PosnetError::$sv, )*
                    $( $rp => PosnetError::$rv(code), )*
                    _ => PosnetError::Other(code),
                }
            }

            /// The numeric code.
            pub fn code(self) -> u32 {
                match self {
                    $( PosnetError::$sv => $sc, )*
                    $( PosnetError::$rv(c) => c, )*
                    PosnetError::Other(c) => c,
                }
            }

            /// The catalogue entry: spec mnemonic, message and category.
            pub fn info(self) -> ErrorInfo {
                let (name, message, category): (Option<&'static str>, &'static str, Category) = match self {
                    $( PosnetError::$sv => ($sn, $smsg, Category::$scat), )*
                    $( PosnetError::$rv(_) => ($rn, $rmsg, Category::$rcat), )*
                    PosnetError::Other(_) => (
                        None,
                        "The printer reported an error code this driver does not know; see the printer's manual and report it.",
                        Category::Unknown,
                    ),
                };
                ErrorInfo { code: self.code(), name, message, category }
            }
        }
    };
}

catalogue! {
    singles {
        Cancelled = 30, Some("ERR_CANCEL"), TransactionState,
            "The operation was cancelled by the user at the printer; repeat it if it is still needed.";
        BlockedForInterface = 40, Some("ERR_CMD_BLOCKED_FOR_INTERFACE"), DeviceBusy,
            "Another connection (second port or network) is using the printer; retry when it has finished.";
        TryLater = 41, Some("ERR_CMD_TRY_LATER"), DeviceBusy,
            "The printer is busy with another connection; retry in a moment.";
        OperationBlocked = 323, Some("ERR_OPER_BLOCKED"), Blocked,
            "This function is switched off in the printer's configuration; ask the service to enable it.";
        ServiceJumperPresent = 360, None, DeviceFault,
            "The printer is in service mode (service jumper fitted); call the service technician.";
        ServiceJumperAbsent = 361, None, DeviceFault,
            "The operation needs the service jumper, which is not fitted; only the service can do this.";
        ZeroReportRepeated = 382, Some("ERR_RD_ZERO"), TransactionState,
            "Nothing was sold since the last daily report, and a second zero report in a row is not allowed; nothing to do.";
        DailyReportMissing = 383, Some("ERR_RD_NOT_PRINTED"), DailyReportRequired,
            "The daily report for a previous day has not been printed; run the daily report, then retry.";
        SaleMemoryLocked = 387, Some("ERR_SL_FM_LOCKED"), MemoryFull,
            "Sales are blocked because the printer's memory has no room left; call the service.";
        FiscalMemoryLocked = 388, Some("ERR_FM_LOCKED"), MemoryFull,
            "The operation is blocked because the fiscal memory has no room left; call the service.";
        WorkTimeExpired = 484, None, Blocked,
            "The printer's allowed working time has expired and sales are blocked; contact the service or the vendor.";
        SubscriptionExpired = 488, None, Blocked,
            "The printer's subscription has expired and sales are blocked; renew it with the vendor.";
        ThermalProtocolActive = 499, Some("ERR_ACTIVE_PROTO_THERMAL"), Blocked,
            "The printer is set to the older Thermal protocol; switch it to POSNET in its menu.";
        DrawerOverflow = 502, None, InvalidField,
            "The cash in the drawer would exceed the printer's maximum; check the amount.";
        DrawerNegative = 503, None, InvalidField,
            "The cash in the drawer would become negative; withdraw less than the drawer holds.";
        IllegalVatRate = 703, Some("ERR_ILLEGAL_VAT_RATE"), InvalidVat,
            "The VAT rate is not allowed; check the VAT table and the rate sent.";
        BadCodePage = 745, None, InvalidField,
            "The code page is not valid; use 0 (Windows-1250), 1 (Latin-2) or 2 (Mazovia).";
        ThermalOverTcp = 752, None, Blocked,
            "The Thermal protocol cannot be used over the network; connect by serial/USB or switch to POSNET.";
        FiscalMemoryNoSpace = 1069, None, MemoryFull,
            "The fiscal memory has no space left; the printer needs service or replacement.";
        PaymentsCoverTotal = 1953, None, TransactionState,
            "The payments already cover the receipt total; do not add more payments, close the receipt.";
        ZeroPayment = 1962, None, InvalidField,
            "A payment of zero was sent; send a positive amount.";
        StornoNotAllowed = 1990, None, TransactionState,
            "A line cannot be reversed (storno) in the receipt's current state.";
        DiscountNotAllowed = 1991, None, TransactionState,
            "A discount cannot be given in the receipt's current state.";
        EmptyReceipt = 1992, Some("ERR_TR_EMPTY"), TransactionState,
            "The receipt has no lines; add a line or cancel the receipt.";
        BadVatSlot = 2000, Some("ERR_TR_FLD_VAT"), InvalidVat,
            "The VAT slot is wrong or its rate is inactive; read the VAT table and use an active slot.";
        NonIntegerQuantity = 2001, None, InvalidField,
            "The quantity must be a whole number here; send an integer quantity.";
        NoHeader = 2002, None, Blocked,
            "The receipt header is not programmed, so the printer cannot print receipts; have it programmed.";
        HeaderAlreadySet = 2003, None, InvalidField,
            "The header is already programmed and cannot be set again this way.";
        NoActiveVat = 2004, None, InvalidVat,
            "No VAT rate is active; the VAT table must be programmed before selling.";
        NotInTransaction = 2005, Some("ERR_NO_TRNS_MODE"), TransactionState,
            "No receipt is open, so the receipt command was refused; start a receipt first.";
        BadPrice = 2006, None, InvalidField,
            "The price is zero or negative; send a positive unit price.";
        BadQuantity = 2007, None, InvalidField,
            "The quantity is zero or negative; send a positive quantity.";
        LineTotalMismatch = 2008, None, TotalMismatch,
            "The line total does not equal price times quantity as the printer computes it; recompute the line amount.";
        ZeroLineTotal = 2009, None, InvalidField,
            "The line total is zero; the line cannot be sold.";
        TotalizerOverflow = 2010, None, DailyReportRequired,
            "The daily totals would overflow; run the daily report before selling more.";
        BadNip = 2031, None, InvalidField,
            "The buyer's tax number (NIP) is not valid; check it.";
        DeviceIsFiscal = 2033, None, Blocked,
            "The printer is already fiscal, so this operation is not allowed.";
        DeviceNotFiscal = 2034, None, Blocked,
            "The printer is not fiscalised, so this operation is not allowed; have it fiscalised.";
        TotalizersNotZero = 2035, None, DailyReportRequired,
            "There were sales since the last daily report; run the daily report first.";
        ReadOnly = 2036, Some("ERR_READ_ONLY"), MemoryFull,
            "The printer is read-only (memory full or end of life); only reports can be printed, call the service.";
        AlreadyInTransaction = 2038, Some("ERR_TRNS_MODE"), TransactionState,
            "A receipt or printout is already open; finish or cancel it first.";
        TotalizersZero = 2039, None, TransactionState,
            "There were no sales since the last daily report, so this operation has nothing to act on.";
        ZeroReceipt = 2041, None, InvalidField,
            "A receipt cannot be closed with a total of zero; add a line or cancel it.";
        TransactionBufferFull = 2052, None, TransactionState,
            "The receipt has too many lines for the printer; close it and continue on a new receipt.";
        PaymentMismatch = 2054, Some("ERR_TR_END_PAYMENT"), TotalMismatch,
            "The payments do not match the total (or the change is wrong); recompute the payments.";
        BadTransactionState = 2060, Some("ERR_TR_BAD_STATE"), TransactionState,
            "The command does not fit the state of the open document; check the command order.";
        PartlyPrinted = 2062, None, TransactionState,
            "Part of a document is already printed, so this change is no longer possible.";
        BadParameter = 2063, Some("ERR_PAR"), InvalidField,
            "A parameter has a value the printer does not accept; check the values sent.";
        NothingStarted = 2064, None, TransactionState,
            "No printout or receipt is open; start one first.";
        NoFooterStarted = 2066, None, TransactionState,
            "No receipt footer is open; the footer line was refused.";
        ChangeAlreadyDeclared = 2094, None, TransactionState,
            "A payment is already declared as change; only one change entry is allowed.";
        NipLength = 2096, None, InvalidField,
            "The buyer's tax number (NIP) must be exactly 10 digits; send digits only.";
        FiscalMemoryFull = 2098, Some("ERR_FM_DOC_FULL"), MemoryFull,
            "The fiscal memory is full; the printer needs service or replacement.";
        ProductDbFull = 2101, None, MemoryFull,
            "The printer's product database is full; new product names cannot be sold until it is cleared.";
        InactiveVat = 2102, None, InvalidVat,
            "The VAT rate of this slot is inactive; use a slot with an active rate.";
        BadVatRate = 2103, None, InvalidVat,
            "The VAT rate is wrong for this product; check the slot sent.";
        BadProductName = 2104, None, InvalidField,
            "The product name is not valid (for example empty after removing punctuation); use a proper name.";
        RateAssignment = 2105, None, InvalidVat,
            "The printer could not assign the VAT rate to the product; check the slot.";
        ItemLocked = 2106, None, ItemLocked,
            "This product name was already sold today at a different VAT rate; keep the rate or change the name.";
        ProductNotFound = 2107, None, InvalidField,
            "The product is not in the printer's database.";
        BadDiscountType = 2600, None, InvalidField,
            "The discount type is not valid.";
        DiscountOutOfRange = 2601, None, InvalidField,
            "The discount value is out of range; check the amount or percentage.";
        BadVatId = 2701, None, InvalidVat,
            "The VAT identifier is not valid; use a slot index 0..6.";
        BadFooterLineId = 2702, None, InvalidField,
            "The footer line identifier is not valid.";
        TooManyFooterLines = 2703, None, InvalidField,
            "Too many footer lines; send fewer.";
        WeakBattery = 2704, None, DeviceFault,
            "The printer's backup battery is weak; call the service.";
        BadPaymentType = 2705, None, InvalidField,
            "The payment type is not valid; use a supported payment form.";
        NoPowerSupply = 2706, None, DeviceFault,
            "The printer is not on mains power; connect the power supply.";
        FiscalTotalMismatch = 2805, None, TotalMismatch,
            "The receipt total sent does not equal the total the printer computed; recompute the receipt.";
        StornoBadQuantity = 2851, None, InvalidField,
            "The reversal (storno) quantity does not match a sold line.";
        StornoBadAmount = 2852, None, InvalidField,
            "The reversal (storno) amount does not match a sold line.";
        RepositoryBlocksSales = 3929, None, Blocked,
            "The printer is blocked after a central repository (CRK) decision and cannot sell; contact the service.";
        IdzAlreadySet = 4258, None, InvalidField,
            "The e-receipt identifier (IDZ) is already set for this document.";
        BadIdz = 4277, None, InvalidField,
            "The e-receipt identifier (IDZ) is not valid.";
    }
    ranges {
        InternalAssert = 50..=56, None, DeviceFault,
            "The printer hit an internal error; restart it and call the service if it persists.";
        ClockFault = 460..=464, None, Clock,
            "The printer's clock is faulty, unsynchronised, or the time or time zone is invalid; check the clock and call the service if it persists.";
        Authorisation = 480..=488, None, Blocked,
            "The printer's authorisation or subscription does not allow this; contact the vendor or the service.";
        PortBusy = 730..=736, None, DeviceBusy,
            "The printer's port is used by another connection (second port, network, monitor or tunnel); retry later.";
        ProtectedMemoryFault = 1036..=1041, None, MemoryFull,
            "The printer's protected memory is full, damaged or unreachable; call the service.";
        FiscalMemoryFault = 1000..=1079, None, DeviceFault,
            "The fiscal memory has a fault (disconnected, damaged or replaced); stop selling and call the service.";
        PaymentError = 1950..=1966, None, InvalidField,
            "An amount overflowed or a payment is not valid; check the payment amounts.";
        DiscountError = 1980..=1985, None, InvalidField,
            "The discount base or result is zero, negative or too large; check the discount.";
        ClockSetRefused = 2020..=2026, None, Clock,
            "The clock change was refused (not allowed now, too large, badly formatted, or before the last record); check the date and time.";
        VatTableChange = 2027..=2030, None, InvalidVat,
            "The VAT table change was refused (too many changes, identical, bad values, or all inactive).";
        BadText = 2055..=2058, None, InvalidField,
            "A text line is wrong (bad line, empty text, bad size or too many lines); check the text sent.";
        FormError = 2501..=2509, None, InvalidField,
            "The non-fiscal form command is wrong (form, line or header number, parameters, or form state); check the form commands.";
        InvoiceError = 2532..=2535, None, InvalidField,
            "The invoice data is incomplete or badly formatted (copies, number or buyer).";
        VerificationMismatch = 2801..=2809, None, TotalMismatch,
            "A value the host sent (discount, line, payment or change) differs from what the printer computed; recompute the receipt.";
        ProtectedMemory = 2900..=2930, None, MemoryFull,
            "The electronic copy (protected memory) is full, not ready or failed verification; call the service.";
        CurrencyError = 3051..=3056, None, InvalidField,
            "The foreign-currency data is not valid.";
        AutoVatChange = 3080..=3085, None, InvalidVat,
            "The scheduled automatic VAT change is not valid.";
        BarcodeError = 3200..=3222, None, InvalidField,
            "The barcode or 2D code data is not valid.";
        FirmwareUpdate = 3700..=3714, None, DeviceFault,
            "A firmware update failed or is not possible now; retry later or call the service.";
        CertificateBlocksSales = 3733 | 3735, None, Blocked,
            "The printer's certificates or keys are invalid and sales are blocked; call the service.";
        CertificateError = 3720..=3738, None, DeviceFault,
            "The printer has a certificate or key problem; call the service.";
        RepositoryError = 3901..=3933, None, DeviceFault,
            "The printer's communication with the central repository (CRK) failed or was refused; check the network and call the service if it persists.";
        EDocumentError = 4250..=4277, None, DeviceFault,
            "The e-receipt could not be queued or sent (queue full, send error or bad address); check the network settings.";
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_a_variant() {
        for code in 0..=10_000 {
            let e = PosnetError::from_code(code);
            assert_eq!(e.code(), code, "{e:?}");
            let info = e.info();
            assert_eq!(info.code, code);
            assert!(!info.message.is_empty());
            assert_eq!(command_error(code), info);
        }
        assert_eq!(
            PosnetError::from_code(u32::MAX),
            PosnetError::Other(u32::MAX)
        );
    }

    #[test]
    fn samples() {
        let c = |code| command_error(code).category;
        assert_eq!(PosnetError::from_code(383), PosnetError::DailyReportMissing);
        assert_eq!(c(383), Category::DailyReportRequired);
        assert_eq!(c(2106), Category::ItemLocked);
        for code in [2008, 2054, 2801, 2805, 2809] {
            assert_eq!(c(code), Category::TotalMismatch, "{code}");
        }
        assert_eq!(
            PosnetError::from_code(2805),
            PosnetError::FiscalTotalMismatch
        );
        assert_eq!(
            PosnetError::from_code(2803),
            PosnetError::VerificationMismatch(2803)
        );
        for code in [703, 2000, 2004, 2102, 2103] {
            assert_eq!(c(code), Category::InvalidVat, "{code}");
        }
        for code in [387, 388, 1036, 1041, 1069, 2036, 2098, 2900, 2930] {
            assert_eq!(c(code), Category::MemoryFull, "{code}");
        }
        for code in [2005, 2038, 2060, 1990, 1991, 1992] {
            assert_eq!(c(code), Category::TransactionState, "{code}");
        }
        for code in [40, 41, 730, 736] {
            assert_eq!(c(code), Category::DeviceBusy, "{code}");
        }
        for code in [460, 464, 2020, 2026] {
            assert_eq!(c(code), Category::Clock, "{code}");
        }
        for code in [480, 484, 488, 3733, 3735, 3929, 323] {
            assert_eq!(c(code), Category::Blocked, "{code}");
        }
        assert_eq!(c(3734), Category::DeviceFault);
        assert_eq!(c(1001), Category::DeviceFault);
        assert_eq!(
            PosnetError::from_code(1001),
            PosnetError::FiscalMemoryFault(1001)
        );
        assert_eq!(
            PosnetError::from_code(1037),
            PosnetError::ProtectedMemoryFault(1037)
        );
        assert_eq!(c(4258), Category::InvalidField);
        assert_eq!(c(4250), Category::DeviceFault);
        assert_eq!(c(9999), Category::Unknown);
        assert_eq!(command_error(2000).name, Some("ERR_TR_FLD_VAT"));
        assert_eq!(command_error(2038).name, Some("ERR_TRNS_MODE"));
    }

    #[test]
    fn frame_errors() {
        for code in 1..=15 {
            let info = frame_error(code);
            assert_eq!(info.code, code);
            let want = if code == 14 {
                Category::DeviceBusy
            } else {
                Category::Protocol
            };
            assert_eq!(info.category, want, "{code}");
        }
        assert_eq!(frame_error(0).category, Category::Unknown);
        assert_eq!(frame_error(16).category, Category::Unknown);
        assert!(frame_error(5).message.contains("checksum"));
    }

    #[test]
    fn reply_error_picks_the_table() {
        use crate::Frame;
        assert_eq!(
            reply_error(&Frame::error_reply("ERR", 5)),
            Some(frame_error(5))
        );
        assert_eq!(
            reply_error(&Frame::error_reply("trline", 2000)),
            Some(command_error(2000))
        );
        assert_eq!(reply_error(&Frame::new("trline")), None);
    }

    #[test]
    fn category_names() {
        let names: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names[0], "paper_out");
        assert_eq!(
            Category::DailyReportRequired.as_str(),
            "daily_report_required"
        );
        for c in Category::ALL {
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
            assert_eq!(c.to_string(), c.as_str());
        }
        let mut sorted = names.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), names.len());
    }
}
