//! Plain JSON values as filter records, for small collections that are rendered as JSON first.

use super::{Record, Val};
use crate::time::parse_date;

impl Record for serde_json::Value {
    fn known_path(_path: &[String]) -> bool {
        true
    }

    fn visit(&self, path: &[String], f: &mut dyn FnMut(Val<'_>) -> bool) -> bool {
        visit_json(self, path, f)
    }
}

fn visit_json(
    value: &serde_json::Value,
    path: &[String],
    f: &mut dyn FnMut(Val<'_>) -> bool,
) -> bool {
    use serde_json::Value;
    match (value, path.split_first()) {
        (Value::Array(items), _) => items.iter().any(|item| visit_json(item, path, f)),
        (Value::Object(map), Some((head, rest))) => {
            match map.iter().find(|(k, _)| k.eq_ignore_ascii_case(head)) {
                Some((_, v)) => visit_json(v, rest, f),
                None => f(Val::Null),
            }
        }
        (Value::Object(_), None) => false,
        (_, Some(_)) | (Value::Null, None) => f(Val::Null),
        (Value::Bool(b), None) => f(Val::Bool(*b)),
        (Value::Number(n), None) => f(Val::Num(n.as_f64().unwrap_or(f64::NAN))),
        (Value::String(s), None) => match parse_date(s) {
            // Only zoned timestamps are dates in rendered entities; anything else stays a string.
            Some(t) if s.ends_with('Z') => f(Val::Time(t)),
            _ => f(Val::Str(s)),
        },
    }
}
