//! Failures, retries, backoff, release and delayed starts.

use crate::support::*;
use serde_json::json;
use std::sync::Arc;
use stepwise_core::{EventKind, RunStatus, StepStatus};
use stepwise_store::*;

/// A step gets `max_attempts` attempts; the last failure fails it and its run.
pub async fn retries_fail_the_step_at_max_attempts(store: Arc<dyn Store>) {
    register(
        &*store,
        &workflow("retry", vec![retrying(step("flaky"), 3, secs(1))]),
    )
    .await;
    let run = start(&*store, "retry", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    for attempt in 1..=3u32 {
        let claimed = claim(&*store, w, 10).await;
        assert_eq!(claimed.len(), 1, "attempt {attempt} is claimable");
        assert_eq!(claimed[0].attempt, attempt);
        assert_eq!(claimed[0].max_attempts, 3);
        let outcome = fail(&*store, &claimed[0], true, &format!("boom {attempt}")).await;
        if attempt < 3 {
            let FailOutcome::Retrying {
                attempt: next,
                run_after,
            } = outcome
            else {
                panic!("attempt {attempt} is retried: {outcome:?}");
            };
            assert_eq!(next, attempt + 1);
            assert!(run_after > store.now().await.unwrap() - chrono::Duration::seconds(1));
            assert_eq!(get_run(&*store, run).await.status, RunStatus::Running);
            store.advance_clock(secs(30)).await.unwrap();
        } else {
            assert_eq!(outcome, FailOutcome::Failed);
        }
    }
    assert!(claim(&*store, w, 10).await.is_empty());
    store.advance_clock(secs(600)).await.unwrap();
    assert!(
        claim(&*store, w, 10).await.is_empty(),
        "a failed step is never retried"
    );

    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Failed);
    assert!(view.finished_at.is_some());
    assert!(
        view.error.as_deref().unwrap_or_default().contains("boom 3"),
        "{:?}",
        view.error
    );
    let s = step_of(&view, "flaky");
    assert_eq!(s.status, StepStatus::Failed);
    assert_eq!(s.attempts, 3);
    assert_eq!(s.error.as_deref(), Some("boom 3"));
    let numbers: Vec<u32> = s.history.iter().map(|h| h.number).collect();
    assert_eq!(numbers, vec![1, 2, 3]);
    assert!(s.history.iter().all(|h| h.outcome == "failed"));
    let errors: Vec<&str> = s
        .history
        .iter()
        .filter_map(|h| h.error.as_deref())
        .collect();
    assert_eq!(errors, vec!["boom 1", "boom 2", "boom 3"]);

    let events = run_events(&*store, run, EventKind::RunFailed).await;
    assert_eq!(count(&events, EventKind::StepStarted), 3);
    assert_eq!(count(&events, EventKind::StepFailed), 3);
    assert_eq!(count(&events, EventKind::StepRetrying), 2);
    assert_eq!(count(&events, EventKind::RunFailed), 1);
    assert_eq!(count(&events, EventKind::RunCompleted), 0);
}

/// A permanent error fails the step at once, whatever attempts are left.
pub async fn permanent_errors_fail_without_retrying(store: Arc<dyn Store>) {
    register(
        &*store,
        &workflow("permanent", vec![retrying(step("once"), 5, secs(1))]),
    )
    .await;
    let run = start(&*store, "permanent", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    let claimed = claim(&*store, w, 1).await;
    assert_eq!(
        fail(&*store, &claimed[0], false, "bad input").await,
        FailOutcome::Failed
    );
    store.advance_clock(secs(60)).await.unwrap();
    assert!(claim(&*store, w, 1).await.is_empty());
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Failed);
    assert_eq!(step_of(&view, "once").attempts, 1);
}

