//! The schema of a workflow file sent as JSON to `PUT /v1/workflows/{name}`.
//!
//! The parser (`stepwise_core::parse_workflow_file`) reads TOML into types whose
//! every value carries its source position for error messages, which a schema
//! cannot describe; these types mirror its keys for the OpenAPI document only. A
//! test asks the parser which keys it accepts at each level and compares them with
//! these, so the two cannot drift apart unnoticed.

#![allow(dead_code)] // Read by the schema derive, never constructed.

use serde::Deserialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A workflow file (docs/design.md "Outside interfaces"), as JSON.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "ingest",
    "run": {"deadline": "2h", "concurrency": {"key": "{{ input.tenant }}", "limit": 1}},
    "steps": [
        {"name": "parse", "exec": ["python3", "parse.py"]},
        {"name": "store", "after": ["parse"], "exec": ["./store.sh"],
         "compensate": ["./unstore.sh"], "resource": "db:{{ input.db }}"}
    ]
}))]
pub struct WorkflowDocument {
    /// Must equal the `{name}` of the path: 1-128 letters, digits, `-`, `_`, `.`.
    name: String,
    /// Informational: the store numbers versions itself.
    version: Option<i64>,
    defaults: Option<Defaults>,
    run: Option<RunSection>,
    /// At least one.
    steps: Vec<Step>,
    /// When the workflow runs by itself (`apply` creates, updates and removes them).
    schedules: Option<Vec<ScheduleDocument>>,
}

/// A schedule: `cron` (five fields) or `every` (a duration), not both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "nightly-digest", "cron": "0 2 * * *", "timezone": "Europe/Paris"}))]
pub struct ScheduleDocument {
    /// Global: 1-128 letters, digits, `-`, `_`, `.`.
    name: String,
    cron: Option<String>,
    /// A duration such as `"15m"`.
    every: Option<String>,
    /// An IANA name; default `UTC`.
    timezone: Option<String>,
    /// The runs' input (default `{}`).
    #[schema(value_type = Object)]
    input: Option<serde_json::Value>,
    /// `skip`, `queue` (default) or `allow`.
    overlap: Option<String>,
    /// `none`, `latest` (default) or `all`.
    catchup: Option<String>,
}

/// Policies every step inherits unless it sets its own.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    max_attempts: Option<i64>,
    backoff: Option<BackoffDocument>,
    /// Per attempt, e.g. `"10m"`.
    timeout: Option<String>,
}

/// `initial * factor^(n-1)`, capped at `max`, before the n-th retry.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackoffDocument {
    /// A duration such as `"1s"`.
    initial: Option<String>,
    factor: Option<f64>,
    /// A duration such as `"5m"`.
    max: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RunSection {
    /// The whole run's deadline from its creation, e.g. `"2h"`.
    deadline: Option<String>,
    concurrency: Option<Concurrency>,
    /// A template over the run's input, e.g. `"{{ input.tenant }}"`: claims
    /// interleave the runs of different keys, least recently served first.
    fairness_key: Option<String>,
}

/// Runs whose rendered key is equal are admitted first come, first served, at most
/// `limit` at a time.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Concurrency {
    /// A template over the run's input, e.g. `"{{ input.tenant }}"`.
    key: String,
    /// Default 1.
    limit: Option<i64>,
}

/// One step. Exactly one of `exec`, `http`, `handler`, `sleep`, `sleep_until`, `wait`
/// and `run` says what it does.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Step {
    name: String,
    /// Default `default`.
    queue: Option<String>,
    /// Default: the previous step; `[]` for a root.
    after: Option<Vec<String>>,
    /// A child process: the context on stdin, JSON on stdout.
    exec: Option<Vec<String>>,
    http: Option<Http>,
    /// A Rust function registered by the embedding program.
    handler: Option<String>,
    /// Waits this long holding no worker, e.g. `"10m"`, then completes with `null`.
    sleep: Option<String>,
    /// Waits until this time (RFC 3339), a template over the step's context, e.g.
    /// `"{{ input.embargo_until }}"`; a time already past completes at once.
    sleep_until: Option<String>,
    /// Waits holding no worker for a signal sent to the run; its data is the output.
    wait: Option<WaitDocument>,
    /// `"callback"` (`exec` and `http` only): the action only starts the work; the
    /// step ends when its attempt's callback token is used (or `timeout` passes).
    complete: Option<CompleteDocument>,
    /// A resource lock held while the step runs, a template e.g. `"db:{{ input.db }}"`.
    resource: Option<String>,
    env: Option<BTreeMap<String, String>>,
    cwd: Option<String>,
    /// Undoes the step when a later one fails: an argv, or an action table.
    compensate: Option<Compensate>,
    max_attempts: Option<i64>,
    backoff: Option<BackoffDocument>,
    /// Per attempt, e.g. `"30s"`.
    timeout: Option<String>,
    priority: Option<i64>,
    /// One item step (`STEP[i]`) per element of this array of the context:
    /// `input[.KEY...]` or `steps.STEP.output[.KEY...]` (STEP one of `after`).
    for_each: Option<String>,
    /// With `for_each`: at most this many items run at once.
    max_parallel: Option<i64>,
    /// With `for_each`: more elements fail the step for good (default 10000).
    max_items: Option<i64>,
    /// With `for_each`: `fail` (default) or `continue` (the step completes with
    /// `null` for failed items).
    on_item_failure: Option<String>,
    /// Starts a child run and completes with its outcome, holding no worker.
    run: Option<ChildRunDocument>,
    /// Starts of this step are admitted at most at this rate, per rendered key.
    rate_limit: Option<RateLimitDocument>,
}

