//! `runs explain`: why a run, or each of its unfinished steps, is not running.
//!
//! Composed from the store's ordinary reads (the run, its workflow, the key's line,
//! the locks, the live workers), so both backends explain alike. The answer is a
//! snapshot assembled from several reads; it can be a moment out of date, never
//! wrong about what it names.

use crate::model::*;
use crate::{Result, Store};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;
use stepwise_core::{RunId, RunStatus, StepAction, StepStatus, WorkerId};

/// Why a run, or a step, is where it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum Reason {
    /// Steps it depends on have not completed.
    WaitingForDependencies { steps: Vec<String> },
    /// The run waits for a slot of its concurrency key.
    WaitingForSlot {
        key: String,
        /// 1-based place in the key's line.
        position: usize,
        limit: u32,
        holders: Vec<RunId>,
    },
    /// The step's resource lock is held by someone else.
    WaitingForResource {
        resource: String,
        holder_kind: HolderKind,
        holder_id: String,
        expires_at: DateTime<Utc>,
    },
    /// The step failed and waits out its backoff.
    BackingOff {
        until: DateTime<Utc>,
        next_attempt: u32,
        max_attempts: u32,
        last_error: Option<String>,
    },
    /// The run was started with a delay.
    DelayedStart { until: DateTime<Utc> },
    /// Its rate limit key admits no start before `until` (its next start, or the
    /// end of its pause).
    RateLimited {
        key: String,
        until: DateTime<Utc>,
        /// Paused (by `limits pause` or a service's `Retry-After`), not just spaced.
        paused: bool,
    },
    /// Its queue is paused (`stepwise queues resume QUEUE`).
    QueuePaused { queue: String },
    /// No live worker serves its queue.
    NoLiveWorker { queue: String },
    /// Claimable now: it starts when a consumer of its queue is free.
    Claimable { queue: String, workers: usize },
    /// Running under a lease.
    Running {
        worker: Option<WorkerId>,
        worker_name: Option<String>,
        lease_until: Option<DateTime<Utc>>,
    },
    /// The run is undoing its completed steps.
    Compensating,
    /// Waiting without a worker: a sleep, a signal or its attempt's callback.
    Waiting {
        /// `sleep`, `signal` or `callback`.
        kind: String,
        /// The signal's name (kind `signal`).
        signal: Option<String>,
        /// When the sleep ends, the wait times out or the callback's attempt expires.
        until: Option<DateTime<Utc>>,
        /// The attempt whose callback is awaited (kind `callback`).
        attempt: Option<u32>,
    },
    /// An expanded `for_each` step: it ends when its items have.
    Items {
        total: u32,
        /// Completed, failed or stopped.
        done: u32,
        failed: u32,
        running: u32,
        waiting: u32,
        /// Not started yet.
        pending: u32,
        /// The workflow's `max_parallel` for the step, when it has one.
        max_parallel: Option<u32>,
        /// Why items that could start have not, when none is running: no live
        /// worker, a paused queue, a held resource.
        pending_because: Option<String>,
    },
}

