//! Which steps `runs retry` resets, and how they start again. Pure, so both
//! backends reopen a run the same way.

use crate::model::StoredWorkflow;
use crate::{Result, StoreError};
use serde_json::{json, Value};
use stepwise_core::{RunStatus, StepId, StepStatus};

/// A step of the run being retried, as stored.
pub(crate) struct StepState {
    pub id: StepId,
    pub name: String,
    pub status: StepStatus,
    pub dependents: Vec<StepId>,
    /// A compensation step rather than one of the workflow's own.
    pub compensation: bool,
    /// For an item: its `for_each` step and its index.
    pub item_of: Option<(StepId, i32)>,
    /// For a `for_each` step: whether it has expanded, and its `max_parallel`.
    pub fan_out: Option<FanOutState>,
}

#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct FanOutState {
    pub expanded: bool,
    pub max_parallel: Option<u32>,
}

/// A step to reset: its new status (`pending` or `blocked`) and join counter.
pub(crate) struct Reset {
    pub id: StepId,
    pub name: String,
    pub status: StepStatus,
    pub deps_remaining: i32,
}

pub(crate) struct RetryPlan {
    /// The run's status once reopened.
    pub status: RunStatus,
    /// In the order of `steps`.
    pub resets: Vec<Reset>,
    /// Expanded `for_each` steps that `from` reaches: their items are dropped and
    /// they expand afresh (`--from STEP` re-runs every item).
    pub re_expand: Vec<StepId>,
    /// Expanded steps under `max_parallel` whose failed items start again: the
    /// lowest index still waiting for a place.
    pub cursors: Vec<(StepId, i32)>,
}

/// Whether a run in `status` may be retried.
pub(crate) fn retryable(status: RunStatus) -> bool {
    matches!(
        status,
        RunStatus::Failed
            | RunStatus::Cancelled
            | RunStatus::TimedOut
            | RunStatus::CompensationFailed
    )
}

/// Decides the reset of a retryable run. A forward retry resets every workflow step
/// that did not complete, plus `from` and everything downstream of it; a
/// `compensation_failed` run resumes its compensation instead (its unfinished
/// compensation steps run again, in their order).
pub(crate) fn plan_retry(
    status: RunStatus,
    steps: &[StepState],
    from: Option<&str>,
) -> Result<RetryPlan> {
    let resuming = status == RunStatus::CompensationFailed;
    if resuming && from.is_some() {
        return Err(StoreError::InvalidInput(
            "a compensation_failed run cannot be retried --from a step: its retry resumes \
             the compensation"
                .into(),
        ));
    }
    let kind: Vec<&StepState> = steps
        .iter()
        .filter(|s| s.compensation == resuming)
        .collect();
    let mut reset: Vec<bool> = kind
        .iter()
        .map(|s| s.status != StepStatus::Completed)
        .collect();
    let mut walked = vec![false; kind.len()];
    if let Some(from) = from {
        let Some(start) = kind.iter().position(|s| s.name == from) else {
            let names: Vec<&str> = kind.iter().map(|s| s.name.as_str()).collect();
            return Err(StoreError::InvalidInput(format!(
                "the run has no step {from:?}; its steps are {}",
                names.join(", ")
            )));
        };
        let mut seen = vec![false; kind.len()];
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if std::mem::replace(&mut seen[i], true) {
                continue;
            }
            reset[i] = true;
            walked[i] = true;
            for d in &kind[i].dependents {
                stack.extend(kind.iter().position(|s| s.id == *d));
            }
        }
    }
    // An expanded step that `from` reaches expands afresh: its items are dropped,
    // neither reset nor counted as its dependencies. Otherwise a retry re-runs only
    // the items that did not complete, and the step stays their join.
    let re_expand: Vec<StepId> = kind
        .iter()
        .enumerate()
        .filter(|(i, s)| walked[*i] && s.fan_out.is_some_and(|f| f.expanded))
        .map(|(_, s)| s.id)
        .collect();
    let dropped: Vec<bool> = kind
        .iter()
        .map(|s| s.item_of.is_some_and(|(p, _)| re_expand.contains(&p)))
        .collect();
    let mut resets = Vec::new();
    for (i, step) in kind.iter().enumerate() {
        if !reset[i] || dropped[i] {
            continue;
        }
        // Dependencies that will not be complete after the reset.
        let deps = kind
            .iter()
            .enumerate()
            .filter(|(j, d)| {
                !dropped[*j]
                    && d.dependents.contains(&step.id)
                    && (reset[*j] || d.status != StepStatus::Completed)
            })
            .count() as i32;
        resets.push(Reset {
            id: step.id,
            name: step.name.clone(),
            status: if deps == 0 {
                StepStatus::Pending
            } else {
                StepStatus::Blocked
            },
            deps_remaining: deps,
        });
    }
    let cursors = hold_items_beyond_the_window(kind.as_slice(), &mut resets, &re_expand);
    if resets.is_empty() {
        return Err(StoreError::InvalidInput(
            "nothing to retry: every step of the run completed".into(),
        ));
    }
    Ok(RetryPlan {
        status: if resuming {
            RunStatus::Compensating
        } else {
            RunStatus::Running
        },
        resets,
        re_expand,
        cursors,
    })
}

