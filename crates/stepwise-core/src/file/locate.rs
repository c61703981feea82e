//! Turning TOML, serde and [`SpecError`]s into `file:line:column: field: message`.

use super::raw::{RawCompensate, RawFile, RawStep};
use super::WorkflowFileError;
use crate::spec::{valid_name, SpecError};
use serde_path_to_error::{Path, Segment};
use std::ops::Range;

/// The file being parsed, for turning byte spans into lines and columns.
pub(super) struct Locator<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl Locator<'_> {
    /// An error at `span` (the start of the file when `None`).
    pub fn error(
        &self,
        span: Option<Range<usize>>,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> WorkflowFileError {
        let (line, column) = self.position(span.map_or(0, |s| s.start));
        WorkflowFileError {
            file: self.file.to_string(),
            line,
            column,
            field: field.into(),
            message: message.into(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    pub fn line_of(&self, span: &Range<usize>) -> usize {
        self.position(span.start).0
    }

    /// A TOML syntax error (the document could not be read at all).
    pub fn syntax(&self, e: &toml::de::Error) -> WorkflowFileError {
        let mut message = e.message().to_string();
        if let Some(span) = e.span() {
            if message == "duplicate key" {
                if let Some(key) = self.text.get(span.clone()).filter(|k| !k.is_empty()) {
                    message = format!("duplicate key `{key}`");
                }
            }
        }
        self.error(e.span(), "", format!("invalid TOML: {message}"))
    }

    /// A value of the wrong type, an unknown or missing key, a bad duration.
    pub fn shape(&self, e: &serde_path_to_error::Error<toml::de::Error>) -> WorkflowFileError {
        let inner = e.inner();
        let mut field = field_path(e.path());
        let message = inner.message();
        let message = if let Some(rest) = message.strip_prefix("unknown field `") {
            // The path already ends with the unknown key.
            let (key, expected) = rest.split_once("`, ").unwrap_or((rest, ""));
            let expected = expected.replace("there are no fields", "no keys are allowed here");
            if expected.is_empty() {
                format!("unknown key `{key}`")
            } else {
                format!("unknown key `{key}`; {expected}")
            }
        } else if let Some(rest) = message.strip_prefix("missing field `") {
            let key = rest.trim_end_matches('`');
            if field.is_empty() {
                field = key.to_string();
            } else {
                field = format!("{field}.{key}");
            }
            "this key is required".to_string()
        } else if let Some(rest) = message
            .strip_prefix("invalid type: ")
            .or_else(|| message.strip_prefix("invalid value: "))
        {
            match rest.split_once(", expected ") {
                Some((found, expected)) => {
                    format!("expected {}, found {}", kind(expected), kind(found))
                }
                None => message.to_string(),
            }
        } else {
            message.to_string()
        };
        self.error(inner.span(), field, message)
    }
}

/// serde's names for what it expected or found, in TOML's words.
fn kind(serde_name: &str) -> String {
    match serde_name {
        "a sequence" | "sequence" => return "an array".into(),
        "a map" | "map" => return "a table".into(),
        "i64" => return "an integer".into(),
        "f64" => return "a number".into(),
        other if other.starts_with("struct ") => return "a table".into(),
        _ => {}
    }
    // A found value: `integer `5``, `string "x"`, `floating point `1.5``, ...
    for (serde, toml) in [
        ("floating point ", "the number "),
        ("integer ", "the integer "),
        ("boolean ", "the boolean "),
        ("string ", "the string "),
    ] {
        if let Some(rest) = serde_name.strip_prefix(serde) {
            return format!("{toml}{rest}");
        }
    }
    serde_name.to_string()
}

/// `steps[2].backoff.initial` from serde's path, without `toml::Spanned`'s own keys.
fn field_path(path: &Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.starts_with("$__serde_spanned_private_") {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                if !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                {
                    out.push_str(key);
                } else {
                    out.push_str(&format!("{key:?}"));
                }
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// Where a step is: its name's value.
pub(super) fn step_span(step: &toml::Spanned<RawStep>) -> Range<usize> {
    step.get_ref().name.span()
}

/// Points a [`SpecError`] from [`crate::WorkflowSpec::plan`] at the file.
pub(super) fn spec_error(at: &Locator, raw: &RawFile, err: &SpecError) -> WorkflowFileError {
    let steps = &raw.steps;
    let index_of = |name: &str| {
        steps
            .iter()
            .position(|s| s.get_ref().name.get_ref() == name)
    };
    match err {
        SpecError::InvalidName(name) => {
            if let Some(wf) = raw
                .name
                .as_ref()
                .filter(|n| n.get_ref() == name && !valid_name(name))
            {
                return at.error(Some(wf.span()), "name", err.to_string());
            }
            match index_of(name) {
                Some(i) => at.error(
                    Some(step_span(&steps[i])),
                    format!("steps[{i}].name"),
                    err.to_string(),
                ),
                None => at.error(None, "", err.to_string()),
            }
        }
        SpecError::NoSteps(_) => at.error(
            None,
            "steps",
            "the workflow has no steps: add at least one [[steps]] table",
        ),
        SpecError::DuplicateStep(name) => {
            let mut same = (0..steps.len()).filter(|&i| steps[i].get_ref().name.get_ref() == name);
            let (first, second) = (same.next(), same.next());
            match (first, second) {
                (Some(first), Some(second)) => at.error(
                    Some(step_span(&steps[second])),
                    format!("steps[{second}].name"),
                    format!(
                        "{err} (first on line {})",
                        at.line_of(&step_span(&steps[first]))
                    ),
                ),
                _ => at.error(None, "", err.to_string()),
            }
        }
        SpecError::UnknownDependency { step, dependency } => match index_of(step) {
            Some(i) => match after_entry(steps[i].get_ref(), dependency) {
                Some((k, span)) => at.error(
                    Some(span),
                    format!("steps[{i}].after[{k}]"),
                    err.to_string(),
                ),
                None => at.error(
                    Some(step_span(&steps[i])),
                    format!("steps[{i}]"),
                    err.to_string(),
                ),
            },
            None => at.error(None, "", err.to_string()),
        },
        SpecError::Cycle(names) => {
            // names[k + 1] runs after names[k]; point at the first explicit `after`.
            for pair in names.windows(2) {
                if let Some(i) = index_of(&pair[1]) {
                    if let Some((k, span)) = after_entry(steps[i].get_ref(), &pair[0]) {
                        return at.error(
                            Some(span),
                            format!("steps[{i}].after[{k}]"),
                            err.to_string(),
                        );
                    }
                }
            }
            match names.get(1).and_then(|n| index_of(n)) {
                Some(i) => at.error(
                    Some(step_span(&steps[i])),
                    format!("steps[{i}]"),
                    err.to_string(),
                ),
                None => at.error(None, "", err.to_string()),
            }
        }
        SpecError::InvalidField {
            step,
            field,
            problem,
        } => match step.as_str() {
            "(defaults)" => at.error(
                defaults_span(raw, field),
                format!("defaults.{field}"),
                problem.clone(),
            ),
            "(run)" => at.error(
                run_span(raw, field),
                format!("run.{field}"),
                problem.clone(),
            ),
            name => match index_of(name) {
                Some(i) => {
                    let raw_step = steps[i].get_ref();
                    let mut path = format!("steps[{i}].{field}");
                    if let (Some(c), Some(rest)) =
                        (&raw_step.compensate, field.strip_prefix("compensate."))
                    {
                        if matches!(c.get_ref(), RawCompensate::Argv(_)) && rest == "exec" {
                            path = format!("steps[{i}].compensate");
                        }
                    }
                    let span = step_field_span(raw, raw_step, field)
                        .unwrap_or_else(|| step_span(&steps[i]));
                    at.error(Some(span), path, problem.clone())
                }
                None => at.error(None, "", err.to_string()),
            },
        },
        SpecError::InvalidTemplate { step, field, error } => match step {
            None => {
                let span = raw
                    .run
                    .as_ref()
                    .and_then(|r| r.get_ref().concurrency.as_ref())
                    .map(|c| c.get_ref().key.span());
                at.error(span, *field, error.to_string())
            }
            Some(name) => match index_of(name) {
                Some(i) => {
                    let raw_step = steps[i].get_ref();
                    let written = if *field == "sleep_until" {
                        raw_step.sleep_until.as_ref().map(|r| r.span())
                    } else {
                        raw_step.resource.as_ref().map(|r| r.span())
                    };
                    let span = written.unwrap_or_else(|| step_span(&steps[i]));
                    at.error(Some(span), format!("steps[{i}].{field}"), error.to_string())
                }
                None => at.error(None, "", err.to_string()),
            },
        },
    }
}

/// The `after` entry of `step` naming `dependency`: its index and span.
fn after_entry(step: &RawStep, dependency: &str) -> Option<(usize, Range<usize>)> {
    let after = step.after.as_ref()?;
    after
        .get_ref()
        .iter()
        .enumerate()
        .find(|(_, d)| d.get_ref() == dependency)
        .map(|(k, d)| (k, d.span()))
}

fn backoff_span(backoff: &toml::Spanned<super::raw::RawBackoff>, field: &str) -> Range<usize> {
    let b = backoff.get_ref();
    let part = match field {
        "backoff.initial" => b.initial.as_ref().map(|v| v.span()),
        "backoff.factor" => b.factor.as_ref().map(|v| v.span()),
        "backoff.max" => b.max.as_ref().map(|v| v.span()),
        _ => None,
    };
    part.unwrap_or_else(|| backoff.span())
}

fn defaults_span(raw: &RawFile, field: &str) -> Option<Range<usize>> {
    let defaults = raw.defaults.as_ref()?;
    let d = defaults.get_ref();
    let span = match field {
        "max_attempts" => d.max_attempts.as_ref().map(|v| v.span()),
        "timeout" => d.timeout.as_ref().map(|v| v.span()),
        f if f.starts_with("backoff.") => d.backoff.as_ref().map(|b| backoff_span(b, f)),
        _ => None,
    };
    Some(span.unwrap_or_else(|| defaults.span()))
}

fn run_span(raw: &RawFile, field: &str) -> Option<Range<usize>> {
    let run = raw.run.as_ref()?;
    let r = run.get_ref();
    let span = match field {
        "deadline" => r.deadline.as_ref().map(|v| v.span()),
        "concurrency.limit" => r.concurrency.as_ref().map(|c| {
            let c = c.get_ref();
            c.limit.as_ref().map_or_else(|| c.key.span(), |l| l.span())
        }),
        _ => None,
    };
    Some(span.unwrap_or_else(|| run.span()))
}

/// The span of a step's field named as [`SpecError::InvalidField`] names it. A field
/// the step inherits points at the workflow's `[defaults]`.
fn step_field_span(raw: &RawFile, step: &RawStep, field: &str) -> Option<Range<usize>> {
    match field {
        "queue" => step.queue.as_ref().map(|v| v.span()),
        "max_attempts" => step
            .max_attempts
            .as_ref()
            .map(|v| v.span())
            .or_else(|| defaults_span(raw, field)),
        "timeout" => step.timeout.as_ref().map(|v| v.span()),
        "resource" => step.resource.as_ref().map(|v| v.span()),
        "env" => step.env.as_ref().map(|v| v.span()),
        "exec" => step.exec.as_ref().map(|v| v.span()),
        "handler" => step.handler.as_ref().map(|v| v.span()),
        "sleep" => step.sleep.as_ref().map(|v| v.span()),
        "sleep_until" => step.sleep_until.as_ref().map(|v| v.span()),
        "complete" => step.complete.as_ref().map(|v| v.span()),
        "compensate" => step.compensate.as_ref().map(|v| v.span()),
        "wait.signal" => step.wait.as_ref().map(|w| w.get_ref().signal.span()),
        "wait.timeout" => step.wait.as_ref().map(|w| {
            let w = w.get_ref();
            w.timeout
                .as_ref()
                .map_or_else(|| w.signal.span(), |t| t.span())
        }),
        f if f.starts_with("http.") => step.http.as_ref().map(|h| h.get_ref().span_of(&f[5..])),
        f if f.starts_with("backoff.") => match &step.backoff {
            Some(b) => Some(backoff_span(b, f)),
            None => defaults_span(raw, f),
        },
        f if f.starts_with("compensate.") => {
            let c = step.compensate.as_ref()?;
            let inner = match c.get_ref() {
                RawCompensate::Argv(_) => None,
                RawCompensate::Action(a) => match f {
                    "compensate.exec" => a.exec.as_ref().map(|v| v.span()),
                    "compensate.handler" => a.handler.as_ref().map(|v| v.span()),
                    f if f.starts_with("compensate.http.") => a
                        .http
                        .as_ref()
                        .map(|h| h.get_ref().span_of(&f["compensate.http.".len()..])),
                    _ => None,
                },
            };
            Some(inner.unwrap_or_else(|| c.span()))
        }
        _ => None,
    }
}
