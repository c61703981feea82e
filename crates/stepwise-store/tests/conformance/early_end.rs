//! How a run ends early: compensation, cancellation, deadlines and retry.

use crate::support::*;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use stepwise_core::{EventKind, RunId, RunStatus, StepAction, StepSpec, StepStatus};
use stepwise_store::*;

fn compensated(mut s: StepSpec) -> StepSpec {
    s.compensate = Some(StepAction::Handler {
        name: format!("undo_{}", s.name),
    });
    s
}

fn permanent(mut s: StepSpec) -> StepSpec {
    s.max_attempts = Some(1);
    s
}

async fn claim_named(store: &dyn Store, w: stepwise_core::WorkerId, name: &str) -> ClaimedStep {
    let claimed = claim(store, w, 1).await;
    assert_eq!(claimed.len(), 1, "{name} is claimable");
    assert_eq!(claimed[0].step, name);
    claimed.into_iter().next().unwrap()
}

async fn cancel(store: &dyn Store, run: RunId, compensate: bool) -> CancelOutcome {
    store
        .cancel_run(&CancelRequest { run, compensate })
        .await
        .expect("cancel run")
}

async fn retry(store: &dyn Store, run: RunId, from: Option<&str>) -> RetryOutcome {
    store
        .retry_run(&RetryRequest {
            run,
            from: from.map(str::to_string),
        })
        .await
        .expect("retry run")
}

/// Completed steps are undone last-completed first; the step that never completed is
/// not compensated. Each compensation sees what it undoes and why.
pub async fn compensation_runs_in_reverse_completion_order_and_skips_the_unfinished_step(
    store: Arc<dyn Store>,
) {
    let spec = workflow(
        "saga",
        vec![
            compensated(root("a")),
            compensated(root("b")),
            compensated(permanent(root("c"))),
            compensated(after("d", &["a", "b", "c"])),
        ],
    );
    register(&*store, &spec).await;
    let run = start(&*store, "saga", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    let roots = claim(&*store, w, 10).await;
    assert_eq!(roots.len(), 3);
    let by_name = |n: &str| roots.iter().find(|c| c.step == n).unwrap().clone();
    complete_all(&*store, &[by_name("b")]).await;
    complete_all(&*store, &[by_name("a")]).await;
    assert_eq!(
        fail(&*store, &by_name("c"), true, "c broke").await,
        FailOutcome::Failed
    );
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Compensating);
    assert!(view.finished_at.is_none());
    assert_eq!(step_of(&view, "d").status, StepStatus::Skipped);

    // a completed last, so it is undone first.
    let first = claim_named(&*store, w, "compensate:a").await;
    let undo = first
        .compensating
        .clone()
        .expect("a compensation says what it undoes");
    assert_eq!(undo.step, "a");
    assert_eq!(undo.output, json!({"step": "a", "attempt": 1}));
    assert!(undo.error.unwrap_or_default().contains("c broke"));
    assert!(
        claim(&*store, w, 10).await.is_empty(),
        "one compensation at a time"
    );
    complete_all(&*store, &[first]).await;
    let second = claim_named(&*store, w, "compensate:b").await;
    assert_eq!(second.compensating.as_ref().unwrap().step, "b");
    complete_all(&*store, &[second]).await;
    assert!(
        claim(&*store, w, 10).await.is_empty(),
        "c is not compensated"
    );

    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Compensated);
    assert!(view.finished_at.is_some());
    let names: Vec<&str> = view.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "compensate:a", "compensate:b"]);
    assert_eq!(
        step_of(&view, "compensate:a").compensates.as_deref(),
        Some("a")
    );
    assert_eq!(view.progress.done, view.progress.total);
    let events = run_events(&*store, run, EventKind::RunCompensated).await;
    assert_eq!(count(&events, EventKind::RunCompensating), 1);
    assert_eq!(count(&events, EventKind::RunFailed), 0);
    let order: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::StepCompleted)
        .filter_map(|e| e.step.as_deref())
        .collect();
    assert_eq!(order, ["b", "a", "compensate:a", "compensate:b"]);
}