/// Under `max_parallel`, the items a retry resets start as places allow: the first
/// `max_parallel` (by index) are claimable, the others wait on one pseudo-dependency
/// that a place frees, from the returned cursor on.
fn hold_items_beyond_the_window(
    kind: &[&StepState],
    resets: &mut [Reset],
    re_expand: &[StepId],
) -> Vec<(StepId, i32)> {
    let mut cursors = Vec::new();
    for parent in kind.iter().filter(|s| !re_expand.contains(&s.id)) {
        let Some(window) = parent.fan_out.and_then(|f| f.max_parallel) else {
            continue;
        };
        let mut items: Vec<(i32, usize)> = resets
            .iter()
            .enumerate()
            .filter_map(|(r, reset)| {
                let state = kind.iter().find(|s| s.id == reset.id)?;
                match state.item_of {
                    Some((p, index)) if p == parent.id => Some((index, r)),
                    _ => None,
                }
            })
            .collect();
        items.sort_unstable();
        if let Some(&(first_held, _)) = items.get(window as usize) {
            cursors.push((parent.id, first_held));
        }
        for &(_, r) in items.iter().skip(window as usize) {
            resets[r].status = StepStatus::Blocked;
            resets[r].deps_remaining = 1;
        }
    }
    cursors
}

impl RetryPlan {
    /// The names of the steps that start again, in the run's order.
    pub fn step_names(&self) -> Vec<String> {
        self.resets.iter().map(|r| r.name.clone()).collect()
    }
}

/// The data of `run.retried`: where the retry started, the status it reopened, and the
/// steps that start again.
pub(crate) fn retried_data(from: Option<&str>, previous: RunStatus, steps: &[String]) -> Value {
    json!({"from": from, "previous": previous, "steps": steps})
}

