//! What caller-supplied text may enter the append-only log (DESIGN §11,
//! "no raw ID in the log, through any field").
//!
//! Two kinds of text reach a record. *Labels* are free text the caller
//! chooses (`operator`, `request_id`, reason texts): at most
//! [`MAX_LABEL`] printable characters, and never a run of
//! [`ID_DIGITS`] or more digits, which is what an ID number looks like with
//! or without its check character. *Names* must be ones civex knows
//! (attributes, predicates, purposes, consent ids, serials, agency codes).
//! Whatever fails its rule is refused before the handler acts, and the
//! refusal's own record stores [`REDACTED`] or [`INVALID`] in its place:
//! the log never holds text that was refused.

use super::purposes;
use crate::error::{Error, Reason};

/// Longest label, in characters.
pub const MAX_LABEL: usize = 128;
/// A run of this many digits is taken for a citizen ID number (18 digits,
/// 17 and a check character, or the legacy 15).
pub const ID_DIGITS: usize = 15;
/// Stored in place of a label that held an ID number.
pub const REDACTED: &str = "[redacted]";
/// Stored in place of a name civex does not know, or a malformed label.
pub const INVALID: &str = "[invalid]";

/// Whether `text` holds a run of [`ID_DIGITS`] digits (any script's
/// digits: a full-width ID number is still an ID number).
pub fn holds_citizen_id(text: &str) -> bool {
    let mut run = 0;
    for c in text.chars() {
        run = if c.is_numeric() { run + 1 } else { 0 };
        if run >= ID_DIGITS {
            return true;
        }
    }
    false
}

/// Checks a caller's label: `LABEL_HOLDS_CITIZEN_ID` if it holds an ID
/// number, `INVALID_REQUEST` if it is too long or not printable.
pub fn check_label(field: &str, value: &str) -> Result<(), Error> {
    if holds_citizen_id(value) {
        return Err(Error::new(
            Reason::LabelHoldsCitizenId,
            format!("{field} holds a run of {ID_DIGITS} or more digits, as an ID number does: labels never carry one"),
        ));
    }
    if value.chars().count() > MAX_LABEL || value.chars().any(char::is_control) {
        return Err(Error::new(
            Reason::InvalidRequest,
            format!("{field} must be at most {MAX_LABEL} printable characters"),
        ));
    }
    Ok(())
}

/// A label as it may be stored: as given if [`check_label`] accepts it.
pub fn logged_label(value: &str) -> String {
    if holds_citizen_id(value) {
        REDACTED.to_owned()
    } else if check_label("", value).is_ok() {
        value.to_owned()
    } else {
        INVALID.to_owned()
    }
}

/// An attribute or predicate name (or a right's `prefix.*`) as it may be
/// stored: the catalogue's own spelling, or [`INVALID`]. The abolished
/// household type is recognised whatever its case, so that the log shows
/// every request for it.
pub fn logged_scope(name: &str) -> String {
    super::access::known_scope(name).unwrap_or_else(|| INVALID.to_owned())
}

/// A purpose code as it may be stored.
pub fn logged_purpose(code: &str) -> String {
    match purposes::purpose(code) {
        Ok(p) => p.code.to_owned(),
        Err(_) if code.is_empty() => String::new(),
        Err(_) => INVALID.to_owned(),
    }
}

/// Whether `id` has the form of a consent id: 32 lower-case hex characters.
pub fn is_consent_id(id: &str) -> bool {
    is_hex_id(id)
}

/// Whether `id` has the form of the ids the gateway gives out (consents,
/// commitments): 32 lower-case hex digits.
pub fn is_hex_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A new id for something the gateway records (a commitment, an objection,
/// a correction): the time in milliseconds (12 hex digits) and this
/// process's count of ids (4), so that the ids one gateway gives sort in
/// the order given (across gateways, to the millisecond), then 16 random hex
/// digits; never one that looks like an ID number, as it enters the log.
pub fn new_id(now: std::time::SystemTime) -> String {
    static COUNT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let millis = now
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64 & 0xffff_ffff_ffff);
    loop {
        let count = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!("{millis:012x}{count:04x}{}", hex::encode(rand::random::<[u8; 8]>()));
        if !holds_citizen_id(&id) {
            return id;
        }
    }
}