/// A sibling that completes under its current lease while the run is failing counts
/// as completed, and compensation waits for it.
pub async fn a_sibling_completing_while_the_run_fails_is_compensated(store: Arc<dyn Store>) {
    let spec = workflow(
        "sibling",
        vec![
            compensated(root("slow")),
            compensated(permanent(root("bad"))),
        ],
    );
    register(&*store, &spec).await;
    let run = start(&*store, "sibling", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    let both = claim(&*store, w, 10).await;
    let slow = both.iter().find(|c| c.step == "slow").unwrap().clone();
    let bad = both.iter().find(|c| c.step == "bad").unwrap().clone();
    assert_eq!(fail(&*store, &bad, false, "no").await, FailOutcome::Failed);
    assert_eq!(get_run(&*store, run).await.status, RunStatus::Running);
    assert!(
        claim(&*store, w, 10).await.is_empty(),
        "compensation waits for the running sibling"
    );
    complete_all(&*store, &[slow]).await;
    let undo = claim_named(&*store, w, "compensate:slow").await;
    complete_all(&*store, &[undo]).await;
    assert_eq!(get_run(&*store, run).await.status, RunStatus::Compensated);
}

/// A compensation that fails for good stops the chain: the run ends
/// `compensation_failed`, and a retry resumes the compensation where it stopped.
pub async fn a_failed_compensation_ends_the_run_and_retry_resumes_it(store: Arc<dyn Store>) {
    let spec = workflow(
        "undo_fails",
        vec![
            compensated(permanent(step("a"))),
            compensated(permanent(step("b"))),
            permanent(step("c")),
        ],
    );
    register(&*store, &spec).await;
    let run = start(&*store, "undo_fails", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    for name in ["a", "b"] {
        let c = claim_named(&*store, w, name).await;
        complete_all(&*store, &[c]).await;
    }
    let c = claim_named(&*store, w, "c").await;
    fail(&*store, &c, false, "c broke").await;
    let undo_b = claim_named(&*store, w, "compensate:b").await;
    assert_eq!(
        fail(&*store, &undo_b, true, "undo broke").await,
        FailOutcome::Failed
    );
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::CompensationFailed);
    assert_eq!(step_of(&view, "compensate:a").status, StepStatus::Skipped);
    run_events(&*store, run, EventKind::RunCompensationFailed).await;

    let refused = store
        .retry_run(&RetryRequest {
            run,
            from: Some("a".into()),
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::InvalidInput(_))),
        "{refused:?}"
    );
    let RetryOutcome::Retried { status, steps } = retry(&*store, run, None).await else {
        panic!("a compensation_failed run can be retried");
    };
    assert_eq!(status, RunStatus::Compensating);
    assert_eq!(steps, ["compensate:b", "compensate:a"]);
    let undo_b = claim_named(&*store, w, "compensate:b").await;
    assert_eq!(undo_b.attempt, 2, "attempt numbers go on");
    assert_eq!(undo_b.max_attempts, 2, "with a fresh budget of one");
    complete_all(&*store, &[undo_b]).await;
    let undo_a = claim_named(&*store, w, "compensate:a").await;
    complete_all(&*store, &[undo_a]).await;
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Compensated);
    let history: Vec<&str> = step_of(&view, "compensate:b")
        .history
        .iter()
        .map(|h| h.outcome.as_str())
        .collect();
    assert_eq!(history, ["failed", "completed"]);
}

/// Cancel: unstarted steps are cancelled at once; a running step's lease is revoked,
/// its late completion is refused, and the run ends once the step is confirmed stopped.
pub async fn cancel_cancels_unstarted_steps_and_revokes_running_ones(store: Arc<dyn Store>) {
    let spec = workflow(
        "cancel_me",
        vec![root("a"), root("b"), after("c", &["a", "b"])],
    );
    register(&*store, &spec).await;
    let run = start(&*store, "cancel_me", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    let a = claim_named(&*store, w, "a").await;
    assert_eq!(
        cancel(&*store, run, true).await,
        CancelOutcome::Cancelled {
            status: RunStatus::Running,
            revoked: 1
        }
    );
    let view = get_run(&*store, run).await;
    assert_eq!(step_of(&view, "b").status, StepStatus::Cancelled);
    assert_eq!(step_of(&view, "c").status, StepStatus::Cancelled);
    assert_eq!(step_of(&view, "a").status, StepStatus::Running);
    assert!(claim(&*store, w, 10).await.is_empty());
    assert_eq!(store.revoked_leases(w).await.unwrap(), vec![a.lease]);

    let report = complete(&*store, std::slice::from_ref(&a)).await;
    assert_eq!(report.refused, vec![a.lease], "the late write is refused");
    assert!(report.accepted.is_empty());
    assert_eq!(report.finished_runs, vec![(run, RunStatus::Cancelled)]);
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Cancelled);
    let step_a = step_of(&view, "a");
    assert_eq!(step_a.status, StepStatus::Cancelled);
    assert!(step_a.output.is_none(), "a refused write leaves no output");
    assert_eq!(step_a.history[0].outcome, "cancelled");
    assert!(store.revoked_leases(w).await.unwrap().is_empty());

    let events = run_events(&*store, run, EventKind::RunCancelled).await;
    assert_eq!(count(&events, EventKind::StepCancelled), 3);
    assert_eq!(count(&events, EventKind::RunCancelled), 1);
    assert_eq!(
        cancel(&*store, run, true).await,
        CancelOutcome::AlreadyEnded(RunStatus::Cancelled)
    );
    assert_eq!(
        cancel(&*store, RunId::new(), true).await,
        CancelOutcome::NotFound
    );
}

