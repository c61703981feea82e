//! `[[schedules]]` of a workflow file into [`ScheduleSpec`]s, each error pointing at
//! the field at fault.

use super::locate::Locator;
use super::raw::{RawFile, RawSchedule};
use super::WorkflowFileError;
use crate::schedule::{Catchup, Overlap, Recurrence, ScheduleSpec};
use std::collections::HashSet;
use std::ops::Range;
use toml::Spanned;

pub(super) fn convert(
    at: &Locator,
    raw: &RawFile,
    workflow: &str,
) -> Result<Vec<ScheduleSpec>, WorkflowFileError> {
    let mut names = HashSet::new();
    let mut out = Vec::with_capacity(raw.schedules.len());
    for (i, spanned) in raw.schedules.iter().enumerate() {
        let path = format!("schedules[{i}]");
        let s = spanned.get_ref();
        let field_error = |span: Range<usize>, field: &str, message: String| {
            at.error(Some(span), format!("{path}.{field}"), message)
        };
        if !names.insert(s.name.get_ref().clone()) {
            return Err(field_error(
                s.name.span(),
                "name",
                format!("schedule {:?} is declared twice", s.name.get_ref()),
            ));
        }
        let recurrence = match (&s.cron, &s.every) {
            (Some(cron), None) => Recurrence::Cron(cron.get_ref().clone()),
            (None, Some(every)) => Recurrence::EveryMs(every.get_ref().millis()),
            (Some(_), Some(every)) => {
                return Err(field_error(
                    every.span(),
                    "every",
                    "a schedule takes `cron` or `every`, not both".into(),
                ))
            }
            (None, None) => {
                return Err(at.error(
                    Some(spanned.span()),
                    path,
                    "a schedule needs `cron` (five fields) or `every` (a duration)",
                ))
            }
        };
        let input = match &s.input {
            None => serde_json::Value::Object(Default::default()),
            Some(input) => serde_json::to_value(input.get_ref())
                .map_err(|e| field_error(input.span(), "input", e.to_string()))?,
        };
        let spec = ScheduleSpec {
            name: s.name.get_ref().clone(),
            workflow: workflow.to_string(),
            recurrence,
            timezone: s
                .timezone
                .as_ref()
                .map_or_else(|| "UTC".to_string(), |t| t.get_ref().clone()),
            input,
            overlap: choice(&s.overlap, Overlap::parse, "skip, queue or allow")
                .map_err(|(span, m)| field_error(span, "overlap", m))?
                .unwrap_or_default(),
            catchup: choice(&s.catchup, Catchup::parse, "none, latest or all")
                .map_err(|(span, m)| field_error(span, "catchup", m))?
                .unwrap_or_default(),
        };
        if let Err(e) = spec.validate() {
            let span = span_of(s, e.field).unwrap_or_else(|| spanned.span());
            return Err(field_error(span, e.field, e.problem));
        }
        out.push(spec);
    }
    Ok(out)
}

fn choice<T>(
    raw: &Option<Spanned<String>>,
    parse: fn(&str) -> Option<T>,
    allowed: &str,
) -> Result<Option<T>, (Range<usize>, String)> {
    match raw {
        None => Ok(None),
        Some(v) => parse(v.get_ref()).map(Some).ok_or_else(|| {
            (
                v.span(),
                format!("{:?} is not one of {allowed}", v.get_ref()),
            )
        }),
    }
}

fn span_of(s: &RawSchedule, field: &str) -> Option<Range<usize>> {
    match field {
        "name" => Some(s.name.span()),
        "cron" => s.cron.as_ref().map(|v| v.span()),
        "every" => s.every.as_ref().map(|v| v.span()),
        "timezone" => s.timezone.as_ref().map(|v| v.span()),
        "input" => s.input.as_ref().map(|v| v.span()),
        _ => None,
    }
}
