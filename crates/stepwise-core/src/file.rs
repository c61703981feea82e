//! Workflow files (TOML) parsed into a [`WorkflowSpec`].
//!
//! ```toml
//! name = "ingest"
//! version = 1                      # optional, informational
//! [defaults]
//! max_attempts = 3
//! backoff = { initial = "1s", factor = 2.0, max = "5m" }
//! timeout = "10m"                  # per attempt
//! [run]
//! deadline = "2h"
//! concurrency = { key = "{{ input.tenant }}", limit = 1 }
//!
//! [[steps]]
//! name = "parse"
//! queue = "parse"
//! exec = ["python3", "parse.py"]
//! [[steps]]
//! name = "store"
//! after = ["parse"]                # default: the previous step
//! exec = ["./store.sh"]
//! resource = "rag:{{ input.db }}"
//! compensate = ["./unstore.sh"]    # or { exec = [...] } | { http = {...} } | { handler = "..." }
//! [[steps]]
//! name = "notify"
//! http = { url = "http://127.0.0.1:9000/hook", method = "POST" }
//! [[steps]]
//! name = "embed"
//! http = { url = "https://api.example.com/v1/embeddings",
//!          headers = { Authorization = "Bearer ${EMBED_API_KEY}" },   # from the worker's env
//!          body = { input = "{{ steps.parse.text }}" },               # default: the context
//!          ca_file = "private-ca.pem" }                               # relative to cwd
//! ```
//!
//! Every key is checked: unknown keys, wrong types, bad durations (`"500ms"`, `"30s"`,
//! `"5m"`, `"1h30m"`), bad templates and everything [`WorkflowSpec::plan`] refuses
//! come back as one [`WorkflowFileError`] naming the file, line, column and field,
//! e.g. `ingest.toml:14:9: steps[1].after[0]: step "store" depends on unknown step
//! "prase"`.
//!
//! Defaults: a step without `after` runs after the previous step; `[defaults]` keys
//! fall back to [`StepDefaults::default`]; a step's `backoff` keys fall back to the
//! workflow's; `http.method` is `POST`; `concurrency.limit` is 1. With a `base_dir`
//! (the directory of the file), a step without `cwd` runs there and a relative `cwd`
//! is taken from there; a compensation runs in its step's `cwd`.

#[cfg(test)]
mod http_tests;
mod locate;
mod raw;
mod schedules;
#[cfg(test)]
mod tests;

use crate::retry::Backoff;
use crate::spec::{CompleteBy, ForEach, ItemFailure, RateLimitSpec, RunAction, WaitAction};
use crate::spec::{
    ConcurrencySpec, HttpAction, RunPolicy, StepAction, StepDefaults, StepSpec, WorkflowSpec,
};
use locate::{step_span, Locator};
use raw::{RawAction, RawBackoff, RawCompensate, RawFile, RawStep};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// A parsed and validated workflow file.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowFile {
    pub spec: WorkflowSpec,
    /// Its `[[schedules]]`: `apply` makes the stored schedules of this workflow these.
    pub schedules: Vec<crate::schedule::ScheduleSpec>,
    /// The file's `version`, if it has one. Informational: the store numbers versions.
    pub declared_version: Option<u32>,
}

/// Why a workflow file was refused: `{file}:{line}:{column}: {field}: {message}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {}{message}", field_prefix(.field))]
pub struct WorkflowFileError {
    /// The file's name as the caller gave it.
    pub file: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// Where in the document, e.g. `steps[2].exec`, `defaults.backoff.initial`,
    /// `run.concurrency.key`; empty when no field applies (a TOML syntax error).
    pub field: String,
    pub message: String,
}

fn field_prefix(field: &str) -> String {
    if field.is_empty() {
        String::new()
    } else {
        format!("{field}: ")
    }
}

