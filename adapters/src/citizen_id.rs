//! Citizen ID numbers (公民身份号码, GB 11643-1999).
//!
//! Eighteen ASCII characters: a six-digit administrative division code, an
//! eight-digit birth date, a three-digit sequence (odd for men) and a check
//! character computed with ISO 7064 MOD 11-2. Every ID that enters civex is
//! parsed into a [`CitizenId`] first; nothing downstream sees a raw string.

use std::fmt;

use time::Date;

/// Weights of ISO 7064 MOD 11-2 for the first seventeen characters.
const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character for each `sum mod 11`.
const CHECK: [u8; 11] = *b"10X98765432";

/// A validated, normalised 18-character citizen ID (trailing `x` upper-cased).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CitizenId([u8; 18]);

/// Which part of a citizen ID is wrong. Messages never repeat the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CitizenIdError {
    #[error("citizen ID is empty")]
    Empty,
    #[error(
        "citizen ID has 15 digits: the legacy 15-digit form is not accepted, use the 18-character \
         form (`civex id upgrade` converts one)"
    )]
    Legacy15,
    #[error("citizen ID must be 18 characters, found {0}")]
    Length(usize),
    #[error("citizen ID character {position} is not an ASCII digit")]
    Character { position: usize },
    #[error("citizen ID check character (position 18) must be a digit or X")]
    CheckCharacter,
    #[error("citizen ID starts with {0:02}, which is not a province-level division code")]
    Province(u8),
    #[error("citizen ID birth date (characters 7-14) is not a real calendar date")]
    Date,
    #[error("citizen ID birth date (characters 7-14) is in the future")]
    FutureDate,
    #[error("citizen ID check character does not match (ISO 7064 MOD 11-2)")]
    Checksum,
}

/// Whether `code` is the first two digits of a province-level division, or
/// 81/82/83 for residence-permit numbers of Hong Kong, Macao and Taiwan residents.
pub fn is_province(code: u8) -> bool {
    matches!(code, 11..=15 | 21..=23 | 31..=37 | 41..=46 | 50..=54 | 61..=65 | 71 | 81..=83)
}

/// The check character for the first seventeen digits.
pub fn check_character(first17: &[u8]) -> u8 {
    let sum: u32 = first17.iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    CHECK[(sum % 11) as usize]
}

fn digits(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0'))
}

impl CitizenId {
    /// Parses and validates an ID, with `today` as the latest possible birth date.
    pub fn parse_on(input: &str, today: Date) -> Result<CitizenId, CitizenIdError> {
        let bytes = input.as_bytes();
        if bytes.is_empty() {
            return Err(CitizenIdError::Empty);
        }
        if bytes.len() != 18 {
            // Count characters, not bytes, so the message describes what was typed.
            let chars = input.chars().count();
            if chars == 15 && bytes.iter().all(u8::is_ascii_digit) {
                return Err(CitizenIdError::Legacy15);
            }
            if chars != 18 {
                return Err(CitizenIdError::Length(chars));
            }
        }
        if let Some(position) = bytes[..17.min(bytes.len())].iter().position(|b| !b.is_ascii_digit()) {
            return Err(CitizenIdError::Character { position: position + 1 });
        }
        // 18 characters but more bytes: a non-ASCII character sits at the end.
        if bytes.len() != 18 {
            return Err(CitizenIdError::CheckCharacter);
        }
        let mut id = [0u8; 18];
        id.copy_from_slice(bytes);
        id[17] = match id[17] {
            b'0'..=b'9' | b'X' => id[17],
            b'x' => b'X',
            _ => return Err(CitizenIdError::CheckCharacter),
        };
        let province = digits(&id[..2]) as u8;
        if !is_province(province) {
            return Err(CitizenIdError::Province(province));
        }
        let birth = birth_date(&id).ok_or(CitizenIdError::Date)?;
        if birth > today {
            return Err(CitizenIdError::FutureDate);
        }
        if check_character(&id[..17]) != id[17] {
            return Err(CitizenIdError::Checksum);
        }
        Ok(CitizenId(id))
    }

    /// Parses and validates an ID against today's date (UTC+8, China Standard Time).
    pub fn parse(input: &str) -> Result<CitizenId, CitizenIdError> {
        CitizenId::parse_on(input, today_in_china())
    }