/// What a waiting step waits for, as `runs show`, `explain` and the dashboard say
/// it: "sleeping until T", "waiting for signal S (until T)", "waiting for the
/// callback of attempt N (until T)".
pub fn describe_waiting(waiting: &WaitingView) -> String {
    let until = waiting.until.map(|t| t.to_rfc3339());
    match (waiting.kind.as_str(), until) {
        ("sleep", Some(t)) => format!("sleeping until {t}"),
        ("sleep", None) => "sleeping".to_string(),
        ("signal", until) => {
            let name = waiting.signal.as_deref().unwrap_or("?");
            match until {
                Some(t) => format!("waiting for signal {name} (until {t})"),
                None => format!("waiting for signal {name}"),
            }
        }
        ("callback", until) => {
            let mut text = match waiting.attempt {
                Some(n) => format!("waiting for the callback of attempt {n}"),
                None => "waiting for its callback".to_string(),
            };
            if let Some(t) = until {
                text.push_str(&format!(" (until {t})"));
            }
            text
        }
        ("child", _) => match waiting.child {
            Some(child) => format!("waiting for child run {child}"),
            None => "waiting for its child run".to_string(),
        },
        (other, _) => format!("waiting ({other})"),
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::WaitingForDependencies { steps } if steps.is_empty() => {
                write!(f, "its dependencies just completed; it is about to become claimable")
            }
            Reason::WaitingForDependencies { steps } => {
                write!(f, "waiting for {} to complete", steps.join(", "))
            }
            Reason::WaitingForSlot {
                key,
                position,
                limit,
                holders,
            } => {
                let holders: Vec<String> = holders.iter().map(|r| r.to_string()).collect();
                write!(
                    f,
                    "waiting for a slot of concurrency key {key:?}: number {position} in line, \
                     limit {limit}, held by {}",
                    if holders.is_empty() {
                        "nobody".to_string()
                    } else {
                        holders.join(", ")
                    }
                )
            }
            Reason::WaitingForResource {
                resource,
                holder_kind,
                holder_id,
                expires_at,
            } => write!(
                f,
                "waiting for resource {resource:?}, held by {} until {}",
                holder_name(*holder_kind, holder_id),
                expires_at.to_rfc3339()
            ),
            Reason::BackingOff {
                until,
                next_attempt,
                max_attempts,
                last_error,
            } => {
                write!(
                    f,
                    "backing off until {} before attempt {next_attempt} of {max_attempts}",
                    until.to_rfc3339()
                )?;
                if let Some(e) = last_error {
                    write!(f, "; last error: {}", e.lines().next().unwrap_or(""))?;
                }
                Ok(())
            }
            Reason::DelayedStart { until } => {
                write!(f, "starts at {} (delayed start)", until.to_rfc3339())
            }
            Reason::RateLimited { key, until, paused } => {
                write!(f, "rate limited on {key} until {}", until.to_rfc3339())?;
                if *paused {
                    write!(f, "; the key is paused (stepwise limits resume {key})")?;
                }
                Ok(())
            }
            Reason::QueuePaused { queue } => {
                write!(f, "queue {queue:?} is paused (stepwise queues resume {queue})")
            }
            Reason::NoLiveWorker { queue } => write!(
                f,
                "no live worker serves queue {queue:?} (start one: stepwise worker --pool {queue}=N)"
            ),
            Reason::Claimable { queue, workers } => write!(
                f,
                "ready: starts when a consumer of queue {queue:?} is free ({workers} live worker(s) serve it)"
            ),
            Reason::Running {
                worker,
                worker_name,
                lease_until,
            } => {
                write!(f, "running")?;
                if let Some(w) = worker {
                    write!(f, " on worker {w}")?;
                }
                if let Some(n) = worker_name {
                    write!(f, " ({n})")?;
                }
                if let Some(t) = lease_until {
                    write!(f, " with its lease until {}", t.to_rfc3339())?;
                }
                Ok(())
            }
            Reason::Compensating => write!(f, "undoing its completed steps"),
            Reason::Waiting {
                kind,
                signal,
                until,
                attempt,
            } => {
                let view = WaitingView {
                    kind: kind.clone(),
                    signal: signal.clone(),
                    until: *until,
                    attempt: *attempt,
                    child: None,
                };
                write!(f, "{}", describe_waiting(&view))
            }
            Reason::Items {
                total,
                done,
                failed,
                running,
                waiting,
                pending: _,
                max_parallel,
                pending_because,
            } => {
                write!(f, "{done} of {total} items done")?;
                if *failed > 0 {
                    write!(f, " ({failed} failed)")?;
                }
                write!(f, ", {running} running")?;
                if *waiting > 0 {
                    write!(f, ", {waiting} waiting")?;
                }
                if let Some(n) = max_parallel {
                    write!(f, ", at most {n} at once")?;
                }
                if let Some(because) = pending_because {
                    write!(f, "; its items wait: {because}")?;
                }
                Ok(())
            }
        }
    }
}

/// `cli:alice@host` as it is; a step's holder as `step <id>`.
pub fn holder_name(kind: HolderKind, id: &str) -> String {
    if id.starts_with(&format!("{}:", kind.as_str())) {
        id.to_string()
    } else {
        format!("{} {id}", kind.as_str())
    }
}

/// One unfinished step and why it is where it is.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepExplanation {
    pub step: String,
    pub status: StepStatus,
    #[serde(flatten)]
    pub reason: Reason,
    /// The reason as a sentence (what `runs explain` prints).
    pub message: String,
}