/// Parses and validates a workflow file. `file` names it in errors; `base_dir` is the
/// directory it was read from, which becomes the default `cwd` of its steps.
///
/// ```
/// use stepwise_core::parse_workflow_file;
///
/// let text = "name = \"hello\"\n[[steps]]\nname = \"greet\"\nexec = [\"echo\", \"hi\"]\n";
/// let file = parse_workflow_file(text, "hello.toml", None).unwrap();
/// assert_eq!(file.spec.steps[0].name, "greet");
///
/// let err = parse_workflow_file("name = \"hello\"\n[[steps]]\nname = \"greet\"\nexec = []\n", "hello.toml", None)
///     .unwrap_err();
/// assert_eq!(err.to_string(), "hello.toml:4:8: steps[0].exec: must name a program to run");
/// ```
pub fn parse_workflow_file(
    text: &str,
    file: &str,
    base_dir: Option<&Path>,
) -> Result<WorkflowFile, WorkflowFileError> {
    let at = Locator { file, text };
    let deserializer = toml::Deserializer::parse(text).map_err(|e| at.syntax(&e))?;
    let raw: RawFile = serde_path_to_error::deserialize(deserializer).map_err(|e| at.shape(&e))?;
    let base_dir = match base_dir {
        None => None,
        Some(dir) => {
            // `Path::new("x.toml").parent()` is `""`: the current directory.
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
            if dir.to_str().is_none() {
                return Err(at.error(
                    None,
                    "",
                    format!("the directory {} is not valid UTF-8", dir.display()),
                ));
            }
            Some(dir)
        }
    };
    let (spec, declared_version) = Convert {
        at: &at,
        raw: &raw,
        base_dir: base_dir.as_deref(),
    }
    .workflow()?;
    spec.validate()
        .map_err(|e| locate::spec_error(&at, &raw, &e))?;
    let schedules = schedules::convert(&at, &raw, &spec.name)?;
    Ok(WorkflowFile {
        spec,
        schedules,
        declared_version,
    })
}

/// Raw document to spec: defaults applied, integers range-checked, actions resolved.
struct Convert<'a> {
    at: &'a Locator<'a>,
    raw: &'a RawFile,
    base_dir: Option<&'a Path>,
}

type Result<T, E = WorkflowFileError> = std::result::Result<T, E>;