/// Cancel undoes completed steps, unless told not to; a compensating run refuses a
/// plain cancel, and `--no-compensate` stops its compensation.
pub async fn cancel_compensates_unless_told_not_to(store: Arc<dyn Store>) {
    let spec = workflow(
        "cancel_saga",
        vec![compensated(step("a")), compensated(step("b"))],
    );
    register(&*store, &spec).await;
    let runs = start(&*store, "cancel_saga", 2).await;
    let w = worker(&*store, secs(600)).await;
    let first_a = claim(&*store, w, 2).await;
    complete_all(&*store, &first_a).await;
    // Run 0: cancel while b runs; the worker reports the stop with a failure.
    let bs = claim(&*store, w, 2).await;
    let b0 = bs.iter().find(|c| c.run_id == runs[0]).unwrap().clone();
    let b1 = bs.iter().find(|c| c.run_id == runs[1]).unwrap().clone();
    cancel(&*store, runs[0], true).await;
    assert_eq!(
        fail(&*store, &b0, true, "stopped").await,
        FailOutcome::Stopped
    );
    assert_eq!(
        get_run(&*store, runs[0]).await.status,
        RunStatus::Compensating
    );
    assert_eq!(
        cancel(&*store, runs[0], true).await,
        CancelOutcome::Compensating
    );
    let undo = claim_named(&*store, w, "compensate:a").await;
    assert_eq!(undo.run_id, runs[0]);
    assert!(matches!(
        cancel(&*store, runs[0], false).await,
        CancelOutcome::Cancelled { revoked: 1, .. }
    ));
    let report = complete(&*store, &[undo]).await;
    assert_eq!(
        report.finished_runs,
        vec![(runs[0], RunStatus::CompensationFailed)]
    );

    // Run 1: cancelled without compensation while b runs.
    cancel(&*store, runs[1], false).await;
    complete(&*store, &[b1]).await;
    assert_eq!(get_run(&*store, runs[1]).await.status, RunStatus::Cancelled);
    assert!(claim(&*store, w, 10).await.is_empty());
}

/// Three checkers racing over overdue runs: each deadline fires exactly once.
pub async fn a_deadline_fires_once_with_racing_checkers(store: Arc<dyn Store>) {
    const RUNS: usize = 30;
    let mut spec = workflow("deadline", vec![step("a"), step("b")]);
    spec.run.deadline_ms = Some(60_000);
    register(&*store, &spec).await;
    let runs = start(&*store, "deadline", RUNS).await;
    let w = worker(&*store, secs(3600)).await;
    let running = claim(&*store, w, 10).await;
    assert!(
        store.expire_runs(100).await.unwrap().is_empty(),
        "not due yet"
    );
    store.advance_clock(secs(61)).await.unwrap();
    let mut checkers = Vec::new();
    for _ in 0..3 {
        let store = store.clone();
        checkers.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            for _ in 0..5 {
                mine.extend(store.expire_runs(7).await.expect("expire runs"));
            }
            mine
        }));
    }
    let mut fired = Vec::new();
    for c in checkers {
        fired.extend(c.await.unwrap());
    }
    let distinct: HashSet<RunId> = fired.iter().copied().collect();
    assert_eq!(distinct.len(), fired.len(), "no deadline fired twice");
    assert_eq!(
        distinct,
        runs.iter().copied().collect(),
        "every deadline fired"
    );
    assert!(store.expire_runs(100).await.unwrap().is_empty());

    let mut revoked = store.revoked_leases(w).await.unwrap();
    revoked.sort_by_key(|l| l.step_id);
    let mut expected: Vec<_> = running.iter().map(|c| c.lease).collect();
    expected.sort_by_key(|l| l.step_id);
    assert_eq!(revoked, expected);
    complete(&*store, &running).await;
    for run in &runs {
        let view = get_run(&*store, *run).await;
        assert_eq!(view.status, RunStatus::TimedOut);
        assert!(view.error.unwrap_or_default().contains("deadline"));
    }
    // Wait for every run's event, then check none came twice.
    let events = events_when(&*store, None, "run.timed_out of every run", |e| {
        count(e, EventKind::RunTimedOut) >= RUNS
    })
    .await;
    assert_eq!(count(&events, EventKind::RunTimedOut), RUNS);
}