/// The deadline a reopened run gets, in milliseconds from now: its workflow's run
/// deadline (clamped to what the database stores), or none.
pub(crate) fn reopened_deadline_ms(workflow: Option<&StoredWorkflow>) -> Option<i64> {
    workflow
        .and_then(|w| w.spec.run.deadline_ms)
        .map(|ms| ms.min(i64::MAX as u64) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use StepStatus::*;

    /// a → b → c and a → d; `compensation` rows last.
    fn run(statuses: [StepStatus; 4]) -> Vec<StepState> {
        let ids: Vec<StepId> = (0..4).map(|_| StepId::new()).collect();
        let dependents = [vec![ids[1], ids[3]], vec![ids[2]], vec![], vec![]];
        ["a", "b", "c", "d"]
            .iter()
            .enumerate()
            .map(|(i, name)| StepState {
                id: ids[i],
                name: name.to_string(),
                status: statuses[i],
                dependents: dependents[i].clone(),
                compensation: false,
                item_of: None,
                fan_out: None,
            })
            .collect()
    }

    fn summary(plan: &RetryPlan) -> Vec<(String, StepStatus, i32)> {
        plan.resets
            .iter()
            .map(|r| (r.name.clone(), r.status, r.deps_remaining))
            .collect()
    }

    #[test]
    fn a_plain_retry_resets_what_did_not_complete() {
        let steps = run([Completed, Failed, Skipped, Completed]);
        let plan = plan_retry(RunStatus::Failed, &steps, None).unwrap();
        assert_eq!(plan.status, RunStatus::Running);
        assert_eq!(
            summary(&plan),
            vec![("b".into(), Pending, 0), ("c".into(), Blocked, 1)]
        );
    }

    #[test]
    fn from_resets_the_step_and_everything_downstream() {
        let steps = run([Completed, Completed, Failed, Completed]);
        let plan = plan_retry(RunStatus::Failed, &steps, Some("b")).unwrap();
        assert_eq!(
            summary(&plan),
            vec![("b".into(), Pending, 0), ("c".into(), Blocked, 1)]
        );
        let plan = plan_retry(RunStatus::Cancelled, &steps, Some("a")).unwrap();
        assert_eq!(
            summary(&plan),
            vec![
                ("a".into(), Pending, 0),
                ("b".into(), Blocked, 1),
                ("c".into(), Blocked, 1),
                ("d".into(), Blocked, 1)
            ]
        );
    }

    #[test]
    fn unknown_from_and_resumed_compensation_are_refused_or_resumed() {
        let steps = run([Completed, Failed, Skipped, Completed]);
        let err = plan_retry(RunStatus::Failed, &steps, Some("zz"))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("no step \"zz\"; its steps are a, b, c, d"),
            "{err}"
        );
        let err = plan_retry(RunStatus::CompensationFailed, &steps, Some("a"))
            .err()
            .unwrap();
        assert!(
            err.to_string().contains("resumes the compensation"),
            "{err}"
        );
        let mut steps = run([Completed, Completed, Failed, Completed]);
        steps[2].compensation = true;
        steps[3].compensation = true;
        steps[2].dependents = vec![steps[3].id];
        steps[3].status = Skipped;
        let plan = plan_retry(RunStatus::CompensationFailed, &steps, None).unwrap();
        assert_eq!(plan.status, RunStatus::Compensating);
        assert_eq!(
            summary(&plan),
            vec![("c".into(), Pending, 0), ("d".into(), Blocked, 1)]
        );
    }
    /// `plan` → `hooks` (expanded, `max_parallel` 1, items 0..3) → `report`.
    fn fanned(items: [StepStatus; 3]) -> Vec<StepState> {
        let ids: Vec<StepId> = (0..6).map(|_| StepId::new()).collect();
        let mut steps = vec![
            StepState {
                id: ids[0],
                name: "plan".into(),
                status: Completed,
                dependents: vec![ids[1]],
                compensation: false,
                item_of: None,
                fan_out: None,
            },
            StepState {
                id: ids[1],
                name: "hooks".into(),
                status: Skipped,
                dependents: vec![ids[2]],
                compensation: false,
                item_of: None,
                fan_out: Some(FanOutState {
                    expanded: true,
                    max_parallel: Some(1),
                }),
            },
            StepState {
                id: ids[2],
                name: "report".into(),
                status: Skipped,
                dependents: vec![],
                compensation: false,
                item_of: None,
                fan_out: None,
            },
        ];
        for (i, status) in items.into_iter().enumerate() {
            steps.push(StepState {
                id: ids[3 + i],
                name: format!("hooks[{i}]"),
                status,
                dependents: vec![ids[1]],
                compensation: false,
                item_of: Some((ids[1], i as i32)),
                fan_out: None,
            });
        }
        steps
    }

    #[test]
    fn a_retry_reruns_only_the_items_that_did_not_complete_within_max_parallel() {
        let steps = fanned([Failed, Completed, Skipped]);
        let plan = plan_retry(RunStatus::Failed, &steps, None).unwrap();
        assert_eq!(
            summary(&plan),
            vec![
                ("hooks".into(), Blocked, 2),
                ("report".into(), Blocked, 1),
                ("hooks[0]".into(), Pending, 0),
                ("hooks[2]".into(), Blocked, 1),
            ]
        );
        assert!(plan.re_expand.is_empty());
        assert_eq!(plan.cursors, vec![(steps[1].id, 2)]);
    }

    #[test]
    fn a_retry_from_a_for_each_step_drops_its_items_and_expands_again() {
        let steps = fanned([Failed, Completed, Skipped]);
        let plan = plan_retry(RunStatus::Failed, &steps, Some("hooks")).unwrap();
        assert_eq!(
            summary(&plan),
            vec![("hooks".into(), Pending, 0), ("report".into(), Blocked, 1)]
        );
        assert_eq!(plan.re_expand, vec![steps[1].id]);
    }

    #[test]
    fn run_retried_names_the_start_the_previous_status_and_the_reset_steps() {
        let steps = run([Completed, Failed, Skipped, Completed]);
        let plan = plan_retry(RunStatus::Failed, &steps, None).unwrap();
        assert_eq!(plan.step_names(), vec!["b", "c"]);
        assert_eq!(
            retried_data(None, RunStatus::Failed, &plan.step_names()),
            json!({"from": null, "previous": "failed", "steps": ["b", "c"]})
        );
        assert_eq!(
            retried_data(Some("b"), RunStatus::TimedOut, &["b".to_string()]),
            json!({"from": "b", "previous": "timed_out", "steps": ["b"]})
        );
        assert_eq!(reopened_deadline_ms(None), None);
    }
}
