//! Typed fact values, as stored in registries and imported from JSONL.

use civex_proto::v1::fact;
use time::{Date, format_description::FormatItem, macros::format_description};

use crate::ValueType;

/// `YYYY-MM-DD`, the only date form civex reads or writes.
pub const DATE_FORMAT: &[FormatItem<'static>] = format_description!("[year]-[month]-[day]");

/// A value that does not fit its attribute's type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {expected}, found {found}")]
pub struct ValueError {
    pub expected: ValueType,
    pub found: String,
}

/// Checks that a JSON value fits `ty`: a bool, an integer, a string, or a
/// `YYYY-MM-DD` string that names a real calendar date.
pub fn check_json(ty: ValueType, value: &serde_json::Value) -> Result<(), ValueError> {
    let fits = match (ty, value) {
        (ValueType::Bool, serde_json::Value::Bool(_)) => true,
        (ValueType::Int, serde_json::Value::Number(n)) => n.is_i64(),
        (ValueType::Text, serde_json::Value::String(s)) => !s.is_empty(),
        (ValueType::Date, serde_json::Value::String(s)) => parse_date(s).is_some(),
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        // Characters, not bytes: a byte cut could split a character.
        let found: String = value.to_string().chars().take(40).collect();
        Err(ValueError { expected: ty, found })
    }
}

/// Parses a `YYYY-MM-DD` calendar date.
pub fn parse_date(s: &str) -> Option<Date> {
    if s.len() != 10 {
        return None;
    }
    Date::parse(s, DATE_FORMAT).ok()
}

/// Turns a stored JSON value of type `ty` into the wire's `Fact.value`.
/// Values are checked on import, so a mismatch here means the store was
/// edited behind civex's back; it is reported as `None` (not recorded).
pub fn to_wire(ty: ValueType, value: &serde_json::Value) -> Option<fact::Value> {
    match (ty, value) {
        (ValueType::Bool, serde_json::Value::Bool(b)) => Some(fact::Value::BoolValue(*b)),
        (ValueType::Int, serde_json::Value::Number(n)) => n.as_i64().map(fact::Value::IntValue),
        (ValueType::Text, serde_json::Value::String(s)) => Some(fact::Value::TextValue(s.clone())),
        (ValueType::Date, serde_json::Value::String(s)) => Some(fact::Value::DateValue(s.clone())),
        _ => None,
    }
}

/// Whether a wire value is of the kind `ty` takes (its content unchecked).
pub fn kind_matches(ty: ValueType, value: &fact::Value) -> bool {
    matches!(
        (ty, value),
        (ValueType::Bool, fact::Value::BoolValue(_))
            | (ValueType::Int, fact::Value::IntValue(_))
            | (ValueType::Text, fact::Value::TextValue(_))
            | (ValueType::Date, fact::Value::DateValue(_))
    )
}

/// Turns a wire value back into JSON, checking it against `ty`.
pub fn from_wire(ty: ValueType, value: &fact::Value) -> Result<serde_json::Value, ValueError> {
    let json = match value {
        fact::Value::BoolValue(b) => serde_json::Value::Bool(*b),
        fact::Value::IntValue(i) => serde_json::Value::from(*i),
        fact::Value::TextValue(s) | fact::Value::DateValue(s) => serde_json::Value::from(s.as_str()),
    };
    if kind_matches(ty, value) {
        check_json(ty, &json)?;
        Ok(json)
    } else {
        Err(ValueError {
            expected: ty,
            found: format!("{value:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn values_are_checked_against_their_type() {
        let cases = [
            (ValueType::Bool, json!(true), true),
            (ValueType::Bool, json!("true"), false),
            (ValueType::Int, json!(12), true),
            (ValueType::Int, json!(1.5), false),
            (ValueType::Text, json!("530302"), true),
            (ValueType::Text, json!(""), false),
            (ValueType::Date, json!("2016-02-29"), true),
            (ValueType::Date, json!("2015-02-29"), false),
            (ValueType::Date, json!("2016-2-9"), false),
            (ValueType::Bool, json!("户".repeat(30)), false),
        ];
        for (ty, value, ok) in cases {
            assert_eq!(check_json(ty, &value).is_ok(), ok, "{ty} {value}");
        }
    }
}
