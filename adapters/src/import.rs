//! `civex import`: loads a department's JSONL file into its registry, all
//! or nothing. One object per line,
//! `{"citizen_id": "...", "<attribute>": value, ...}`; an absent attribute
//! is not recorded.

use std::{collections::BTreeMap, io::BufRead, time::SystemTime};

use crate::{AdapterError, Department, Record, RegistryStore, catalogue, citizen_id::CitizenId, value};

/// One bad line of an import file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineError {
    /// 1-based line number.
    pub line: usize,
    pub reason: String,
}

/// Why an import was refused; nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read the import file: {0}")]
    Read(#[from] std::io::Error),
    #[error("{} bad line(s); nothing was imported:\n{}", .0.len(), list(.0))]
    BadLines(Vec<LineError>),
    #[error(transparent)]
    Store(#[from] AdapterError),
}

fn list(errors: &[LineError]) -> String {
    let shown: Vec<String> = errors
        .iter()
        .take(20)
        .map(|e| format!("  line {}: {}", e.line, e.reason))
        .collect();
    let more = errors.len().saturating_sub(20);
    let tail = if more > 0 {
        format!("\n  … and {more} more")
    } else {
        String::new()
    };
    format!("{}{tail}", shown.join("\n"))
}

/// Parses one JSONL line of `department`'s file into its citizen ID and record.
pub fn parse_line(department: Department, line: &str, as_of: i64) -> Result<(CitizenId, Record), String> {
    let object: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(line).map_err(|e| format!("not a JSON object: {e}"))?;
    let mut facts = BTreeMap::new();
    let mut citizen = None;
    for (key, value) in object {
        if key == "citizen_id" {
            let id = value.as_str().ok_or("citizen_id must be a string")?;
            citizen = Some(CitizenId::parse(id).map_err(|e| e.to_string())?);
            continue;
        }
        let attribute = catalogue::attribute(&key)
            .filter(|a| a.department == department)
            .ok_or_else(|| format!("{key:?} is not an attribute held by {department}"))?;
        if attribute.abolished {
            return Err(format!("{key} is abolished and cannot be imported"));
        }
        value::check_json(attribute.value_type, &value).map_err(|e| format!("{key}: {e}"))?;
        facts.insert(key, value);
    }
    let citizen = citizen.ok_or("citizen_id is missing")?;
    Ok((citizen, Record { as_of, facts }))
}

/// Records per sled batch while importing: a batch is copied once more by
/// sled, so it is kept well below the whole file.
const CHUNK: usize = 10_000;

/// Reads and checks every line, turning each good record into `T` with
/// `convert`: returns the records sorted by citizen ID, or refuses the
/// whole file with every bad line and every repeated citizen, by line number.
fn checked<T>(
    department: Department,
    reader: impl BufRead,
    convert: impl Fn(Record) -> Result<T, String>,
) -> Result<Vec<(String, T)>, ImportError> {
    let as_of = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let mut errors = Vec::new();
    // Citizen, line number, and the converted record until a line is bad:
    // after that the file is refused, so keep checking but stop keeping.
    let mut good: Vec<(String, usize, Option<T>)> = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        match parse_line(department, &line, as_of).and_then(|(citizen, record)| Ok((citizen, convert(record)?))) {
            Ok((citizen, record)) => {
                let kept = errors.is_empty().then_some(record);
                good.push((citizen.as_str().to_owned(), i + 1, kept));
            }
            Err(reason) => errors.push(LineError { line: i + 1, reason }),
        }
    }
    // Sorting by citizen (then line) puts a repeated citizen's lines side by side.
    good.sort_unstable_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    for pair in good.windows(2) {
        if pair[0].0 == pair[1].0 {
            errors.push(LineError {
                line: pair[1].1,
                reason: format!("citizen appears on line {} too", pair[0].1),
            });
        }
    }
    if errors.is_empty() {
        Ok(good
            .into_iter()
            .filter_map(|(id, _, record)| Some((id, record?)))
            .collect())
    } else {
        errors.sort_by_key(|e| e.line);
        Err(ImportError::BadLines(errors))
    }
}

/// Reads and checks every line of a department's file into memory: all
/// records (sorted by citizen ID), or every bad line with its number.
pub fn read(department: Department, reader: impl BufRead) -> Result<Vec<(String, Record)>, ImportError> {
    checked(department, reader, Ok)
}

/// Replaces `department`'s registry in `registries` with the file's records,
/// all or nothing: every line is checked and encoded first, then the records
/// are written in citizen-ID order to a new registry that becomes current in
/// one step. Returns the number of records.
pub fn import(
    registries: &dyn RegistryStore,
    department: Department,
    reader: impl BufRead,
) -> Result<usize, ImportError> {
    let mut replacement = registries.replace(department)?;
    let records = checked(department, reader, |record| {
        replacement.encode(&record).map_err(|e| e.to_string())
    });
    let records = match records {
        Ok(records) => records,
        Err(e) => {
            replacement.abandon()?;
            return Err(e);
        }
    };
    let mut records = records.into_iter();
    loop {
        let chunk: Vec<_> = records.by_ref().take(CHUNK).collect();
        if chunk.is_empty() {
            break;
        }
        replacement.write(chunk)?;
    }
    Ok(replacement.commit()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::EmbeddedRegistries;

    #[test]
    fn a_bad_line_imports_nothing_and_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let db = EmbeddedRegistries::new(sled::open(dir.path()).unwrap());
        let records = || db.records(Department::Tax).unwrap();
        let good = r#"{"citizen_id":"11010519491231002X","tax.registered":true}"#;
        let cases = [
            (
                r#"{"citizen_id":"110105194912310021","tax.registered":true}"#,
                "check character",
            ),
            (r#"{"tax.registered":true}"#, "citizen_id is missing"),
            (
                r#"{"citizen_id":"11010519491231002X","ps.identity.gender":"male"}"#,
                "not an attribute held by tax",
            ),
            (
                r#"{"citizen_id":"11010519491231002X","tax.registered":"yes"}"#,
                "expected bool",
            ),
            ("not json", "not a JSON object"),
            (good, "citizen appears on line 1 too"),
        ];
        for (bad, expected) in cases {
            let file = format!("{good}\n{bad}\n");
            let err = import(&db, Department::Tax, file.as_bytes()).unwrap_err();
            let ImportError::BadLines(lines) = &err else {
                panic!("{err}")
            };
            assert_eq!(lines.len(), 1, "{bad}");
            assert_eq!(lines[0].line, 2);
            assert!(lines[0].reason.contains(expected), "{}: {}", bad, lines[0].reason);
            assert_eq!(records(), 0, "nothing may be imported when a line is bad");
        }
        assert_eq!(import(&db, Department::Tax, good.as_bytes()).unwrap(), 1);
        assert_eq!(records(), 1);
    }

    proptest::proptest! {
        // The normal suite's share of the `jsonl_line` fuzz target.
        #[test]
        fn arbitrary_lines_never_panic(dept in 0usize..7, line in "\\PC{0,200}", json in "\\{\"citizen_id\":\"[0-9X]{0,19}\"(,\"[a-z._]{1,30}\":(true|1|\"x\"|\"2020-01-01\"|null|\\[\\]))*\\}") {
            let department = Department::ALL[dept];
            let _ = parse_line(department, &line, 0);
            if let Ok((_, record)) = parse_line(department, &json, 0) {
                proptest::prop_assert!(record.facts.keys().all(|k| k.starts_with(department.code())));
            }
        }
    }
}
