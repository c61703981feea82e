//! A workflow definition as data, its validation, and the plan a run is built from.
//!
//! Parsing TOML files into a [`WorkflowSpec`] lives in [`crate::file`](mod@crate::file); this module
//! knows the shape and the rules, so that every way in (file, HTTP, library) is
//! checked the same way by [`WorkflowSpec::validate`] / [`WorkflowSpec::plan`].

use crate::retry::{Backoff, RetryPolicy};
use crate::template::{Template, TemplateError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// The queue a step goes to when it names none.
pub const DEFAULT_QUEUE: &str = "default";

/// A named workflow: steps, their dependencies and policies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WorkflowSpec {
    pub name: String,
    #[serde(default)]
    pub defaults: StepDefaults,
    #[serde(default)]
    pub run: RunPolicy,
    pub steps: Vec<StepSpec>,
}

/// Policies every step inherits unless it overrides them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StepDefaults {
    pub max_attempts: u32,
    pub backoff: Backoff,
    /// Per attempt, in milliseconds.
    pub timeout_ms: Option<u64>,
}

impl Default for StepDefaults {
    fn default() -> Self {
        let retry = RetryPolicy::default();
        Self {
            max_attempts: retry.max_attempts,
            backoff: retry.backoff,
            timeout_ms: None,
        }
    }
}

/// Whole-run policies.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RunPolicy {
    /// Counted from the run's creation, in milliseconds.
    pub deadline_ms: Option<u64>,
    pub concurrency: Option<ConcurrencySpec>,
    /// A template over the run's input: claims interleave the runs of different
    /// keys (least recently served first) instead of taking the oldest first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fairness_key: Option<String>,
}

/// Runs whose key renders equal are admitted FIFO, at most `limit` at a time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ConcurrencySpec {
    /// A [`Template`] over the run's input, e.g. `"{{ input.tenant }}"`.
    pub key: String,
    pub limit: u32,
}

/// One node of the workflow.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StepSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<String>,
    /// `None` means "after the previous step" (a pipeline); `Some(vec![])` a root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<Vec<String>>,
    pub action: StepAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff: Option<Backoff>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    /// A resource lock held while the step runs: a [`Template`] over the run's
    /// input, e.g. `"rag:{{ input.db }}"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// Extra environment of an `exec` child (the step's and its compensation's).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Working directory of an `exec` child; it applies to the compensation too.
    /// A workflow file sets it to the file's directory unless the step names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compensate: Option<StepAction>,
    /// How an `exec` or `http` step ends: by its own answer (`None`), or by a
    /// callback to this attempt's token after the action succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub complete: Option<CompleteBy>,
    /// The step runs once per element of an array of the context (`STEP[i]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<ForEach>,
    /// Starts of this step are admitted at most at this rate, per rendered key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
}

/// `complete = "callback"`: the action only starts the work; the step ends when its
/// attempt's callback token is used (or the attempt's timeout passes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum CompleteBy {
    Callback,
}

impl StepSpec {
    /// A step running the named Rust handler, with every policy inherited.
    pub fn handler(name: impl Into<String>, handler: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            queue: None,
            after: None,
            action: StepAction::Handler {
                name: handler.into(),
            },
            max_attempts: None,
            backoff: None,
            timeout_ms: None,
            priority: None,
            resource: None,
            env: BTreeMap::new(),
            cwd: None,
            compensate: None,
            complete: None,
            for_each: None,
            rate_limit: None,
        }
    }
}

/// What a step (or a compensation) does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StepAction {
    /// A child process; the context on stdin, JSON on stdout.
    Exec { argv: Vec<String> },
    /// Send the context (or the rendered `body`) as JSON to a URL.
    Http(HttpAction),
    /// A Rust function registered by the embedding program.
    Handler { name: String },
    /// Waits this long, holding no worker, then completes with `null`.
    Sleep { ms: u64 },
    /// Waits until the time a template over the step context renders to (RFC 3339),
    /// holding no worker; a time already past completes at once.
    SleepUntil { at: String },
    /// Waits, holding no worker, for a signal sent to the run; its data is the output.
    Wait(WaitAction),
    /// Starts a child run and completes with its outcome, holding no worker.
    Run(RunAction),
}

