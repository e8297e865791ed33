//! How values read on a page: times in China Standard Time (UTC+8), the
//! zone every agency works in, and times typed into a form.

use std::time::SystemTime;

use time::{
    OffsetDateTime, PrimitiveDateTime, UtcOffset, format_description::well_known::Rfc3339, macros::format_description,
};

/// UTC+8.
const CHINA: UtcOffset = match UtcOffset::from_hms(8, 0, 0) {
    Ok(offset) => offset,
    Err(_) => UtcOffset::UTC,
};

fn china(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t).to_offset(CHINA)
}

/// `2026-12-02 14:03:05`, in UTC+8.
pub(crate) fn time(t: SystemTime) -> String {
    china(t)
        .format(format_description!("[year]-[month]-[day] [hour]:[minute]:[second]"))
        .unwrap_or_default()
}

/// A wire timestamp, if it is a valid one.
pub(crate) fn system_time(t: Option<&prost_types::Timestamp>) -> Option<SystemTime> {
    t.and_then(civex_audit::clock::system_time)
}

/// A wire timestamp as [`time`] shows it; empty for none.
pub(crate) fn timestamp(t: Option<&prost_types::Timestamp>) -> String {
    system_time(t).map(time).unwrap_or_default()
}

/// `14:00`, the hour a bucket starts, in UTC+8.
pub(crate) fn hour(t: SystemTime) -> String {
    china(t)
        .format(format_description!("[hour]:[minute]"))
        .unwrap_or_default()
}

/// A time typed into a form: RFC 3339 (`2026-12-02T14:00:00+08:00`), or
/// a `datetime-local` field's `2026-12-02T14:00`, read as UTC+8.
pub(crate) fn parse_time(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.into());
    }
    let local = PrimitiveDateTime::parse(s, format_description!("[year]-[month]-[day]T[hour]:[minute]"))
        .or_else(|_| PrimitiveDateTime::parse(s, format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]")))
        .ok()?;
    Some(local.assume_offset(CHINA).into())
}

/// The first characters of a pseudonym, enough to tell two apart on a page.
pub(crate) fn short(pseudonym: &str) -> &str {
    pseudonym.get(..16).unwrap_or(pseudonym)
}

/// A citizen ID number with all but the region and the last four digits
/// hidden, as a printed history shows it.
pub(crate) fn masked_id(id: &str) -> String {
    id.chars()
        .enumerate()
        .map(|(i, c)| {
            if (6..id.len().saturating_sub(4)).contains(&i) {
                '*'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_read_and_shown_in_utc_plus_8() {
        let t = parse_time("2026-12-02T14:30").unwrap();
        assert_eq!(time(t), "2026-12-02 14:30:00");
        assert_eq!(parse_time("2026-12-02T06:30:00Z"), Some(t));
        assert_eq!(hour(t), "14:30");
        assert_eq!(parse_time("yesterday"), None);
    }

    #[test]
    fn a_printed_id_keeps_region_and_last_four() {
        assert_eq!(masked_id("530302199003070011"), "530302********0011");
    }
}