    /// Builds the ID for a division, birth date and sequence, computing the check character.
    ///
    /// Returns `None` unless `division` is six digits of a province-level code and `sequence < 1000`.
    pub fn from_parts(division: &str, birth: Date, sequence: u16) -> Option<CitizenId> {
        if division.len() != 6 || !division.bytes().all(|b| b.is_ascii_digit()) || sequence >= 1000 {
            return None;
        }
        let year = birth.year();
        if !(0..=9999).contains(&year) {
            return None;
        }
        let first17 = format!(
            "{division}{year:04}{:02}{:02}{sequence:03}",
            u8::from(birth.month()),
            birth.day()
        );
        let mut id = [0u8; 18];
        id[..17].copy_from_slice(first17.as_bytes());
        id[17] = check_character(&id[..17]);
        is_province(digits(&id[..2]) as u8).then_some(CitizenId(id))
    }

    /// The ID as a string slice.
    pub fn as_str(&self) -> &str {
        // Invariant: only ASCII digits and `X` are ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The six-digit administrative division code of the first registration.
    pub fn division(&self) -> &str {
        &self.as_str()[..6]
    }

    /// The registered date of birth.
    pub fn birth_date(&self) -> Date {
        // Invariant: validated at parse time.
        birth_date(&self.0).unwrap_or(Date::MIN)
    }

    /// Odd sequence numbers are men's, even ones women's.
    pub fn is_male(&self) -> bool {
        (self.0[16] - b'0') % 2 == 1
    }
}

fn birth_date(id: &[u8; 18]) -> Option<Date> {
    let year = digits(&id[6..10]) as i32;
    let month = time::Month::try_from(digits(&id[10..12]) as u8).ok()?;
    let day = digits(&id[12..14]) as u8;
    Date::from_calendar_date(year, month, day).ok()
}

/// Today's date in China Standard Time (UTC+8), where every ID is issued.
pub fn today_in_china() -> Date {
    (time::OffsetDateTime::now_utc() + time::Duration::hours(8)).date()
}

/// Converts a legacy 15-digit ID (two-digit year, no check character) to the
/// 18-character form: the year gains `19` and the check character is computed.
pub fn upgrade_legacy(input: &str) -> Result<CitizenId, CitizenIdError> {
    let bytes = input.as_bytes();
    if bytes.len() != 15 {
        return Err(CitizenIdError::Length(input.chars().count()));
    }
    if let Some(position) = bytes.iter().position(|b| !b.is_ascii_digit()) {
        return Err(CitizenIdError::Character { position: position + 1 });
    }
    let mut first17 = Vec::with_capacity(18);
    first17.extend_from_slice(&bytes[..6]);
    first17.extend_from_slice(b"19");
    first17.extend_from_slice(&bytes[6..]);
    first17.push(check_character(&first17));
    let upgraded = String::from_utf8(first17).map_err(|_| CitizenIdError::Checksum)?;
    CitizenId::parse(&upgraded)
}

/// Debug output masks the ID so it cannot leak into logs by accident; there
/// is no `Display`, so the raw number is written only through [`CitizenId::as_str`].
impl fmt::Debug for CitizenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CitizenId({})", mask(self.as_str()))
    }
}