/// A `wait` step: the signal it consumes and how long it waits for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WaitAction {
    pub signal: String,
    /// Counted from when the wait begins; past it the step fails for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
}

impl StepAction {
    /// Whether the step waits without a worker rather than running something.
    pub fn waits(&self) -> bool {
        matches!(
            self,
            StepAction::Sleep { .. }
                | StepAction::SleepUntil { .. }
                | StepAction::Wait(_)
                | StepAction::Run(_)
        )
    }
}

/// An `http` step (docs/design.md "A step, from claim to outcome" and invariant 11).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct HttpAction {
    /// `http://` or `https://`; `${NAME}` is taken from the worker's environment.
    pub url: String,
    pub method: String,
    /// Step-context templates; `${NAME}` is taken from the worker's environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// A JSON object whose strings are step-context templates; the whole context is
    /// sent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<serde_json::Value>,
    /// A PEM file of extra root certificates on the worker (for a private CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
}

impl HttpAction {
    /// A request with no headers, body template or extra CA.
    pub fn new(url: impl Into<String>, method: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            method: method.into(),
            ..Self::default()
        }
    }

    /// `POST https://host/path`: what `explain` and the dashboard show (the URL as
    /// written, `${NAME}` unexpanded; never a header).
    pub fn summary(&self) -> String {
        format!("{} {}", self.method.to_ascii_uppercase(), self.url)
    }
}

/// Why a spec was refused. Each names the step or field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("invalid name {0:?}: use 1-128 letters, digits, '-', '_' or '.'")]
    InvalidName(String),
    #[error("workflow {0:?} has no steps")]
    NoSteps(String),
    #[error("step {0:?} is defined twice")]
    DuplicateStep(String),
    #[error("step {step:?} depends on unknown step {dependency:?}")]
    UnknownDependency { step: String, dependency: String },
    #[error("steps form a cycle: {}", .0.join(" -> "))]
    Cycle(Vec<String>),
    /// `step` is a step's name, or `(defaults)` / `(run)` for the workflow's
    /// `[defaults]` and `[run]` tables.
    #[error("step {step:?}: {field} {problem}")]
    InvalidField {
        step: String,
        field: &'static str,
        problem: String,
    },
    /// A concurrency key (`step: None`, `field: "run.concurrency.key"`) or a step's
    /// `resource` is not a valid [`Template`].
    #[error("{}{field} is not a valid template: {error}", step_prefix(.step))]
    InvalidTemplate {
        step: Option<String>,
        field: &'static str,
        error: TemplateError,
    },
}

fn step_prefix(step: &Option<String>) -> String {
    step.as_ref()
        .map(|s| format!("step {s:?}: "))
        .unwrap_or_default()
}

/// One step of a run as it will be stored: its position and its wiring.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedStep {
    pub name: String,
    pub queue: String,
    pub retry: RetryPolicy,
    pub priority: Option<i32>,
    /// Indexes (into the plan) of the steps this one waits for.
    pub dependencies: Vec<usize>,
    /// Indexes of the steps that wait for this one.
    pub dependents: Vec<usize>,
}