/// A consent id (or another id the gateway gave) as it may be stored.
pub fn logged_consent_id(id: &str) -> String {
    if holds_citizen_id(id) {
        REDACTED.to_owned()
    } else if id.is_empty() || is_consent_id(id) {
        id.to_owned()
    } else {
        INVALID.to_owned()
    }
}

/// A certificate serial as the gateway writes it (lower-case hex), if
/// `serial` is one in either case: openssl prints them upper-case.
pub fn serial(serial: &str) -> Option<String> {
    let well_formed = (1..=40).contains(&serial.len()) && serial.bytes().all(|b| b.is_ascii_hexdigit());
    well_formed.then(|| serial.to_ascii_lowercase())
}

/// A certificate serial as it may be stored: lower-case hex, [`INVALID`] if
/// it is not hex, [`REDACTED`] if it looks like an ID number (issued serials
/// never do).
pub fn logged_serial(given: &str) -> String {
    match serial(given) {
        Some(_) if holds_citizen_id(given) => REDACTED.to_owned(),
        Some(serial) => serial,
        None => INVALID.to_owned(),
    }
}

/// What an administrative call acted on, as it may be stored: an agency
/// code, or [`INVALID`].
pub fn logged_agency_code(code: &str) -> String {
    if holds_citizen_id(code) {
        REDACTED.to_owned()
    } else if super::access::is_agency_code(code) {
        code.to_owned()
    } else {
        INVALID.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_numbers_are_found_in_any_label() {
        for (text, holds) in [
            ("530302197705037319", true),
            ("53030219770503731X", true),
            ("op 530302770503731 at desk", true),
            ("５３０３０２１９７７０５０３７３１９", true),
            ("req-2026-12-01-000123", false),
            ("12345678901234", false),
            ("", false),
        ] {
            assert_eq!(holds_citizen_id(text), holds, "{text}");
        }
    }

    #[test]
    fn labels_are_kept_redacted_or_invalid() {
        assert_eq!(logged_label("desk-7 王芳"), "desk-7 王芳");
        assert_eq!(logged_label("530302197705037319"), REDACTED);
        assert_eq!(logged_label(&"x".repeat(129)), INVALID);
        assert_eq!(logged_label(&"户".repeat(128)), "户".repeat(128));
        assert_eq!(logged_label("a\nb"), INVALID);
        assert_eq!(
            check_label("operator", "530302197705037319").unwrap_err().reason,
            Reason::LabelHoldsCitizenId
        );
        assert_eq!(
            check_label("operator", "a\u{7}").unwrap_err().reason,
            Reason::InvalidRequest
        );
    }

    #[test]
    fn names_are_known_or_invalid() {
        assert_eq!(logged_scope("tax.registered"), "tax.registered");
        assert_eq!(
            logged_scope("PS.HUKOU.NATURE"),
            civex_adapters::catalogue::HOUSEHOLD_NATURE
        );
        assert_eq!(logged_scope("settlement.urban"), "settlement.urban");
        assert_eq!(logged_scope("tax.*"), "tax.*");
        assert_eq!(logged_scope("530302197705037319"), INVALID);
        assert_eq!(logged_scope("tax.530302197705037319"), INVALID);
        assert_eq!(logged_purpose("hukou.settlement"), "hukou.settlement");
        assert_eq!(logged_purpose("530302197705037319"), INVALID);
        assert_eq!(
            logged_consent_id("0123456789abcdef0123456789abcdef"),
            "0123456789abcdef0123456789abcdef"
        );
        assert_eq!(logged_consent_id("530302197705037319"), REDACTED);
        assert_eq!(logged_consent_id("53030219770503731900000000000000"), REDACTED);
        assert_eq!(serial("DEADBEEF").as_deref(), Some("deadbeef"));
        assert_eq!(serial("xyz"), None);
        assert_eq!(logged_serial("DEADBEEF"), "deadbeef");
        assert_eq!(logged_serial("530302197705037319"), REDACTED);
        assert_eq!(logged_serial("xyz"), INVALID);
        assert_eq!(logged_agency_code("qujing-psb"), "qujing-psb");
        assert_eq!(logged_agency_code("530302197705037319"), REDACTED);
        assert_eq!(logged_agency_code("Qujing PSB"), INVALID);
    }
}