/// `retry --from b` re-runs b and what depends on it, keeping the other outputs.
pub async fn retry_from_resets_only_that_step_and_its_dependents(store: Arc<dyn Store>) {
    let spec = workflow(
        "again",
        vec![
            root("a"),
            after("b", &["a"]),
            permanent(after("c", &["b"])),
            root("d"),
        ],
    );
    register(&*store, &spec).await;
    let run = start(&*store, "again", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    let roots = claim(&*store, w, 10).await;
    complete_all(&*store, &roots).await;
    let b = claim_named(&*store, w, "b").await;
    complete_all(&*store, &[b]).await;
    let c = claim_named(&*store, w, "c").await;
    fail(&*store, &c, false, "c broke").await;
    assert_eq!(get_run(&*store, run).await.status, RunStatus::Failed);
    let before = get_run(&*store, run).await;

    let bad = store
        .retry_run(&RetryRequest {
            run,
            from: Some("nope".into()),
        })
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidInput(ref m)) if m.contains("nope")));
    let RetryOutcome::Retried { status, steps } = retry(&*store, run, Some("b")).await else {
        panic!("a failed run can be retried");
    };
    assert_eq!(status, RunStatus::Running);
    assert_eq!(steps, ["b", "c"]);
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Running);
    assert!(view.error.is_none() && view.finished_at.is_none());
    for kept in ["a", "d"] {
        assert_eq!(step_of(&view, kept).status, StepStatus::Completed);
        assert_eq!(step_of(&view, kept).output, step_of(&before, kept).output);
    }
    let b = claim_named(&*store, w, "b").await;
    assert_eq!(b.attempt, 2);
    assert_eq!(
        b.dependency_outputs["a"],
        json!({"step": "a", "attempt": 1})
    );
    complete_all(&*store, &[b]).await;
    let c = claim_named(&*store, w, "c").await;
    complete_all(&*store, &[c]).await;
    assert!(
        claim(&*store, w, 10).await.is_empty(),
        "a and d do not run again"
    );
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Completed);
    let outcomes: Vec<&str> = step_of(&view, "c")
        .history
        .iter()
        .map(|h| h.outcome.as_str())
        .collect();
    assert_eq!(outcomes, ["failed", "completed"], "old attempts are kept");
    // b completed, was reset, and completed again: both completions are history
    // (a clean success may have no attempt row until a retry reopens its step).
    let attempts = |name: &str| -> Vec<(u32, String)> {
        step_of(&view, name)
            .history
            .iter()
            .map(|h| (h.number, h.outcome.clone()))
            .collect()
    };
    assert_eq!(
        attempts("b"),
        [(1, "completed".into()), (2, "completed".into())]
    );
    assert_eq!(attempts("a"), [(1, "completed".into())]);
    let logs = store.attempt_logs(run, "b", None).await.expect("logs");
    let numbers: Vec<(u32, &str)> = logs
        .iter()
        .map(|l| (l.number, l.outcome.as_str()))
        .collect();
    assert_eq!(numbers, [(1, "completed"), (2, "completed")]);
    let events = run_events(&*store, run, EventKind::RunCompleted).await;
    let retried: Vec<_> = events
        .iter()
        .filter(|e| e.kind == EventKind::RunRetried)
        .collect();
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].data["from"], json!("b"));
    assert_eq!(count(&events, EventKind::RunFailed), 1);
    assert_eq!(
        retry(&*store, run, None).await,
        RetryOutcome::NotRetryable(RunStatus::Completed)
    );
    assert_eq!(
        retry(&*store, RunId::new(), None).await,
        RetryOutcome::NotFound
    );
}

