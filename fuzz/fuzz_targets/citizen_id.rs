//! Citizen ID parsing never panics, and what it accepts is a fixed point.
#![no_main]

use civex_adapters::citizen_id::CitizenId;
use libfuzzer_sys::fuzz_target;
use time::macros::date;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    if let Ok(id) = CitizenId::parse_on(s, date!(2026 - 11 - 29)) {
        assert_eq!(id.as_str().len(), 18);
        assert_eq!(CitizenId::parse_on(id.as_str(), date!(2026 - 11 - 29)), Ok(id.clone()));
    }
    let _ = civex_adapters::citizen_id::upgrade_legacy(s);
});