/// A run and its unfinished steps, explained.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunExplanation {
    pub run: RunId,
    pub status: RunStatus,
    /// For the run as a whole (waiting for a slot, compensating), if anything.
    pub reason: Option<Reason>,
    /// That reason as a sentence.
    pub message: Option<String>,
    pub steps: Vec<StepExplanation>,
    /// What each `http` step of the run calls, by step name: `POST https://host/path`,
    /// the URL as written (`${NAME}` unexpanded) and never a header.
    pub calls: BTreeMap<String, String>,
}

/// Explains a run; `None` when there is no such run.
pub async fn explain_run(store: &dyn Store, id: RunId) -> Result<Option<RunExplanation>> {
    let Some(run) = store.get_run(id).await? else {
        return Ok(None);
    };
    let spec = store
        .get_workflow(&run.workflow, Some(run.workflow_version))
        .await?
        .map(|w| w.spec);
    let workers: Vec<WorkerView> = store
        .list_workers()
        .await?
        .into_iter()
        .filter(|w| w.status == "alive")
        .collect();
    let paused: Vec<String> = store
        .list_queues()
        .await?
        .into_iter()
        .filter(|q| q.paused)
        .map(|q| q.name)
        .collect();
    let locks = store.list_locks().await?;
    let limits = match run.steps.iter().any(|s| s.rate_key.is_some()) {
        true => store.list_limits().await?,
        false => Vec::new(),
    };
    let reason = match (run.status, &run.concurrency_key) {
        (RunStatus::Pending, Some(key)) => match store.key_line(key).await? {
            Some(line) => Some(Reason::WaitingForSlot {
                key: key.clone(),
                position: line
                    .waiting
                    .iter()
                    .position(|r| *r == id)
                    .map_or(0, |p| p + 1),
                limit: line.limit,
                holders: line.holders,
            }),
            None => None,
        },
        (RunStatus::Compensating, _) => Some(Reason::Compensating),
        _ => None,
    };
    let waiting_for_slot = run.status == RunStatus::Pending;
    let mut steps = Vec::new();
    for (i, step) in run.steps.iter().enumerate() {
        if step.status.is_terminal() {
            continue;
        }
        let reason = match step.status {
            _ if step.items.is_some() => {
                let mut reason = items_reason(step, spec.as_ref(), &paused, &workers, &locks);
                // Items share their step's rate limit key, which may hold them back
                // while some run.
                if let Reason::Items {
                    pending,
                    pending_because,
                    ..
                } = &mut reason
                {
                    if *pending > 0 && pending_because.is_none() {
                        *pending_because = rate_limited(step, &limits).map(|r| r.to_string());
                    }
                }
                reason
            }
            StepStatus::Running => {
                let worker = workers.iter().find(|w| Some(w.id) == step.worker_id);
                Reason::Running {
                    worker: step.worker_id,
                    worker_name: worker.map(|w| w.name.clone()),
                    lease_until: worker.map(|w| w.expires_at),
                }
            }
            StepStatus::Waiting => match &step.waiting {
                Some(w) => Reason::Waiting {
                    kind: w.kind.clone(),
                    signal: w.signal.clone(),
                    until: w.until,
                    attempt: w.attempt,
                },
                // A step that just woke: the read raced its wake-up.
                None => Reason::Waiting {
                    kind: "unknown".into(),
                    signal: None,
                    until: None,
                    attempt: None,
                },
            },
            StepStatus::Blocked
                if waiting_for_slot && unfinished_deps(&run, i, spec.as_ref()).is_empty() =>
            {
                match &reason {
                    Some(r) => r.clone(),
                    None => continue,
                }
            }
            StepStatus::Blocked => Reason::WaitingForDependencies {
                steps: unfinished_deps(&run, i, spec.as_ref()),
            },
            _ => match step.run_after {
                Some(until) if step.attempts > 0 => Reason::BackingOff {
                    until,
                    next_attempt: step.attempts + 1,
                    max_attempts: step.max_attempts,
                    last_error: step.error.clone(),
                },
                Some(until) if until > store.now().await? => Reason::DelayedStart { until },
                _ => rate_limited(step, &limits)
                    .unwrap_or_else(|| claimable(step, &paused, &workers, &locks)),
            },
        };
        steps.push(StepExplanation {
            step: step.name.clone(),
            status: step.status,
            message: reason.to_string(),
            reason,
        });
    }
    Ok(Some(RunExplanation {
        run: id,
        status: run.status,
        message: reason.as_ref().map(Reason::to_string),
        reason,
        steps,
        calls: spec.as_ref().map(|s| calls(&run, s)).unwrap_or_default(),
    }))
}

