//! Turning new runs into the rows both backends insert. Pure, so the two backends
//! cannot disagree on a run's initial shape.

use crate::model::{NewRun, StartAt, StoredWorkflow};
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use serde_json::Value;
use std::collections::HashMap;
use std::time::Duration;
use stepwise_core::spec::limits::Rate;
use stepwise_core::spec::PlannedStep;
use stepwise_core::{RetryPolicy, RunId, StepId, StepStatus, Template};

pub(crate) struct RunRow {
    pub id: RunId,
    pub workflow: String,
    pub version: i32,
    pub input: Value,
    pub idempotency_key: Option<String>,
    pub concurrency_key: Option<String>,
    pub priority: i32,
    pub steps: i32,
    /// The workflow's run deadline, counted from creation on the database clock.
    pub deadline_ms: Option<i64>,
    /// The limit of `concurrency_key` the workflow asks for (1 when the key came
    /// from the caller and the workflow names none).
    pub concurrency_limit: i32,
    pub parent: Option<crate::model::ParentRef>,
}

pub(crate) struct StepRow {
    pub id: StepId,
    pub run_id: RunId,
    pub name: String,
    pub queue: String,
    pub status: StepStatus,
    pub priority: i32,
    pub deps_remaining: i32,
    pub dependents: Vec<StepId>,
    pub retry: RetryPolicy,
    /// The workflow gives the step a compensation.
    pub compensable: bool,
    /// The resource lock the step takes while it runs (template rendered).
    pub resource: Option<String>,
    /// The step's `for_each`, stored until it expands.
    pub for_each: Option<Value>,
    /// Its rate limit's key, and its run's fairness key, rendered.
    pub rate_key: Option<String>,
    pub fair_key: Option<String>,
    /// For a delayed root step: when it becomes claimable (absolute or relative to
    /// the database clock at insert).
    pub start_at: Option<DateTime<Utc>>,
    pub start_after: Option<Duration>,
}

struct WorkflowPlan {
    version: i32,
    steps: Vec<PlannedStep>,
    compensable: Vec<bool>,
    for_each: Vec<Option<Value>>,
    rate_limits: Vec<Option<(Template, Rate)>>,
    fairness: Option<Template>,
    resources: Vec<Option<Template>>,
    concurrency: Option<(Template, u32)>,
    deadline_ms: Option<i64>,
}

pub(crate) struct RunPlan {
    pub runs: Vec<RunRow>,
    pub steps: Vec<StepRow>,
    /// The rate limits the steps name, one per key (the file's values).
    pub rate_limits: Vec<(String, Rate)>,
    /// The (queue, fairness key) lanes the steps wait in.
    pub fair_lanes: Vec<(String, String)>,
}

const MAX_KEY_LEN: usize = 512;
/// Ten years: anything longer is a mistake, and overflows interval arithmetic.
const MAX_DELAY: Duration = Duration::from_secs(10 * 365 * 86_400);

/// A worker's lease: long enough to heartbeat, short enough to mean something.
pub(crate) fn check_lease(lease: Duration) -> Result<()> {
    if lease < Duration::from_millis(100) || lease > Duration::from_secs(86_400) {
        return Err(StoreError::InvalidInput(
            "a worker lease must be between 100ms and 24h".into(),
        ));
    }
    Ok(())
}

/// Group names follow the rules of idempotency keys.
pub(crate) fn check_group(group: &Option<String>) -> Result<()> {
    check_key("group name", group)
}

pub(crate) fn check_key(what: &str, key: &Option<String>) -> Result<()> {
    match key {
        Some(k) if k.is_empty() || k.len() > MAX_KEY_LEN || k.contains('\0') => {
            Err(StoreError::InvalidInput(format!(
                "{what} must be 1 to {MAX_KEY_LEN} bytes without NUL characters"
            )))
        }
        _ => Ok(()),
    }
}