/// A child run: its workflow, and its input (a JSON value whose strings are
/// templates over the step's context; default the item, or the run's input).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"workflow": "ingest-one", "input": {"document": "{{ item }}"}}))]
pub struct ChildRunDocument {
    workflow: String,
    #[schema(value_type = Object)]
    input: Option<serde_json::Value>,
}

/// A rate limit: at most `burst` at once and `limit` per `per` on average, per key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"key": "openai:{{ input.tenant }}", "limit": 600, "per": "1m", "burst": 60}))]
pub struct RateLimitDocument {
    /// A template over the run's input.
    key: String,
    limit: i64,
    /// A duration such as `"1m"`.
    per: String,
    /// Default 1.
    burst: Option<i64>,
}

/// A wait for a signal.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"signal": "approved", "timeout": "72h"}))]
pub struct WaitDocument {
    /// The signal's name: 1-128 letters, digits, `-`, `_`, `.`.
    signal: String,
    /// Counted from when the wait begins, e.g. `"72h"`; past it the step fails.
    timeout: Option<String>,
}

/// How an `exec` or `http` step ends.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CompleteDocument {
    Callback,
}

/// POSTs (or sends with `method`) the step's context, or the rendered `body`, as
/// JSON to `url`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "url": "https://api.example.com/v1/embeddings",
    "headers": {"Authorization": "Bearer ${EMBED_API_KEY}"},
    "body": {"model": "small", "input": "{{ steps.read.text }}"}
}))]
pub struct Http {
    /// `http://` or `https://`; `${NAME}` is replaced from the worker's environment
    /// when the attempt starts.
    url: String,
    /// Default `POST`.
    method: Option<String>,
    /// Header values: templates over the step's context (`{{ steps.read.id }}`) and
    /// `${NAME}` from the worker's environment. The expanded values are never stored.
    headers: Option<BTreeMap<String, String>>,
    /// An object whose strings are templates over the step's context, sent as JSON;
    /// without it the whole context is sent.
    #[schema(value_type = Object)]
    body: Option<serde_json::Value>,
    /// A PEM file of root certificates on the worker, for a private CA; relative to
    /// the step's `cwd`.
    ca_file: Option<String>,
}

/// A compensation: `["./undo.sh"]` or `{"exec" | "http" | "handler": ...}`.
#[derive(Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Compensate {
    Argv(Vec<String>),
    Action(Action),
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Action {
    exec: Option<Vec<String>>,
    http: Option<Http>,
    handler: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use utoipa::openapi::schema::{Schema, SchemaType};
    use utoipa::openapi::RefOr;
    use utoipa::PartialSchema;

    fn properties<T: ToSchema + PartialSchema>() -> BTreeSet<String> {
        match T::schema() {
            RefOr::T(Schema::Object(object)) => object.properties.keys().cloned().collect(),
            _ => panic!("{} is not an object schema", T::name()),
        }
    }

    /// The keys the parser accepts where `unknown` sits, read from its "expected
    /// `a`, `b` or `c`" message.
    fn parser_keys(document: &str) -> BTreeSet<String> {
        let error = stepwise_core::parse_workflow_file(document, "probe.toml", None)
            .expect_err("the probe key is unknown")
            .to_string();
        let listed = error
            .split("expected")
            .nth(1)
            .unwrap_or_else(|| panic!("no key list in {error:?}"));
        listed
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_string)
            .collect()
    }

    #[test]
    fn document_schema_lists_exactly_the_keys_the_parser_accepts() {
        let step = "[[steps]]\nname = \"a\"\nexec = [\"true\"]\n";
        let cases: Vec<(&str, String, BTreeSet<String>)> = vec![
            (
                "file",
                format!("unknown = 1\n{step}"),
                properties::<WorkflowDocument>(),
            ),
            (
                "defaults",
                format!("[defaults]\nunknown = 1\n{step}"),
                properties::<Defaults>(),
            ),
            (
                "backoff",
                format!("[defaults.backoff]\nunknown = 1\n{step}"),
                properties::<BackoffDocument>(),
            ),
            (
                "run",
                format!("[run]\nunknown = 1\n{step}"),
                properties::<RunSection>(),
            ),
            (
                "concurrency",
                format!("[run.concurrency]\nkey = \"k\"\nunknown = 1\n{step}"),
                properties::<Concurrency>(),
            ),
            ("step", format!("{step}unknown = 1\n"), properties::<Step>()),
            (
                "schedule",
                format!("{step}[[schedules]]\nname = \"s\"\nunknown = 1\n"),
                properties::<ScheduleDocument>(),
            ),
            (
                "wait",
                "[[steps]]\nname = \"a\"\nwait = { signal = \"s\", unknown = 1 }\n".into(),
                properties::<WaitDocument>(),
            ),
            (
                "http",
                "[[steps]]\nname = \"a\"\nhttp = { url = \"http://x\", unknown = 1 }\n".into(),
                properties::<Http>(),
            ),
            (
                "compensate action",
                format!("{step}compensate = {{ handler = \"h\", unknown = 1 }}\n"),
                properties::<Action>(),
            ),
        ];
        for (level, document, documented) in cases {
            assert_eq!(parser_keys(&document), documented, "keys of {level}");
        }
    }

    #[test]
    fn document_schema_is_an_object_with_required_name_and_steps() {
        let RefOr::T(Schema::Object(object)) = WorkflowDocument::schema() else {
            panic!("not an object");
        };
        assert!(matches!(object.schema_type, SchemaType::Type(_)));
        assert_eq!(
            object.required,
            vec!["name".to_string(), "steps".to_string()]
        );
    }
}
