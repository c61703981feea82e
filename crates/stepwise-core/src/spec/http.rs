//! Checks of an `http` action and of `${NAME}` references, at `apply`.

use super::{invalid, HttpAction, SpecError, StepSpec};
use crate::secrets::{self, Piece};
use crate::template::Template;

/// Field names as errors give them: the step's own or its compensation's.
pub(super) struct Fields {
    pub url: &'static str,
    pub method: &'static str,
    pub headers: &'static str,
    pub body: &'static str,
    pub ca_file: &'static str,
}

impl Fields {
    pub fn of(compensate: bool) -> Self {
        if compensate {
            Self {
                url: "compensate.http.url",
                method: "compensate.http.method",
                headers: "compensate.http.headers",
                body: "compensate.http.body",
                ca_file: "compensate.http.ca_file",
            }
        } else {
            Self {
                url: "http.url",
                method: "http.method",
                headers: "http.headers",
                body: "http.body",
                ca_file: "http.ca_file",
            }
        }
    }
}

pub(super) fn check_http(
    step: &StepSpec,
    http: &HttpAction,
    field: &Fields,
) -> Result<(), SpecError> {
    let url = &http.url;
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    if rest.is_none_or(str::is_empty) {
        return Err(invalid(
            step,
            field.url,
            format!("must be an http:// or https:// URL, not {url:?}"),
        ));
    }
    secrets::check(url).map_err(|e| invalid(step, field.url, e.to_string()))?;
    let method = &http.method;
    if method.is_empty() || !method.chars().all(|c| c.is_ascii_alphabetic()) {
        return Err(invalid(
            step,
            field.method,
            format!("must be an HTTP method such as \"POST\", not {method:?}"),
        ));
    }
    for (name, value) in &http.headers {
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(invalid(
                step,
                field.headers,
                format!("{name:?} is not a valid header name"),
            ));
        }
        check_header(value).map_err(|problem| {
            invalid(step, field.headers, format!("header {name:?}: {problem}"))
        })?;
    }
    if let Some(body) = &http.body {
        if !body.is_object() {
            return Err(invalid(
                step,
                field.body,
                "must be a table (a JSON object)".into(),
            ));
        }
        check_body(body, "body").map_err(|problem| invalid(step, field.body, problem))?;
    }
    if let Some(ca_file) = &http.ca_file {
        if ca_file.is_empty() || ca_file.contains('\0') {
            return Err(invalid(
                step,
                field.ca_file,
                "must name a PEM file of root certificates".into(),
            ));
        }
    }
    Ok(())
}

/// `${NAME}` references are well formed; the text between them is a template.
fn check_header(value: &str) -> Result<(), String> {
    if value.contains(['\r', '\n', '\0']) {
        return Err("contains a line break or NUL character".into());
    }
    let pieces = secrets::split(value).map_err(|e| e.to_string())?;
    for piece in pieces {
        if let Piece::Text(text) = piece {
            Template::parse_step(&text).map_err(|e| {
                format!("{e} (a `${{NAME}}` cannot sit inside a {{{{ }}}} or {{% %}} block)")
            })?;
        }
    }
    Ok(())
}

/// Every string of the body is a template; `${NAME}` is not expanded there, and is
/// refused rather than sent as written.
fn check_body(value: &serde_json::Value, path: &str) -> Result<(), String> {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Ok(pieces) = secrets::split(s) {
                if let Some(Piece::Var(name)) = pieces.iter().find(|p| matches!(p, Piece::Var(_))) {
                    return Err(format!(
                        "{path}: `${{{name}}}` is not expanded in a body: put secrets from the \
                         worker's environment in `headers` or `url`"
                    ));
                }
            }
            Template::parse_step(s)
                .map(|_| ())
                .map_err(|e| format!("{path} is not a valid template: {e}"))
        }
        Value::Array(items) => items
            .iter()
            .enumerate()
            .try_for_each(|(i, v)| check_body(v, &format!("{path}[{i}]"))),
        Value::Object(map) => map
            .iter()
            .try_for_each(|(k, v)| check_body(v, &format!("{path}.{k}"))),
        _ => Ok(()),
    }
}

/// `${NAME}` references in an `exec` step's `env` values are well formed.
pub(super) fn check_env_references(step: &StepSpec) -> Result<(), SpecError> {
    for (key, value) in &step.env {
        secrets::check(value)
            .map_err(|e| invalid(step, "env", format!("variable {key:?}: {e}")))?;
    }
    Ok(())
}

/// RFC 9110 `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