/// A retried member of a completed group completes again without a second
/// `group.completed`; one of an unfinished group holds the group open again.
pub async fn a_retried_group_member_never_completes_its_group_twice(store: Arc<dyn Store>) {
    register(&*store, &workflow("member", vec![permanent(step("only"))])).await;
    let ids = create(
        &*store,
        RunBatch {
            group: Some("g".into()),
            runs: (0..2)
                .map(|i| NewRun::new("member", json!({ "i": i })))
                .collect(),
        },
    )
    .await;
    let w = worker(&*store, secs(600)).await;
    let both = claim(&*store, w, 2).await;
    let first = both.iter().find(|c| c.run_id == ids[0]).unwrap().clone();
    let second = both.iter().find(|c| c.run_id == ids[1]).unwrap().clone();
    fail(&*store, &first, false, "no").await;
    // Retried before the group completes: the group waits for it again.
    retry(&*store, ids[0], None).await;
    complete_all(&*store, &[second]).await;
    assert!(store
        .get_group("g")
        .await
        .unwrap()
        .unwrap()
        .completed_at
        .is_none());
    let again = claim_named(&*store, w, "only").await;
    fail(&*store, &again, false, "no again").await;
    let group = store.get_group("g").await.unwrap().unwrap();
    assert!(group.completed_at.is_some());
    assert_eq!(group.counts.get("failed"), Some(&1));
    // Retried after: completes, and the group stays completed once.
    retry(&*store, ids[0], None).await;
    let last = claim_named(&*store, w, "only").await;
    complete_all(&*store, &[last]).await;
    assert_eq!(get_run(&*store, ids[0]).await.status, RunStatus::Completed);
    let events = events_when(&*store, None, "run.completed of the retried run", |e| {
        e.iter()
            .filter(|e| e.kind == EventKind::RunCompleted)
            .count()
            == 2
    })
    .await;
    assert_eq!(count(&events, EventKind::GroupCompleted), 1);
}

/// A revoked step whose worker never reports stays running (holding back its run's
/// end, its lock and any compensation) while that worker lives, and is cancelled once
/// the worker is gone; a dead worker's revoked step likewise.
pub async fn a_revoked_step_nobody_reports_is_cancelled_after_a_lease(store: Arc<dyn Store>) {
    register(&*store, &one_step("silent")).await;
    let runs = start(&*store, "silent", 2).await;
    let quiet = worker(&*store, secs(30)).await;
    let dying = worker(&*store, secs(30)).await;
    let reaper = worker(&*store, secs(3600)).await;
    claim(&*store, quiet, 1).await;
    claim(&*store, dying, 1).await;
    for run in &runs {
        cancel(&*store, *run, true).await;
    }
    store.advance_clock(secs(20)).await.unwrap();
    assert!(matches!(
        store.heartbeat(quiet).await.unwrap(),
        Heartbeat::Alive { .. }
    ));
    store.advance_clock(secs(20)).await.unwrap();
    assert!(matches!(
        store.heartbeat(quiet).await.unwrap(),
        Heartbeat::Alive { .. }
    ));
    store.reap(reaper).await.unwrap();
    let quiet_run = if get_run(&*store, runs[0]).await.steps[0].worker_id == Some(quiet) {
        runs[0]
    } else {
        runs[1]
    };
    let dying_run = if quiet_run == runs[0] {
        runs[1]
    } else {
        runs[0]
    };
    assert_eq!(
        get_run(&*store, dying_run).await.status,
        RunStatus::Cancelled
    );
    assert_eq!(
        get_run(&*store, quiet_run).await.status,
        RunStatus::Running,
        "a live worker's revoked step is not declared stopped"
    );
    store.advance_clock(secs(31)).await.unwrap();
    store.reap(reaper).await.unwrap();
    for run in &runs {
        let view = get_run(&*store, *run).await;
        assert_eq!(view.status, RunStatus::Cancelled, "{run}");
        assert_eq!(view.steps[0].status, StepStatus::Cancelled);
    }
}