impl Convert<'_> {
    fn workflow(&self) -> Result<(WorkflowSpec, Option<u32>)> {
        let raw = self.raw;
        let Some(name) = &raw.name else {
            return Err(self.at.error(None, "name", "this key is required"));
        };
        let declared_version = match &raw.version {
            Some(v) => Some(self.int::<u32>(v, "version", 1)?),
            None => None,
        };
        let defaults = self.defaults()?;
        let run = self.run()?;
        let steps = raw
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| self.step(i, step, &defaults))
            .collect::<Result<Vec<_>>>()?;
        let spec = WorkflowSpec {
            name: name.get_ref().clone(),
            defaults,
            run,
            steps,
        };
        Ok((spec, declared_version))
    }

    fn defaults(&self) -> Result<StepDefaults> {
        let mut defaults = StepDefaults::default();
        let Some(raw) = &self.raw.defaults else {
            return Ok(defaults);
        };
        let raw = raw.get_ref();
        if let Some(max_attempts) = &raw.max_attempts {
            defaults.max_attempts = self.int(max_attempts, "defaults.max_attempts", 1)?;
        }
        if let Some(backoff) = &raw.backoff {
            defaults.backoff = self.backoff(backoff, defaults.backoff);
        }
        defaults.timeout_ms = raw.timeout.as_ref().map(|t| t.get_ref().millis());
        Ok(defaults)
    }

    fn run(&self) -> Result<RunPolicy> {
        let Some(raw) = &self.raw.run else {
            return Ok(RunPolicy::default());
        };
        let raw = raw.get_ref();
        let concurrency = match &raw.concurrency {
            None => None,
            Some(c) => {
                let c = c.get_ref();
                let limit = match &c.limit {
                    Some(limit) => self.int(limit, "run.concurrency.limit", 1)?,
                    None => 1,
                };
                Some(ConcurrencySpec {
                    key: c.key.get_ref().clone(),
                    limit,
                })
            }
        };
        Ok(RunPolicy {
            deadline_ms: raw.deadline.as_ref().map(|d| d.get_ref().millis()),
            concurrency,
            fairness_key: raw.fairness_key.as_ref().map(|k| k.get_ref().clone()),
        })
    }

    fn step(
        &self,
        i: usize,
        spanned: &Spanned<RawStep>,
        defaults: &StepDefaults,
    ) -> Result<StepSpec> {
        let raw = spanned.get_ref();
        let path = format!("steps[{i}]");
        let action = self.step_action(raw, step_span(spanned), &path)?;
        let compensate = match &raw.compensate {
            None => None,
            Some(c) => Some(match c.get_ref() {
                RawCompensate::Argv(argv) => StepAction::Exec { argv: argv.clone() },
                RawCompensate::Action(a) => {
                    self.action(a, c.span(), &format!("{path}.compensate"), "a compensation")?
                }
            }),
        };
        let max_attempts = match &raw.max_attempts {
            Some(m) => Some(self.int(m, &format!("{path}.max_attempts"), 1)?),
            None => None,
        };
        let complete = match &raw.complete {
            None => None,
            Some(c) if c.get_ref() == "callback" => Some(CompleteBy::Callback),
            Some(c) => {
                return Err(self.at.error(
                    Some(c.span()),
                    format!("{path}.complete"),
                    format!(
                        "{:?} is not a way to complete a step; the only one is \"callback\"",
                        c.get_ref()
                    ),
                ))
            }
        };
        let for_each = self.for_each(raw, &path)?;
        let rate_limit = match &raw.rate_limit {
            None => None,
            Some(r) => {
                let r = r.get_ref();
                Some(RateLimitSpec {
                    key: r.key.get_ref().clone(),
                    limit: self.int(&r.limit, &format!("{path}.rate_limit.limit"), 1)?,
                    per_ms: r.per.get_ref().millis(),
                    burst: match &r.burst {
                        Some(b) => self.int(b, &format!("{path}.rate_limit.burst"), 1)?,
                        None => 1,
                    },
                })
            }
        };
        let priority = match &raw.priority {
            Some(p) => Some(self.int(p, &format!("{path}.priority"), i64::from(i32::MIN))?),
            None => None,
        };
        Ok(StepSpec {
            name: raw.name.get_ref().clone(),
            queue: raw.queue.as_ref().map(|q| q.get_ref().clone()),
            after: raw
                .after
                .as_ref()
                .map(|a| a.get_ref().iter().map(|d| d.get_ref().clone()).collect()),
            action,
            max_attempts,
            backoff: raw
                .backoff
                .as_ref()
                .map(|b| self.backoff(b, defaults.backoff)),
            timeout_ms: raw.timeout.as_ref().map(|t| t.get_ref().millis()),
            priority,
            resource: raw.resource.as_ref().map(|r| r.get_ref().clone()),
            env: raw
                .env
                .as_ref()
                .map(|e| e.get_ref().clone())
                .unwrap_or_default(),
            cwd: self.cwd(raw.cwd.as_ref().map(|c| c.get_ref().as_str())),
            compensate,
            complete,
            for_each,
            rate_limit,
        })
    }

    /// `for_each` and the keys that only mean something with it.
    fn for_each(&self, raw: &RawStep, path: &str) -> Result<Option<ForEach>> {
        let Some(for_each) = &raw.for_each else {
            let stray = [
                ("max_parallel", raw.max_parallel.as_ref().map(|v| v.span())),
                ("max_items", raw.max_items.as_ref().map(|v| v.span())),
                (
                    "on_item_failure",
                    raw.on_item_failure.as_ref().map(|v| v.span()),
                ),
            ];
            if let Some((key, Some(span))) = stray.into_iter().find(|(_, s)| s.is_some()) {
                return Err(self.at.error(
                    Some(span),
                    format!("{path}.{key}"),
                    format!("`{key}` applies only to a step with `for_each`"),
                ));
            }
            return Ok(None);
        };
        let bound = |v: &Option<Spanned<i64>>, key: &str| -> Result<Option<u32>> {
            match v {
                Some(v) => Ok(Some(self.int::<u32>(v, &format!("{path}.{key}"), 1)?)),
                None => Ok(None),
            }
        };
        let on_item_failure = match &raw.on_item_failure {
            None => ItemFailure::Fail,
            Some(v) => match v.get_ref().as_str() {
                "fail" => ItemFailure::Fail,
                "continue" => ItemFailure::Continue,
                other => {
                    return Err(self.at.error(
                        Some(v.span()),
                        format!("{path}.on_item_failure"),
                        format!("{other:?} is not allowed; use \"fail\" or \"continue\""),
                    ))
                }
            },
        };
        Ok(Some(ForEach {
            path: for_each.get_ref().clone(),
            max_parallel: bound(&raw.max_parallel, "max_parallel")?,
            max_items: bound(&raw.max_items, "max_items")?,
            on_item_failure,
        }))
    }

    /// Exactly one of `exec`, `http`, `handler`, `sleep`, `sleep_until`, `wait` and `run`.
    fn step_action(&self, raw: &RawStep, at: Range<usize>, path: &str) -> Result<StepAction> {
        let waits = raw.wait_keys();
        if waits.is_empty() {
            return self.action(&raw.action(), at, path, "a step");
        }
        let mut present = raw.action().present();
        present.extend(waits);
        present.sort_by_key(|(_, span)| span.start);
        if let [(first, _), (second, span), ..] = present.as_slice() {
            return Err(self.at.error(
                Some(span.clone()),
                format!("{path}.{second}"),
                format!("a step takes only one of `exec`, `http`, `handler`, `sleep`, `sleep_until`, `wait` or `run`, but this one also has `{first}`"),
            ));
        }
        Ok(if let Some(sleep) = &raw.sleep {
            StepAction::Sleep {
                ms: sleep.get_ref().millis(),
            }
        } else if let Some(until) = &raw.sleep_until {
            StepAction::SleepUntil {
                at: until.get_ref().clone(),
            }
        } else if let Some(run) = &raw.run {
            let run = run.get_ref();
            StepAction::Run(RunAction {
                workflow: run.workflow.get_ref().clone(),
                input: match &run.input {
                    None => None,
                    Some(input) => Some(serde_json::to_value(input.get_ref()).map_err(|e| {
                        self.at.error(
                            Some(input.span()),
                            format!("{path}.run.input"),
                            e.to_string(),
                        )
                    })?),
                },
            })
        } else {
            let wait = raw
                .wait
                .as_ref()
                .expect("one wait key is present")
                .get_ref();
            StepAction::Wait(WaitAction {
                signal: wait.signal.get_ref().clone(),
                timeout_ms: wait.timeout.as_ref().map(|t| t.get_ref().millis()),
            })
        })
    }

    /// Exactly one of `exec`, `http` and `handler`.
    fn action(
        &self,
        raw: &RawAction,
        at: Range<usize>,
        path: &str,
        what: &str,
    ) -> Result<StepAction> {
        let present = raw.present();
        match present.as_slice() {
            [] => Err(self.at.error(
                Some(at),
                path,
                format!("{what} needs one of `exec`, `http` or `handler`"),
            )),
            [_] => Ok(if let Some(exec) = &raw.exec {
                StepAction::Exec {
                    argv: exec.get_ref().clone(),
                }
            } else if let Some(http) = &raw.http {
                let http = http.get_ref();
                StepAction::Http(HttpAction {
                    url: http.url.get_ref().clone(),
                    method: http
                        .method
                        .as_ref()
                        .map_or_else(|| "POST".to_string(), |m| m.get_ref().clone()),
                    headers: http.headers.as_ref().map(|h| h.get_ref().clone()).unwrap_or_default(),
                    body: match &http.body {
                        None => None,
                        Some(body) => Some(serde_json::to_value(body.get_ref()).map_err(|e| {
                            self.at.error(Some(body.span()), format!("{path}.http.body"), e.to_string())
                        })?),
                    },
                    ca_file: http.ca_file.as_ref().map(|c| c.get_ref().clone()),
                })
            } else {
                StepAction::Handler {
                    name: raw.handler.as_ref().map(|h| h.get_ref().clone()).unwrap_or_default(),
                }
            }),
            [(first, _), (second, span), ..] => Err(self.at.error(
                Some(span.clone()),
                format!("{path}.{second}"),
                format!("{what} takes only one of `exec`, `http` or `handler`, but this one also has `{first}`"),
            )),
        }
    }

    /// Missing keys fall back to `base` (the workflow defaults' backoff).
    fn backoff(&self, raw: &Spanned<RawBackoff>, base: Backoff) -> Backoff {
        let raw = raw.get_ref();
        let ms = |d: &Spanned<raw::Dur>| Duration::from_millis(d.get_ref().millis());
        Backoff {
            initial: raw.initial.as_ref().map_or(base.initial, ms),
            factor: raw.factor.as_ref().map_or(base.factor, |f| *f.get_ref()),
            max: raw.max.as_ref().map_or(base.max, ms),
        }
    }

    fn cwd(&self, cwd: Option<&str>) -> Option<String> {
        let dir: PathBuf = match (self.base_dir, cwd) {
            (None, cwd) => return cwd.map(str::to_string),
            // `join` keeps an absolute `cwd` as it is.
            (Some(base), Some(cwd)) => base.join(cwd).components().collect(),
            (Some(base), None) => base.to_path_buf(),
        };
        Some(dir.to_string_lossy().into_owned())
    }

    /// An integer in `min..=T::MAX`.
    fn int<T>(&self, value: &Spanned<i64>, field: &str, min: i64) -> Result<T>
    where
        T: TryFrom<i64> + Bounded,
    {
        let v = *value.get_ref();
        let problem = if v < min {
            format!("must be at least {min}")
        } else {
            match T::try_from(v) {
                Ok(v) => return Ok(v),
                Err(_) => format!("must be at most {}", T::MAX),
            }
        };
        Err(self.at.error(Some(value.span()), field, problem))
    }
}

/// The largest value of an integer type, for "must be at most" messages.
trait Bounded {
    const MAX: i64;
}
impl Bounded for u32 {
    const MAX: i64 = u32::MAX as i64;
}
impl Bounded for i32 {
    const MAX: i64 = i32::MAX as i64;
}