/// Backoff is judged by the database clock: not claimable until it has passed.
pub async fn step_is_not_claimable_before_its_backoff_ends(store: Arc<dyn Store>) {
    register(
        &*store,
        &workflow("backoff", vec![retrying(step("wait"), 3, secs(10))]),
    )
    .await;
    let run = start(&*store, "backoff", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    let claimed = claim(&*store, w, 1).await;
    let outcome = fail(&*store, &claimed[0], true, "later").await;
    let FailOutcome::Retrying { attempt, run_after } = outcome else {
        panic!("retried: {outcome:?}");
    };
    assert_eq!(attempt, 2);
    let wait = run_after - store.now().await.unwrap();
    assert!(
        wait > chrono::Duration::seconds(8) && wait <= chrono::Duration::seconds(10),
        "run_after is the failure's database time plus 10 s: {wait}"
    );
    assert!(claim(&*store, w, 1).await.is_empty(), "backing off");
    let view = get_run(&*store, run).await;
    let s = step_of(&view, "wait");
    assert_eq!(s.status, StepStatus::Pending, "shown as pending");
    assert_eq!(s.run_after, Some(run_after));

    store.advance_clock(secs(5)).await.unwrap();
    assert!(
        claim(&*store, w, 1).await.is_empty(),
        "5 s in, still backing off"
    );
    store.advance_clock(secs(6)).await.unwrap();
    let again = claim(&*store, w, 1).await;
    assert_eq!(again.len(), 1, "claimable after 11 s");
    assert_eq!(again[0].attempt, 2);
    complete_all(&*store, &again).await;
    assert_eq!(get_run(&*store, run).await.status, RunStatus::Completed);
}

/// A step that fails for good stops its run from claiming; the run fails only once
/// its running siblings have finished.
pub async fn a_failed_step_halts_its_run(store: Arc<dyn Store>) {
    let spec = workflow(
        "halt",
        vec![
            retrying(root("a"), 1, secs(1)),
            root("b"),
            after("c", &["a"]),
            root("d"),
        ],
    );
    register(&*store, &spec).await;
    let run = start(&*store, "halt", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    let claimed = claim(&*store, w, 2).await;
    let names: Vec<&str> = claimed.iter().map(|c| c.step.as_str()).collect();
    assert_eq!(names, vec!["a", "b"]);

    assert_eq!(
        fail(&*store, &claimed[0], true, "broken").await,
        FailOutcome::Failed
    );
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Running, "b is still running");
    assert!(view.finished_at.is_none());
    assert_eq!(step_of(&view, "a").status, StepStatus::Failed);
    assert_eq!(step_of(&view, "b").status, StepStatus::Running);
    assert_eq!(step_of(&view, "c").status, StepStatus::Skipped);
    assert_eq!(step_of(&view, "d").status, StepStatus::Skipped);
    assert!(
        claim(&*store, w, 10).await.is_empty(),
        "nothing of a halted run is claimed"
    );

    let report = complete_all(&*store, &claimed[1..]).await;
    assert_eq!(report.finished_runs, vec![(run, RunStatus::Failed)]);
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Failed);
    assert!(view.finished_at.is_some());
    assert!(view.error.as_deref().unwrap_or_default().contains("broken"));
    assert_eq!(step_of(&view, "b").status, StepStatus::Completed);

    let events = run_events(&*store, run, EventKind::RunFailed).await;
    assert_eq!(count(&events, EventKind::StepSkipped), 2);
    assert_eq!(count(&events, EventKind::StepFailed), 1);
    assert_eq!(count(&events, EventKind::StepCompleted), 1);
    assert_eq!(count(&events, EventKind::RunFailed), 1);
    assert_eq!(count(&events, EventKind::RunCompleted), 0);
}