impl RunPlan {
    pub fn build(runs: &[NewRun], specs: &HashMap<String, StoredWorkflow>) -> Result<Self> {
        let mut plans: HashMap<&str, WorkflowPlan> = HashMap::new();
        for (name, stored) in specs {
            let spec = &stored.spec;
            plans.insert(
                name,
                WorkflowPlan {
                    version: stored.version,
                    steps: spec.plan()?,
                    compensable: spec.steps.iter().map(|s| s.compensate.is_some()).collect(),
                    for_each: spec
                        .steps
                        .iter()
                        .map(|s| s.for_each.as_ref().map(|f| serde_json::json!(f)))
                        .collect(),
                    rate_limits: spec
                        .steps
                        .iter()
                        .map(|s| {
                            s.rate_limit
                                .as_ref()
                                .map(|r| {
                                    let rate = Rate {
                                        limit: r.limit,
                                        per_ms: r.per_ms,
                                        burst: r.burst,
                                    };
                                    Template::parse(&r.key).map(|t| (t, rate))
                                })
                                .transpose()
                        })
                        .collect::<Result<_, _>>()
                        .map_err(|e| StoreError::InvalidInput(e.to_string()))?,
                    fairness: spec
                        .run
                        .fairness_key
                        .as_deref()
                        .map(Template::parse)
                        .transpose()
                        .map_err(|e| StoreError::InvalidInput(e.to_string()))?,
                    resources: spec
                        .steps
                        .iter()
                        .map(|s| s.resource.as_deref().map(Template::parse).transpose())
                        .collect::<Result<_, _>>()
                        .map_err(|e| StoreError::InvalidInput(e.to_string()))?,
                    concurrency: match &spec.run.concurrency {
                        Some(c) => Some((
                            Template::parse(&c.key)
                                .map_err(|e| StoreError::InvalidInput(e.to_string()))?,
                            c.limit,
                        )),
                        None => None,
                    },
                    deadline_ms: spec
                        .run
                        .deadline_ms
                        .map(|ms| ms.min(i64::MAX as u64) as i64),
                },
            );
        }
        let mut plan = RunPlan {
            runs: Vec::with_capacity(runs.len()),
            steps: Vec::new(),
            rate_limits: Vec::new(),
            fair_lanes: Vec::new(),
        };
        let mut lanes: std::collections::BTreeSet<(String, String)> = Default::default();
        let mut limits: std::collections::BTreeMap<String, Rate> = Default::default();
        for run in runs {
            check_key("idempotency key", &run.idempotency_key)?;
            check_key("concurrency key", &run.concurrency_key)?;
            crate::sanitize::refuse_nul("the run's input", &run.input)?;
            if let crate::model::StartAt::After(d) = run.start {
                if d > MAX_DELAY {
                    return Err(StoreError::InvalidInput(format!(
                        "a start delay must be at most {} days",
                        MAX_DELAY.as_secs() / 86_400
                    )));
                }
            }
            let workflow = plans
                .get(run.workflow.as_str())
                .ok_or_else(|| StoreError::UnknownWorkflow(run.workflow.clone()))?;
            let steps = &workflow.steps;
            let render = |what: &str, t: &Template| {
                t.render(&run.input).map_err(|e| {
                    StoreError::InvalidInput(format!(
                        "{what} of workflow {:?} cannot be made from the run's input: {e}",
                        run.workflow
                    ))
                })
            };
            // The caller's key wins over the workflow's template.
            let concurrency_key = match (&run.concurrency_key, &workflow.concurrency) {
                (Some(key), _) => Some(key.clone()),
                (None, Some((template, _))) => Some(render("the concurrency key", template)?),
                (None, None) => None,
            };
            check_key("concurrency key", &concurrency_key)?;
            let keyed = concurrency_key.is_some();
            let run_id = RunId::new();
            let ids: Vec<StepId> = steps.iter().map(|_| StepId::new()).collect();
            let (start_at, start_after) = match run.start {
                StartAt::Now => (None, None),
                StartAt::After(d) => (None, Some(d)),
                StartAt::At(t) => (Some(t), None),
            };
            let delayed = !matches!(run.start, StartAt::Now);
            let fair_key = match &workflow.fairness {
                Some(t) => Some(render("the fairness key", t)?),
                None => None,
            };
            check_key("fairness key", &fair_key)?;
            for (i, step) in steps.iter().enumerate() {
                let root = step.dependencies.is_empty();
                // A keyed run's roots wait, blocked, until the run is admitted.
                let status = match (root, delayed, keyed) {
                    (false, _, _) | (true, _, true) => StepStatus::Blocked,
                    (true, false, false) => StepStatus::Pending,
                    (true, true, false) => StepStatus::Scheduled,
                };
                let resource = match &workflow.resources[i] {
                    Some(t) => Some(render(&format!("the resource of step {:?}", step.name), t)?),
                    None => None,
                };
                check_key("resource name", &resource)?;
                let rate_key = match &workflow.rate_limits[i] {
                    Some((t, rate)) => {
                        let key =
                            render(&format!("the rate limit key of step {:?}", step.name), t)?;
                        check_key("rate limit key", &Some(key.clone()))?;
                        limits.insert(key.clone(), *rate);
                        Some(key)
                    }
                    None => None,
                };
                plan.steps.push(StepRow {
                    id: ids[i],
                    run_id,
                    name: step.name.clone(),
                    queue: step.queue.clone(),
                    status,
                    priority: step.priority.unwrap_or(run.priority),
                    deps_remaining: step.dependencies.len() as i32,
                    dependents: step.dependents.iter().map(|&d| ids[d]).collect(),
                    retry: step.retry,
                    compensable: workflow.compensable[i],
                    resource,
                    for_each: workflow.for_each[i].clone(),
                    rate_key,
                    fair_key: fair_key.clone(),
                    start_at: if root { start_at } else { None },
                    start_after: if root { start_after } else { None },
                });
            }
            plan.runs.push(RunRow {
                id: run_id,
                workflow: run.workflow.clone(),
                version: workflow.version,
                input: run.input.clone(),
                idempotency_key: run.idempotency_key.clone(),
                concurrency_key,
                priority: run.priority,
                steps: steps.len() as i32,
                deadline_ms: workflow.deadline_ms,
                concurrency_limit: workflow
                    .concurrency
                    .as_ref()
                    .map_or(1, |(_, limit)| (*limit).min(i32::MAX as u32) as i32),
                parent: run.parent.clone(),
            });
        }
        plan.rate_limits = limits.into_iter().collect();
        for step in &plan.steps {
            if let Some(key) = &step.fair_key {
                lanes.insert((step.queue.clone(), key.clone()));
            }
        }
        plan.fair_lanes = lanes.into_iter().collect();
        Ok(plan)
    }
}
