//! The TOML document as written, before defaults are applied: every value the
//! error messages may need to point at is [`Spanned`].

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::time::Duration;
use toml::Spanned;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    pub name: Option<Spanned<String>>,
    pub version: Option<Spanned<i64>>,
    pub defaults: Option<Spanned<RawDefaults>>,
    pub run: Option<Spanned<RawRun>>,
    #[serde(default)]
    pub steps: Vec<Spanned<RawStep>>,
    #[serde(default)]
    pub schedules: Vec<Spanned<RawSchedule>>,
}

/// `[[schedules]]`: when the workflow runs by itself.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchedule {
    pub name: Spanned<String>,
    pub cron: Option<Spanned<String>>,
    pub every: Option<Spanned<Dur>>,
    pub timezone: Option<Spanned<String>>,
    pub input: Option<Spanned<toml::Value>>,
    pub overlap: Option<Spanned<String>>,
    pub catchup: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDefaults {
    pub max_attempts: Option<Spanned<i64>>,
    pub backoff: Option<Spanned<RawBackoff>>,
    pub timeout: Option<Spanned<Dur>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawBackoff {
    pub initial: Option<Spanned<Dur>>,
    pub factor: Option<Spanned<f64>>,
    pub max: Option<Spanned<Dur>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRun {
    pub deadline: Option<Spanned<Dur>>,
    pub concurrency: Option<Spanned<RawConcurrency>>,
    pub fairness_key: Option<Spanned<String>>,
}

/// `rate_limit = { key = "openai:{{ input.tenant }}", limit = 600, per = "1m", burst = 60 }`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    pub key: Spanned<String>,
    pub limit: Spanned<i64>,
    pub per: Spanned<Dur>,
    pub burst: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConcurrency {
    pub key: Spanned<String>,
    /// Defaults to 1: one run per key at a time.
    pub limit: Option<Spanned<i64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStep {
    pub name: Spanned<String>,
    pub queue: Option<Spanned<String>>,
    pub after: Option<Spanned<Vec<Spanned<String>>>>,
    pub exec: Option<Spanned<Vec<String>>>,
    pub http: Option<Spanned<RawHttp>>,
    pub handler: Option<Spanned<String>>,
    pub sleep: Option<Spanned<Dur>>,
    pub sleep_until: Option<Spanned<String>>,
    pub wait: Option<Spanned<RawWait>>,
    pub run: Option<Spanned<RawChildRun>>,
    pub complete: Option<Spanned<String>>,
    pub resource: Option<Spanned<String>>,
    pub env: Option<Spanned<BTreeMap<String, String>>>,
    pub cwd: Option<Spanned<String>>,
    pub compensate: Option<Spanned<RawCompensate>>,
    pub max_attempts: Option<Spanned<i64>>,
    pub backoff: Option<Spanned<RawBackoff>>,
    pub timeout: Option<Spanned<Dur>>,
    pub priority: Option<Spanned<i64>>,
    pub for_each: Option<Spanned<String>>,
    pub max_parallel: Option<Spanned<i64>>,
    pub max_items: Option<Spanned<i64>>,
    pub on_item_failure: Option<Spanned<String>>,
    pub rate_limit: Option<Spanned<RawRateLimit>>,
}

impl RawStep {
    /// The three ways of saying what a step does; exactly one must be set.
    pub fn action(&self) -> RawAction {
        RawAction {
            exec: self.exec.clone(),
            http: self.http.clone(),
            handler: self.handler.clone(),
        }
    }

    /// The keys of a step that waits instead of running something, with their spans.
    pub fn wait_keys(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut keys = Vec::new();
        if let Some(sleep) = &self.sleep {
            keys.push(("sleep", sleep.span()));
        }
        if let Some(until) = &self.sleep_until {
            keys.push(("sleep_until", until.span()));
        }
        if let Some(wait) = &self.wait {
            keys.push(("wait", wait.span()));
        }
        if let Some(run) = &self.run {
            keys.push(("run", run.span()));
        }
        keys
    }
}

/// `run = { workflow = "ingest-one", input = { doc = "{{ item }}" } }`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawChildRun {
    pub workflow: Spanned<String>,
    pub input: Option<Spanned<toml::Value>>,
}

/// `wait = { signal = "approved", timeout = "72h" }`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWait {
    pub signal: Spanned<String>,
    pub timeout: Option<Spanned<Dur>>,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub url: Spanned<String>,
    pub method: Option<Spanned<String>>,
    pub headers: Option<Spanned<BTreeMap<String, String>>>,
    pub body: Option<Spanned<toml::Value>>,
    pub ca_file: Option<Spanned<String>>,
}

impl RawHttp {
    /// Where `field` (`url`, `method`, `headers`, `body`, `ca_file`) is written;
    /// the URL when it is not.
    pub fn span_of(&self, field: &str) -> Range<usize> {
        let span = match field {
            "method" => self.method.as_ref().map(|v| v.span()),
            "headers" => self.headers.as_ref().map(|v| v.span()),
            "body" => self.body.as_ref().map(|v| v.span()),
            "ca_file" => self.ca_file.as_ref().map(|v| v.span()),
            _ => None,
        };
        span.unwrap_or_else(|| self.url.span())
    }
}

/// What a step or a compensation does, as a table: `{ exec = [...] }`,
/// `{ http = {...} }` or `{ handler = "..." }`.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAction {
    pub exec: Option<Spanned<Vec<String>>>,
    pub http: Option<Spanned<RawHttp>>,
    pub handler: Option<Spanned<String>>,
}