/// Text that may be an ID number, fit for a diagnostic: the first six
/// characters (the division) and the last four, the rest masked.
pub fn mask(raw: &str) -> String {
    let chars: Vec<char> = raw.chars().collect();
    if chars.len() <= 10 {
        return "*".repeat(chars.len());
    }
    let (head, tail) = (&chars[..6], &chars[chars.len() - 4..]);
    format!(
        "{}{}{}",
        head.iter().collect::<String>(),
        "*".repeat(chars.len() - 10),
        tail.iter().collect::<String>()
    )
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use time::macros::date;

    use super::*;

    const TODAY: Date = date!(2026 - 11 - 29);

    #[test]
    fn table() {
        use CitizenIdError::*;
        let valid = CitizenId::from_parts("530302", date!(1990 - 03 - 07), 1).unwrap();
        let v = valid.as_str().to_owned();
        let cases: Vec<(String, Result<&str, CitizenIdError>)> = vec![
            (v.clone(), Ok(v.as_str())),
            ("11010519491231002X".into(), Ok("11010519491231002X")),
            ("11010519491231002x".into(), Ok("11010519491231002X")),
            ("".into(), Err(Empty)),
            ("110105491231002".into(), Err(Legacy15)),
            (v[..17].into(), Err(Length(17))),
            (format!("{v}1"), Err(Length(19))),
            (format!(" {}", &v[1..]), Err(Character { position: 1 })),
            (format!("{}\0{}", &v[..5], &v[6..]), Err(Character { position: 6 })),
            (format!("{}１{}", &v[..3], &v[4..]), Err(Character { position: 4 })),
            (format!("{}Y", &v[..17]), Err(CheckCharacter)),
            (format!("{}Ｘ", &v[..17]), Err(CheckCharacter)),
            ("990302199003070011".into(), Err(Province(99))),
            ("530302199002300012".into(), Err(Date)),
            ("530302203001010012".into(), Err(FutureDate)),
            (
                format!("{}{}", &v[..17], if v.ends_with('0') { '1' } else { '0' }),
                Err(Checksum),
            ),
        ];
        for (input, expected) in cases {
            let got = CitizenId::parse_on(&input, TODAY);
            match expected {
                Ok(normal) => assert_eq!(got.map(|id| id.as_str().to_owned()).as_deref(), Ok(normal), "{input:?}"),
                Err(e) => {
                    // The checksum is the last check: a date or province error must win even
                    // when the check character happens to be wrong.
                    assert_eq!(got, Err(e), "{input:?}");
                }
            }
        }
    }

    #[test]
    fn legacy_ids_upgrade_to_the_18_character_form() {
        assert_eq!(
            upgrade_legacy("110105491231002").unwrap().as_str(),
            "11010519491231002X"
        );
        assert_eq!(upgrade_legacy("11010549123100"), Err(CitizenIdError::Length(14)));
    }

    #[test]
    fn errors_do_not_repeat_the_input() {
        let err = CitizenId::parse_on("530302199003070018", TODAY).unwrap_err();
        assert!(!err.to_string().contains("530302"));
    }

    fn valid_id() -> impl Strategy<Value = CitizenId> {
        let provinces = prop::sample::select(vec![11u8, 15, 21, 31, 37, 41, 46, 50, 53, 54, 61, 65, 71, 81, 83]);
        (provinces, 0u32..10_000, 0i64..(365 * 100), 0u16..1000).prop_map(|(p, rest, days, seq)| {
            let birth = date!(1926 - 01 - 01) + time::Duration::days(days);
            CitizenId::from_parts(&format!("{p:02}{rest:04}"), birth, seq).unwrap()
        })
    }

    proptest! {
        #[test]
        fn every_generated_id_parses(id in valid_id()) {
            prop_assert_eq!(CitizenId::parse_on(id.as_str(), TODAY), Ok(id.clone()));
            let lower = id.as_str().replace('X', "x");
            prop_assert_eq!(CitizenId::parse_on(&lower, TODAY), Ok(id));
        }

        #[test]
        fn every_single_substitution_is_refused(id in valid_id(), pos in 0usize..18, c in prop::sample::select(b"0123456789Xx".to_vec())) {
            let mut chars: Vec<char> = id.as_str().chars().collect();
            let original = chars[pos];
            let c = char::from(c);
            prop_assume!(!original.eq_ignore_ascii_case(&c));
            chars[pos] = c;
            let mutated: String = chars.into_iter().collect();
            prop_assert!(CitizenId::parse_on(&mutated, TODAY).is_err(), "{} accepted", mutated);
        }

        #[test]
        fn every_adjacent_transposition_is_refused(id in valid_id(), pos in 0usize..17) {
            let mut bytes = id.as_str().as_bytes().to_vec();
            prop_assume!(bytes[pos] != bytes[pos + 1]);
            bytes.swap(pos, pos + 1);
            let mutated = String::from_utf8(bytes).unwrap();
            prop_assert!(CitizenId::parse_on(&mutated, TODAY).is_err(), "{} accepted", mutated);
        }

        #[test]
        fn arbitrary_input_never_panics(s in "\\PC{0,24}") {
            let _ = CitizenId::parse_on(&s, TODAY);
        }
    }
}
