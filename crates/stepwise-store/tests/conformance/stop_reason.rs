//! A run that compensates says why it stopped: `failed`, `timed_out` or `cancelled`,
//! in the data of `run.compensating` and of its final event, and on the run itself.

use crate::support::*;
use serde_json::json;
use std::sync::Arc;
use stepwise_core::{EventKind, RunId, RunStatus, StepAction, StepSpec};
use stepwise_store::*;

fn undoable(mut s: StepSpec) -> StepSpec {
    s.compensate = Some(StepAction::Handler {
        name: format!("undo_{}", s.name),
    });
    s.max_attempts = Some(1);
    s
}

/// `a` is undoable, `b` runs after it and fails for good when it fails.
fn saga(name: &str) -> stepwise_core::WorkflowSpec {
    let mut b = step("b");
    b.max_attempts = Some(1);
    workflow(name, vec![undoable(step("a")), b])
}

async fn claim_one(store: &dyn Store, w: stepwise_core::WorkerId, name: &str) -> ClaimedStep {
    let claimed = claim(store, w, 1).await;
    assert_eq!(claimed.len(), 1, "{name} is claimable");
    assert_eq!(claimed[0].step, name);
    claimed.into_iter().next().unwrap()
}

/// The run is compensating for `reason`, and says so.
async fn compensating_because(store: &dyn Store, run: RunId, reason: StopReason) {
    let view = get_run(store, run).await;
    assert_eq!(view.status, RunStatus::Compensating);
    assert_eq!(view.stop_reason, Some(reason));
    let wire = serde_json::to_value(&view).unwrap();
    assert_eq!(wire["stop_reason"], json!(reason.as_str()), "{wire}");
}

/// The run ended with `last` and both its `run.compensating` and its final event
/// name `reason`; neither `run.failed`, `run.timed_out` nor `run.cancelled` was written.
async fn ended_because(store: &dyn Store, run: RunId, last: EventKind, reason: StopReason) {
    let view = get_run(store, run).await;
    assert_eq!(view.stop_reason, Some(reason), "{:?}", view.status);
    let events = run_events(store, run, last).await;
    for kind in [EventKind::RunCompensating, last] {
        let found: Vec<&Event> = events.iter().filter(|e| e.kind == kind).collect();
        assert_eq!(found.len(), 1, "one {kind}: {events:?}");
        assert_eq!(found[0].data["reason"], json!(reason.as_str()), "{kind}");
    }
    for plain in [
        EventKind::RunFailed,
        EventKind::RunTimedOut,
        EventKind::RunCancelled,
    ] {
        assert_eq!(count(&events, plain), 0, "{plain}");
    }
}

/// A step failed for good: the run compensates, and the reason is `failed`. A run
/// that completes has no reason.
pub async fn a_compensation_after_a_failure_says_failed(store: Arc<dyn Store>) {
    register(&*store, &saga("fails")).await;
    let runs = start(&*store, "fails", 2).await;
    let w = worker(&*store, secs(600)).await;
    let first = claim(&*store, w, 2).await;
    complete_all(&*store, &first).await;
    let bs = claim(&*store, w, 2).await;
    let failing = bs.iter().find(|c| c.run_id == runs[0]).unwrap();
    let passing = bs.iter().find(|c| c.run_id == runs[1]).unwrap();
    assert_eq!(get_run(&*store, runs[0]).await.stop_reason, None);
    assert_eq!(
        fail(&*store, failing, false, "b broke").await,
        FailOutcome::Failed
    );
    compensating_because(&*store, runs[0], StopReason::Failed).await;
    complete_all(&*store, std::slice::from_ref(passing)).await;
    let undo = claim_one(&*store, w, "compensate:a").await;
    complete_all(&*store, &[undo]).await;
    assert_eq!(
        get_run(&*store, runs[0]).await.status,
        RunStatus::Compensated
    );
    ended_because(
        &*store,
        runs[0],
        EventKind::RunCompensated,
        StopReason::Failed,
    )
    .await;
    let done = get_run(&*store, runs[1]).await;
    assert_eq!(done.status, RunStatus::Completed);
    assert_eq!(done.stop_reason, None);
}

/// The deadline passed: the reason is `timed_out`, also when the compensation fails.
pub async fn a_compensation_after_the_deadline_says_timed_out(store: Arc<dyn Store>) {
    let mut spec = saga("late");
    spec.run.deadline_ms = Some(60_000);
    register(&*store, &spec).await;
    let run = start(&*store, "late", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    let a = claim_one(&*store, w, "a").await;
    complete_all(&*store, &[a]).await;
    store.advance_clock(secs(61)).await.unwrap();
    assert_eq!(store.expire_runs(10).await.unwrap(), vec![run]);
    compensating_because(&*store, run, StopReason::TimedOut).await;
    let undo = claim_one(&*store, w, "compensate:a").await;
    assert_eq!(
        fail(&*store, &undo, false, "undo broke").await,
        FailOutcome::Failed
    );
    assert_eq!(
        get_run(&*store, run).await.status,
        RunStatus::CompensationFailed
    );
    ended_because(
        &*store,
        run,
        EventKind::RunCompensationFailed,
        StopReason::TimedOut,
    )
    .await;
}

/// Someone cancelled the run: the reason is `cancelled`.
pub async fn a_compensation_after_a_cancel_says_cancelled(store: Arc<dyn Store>) {
    register(&*store, &saga("called_off")).await;
    let run = start(&*store, "called_off", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    let a = claim_one(&*store, w, "a").await;
    complete_all(&*store, &[a]).await;
    let outcome = store
        .cancel_run(&CancelRequest {
            run,
            compensate: true,
        })
        .await
        .unwrap();
    assert!(
        matches!(outcome, CancelOutcome::Cancelled { .. }),
        "{outcome:?}"
    );
    compensating_because(&*store, run, StopReason::Cancelled).await;
    let undo = claim_one(&*store, w, "compensate:a").await;
    complete_all(&*store, &[undo]).await;
    ended_because(
        &*store,
        run,
        EventKind::RunCompensated,
        StopReason::Cancelled,
    )
    .await;
}