/// Whether `name` is acceptable as a workflow, step or queue name.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl WorkflowSpec {
    /// Whether another step of this workflow waits for `step` (by `after`, or as the
    /// next step of a pipeline): its completion may make work claimable at once.
    pub fn has_dependents(&self, step: &str) -> bool {
        self.steps.iter().enumerate().any(|(i, s)| match &s.after {
            Some(names) => names.iter().any(|n| n == step),
            None => i > 0 && self.steps[i - 1].name == step,
        })
    }

    /// Checks names, policies and the dependency graph.
    pub fn validate(&self) -> Result<(), SpecError> {
        self.plan().map(|_| ())
    }

    /// Validates and resolves the spec into the steps a run is made of, in spec order.
    pub fn plan(&self) -> Result<Vec<PlannedStep>, SpecError> {
        if !valid_name(&self.name) {
            return Err(SpecError::InvalidName(self.name.clone()));
        }
        if self.steps.is_empty() {
            return Err(SpecError::NoSteps(self.name.clone()));
        }
        check_policy(
            "(defaults)",
            self.defaults.max_attempts,
            &self.defaults.backoff,
        )?;
        check_timeout("(defaults)", "timeout", self.defaults.timeout_ms)?;
        check_run(&self.run)?;
        let mut index = HashMap::new();
        for (i, step) in self.steps.iter().enumerate() {
            if !valid_name(&step.name) {
                return Err(SpecError::InvalidName(step.name.clone()));
            }
            if index.insert(step.name.as_str(), i).is_some() {
                return Err(SpecError::DuplicateStep(step.name.clone()));
            }
        }
        let mut plan = Vec::with_capacity(self.steps.len());
        for (i, step) in self.steps.iter().enumerate() {
            let queue = step.queue.clone().unwrap_or_else(|| DEFAULT_QUEUE.into());
            if !valid_name(&queue) {
                return Err(invalid(
                    step,
                    "queue",
                    format!("{queue:?} is not a valid name"),
                ));
            }
            let retry = RetryPolicy {
                max_attempts: step.max_attempts.unwrap_or(self.defaults.max_attempts),
                backoff: step.backoff.unwrap_or(self.defaults.backoff),
            };
            check_policy(&step.name, retry.max_attempts, &retry.backoff)?;
            checks::check_step(step)?;
            let dependencies = match &step.after {
                None if i == 0 => vec![],
                None => vec![i - 1],
                Some(names) => {
                    let mut deps = Vec::with_capacity(names.len());
                    for dep in names {
                        let Some(&j) = index.get(dep.as_str()) else {
                            return Err(SpecError::UnknownDependency {
                                step: step.name.clone(),
                                dependency: dep.clone(),
                            });
                        };
                        if !deps.contains(&j) {
                            deps.push(j);
                        }
                    }
                    deps
                }
            };
            fan_out::check(self, step, &dependencies)?;
            plan.push(PlannedStep {
                name: step.name.clone(),
                queue,
                retry,
                priority: step.priority,
                dependencies,
                dependents: vec![],
            });
        }
        if let Some(cycle) = find_cycle(&plan) {
            return Err(SpecError::Cycle(
                cycle.into_iter().map(|i| plan[i].name.clone()).collect(),
            ));
        }
        for i in 0..plan.len() {
            for d in plan[i].dependencies.clone() {
                plan[d].dependents.push(i);
            }
        }
        Ok(plan)
    }

    /// Per-attempt timeout of a step, if any.
    pub fn step_timeout(&self, step: &StepSpec) -> Option<Duration> {
        step.timeout_ms
            .or(self.defaults.timeout_ms)
            .map(Duration::from_millis)
    }
}

/// Whole-run checks: the deadline, the concurrency limit and key template.
fn check_run(run: &RunPolicy) -> Result<(), SpecError> {
    check_timeout("(run)", "deadline", run.deadline_ms)?;
    if let Some(concurrency) = &run.concurrency {
        if concurrency.limit == 0 {
            return Err(SpecError::InvalidField {
                step: "(run)".into(),
                field: "concurrency.limit",
                problem: "must be at least 1".into(),
            });
        }
        Template::parse(&concurrency.key).map_err(|error| SpecError::InvalidTemplate {
            step: None,
            field: "run.concurrency.key",
            error,
        })?;
    }
    if let Some(key) = &run.fairness_key {
        Template::parse(key).map_err(|error| SpecError::InvalidTemplate {
            step: None,
            field: "run.fairness_key",
            error,
        })?;
    }
    Ok(())
}

