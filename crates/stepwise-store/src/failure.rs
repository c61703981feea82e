//! The failure path both backends take when an attempt fails: whether the step goes
//! back to the queue or fails for good (halting its run), and the events that say so.
//! Pure, so the two backends decide and report the same; each only runs its SQL.

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use stepwise_core::{EventKind, FailureDecision, RetryPolicy};
use uuid::Uuid;

/// A failed attempt of a running step, as locked for its outcome.
pub(crate) struct FailedAttempt<'a> {
    pub retry: &'a RetryPolicy,
    /// The step's attempt counter, across retries of its run.
    pub attempt: i64,
    /// Attempts made before the run's latest retry.
    pub attempt_base: i64,
    /// The worker said another attempt could succeed.
    pub retryable: bool,
    /// The run is halting: the step must not go back to the queue.
    pub halted: bool,
    /// The service's own delay (back-pressure), in place of the backoff.
    pub retry_after: Option<std::time::Duration>,
}

/// Attempts counted against `max_attempts`: those since the run's latest retry, so a
/// retried run gets its full budget again.
pub(crate) fn attempts_used(attempt: i64, attempt_base: i64) -> u32 {
    (attempt - attempt_base).max(1) as u32
}

/// Retry after a backoff, or give up.
pub(crate) fn decide(failed: &FailedAttempt<'_>) -> FailureDecision {
    match failed.retry.after_failure(
        attempts_used(failed.attempt, failed.attempt_base),
        failed.retryable && !failed.halted,
    ) {
        FailureDecision::RetryAfter(backoff) => {
            FailureDecision::RetryAfter(failed.retry_after.unwrap_or(backoff))
        }
        give_up => give_up,
    }
}

/// The events of a failed attempt that will be retried at `run_after`, in order.
pub(crate) fn retry_events(
    attempt: i64,
    error: &str,
    run_after: DateTime<Utc>,
) -> [(EventKind, Value); 2] {
    [
        (
            EventKind::StepFailed,
            json!({"attempt": attempt, "error": error, "final": false}),
        ),
        (
            EventKind::StepRetrying,
            json!({"attempt": attempt + 1, "run_after": run_after}),
        ),
    ]
}

/// The data of the `step.failed` of a step that failed for good.
pub(crate) fn final_failure_data(attempt: i64, error: &str) -> Value {
    json!({"attempt": attempt, "error": error, "final": true})
}

/// The error a run keeps when its step `step` failed for good.
pub(crate) fn run_error(step: &str, error: &str) -> String {
    format!("step {step:?} failed: {error}")
}

/// The data of `step.skipped` for each unstarted step of a run halted by `step`.
pub(crate) fn skipped_data(step: &str) -> Value {
    json!({"reason": format!("step {step:?} failed")})
}

/// Whether an attempt whose worker was lost ends its step: a lost worker is retried
/// like a retryable failure but without a backoff, while the budget lasts and the run
/// is not halting.
pub(crate) fn lost_for_good(
    retry: &RetryPolicy,
    attempt: i64,
    attempt_base: i64,
    halted: bool,
) -> bool {
    halted || attempts_used(attempt, attempt_base) >= retry.max_attempts
}

/// The data of `step.reaped` for an attempt whose worker was lost.
pub(crate) fn reaped_data(attempt: i64, worker: Option<Uuid>, last: bool) -> Value {
    json!({"attempt": attempt, "worker_id": worker, "final": last})
}

/// The error a step keeps when its worker was lost on its last attempt.
pub(crate) fn lost_error(attempt: i64) -> String {
    format!("worker lost during attempt {attempt}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use stepwise_core::Backoff;

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            max_attempts,
            backoff: Backoff {
                initial: Duration::from_secs(1),
                factor: 2.0,
                max: Duration::from_secs(60),
            },
        }
    }

    fn failed(retry: &RetryPolicy, attempt: i64, attempt_base: i64) -> FailedAttempt<'_> {
        FailedAttempt {
            retry,
            attempt,
            attempt_base,
            retryable: true,
            halted: false,
            retry_after: None,
        }
    }

    #[test]
    fn a_retryable_failure_backs_off_until_the_budget_is_spent() {
        let retry = policy(3);
        assert!(matches!(
            decide(&failed(&retry, 1, 0)),
            FailureDecision::RetryAfter(_)
        ));
        assert!(matches!(
            decide(&failed(&retry, 2, 0)),
            FailureDecision::RetryAfter(_)
        ));
        assert_eq!(decide(&failed(&retry, 3, 0)), FailureDecision::GiveUp);
    }

    #[test]
    fn a_retried_run_counts_attempts_from_its_latest_retry() {
        let retry = policy(3);
        assert_eq!(attempts_used(5, 3), 2);
        // A counter behind its base (never expected) still counts one attempt.
        assert_eq!(attempts_used(3, 3), 1);
        assert!(matches!(
            decide(&failed(&retry, 5, 3)),
            FailureDecision::RetryAfter(_)
        ));
        assert_eq!(decide(&failed(&retry, 6, 3)), FailureDecision::GiveUp);
    }

    #[test]
    fn a_permanent_error_or_a_halting_run_fails_the_step_for_good() {
        let retry = policy(5);
        let permanent = FailedAttempt {
            retryable: false,
            ..failed(&retry, 1, 0)
        };
        assert_eq!(decide(&permanent), FailureDecision::GiveUp);
        let halting = FailedAttempt {
            halted: true,
            ..failed(&retry, 1, 0)
        };
        assert_eq!(decide(&halting), FailureDecision::GiveUp);
    }

    #[test]
    fn failure_events_carry_the_attempt_and_what_comes_next() {
        let at = DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc);
        let [(k1, d1), (k2, d2)] = retry_events(2, "boom", at);
        assert_eq!(k1, EventKind::StepFailed);
        assert_eq!(d1, json!({"attempt": 2, "error": "boom", "final": false}));
        assert_eq!(k2, EventKind::StepRetrying);
        assert_eq!(d2, json!({"attempt": 3, "run_after": at}));
        assert_eq!(
            final_failure_data(4, "boom"),
            json!({"attempt": 4, "error": "boom", "final": true})
        );
        assert_eq!(run_error("fetch", "boom"), "step \"fetch\" failed: boom");
        assert_eq!(
            skipped_data("fetch"),
            json!({"reason": "step \"fetch\" failed"})
        );
    }
    #[test]
    fn a_lost_worker_is_retried_while_the_budget_lasts_and_the_run_is_not_halting() {
        let retry = policy(2);
        assert!(!lost_for_good(&retry, 1, 0, false));
        assert!(lost_for_good(&retry, 2, 0, false));
        assert!(!lost_for_good(&retry, 3, 2, false));
        assert!(lost_for_good(&retry, 1, 0, true));
        let worker = Uuid::nil();
        assert_eq!(
            reaped_data(2, Some(worker), true),
            json!({"attempt": 2, "worker_id": worker, "final": true})
        );
        assert_eq!(lost_error(2), "worker lost during attempt 2");
    }
}