/// The method and URL of every `http` step and compensation of the run.
fn calls(run: &RunView, spec: &stepwise_core::WorkflowSpec) -> BTreeMap<String, String> {
    run.steps
        .iter()
        .filter_map(|step| {
            let forward = step.compensates.as_deref().unwrap_or(&step.name);
            let spec_step = spec.steps.iter().find(|s| s.name == forward)?;
            let action = match &step.compensates {
                None => &spec_step.action,
                Some(_) => spec_step.compensate.as_ref()?,
            };
            match action {
                StepAction::Http(http) => Some((step.name.clone(), http.summary())),
                _ => None,
            }
        })
        .collect()
}

/// A pending step whose rate limit key admits no start yet.
fn rate_limited(step: &StepView, limits: &[LimitView]) -> Option<Reason> {
    let key = step.rate_key.as_ref()?;
    let limit = limits.iter().find(|l| &l.key == key)?;
    Some(Reason::RateLimited {
        key: key.clone(),
        until: limit.next_start?,
        paused: limit.paused_until.is_some(),
    })
}

/// An expanded step's items counted, with its `max_parallel` from the workflow and,
/// when items wait although none runs, what holds them back.
fn items_reason(
    step: &StepView,
    spec: Option<&stepwise_core::WorkflowSpec>,
    paused: &[String],
    workers: &[WorkerView],
    locks: &[LockView],
) -> Reason {
    let counts = step.items.clone().unwrap_or_default();
    let max_parallel = spec
        .and_then(|s| s.steps.iter().find(|s| s.name == step.name))
        .and_then(|s| s.for_each.as_ref())
        .and_then(|f| f.max_parallel);
    // Items share their step's queue and resource, so the step's own claimability
    // says why they have not started.
    let pending_because = match claimable(step, paused, workers, locks) {
        Reason::Claimable { .. } => None,
        _ if counts.pending == 0 || counts.running + counts.waiting > 0 => None,
        other => Some(other.to_string()),
    };
    Reason::Items {
        total: counts.total,
        done: counts.done(),
        failed: counts.failed,
        running: counts.running,
        waiting: counts.waiting,
        pending: counts.pending,
        max_parallel,
        pending_because,
    }
}

/// Why a claimable step has not started: its queue, its resource or no worker.
fn claimable(
    step: &StepView,
    paused: &[String],
    workers: &[WorkerView],
    locks: &[LockView],
) -> Reason {
    if paused.contains(&step.queue) {
        return Reason::QueuePaused {
            queue: step.queue.clone(),
        };
    }
    if let Some(resource) = &step.resource {
        if let Some(lock) = locks.iter().find(|l| &l.key == resource) {
            return Reason::WaitingForResource {
                resource: resource.clone(),
                holder_kind: lock.holder_kind,
                holder_id: lock.holder_id.clone(),
                expires_at: lock.expires_at,
            };
        }
    }
    let serving = workers
        .iter()
        .filter(|w| w.queues.iter().any(|q| q == &step.queue || q == "*"))
        .count();
    if serving == 0 {
        Reason::NoLiveWorker {
            queue: step.queue.clone(),
        }
    } else {
        Reason::Claimable {
            queue: step.queue.clone(),
            workers: serving,
        }
    }
}

/// The dependencies of step `i` that have not completed: from the workflow for its
/// own steps; a compensation waits for the compensation before it in the chain.
fn unfinished_deps(
    run: &RunView,
    i: usize,
    spec: Option<&stepwise_core::WorkflowSpec>,
) -> Vec<String> {
    let step = &run.steps[i];
    let done = |name: &str| {
        run.steps
            .iter()
            .any(|s| s.name == name && s.status == StepStatus::Completed)
    };
    if step.compensates.is_some() {
        return run.steps[..i]
            .iter()
            .rev()
            .find(|s| s.compensates.is_some())
            .filter(|s| s.status != StepStatus::Completed)
            .map(|s| vec![s.name.clone()])
            .unwrap_or_default();
    }
    let Some(plan) = spec.and_then(|s| s.plan().ok()) else {
        return vec![];
    };
    let Some(planned) = plan.iter().find(|p| p.name == step.name) else {
        return vec![];
    };
    planned
        .dependencies
        .iter()
        .map(|&d| plan[d].name.clone())
        .filter(|name| !done(name))
        .collect()
}

#[cfg(test)]
mod tests;
