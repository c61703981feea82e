//! `${NAME}` references to the worker's own environment, for secrets.
//!
//! An `http` step's `url` and `headers` and an `exec` step's `env` values may say
//! `${NAME}`; the worker replaces it from its environment when an attempt starts, so
//! the value lives only on the workers: never in the database, the API, events,
//! logs or error messages (the [`Secrets`] an expansion returns redacts it from any
//! text that leaves the attempt). `$${` writes a literal `${`. A name is letters,
//! digits and `_`, not starting with a digit.
//!
//! ```
//! use stepwise_core::secrets::{expand, Secrets};
//!
//! let mut secrets = Secrets::default();
//! let env = |name: &str| (name == "TOKEN").then(|| "s3cr3t".to_string());
//! let header = expand("Bearer ${TOKEN}", &env, &mut secrets).unwrap();
//! assert_eq!(header, "Bearer s3cr3t");
//! assert_eq!(secrets.redact("got s3cr3t back"), "got ${TOKEN} back");
//! assert_eq!(expand("${NOPE}", &env, &mut secrets).unwrap_err().to_string(),
//!            "environment variable NOPE is not set on this worker");
//! ```

/// A piece of a text that may hold `${NAME}` references.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Literal text (with `$${` already turned into `${`).
    Text(String),
    /// `${NAME}`: the variable's name.
    Var(&'a str),
}

/// A `${` that does not start a valid reference.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("`${{` at byte {0} is not closed by `}}` (write `$${{` for a literal `${{`)")]
    Unclosed(usize),
    #[error("`${{{0}}}` is not a valid variable name: use letters, digits and `_`")]
    InvalidName(String),
}

/// The variable an attempt needed and the worker does not have.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("environment variable {0} is not set on this worker")]
pub struct MissingVariable(pub String);

/// Splits `text` into literal pieces and `${NAME}` references.
pub fn split(text: &str) -> Result<Vec<Piece<'_>>, ReferenceError> {
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut rest = text;
    while let Some(at) = rest.find("${") {
        if rest[..at].ends_with('$') {
            // `$${`: a literal `${`.
            literal.push_str(&rest[..at - 1]);
            literal.push_str("${");
            rest = &rest[at + 2..];
            continue;
        }
        literal.push_str(&rest[..at]);
        let after = &rest[at + 2..];
        let Some(end) = after.find('}') else {
            return Err(ReferenceError::Unclosed(text.len() - rest.len() + at));
        };
        let name = &after[..end];
        if !valid_name(name) {
            return Err(ReferenceError::InvalidName(name.to_string()));
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(std::mem::take(&mut literal)));
        }
        pieces.push(Piece::Var(name));
        rest = &after[end + 1..];
    }
    literal.push_str(rest);
    if !literal.is_empty() {
        pieces.push(Piece::Text(literal));
    }
    Ok(pieces)
}

/// Whether `text` is free of malformed references (checked at `apply`).
pub fn check(text: &str) -> Result<(), ReferenceError> {
    split(text).map(|_| ())
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Replaces every `${NAME}` in `text` with `lookup(NAME)`, remembering each value
/// in `secrets` so that it can be redacted later.
pub fn expand(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    secrets: &mut Secrets,
) -> Result<String, MissingVariable> {
    // Malformed references were refused at `apply`; one that slips through (a spec
    // written by a library caller) is sent as written rather than guessed at.
    let Ok(pieces) = split(text) else {
        return Ok(text.to_string());
    };
    let mut out = String::with_capacity(text.len());
    for piece in pieces {
        match piece {
            Piece::Text(t) => out.push_str(&t),
            Piece::Var(name) => {
                let value = lookup(name).ok_or_else(|| MissingVariable(name.to_string()))?;
                out.push_str(&value);
                secrets.add(name, value);
            }
        }
    }
    Ok(out)
}

/// Values an attempt expanded, to be kept out of everything it reports.
#[derive(Clone, Debug, Default)]
pub struct Secrets {
    /// `(name, value)`, longest value first so that a value containing another is
    /// replaced whole.
    values: Vec<(String, String)>,
}

impl Secrets {
    /// Values shorter than this are not redacted: replacing every `1` or `on` in a
    /// log would destroy it and hide nothing worth hiding.
    pub const MIN_REDACTED_LEN: usize = 4;

    fn add(&mut self, name: &str, value: String) {
        if value.len() < Self::MIN_REDACTED_LEN || self.values.iter().any(|(_, v)| *v == value) {
            return;
        }
        self.values.push((name.to_string(), value));
        self.values.sort_by_key(|(_, v)| std::cmp::Reverse(v.len()));
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `text` with every expanded value replaced by its `${NAME}`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (name, value) in &self.values {
            if out.contains(value.as_str()) {
                out = out.replace(value.as_str(), &format!("${{{name}}}"));
            }
        }
        out
    }

    /// [`Secrets::redact`] applied to every string (and object key) of a JSON value.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => *s = self.redact(s),
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut v) in entries {
                    self.redact_json(&mut v);
                    map.insert(self.redact(&key), v);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("tok-123456".into()),
            "LONG" => Some("tok-123456-and-more".into()),
            "SHORT" => Some("1".into()),
            _ => None,
        }
    }

    #[test]
    fn references_are_replaced_and_literals_kept() {
        let mut s = Secrets::default();
        assert_eq!(
            expand("a ${TOKEN} b $5 $${TOKEN} $", &env, &mut s).unwrap(),
            "a tok-123456 b $5 ${TOKEN} $"
        );
        assert_eq!(expand("no refs", &env, &mut s).unwrap(), "no refs");
    }

    #[test]
    fn a_missing_variable_is_named_not_guessed() {
        let mut s = Secrets::default();
        let err = expand("x ${TOKEN} ${ABSENT}", &env, &mut s).unwrap_err();
        assert_eq!(err, MissingVariable("ABSENT".into()));
    }

    #[test]
    fn malformed_references_are_refused_by_check() {
        assert_eq!(check("a ${TOKEN"), Err(ReferenceError::Unclosed(2)));
        assert_eq!(
            check("${1X}"),
            Err(ReferenceError::InvalidName("1X".into()))
        );
        assert_eq!(check("${}"), Err(ReferenceError::InvalidName("".into())));
        assert!(check("${A_1} $${ { } $").is_ok());
    }

    #[test]
    fn redaction_replaces_values_longest_first_and_skips_tiny_ones() {
        let mut s = Secrets::default();
        expand("${TOKEN} ${LONG} ${SHORT}", &env, &mut s).unwrap();
        assert_eq!(
            s.redact("url?k=tok-123456-and-more&j=tok-123456 1"),
            "url?k=${LONG}&j=${TOKEN} 1"
        );
        let mut v = json!({"echo": ["Bearer tok-123456"], "tok-123456": 1, "n": 5});
        s.redact_json(&mut v);
        assert_eq!(
            v,
            json!({"echo": ["Bearer ${TOKEN}"], "${TOKEN}": 1, "n": 5})
        );
    }
}
