//! A JSONL import line never panics the parser, whatever the department.
#![no_main]

use civex_adapters::Department;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((first, rest)) = data.split_first() else { return };
    let Ok(line) = std::str::from_utf8(rest) else { return };
    let department = Department::ALL[usize::from(*first) % Department::ALL.len()];
    if let Ok((_, record)) = civex_adapters::import::parse_line(department, line, 0) {
        for name in record.facts.keys() {
            assert!(name.starts_with(department.code()));
        }
    }
});
