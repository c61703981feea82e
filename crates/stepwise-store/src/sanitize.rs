//! PostgreSQL cannot store a NUL character in `text` or `jsonb`; SQLite can. So
//! that both backends keep the same thing, and one program that prints a NUL cannot
//! sink a whole batch of outcomes, NULs in what steps produce (outputs, logs,
//! errors) are replaced with U+FFFD. NULs in what callers send (inputs, names,
//! specs) are refused instead: silently changing a caller's data would be worse.

use crate::{Result, StoreError};
use serde_json::Value;
use std::borrow::Cow;

const REPLACEMENT: &str = "\u{FFFD}";

/// A name PostgreSQL could not even compare: no stored name contains a NUL, so a
/// lookup by such a name finds nothing, on either backend.
pub(crate) fn unstorable(name: &str) -> bool {
    name.contains('\0')
}

pub(crate) fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', REPLACEMENT))
    } else {
        Cow::Borrowed(s)
    }
}

pub(crate) fn opt_text(s: &Option<String>) -> Option<String> {
    s.as_deref().map(|s| text(s).into_owned())
}

pub(crate) fn json(v: &Value) -> Value {
    match v {
        Value::String(s) => Value::String(text(s).into_owned()),
        Value::Array(items) => Value::Array(items.iter().map(json).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (text(k).into_owned(), json(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn has_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(has_nul),
        Value::Object(map) => map.iter().any(|(k, v)| k.contains('\0') || has_nul(v)),
        _ => false,
    }
}

/// Refuses caller data that holds a NUL character.
pub(crate) fn refuse_nul(what: &str, v: &Value) -> Result<()> {
    if has_nul(v) {
        return Err(StoreError::InvalidInput(format!(
            "{what} contains a NUL character (\\u0000), which cannot be stored"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nuls_are_replaced_everywhere_in_outputs() {
        let v = json!({"a\u{0}": ["x\u{0}y", 1, {"k": "\u{0}"}]});
        assert_eq!(
            json(&v),
            json!({"a\u{FFFD}": ["x\u{FFFD}y", 1, {"k": "\u{FFFD}"}]})
        );
        assert_eq!(text("plain"), "plain");
    }

    #[test]
    fn nuls_in_inputs_are_refused() {
        assert!(refuse_nul("input", &json!({"a": "b\u{0}"})).is_err());
        assert!(refuse_nul("input", &json!({"a": "b"})).is_ok());
    }
}