/// Releasing hands a step back at once without spending an attempt.
pub async fn released_steps_return_to_pending_without_counting_the_attempt(store: Arc<dyn Store>) {
    register(
        &*store,
        &workflow("release", vec![retrying(step("only"), 1, secs(1))]),
    )
    .await;
    let run = start(&*store, "release", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    let first = claim(&*store, w, 1).await;
    assert_eq!(first[0].attempt, 1);
    let report = store.release_steps(&[first[0].lease]).await.unwrap();
    assert_eq!(report.accepted, vec![first[0].lease.step_id]);
    assert!(report.refused.is_empty());
    assert!(report.finished_runs.is_empty());

    let view = get_run(&*store, run).await;
    let s = step_of(&view, "only");
    assert_eq!(s.status, StepStatus::Pending);
    assert_eq!(s.attempts, 0);
    assert_eq!(s.history.len(), 1);
    assert_eq!(s.history[0].outcome, "released");
    assert_eq!(s.history[0].number, 1);

    let again = store.release_steps(&[first[0].lease]).await.unwrap();
    assert_eq!(
        again.refused,
        vec![first[0].lease],
        "a release is lease-gated too"
    );

    // With max_attempts = 1, a counted release would leave no attempt.
    let second = claim(&*store, w, 1).await;
    assert_eq!(second.len(), 1, "claimable again at once");
    assert_eq!(second[0].attempt, 1, "the released attempt was not counted");
    assert_ne!(second[0].lease.token, first[0].lease.token);
    complete_all(&*store, &second).await;
    let events = run_events(&*store, run, EventKind::RunCompleted).await;
    assert_eq!(count(&events, EventKind::StepReleased), 1);
    assert_eq!(count(&events, EventKind::StepStarted), 2);
}

/// A delayed run's first steps wait for the database clock.
pub async fn delayed_starts_are_not_claimable_before_their_time(store: Arc<dyn Store>) {
    register(&*store, &one_step("later")).await;
    let w = worker(&*store, secs(3600)).await;
    let after = NewRun::new("later", json!("after")).start(StartAt::After(secs(60)));
    let at_time = store.now().await.unwrap() + chrono::Duration::seconds(120);
    let at = NewRun::new("later", json!("at")).start(StartAt::At(at_time));
    let delayed = create(
        &*store,
        RunBatch {
            group: None,
            runs: vec![after, at],
        },
    )
    .await;
    let now = start(&*store, "later", 1).await[0];

    let first = claim(&*store, w, 10).await;
    assert_eq!(first.len(), 1, "only the undelayed run");
    assert_eq!(first[0].run_id, now);
    let view = get_run(&*store, delayed[1]).await;
    assert_eq!(step_of(&view, "only").status, StepStatus::Pending);
    assert_eq!(step_of(&view, "only").run_after, Some(at_time));

    store.advance_clock(secs(50)).await.unwrap();
    assert!(claim(&*store, w, 10).await.is_empty());
    store.advance_clock(secs(11)).await.unwrap();
    let second = claim(&*store, w, 10).await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].run_id, delayed[0]);
    store.advance_clock(secs(50)).await.unwrap();
    assert!(claim(&*store, w, 10).await.is_empty());
    store.advance_clock(secs(10)).await.unwrap();
    let third = claim(&*store, w, 10).await;
    assert_eq!(third.len(), 1);
    assert_eq!(third[0].run_id, delayed[1]);
}