/// Longer waits overflow interval arithmetic and are a mistake anyway.
pub const MAX_WAIT: Duration = Duration::from_secs(3650 * 86_400);

impl StepAction {
    /// `exec`, `http`, `handler`, `sleep`, `sleep_until` or `wait`: what a file calls it.
    pub fn kind(&self) -> &'static str {
        match self {
            StepAction::Exec { .. } => "exec",
            StepAction::Http(_) => "http",
            StepAction::Handler { .. } => "handler",
            StepAction::Sleep { .. } => "sleep",
            StepAction::SleepUntil { .. } => "sleep_until",
            StepAction::Wait(_) => "wait",
            StepAction::Run(_) => "run",
        }
    }
}

fn check_timeout(step: &str, field: &'static str, ms: Option<u64>) -> Result<(), SpecError> {
    if ms == Some(0) {
        return Err(SpecError::InvalidField {
            step: step.to_string(),
            field,
            problem: "must be longer than zero".into(),
        });
    }
    Ok(())
}

fn invalid(step: &StepSpec, field: &'static str, problem: String) -> SpecError {
    SpecError::InvalidField {
        step: step.name.clone(),
        field,
        problem,
    }
}

/// More attempts than this is a mistake (and would not fit every database column).
pub const MAX_ATTEMPTS: u32 = 1_000_000;
/// Longer waits overflow interval arithmetic and are a mistake anyway.
pub const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(365 * 86_400);

fn check_policy(step: &str, max_attempts: u32, backoff: &Backoff) -> Result<(), SpecError> {
    let field_error = |field, problem: &str| SpecError::InvalidField {
        step: step.to_string(),
        field,
        problem: problem.to_string(),
    };
    if max_attempts == 0 {
        return Err(field_error("max_attempts", "must be at least 1"));
    }
    if max_attempts > MAX_ATTEMPTS {
        return Err(field_error("max_attempts", "must be at most 1000000"));
    }
    if backoff.max > MAX_BACKOFF {
        return Err(field_error("backoff.max", "must be at most 365 days"));
    }
    if !backoff.factor.is_finite() || backoff.factor < 1.0 {
        return Err(field_error(
            "backoff.factor",
            "must be a number of at least 1",
        ));
    }
    if backoff.max < backoff.initial {
        return Err(field_error(
            "backoff.max",
            "must not be below backoff.initial",
        ));
    }
    Ok(())
}

/// Depth-first search for a back edge; returns the cycle's steps in order.
fn find_cycle(plan: &[PlannedStep]) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    fn visit(
        i: usize,
        plan: &[PlannedStep],
        marks: &mut [Mark],
        path: &mut Vec<usize>,
    ) -> Option<Vec<usize>> {
        marks[i] = Mark::OnPath;
        path.push(i);
        for &d in &plan[i].dependencies {
            match marks[d] {
                Mark::OnPath => {
                    let start = path.iter().position(|&p| p == d).unwrap_or(0);
                    let mut cycle: Vec<usize> = path[start..].to_vec();
                    cycle.push(d);
                    cycle.reverse();
                    return Some(cycle);
                }
                Mark::New => {
                    if let Some(c) = visit(d, plan, marks, path) {
                        return Some(c);
                    }
                }
                Mark::Done => {}
            }
        }
        path.pop();
        marks[i] = Mark::Done;
        None
    }
    let mut marks = vec![Mark::New; plan.len()];
    let mut path = Vec::new();
    (0..plan.len()).find_map(|i| {
        if marks[i] == Mark::New {
            visit(i, plan, &mut marks, &mut path)
        } else {
            None
        }
    })
}

mod checks;
pub mod child;
pub mod fan_out;
mod http;
pub mod limits;
pub use child::RunAction;
pub use fan_out::{ForEach, ItemFailure, ItemSource};
pub use limits::RateLimitSpec;
#[cfg(test)]
mod tests;