impl RawAction {
    /// The keys that are set, in the order written in [`RawAction`], with their spans.
    pub fn present(&self) -> Vec<(&'static str, Range<usize>)> {
        let mut keys = Vec::new();
        if let Some(exec) = &self.exec {
            keys.push(("exec", exec.span()));
        }
        if let Some(http) = &self.http {
            keys.push(("http", http.span()));
        }
        if let Some(handler) = &self.handler {
            keys.push(("handler", handler.span()));
        }
        keys.sort_by_key(|(_, span)| span.start);
        keys
    }
}

/// `compensate = ["./undo.sh"]` or `compensate = { exec | http | handler = ... }`.
pub(super) enum RawCompensate {
    Argv(Vec<String>),
    Action(Box<RawAction>),
}

impl<'de> Deserialize<'de> for RawCompensate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CompensateVisitor;
        impl<'de> Visitor<'de> for CompensateVisitor {
            type Value = RawCompensate;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an argv array or a table with `exec`, `http` or `handler`")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<RawCompensate, A::Error> {
                Vec::<String>::deserialize(de::value::SeqAccessDeserializer::new(seq))
                    .map(RawCompensate::Argv)
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RawCompensate, A::Error> {
                RawAction::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(|a| RawCompensate::Action(Box::new(a)))
            }
        }
        deserializer.deserialize_any(CompensateVisitor)
    }
}

/// A duration written as text: `"500ms"`, `"30s"`, `"5m"`, `"1h30m"`.
#[derive(Clone, Copy)]
pub(super) struct Dur(pub Duration);

impl Dur {
    /// Whole milliseconds, rounding a non-zero sub-millisecond remainder up.
    pub fn millis(self) -> u64 {
        let ms = self.0.as_nanos().div_ceil(1_000_000);
        u64::try_from(ms).unwrap_or(u64::MAX)
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct DurVisitor;
        impl Visitor<'_> for DurVisitor {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"30s\" or \"5m\"")
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Dur, E> {
                humantime::parse_duration(text).map(Dur).map_err(|e| {
                    // humantime lists every unit it knows after the reason; keep the reason.
                    let reason = e.to_string();
                    let reason = reason.split(", supported units").next().unwrap_or_default();
                    E::custom(format!(
                        "{text:?} is not a duration ({reason}); write it like \"500ms\", \"30s\", \"5m\" or \"1h30m\""
                    ))
                })
            }
        }
        deserializer.deserialize_str(DurVisitor)
    }
}