/// Once a run halts, none of its steps runs again: a running step that is released,
/// reaped or fails with attempts left ends instead of going back to the queue, and
/// the run fails when the last of them ends.
pub async fn a_halted_run_never_runs_a_step_again(store: Arc<dyn Store>) {
    let spec = workflow(
        "halting",
        vec![
            retrying(root("a"), 1, secs(1)),
            root("b"),
            root("c"),
            retrying(root("d"), 3, secs(1)),
            retrying(root("e"), 3, secs(1)),
        ],
    );
    register(&*store, &spec).await;
    let run = start(&*store, "halting", 1).await[0];
    let w1 = worker(&*store, secs(10)).await;
    let w2 = worker(&*store, secs(3600)).await;
    let ab = claim(&*store, w2, 2).await;
    let c = claim(&*store, w1, 1).await;
    let de = claim(&*store, w2, 2).await;
    let names: Vec<&str> = ab
        .iter()
        .chain(&c)
        .chain(&de)
        .map(|c| c.step.as_str())
        .collect();
    assert_eq!(names, vec!["a", "b", "c", "d", "e"]);
    let (a, b, c, d, e) = (&ab[0], &ab[1], &c[0], &de[0], &de[1]);

    assert!(matches!(
        fail(&*store, e, true, "e").await,
        FailOutcome::Retrying { .. }
    ));
    assert_eq!(
        fail(&*store, a, false, "a is broken").await,
        FailOutcome::Failed
    );
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Running, "b, c and d still run");
    assert_eq!(
        step_of(&view, "e").status,
        StepStatus::Skipped,
        "waiting out a backoff"
    );

    let released = store.release_steps(&[b.lease]).await.unwrap();
    assert_eq!(released.accepted, vec![b.lease.step_id]);
    assert!(released.finished_runs.is_empty(), "c and d still run");
    assert_eq!(
        step_of(&get_run(&*store, run).await, "b").status,
        StepStatus::Skipped
    );
    let outcome = fail(&*store, d, true, "d").await;
    assert_eq!(outcome, FailOutcome::Failed, "no retry inside a halted run");
    store.advance_clock(secs(11)).await.unwrap();
    let reaped = store.reap(w2).await.unwrap();
    assert_eq!(reaped.workers, vec![w1]);
    assert!(
        reaped.steps_retried.is_empty(),
        "c is not put back: {reaped:?}"
    );
    assert_eq!(reaped.steps_failed, vec![c.lease.step_id]);

    store.advance_clock(secs(60)).await.unwrap();
    assert!(
        claim(&*store, w2, 10).await.is_empty(),
        "nothing of the run is claimed"
    );
    let view = get_run(&*store, run).await;
    for s in &view.steps {
        assert!(s.status.is_terminal(), "{} is {}", s.name, s.status);
    }
    assert_eq!(view.status, RunStatus::Failed);
    assert!(view.finished_at.is_some());
    assert_eq!(view.progress, Progress { done: 5, total: 5 });
    let outcomes = |name: &str| -> Vec<String> {
        let s = step_of(&view, name);
        s.history.iter().map(|h| h.outcome.clone()).collect()
    };
    assert_eq!(outcomes("b"), vec!["released"]);
    assert_eq!(outcomes("c"), vec!["reaped"]);
    assert_eq!(outcomes("d"), vec!["failed"]);
    assert_eq!(step_of(&view, "d").status, StepStatus::Failed);
    let events = run_events(&*store, run, EventKind::RunFailed).await;
    assert_eq!(count(&events, EventKind::RunFailed), 1);
    assert_eq!(count(&events, EventKind::StepSkipped), 2, "e, then b");
}

/// A retry or a release racing the halt of its run never puts the step back in the
/// queue.
pub async fn a_retry_racing_a_halt_never_requeues_the_step(store: Arc<dyn Store>) {
    const RUNS: usize = 80;
    let spec = workflow(
        "halt-race",
        vec![
            retrying(root("fatal"), 1, secs(1)),
            retrying(root("flaky"), 3, secs(1)),
            root("leaving"),
        ],
    );
    register(&*store, &spec).await;
    let w = worker(&*store, secs(3600)).await;
    // Rounds make the race likely on every backend.
    for _round in 0..3 {
        race_a_halt(&store, w, RUNS).await;
    }
}

async fn race_a_halt(store: &Arc<dyn Store>, w: stepwise_core::WorkerId, n: usize) {
    let runs = start(&**store, "halt-race", n).await;
    let claimed = claim(&**store, w, 1000).await;
    assert_eq!(claimed.len(), n * 3);
    let barrier = Arc::new(tokio::sync::Barrier::new(claimed.len()));
    let mut tasks = Vec::new();
    for c in claimed {
        let store = Arc::clone(store);
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            if c.step == "leaving" {
                let report = store.release_steps(&[c.lease]).await.expect("release");
                assert_eq!(report.accepted, vec![c.lease.step_id]);
                return;
            }
            let retryable = c.step == "flaky";
            let outcome = fail(&*store, &c, retryable, &c.step).await;
            assert_ne!(outcome, FailOutcome::Refused);
            if !retryable {
                assert_eq!(outcome, FailOutcome::Failed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    store.advance_clock(secs(60)).await.unwrap();
    assert!(
        claim(&**store, w, 1000).await.is_empty(),
        "no step of a halted run is claimed"
    );
    for run in runs {
        let view = get_run(&**store, run).await;
        assert_eq!(view.status, RunStatus::Failed);
        assert_eq!(view.progress, Progress { done: 3, total: 3 });
        assert!(view.steps.iter().all(|s| s.status.is_terminal()));
    }
}
