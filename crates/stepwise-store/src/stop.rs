//! Why a run stopped early, and the data of the event that says how a run ended, so
//! both backends record and report the same.
//!
//! A run stops early when a step fails for good, its deadline passes or it is
//! cancelled; the run keeps the reason (`halt`, first one wins, an operator's cancel
//! overrides) until a retry from a step clears it. A run that then compensates ends
//! `compensated` or `compensation_failed`, statuses that no longer say which of the
//! three it was, so its `run.compensating` event, its final event and the run itself
//! carry the reason.

use crate::{Result, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use stepwise_core::{RunStatus, StepId};
use uuid::Uuid;

/// Why a run stopped before completing: the status it ends in when there is nothing
/// to compensate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// A step failed for good.
    Failed,
    /// The run's deadline passed.
    TimedOut,
    /// Someone cancelled the run.
    Cancelled,
}

impl StopReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StopReason::Failed => "failed",
            StopReason::TimedOut => "timed_out",
            StopReason::Cancelled => "cancelled",
        }
    }

    /// The reason a run's stored `halt` column holds (`None` while nothing stopped it).
    pub(crate) fn from_halt(halt: Option<&str>) -> Result<Option<Self>> {
        match halt {
            None => Ok(None),
            Some("failed") => Ok(Some(StopReason::Failed)),
            Some("timed_out") => Ok(Some(StopReason::TimedOut)),
            Some("cancelled") => Ok(Some(StopReason::Cancelled)),
            Some(other) => Err(StoreError::Corrupt(format!("run halt {other:?}"))),
        }
    }
}

/// The data of the event a run writes when its open steps reach zero (`run.<status>`):
/// its error if any, and, when it compensates, why it stopped.
pub(crate) fn run_event_data(
    status: RunStatus,
    error: Option<&str>,
    halt: Option<&str>,
) -> Result<Value> {
    let mut data = json!({});
    if let Some(error) = error {
        data["error"] = json!(error);
    }
    let compensates = matches!(
        status,
        RunStatus::Compensating | RunStatus::Compensated | RunStatus::CompensationFailed
    );
    if compensates {
        let reason = StopReason::from_halt(halt)?.ok_or_else(|| {
            StoreError::Corrupt(format!("a {} run with no reason", status.as_str()))
        })?;
        data["reason"] = json!(reason.as_str());
    }
    Ok(data)
}

/// What was asked of a run being stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StopRequest {
    /// An operator's cancel; `compensate: false` skips the compensation.
    Cancel { compensate: bool },
    /// The deadline sweep found the run due.
    Deadline,
}

impl StopRequest {
    /// How a stopped run's children stop: cancelled (a parent's deadline is not
    /// theirs), compensating unless the operator said not to.
    pub(crate) fn for_children(self) -> StopRequest {
        match self {
            StopRequest::Cancel { compensate } => StopRequest::Cancel { compensate },
            StopRequest::Deadline => StopRequest::Cancel { compensate: true },
        }
    }
}

/// What stopping a run does to the run itself, before its steps are cancelled and
/// revoked.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum StopPlan {
    /// Nothing: the run ended, or (deadline) it is no longer due or already stopping.
    Unchanged,
    /// A cancel that compensates, of a run already compensating: let it finish.
    Compensating,
    /// A cancel that does not compensate, of a compensating run: the compensation is
    /// given up (`give_up_compensation.sql`).
    GiveUpCompensation,
    /// Halt the run (`stop_run.sql`): the reason it keeps, its error, and whether it
    /// ends without compensating.
    Halt {
        reason: RunStatus,
        error: &'static str,
        give_up: bool,
    },
}

/// Decides how a run in `status` is stopped. `overdue` is the database clock's
/// verdict on its deadline, read under the run's lock: a run retried or extended since
/// the sweep listed it is left alone.
pub(crate) fn plan_stop(request: StopRequest, status: RunStatus, overdue: bool) -> StopPlan {
    if status.is_terminal() {
        return StopPlan::Unchanged;
    }
    match (request, status) {
        (StopRequest::Deadline, RunStatus::Running | RunStatus::Pending) if overdue => {
            StopPlan::Halt {
                reason: RunStatus::TimedOut,
                error: "the run's deadline passed",
                give_up: false,
            }
        }
        (StopRequest::Deadline, _) => StopPlan::Unchanged,
        (StopRequest::Cancel { compensate: true }, RunStatus::Compensating) => {
            StopPlan::Compensating
        }
        (StopRequest::Cancel { .. }, RunStatus::Compensating) => StopPlan::GiveUpCompensation,
        (StopRequest::Cancel { compensate }, _) => StopPlan::Halt {
            reason: RunStatus::Cancelled,
            error: "the run was cancelled",
            give_up: !compensate,
        },
    }
}

/// The data of `step.cancelled` for a step that had not started when its run stopped.
pub(crate) fn unstarted_cancelled_data(request: StopRequest) -> Value {
    let why = match request {
        StopRequest::Cancel { .. } => "run cancelled",
        StopRequest::Deadline => "run timed out",
    };
    json!({ "reason": why })
}

/// The error of the attempt of a revoked step that stopped.
pub(crate) const REVOKED_ATTEMPT_ERROR: &str = "stopped: the run was cancelled or timed out";

/// The data of `step.cancelled` for a revoked running step once it stopped; `halt` is
/// its run's stored reason. PostgreSQL builds the same in `stop_revoked_steps.sql`.
pub(crate) fn revoked_cancelled_data(attempt: i64, halt: Option<&str>) -> Value {
    let halt = halt.unwrap_or("cancelled").replace('_', " ");
    json!({ "attempt": attempt, "reason": format!("run {halt}") })
}

/// One step of a run's compensation chain: it undoes step `undoes` and, once it ends,
/// unblocks `next`.
#[derive(Debug)]
pub(crate) struct Compensation {
    pub id: StepId,
    pub name: String,
    pub undoes: String,
    pub next: Option<StepId>,
}

/// The compensation chain of a run that just started compensating, from the names of
/// its completed compensable steps in the order they are undone (last completed first):
/// each compensation waits for the one before it. A compensating run always has one.
pub(crate) fn compensation_chain(run: Uuid, undoes: Vec<String>) -> Result<Vec<Compensation>> {
    if undoes.is_empty() {
        return Err(StoreError::Corrupt(format!(
            "run {run} is compensating with nothing to compensate"
        )));
    }
    let ids: Vec<StepId> = undoes.iter().map(|_| StepId::new()).collect();
    Ok(undoes
        .into_iter()
        .enumerate()
        .map(|(i, undoes)| Compensation {
            id: ids[i],
            name: format!("{}{undoes}", crate::model::COMPENSATION_PREFIX),
            undoes,
            next: ids.get(i + 1).copied(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    use RunStatus::*;

    #[test]
    fn a_deadline_halts_only_a_running_or_pending_run_that_is_still_overdue() {
        let timed_out = StopPlan::Halt {
            reason: TimedOut,
            error: "the run's deadline passed",
            give_up: false,
        };
        assert_eq!(plan_stop(StopRequest::Deadline, Running, true), timed_out);
        assert_eq!(plan_stop(StopRequest::Deadline, Pending, true), timed_out);
        assert_eq!(
            plan_stop(StopRequest::Deadline, Running, false),
            StopPlan::Unchanged
        );
        assert_eq!(
            plan_stop(StopRequest::Deadline, Compensating, true),
            StopPlan::Unchanged
        );
        assert_eq!(
            plan_stop(StopRequest::Deadline, Failed, true),
            StopPlan::Unchanged
        );
    }

    #[test]
    fn a_cancel_halts_a_live_run_and_only_a_plain_cancel_gives_up_compensation() {
        let compensate = StopRequest::Cancel { compensate: true };
        let plain = StopRequest::Cancel { compensate: false };
        for overdue in [false, true] {
            assert_eq!(
                plan_stop(compensate, Running, overdue),
                StopPlan::Halt {
                    reason: Cancelled,
                    error: "the run was cancelled",
                    give_up: false
                }
            );
            assert_eq!(
                plan_stop(plain, Pending, overdue),
                StopPlan::Halt {
                    reason: Cancelled,
                    error: "the run was cancelled",
                    give_up: true
                }
            );
        }
        assert_eq!(
            plan_stop(compensate, Compensating, false),
            StopPlan::Compensating
        );
        assert_eq!(
            plan_stop(plain, Compensating, false),
            StopPlan::GiveUpCompensation
        );
        for ended in [Completed, Cancelled, Compensated, CompensationFailed] {
            assert_eq!(plan_stop(plain, ended, true), StopPlan::Unchanged);
        }
    }

    #[test]
    fn cancelled_steps_say_which_stop_reached_them() {
        assert_eq!(
            unstarted_cancelled_data(StopRequest::Deadline),
            json!({"reason": "run timed out"})
        );
        assert_eq!(
            unstarted_cancelled_data(StopRequest::Cancel { compensate: true }),
            json!({"reason": "run cancelled"})
        );
        assert_eq!(
            revoked_cancelled_data(3, Some("timed_out")),
            json!({"attempt": 3, "reason": "run timed out"})
        );
        assert_eq!(
            revoked_cancelled_data(1, None),
            json!({"attempt": 1, "reason": "run cancelled"})
        );
    }

    #[test]
    fn only_a_compensating_run_says_why_it_stopped() {
        let data = run_event_data(RunStatus::Compensated, None, Some("timed_out")).unwrap();
        assert_eq!(data, json!({"reason": "timed_out"}));
        let data =
            run_event_data(RunStatus::CompensationFailed, Some("boom"), Some("failed")).unwrap();
        assert_eq!(data, json!({"error": "boom", "reason": "failed"}));
        let data = run_event_data(RunStatus::Cancelled, Some("x"), Some("cancelled")).unwrap();
        assert_eq!(data, json!({"error": "x"}));
        assert_eq!(
            run_event_data(RunStatus::Completed, None, None).unwrap(),
            json!({})
        );
        assert!(run_event_data(RunStatus::Compensating, None, None).is_err());
        assert!(StopReason::from_halt(Some("bored")).is_err());
    }
    #[test]
    fn a_compensation_chain_undoes_in_the_order_given_each_waiting_for_the_last() {
        let chain =
            compensation_chain(Uuid::nil(), vec!["charge".into(), "reserve".into()]).unwrap();
        assert_eq!(chain.len(), 2);
        assert_eq!(chain[0].name, "compensate:charge");
        assert_eq!(chain[0].undoes, "charge");
        assert_eq!(chain[0].next, Some(chain[1].id));
        assert_eq!(chain[1].name, "compensate:reserve");
        assert_eq!(chain[1].next, None);
        assert_ne!(chain[0].id, chain[1].id);
        let err = compensation_chain(Uuid::nil(), vec![]).unwrap_err();
        assert!(err.to_string().contains("nothing to compensate"), "{err}");
    }
}
