//! Leases, fencing, heartbeats and the reaper (invariants 1, 2 and 7).

use crate::support::*;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use stepwise_core::{EventKind, LeaseToken, RunStatus, StepId, StepStatus};
use stepwise_store::*;

/// A worker whose lease expired and whose step was reclaimed cannot write anything.
pub async fn late_writes_are_fenced_after_reclaim(store: Arc<dyn Store>) {
    register(&*store, &one_step("fence")).await;
    let run = start(&*store, "fence", 1).await[0];
    let a = worker(&*store, secs(10)).await;
    let mine = claim(&*store, a, 1).await;
    assert_eq!(mine.len(), 1);
    let old = mine[0].clone();

    store.advance_clock(secs(11)).await.unwrap();
    let b = worker(&*store, secs(60)).await;
    let reaped = store.reap(b).await.unwrap();
    assert_eq!(reaped.workers, vec![a]);
    assert_eq!(reaped.steps_retried, vec![old.lease.step_id]);
    assert!(reaped.steps_failed.is_empty());

    let theirs = claim(&*store, b, 1).await;
    assert_eq!(theirs.len(), 1);
    let new = theirs[0].clone();
    assert_eq!(new.lease.step_id, old.lease.step_id, "the same step");
    assert_ne!(new.lease.token, old.lease.token, "under a fresh token");
    assert_eq!(new.attempt, 2, "the reaped attempt counted");

    // A's late writes change nothing and say so.
    let report = store
        .complete_steps(&[StepSuccess {
            lease: old.lease,
            output: json!("late"),
            log: None,
        }])
        .await
        .unwrap();
    assert!(report.accepted.is_empty());
    assert_eq!(report.refused, vec![old.lease]);
    assert!(report.finished_runs.is_empty());
    assert_eq!(
        fail(&*store, &old, true, "late").await,
        FailOutcome::Refused
    );
    assert_eq!(
        fail(&*store, &old, false, "late").await,
        FailOutcome::Refused
    );
    let released = store.release_steps(&[old.lease]).await.unwrap();
    assert!(released.accepted.is_empty());
    assert_eq!(released.refused, vec![old.lease]);
    assert_eq!(store.heartbeat(a).await.unwrap(), Heartbeat::Reaped);

    let view = get_run(&*store, run).await;
    let s = step_of(&view, "only");
    assert_eq!(s.status, StepStatus::Running);
    assert_eq!(s.worker_id, Some(b));
    assert_eq!(s.attempts, 2);
    assert_eq!(s.output, None);
    assert_eq!(s.error, None);
    let outcomes: Vec<&str> = s.history.iter().map(|h| h.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["reaped"]);
    assert_eq!(view.status, RunStatus::Running);

    let report = store
        .complete_steps(&[StepSuccess {
            lease: new.lease,
            output: json!("b's"),
            log: None,
        }])
        .await
        .unwrap();
    assert_eq!(report.accepted, vec![new.lease.step_id]);
    assert!(report.refused.is_empty());
    assert_eq!(report.finished_runs, vec![(run, RunStatus::Completed)]);
    let view = get_run(&*store, run).await;
    let s = step_of(&view, "only");
    assert_eq!(s.status, StepStatus::Completed);
    assert_eq!(s.output, Some(json!("b's")));
    let outcomes: Vec<&str> = s.history.iter().map(|h| h.outcome.as_str()).collect();
    assert_eq!(outcomes, vec!["reaped", "completed"]);

    // Still refused once the step is done.
    let again = complete(&*store, &[old]).await;
    assert!(again.accepted.is_empty());
    assert_eq!(again.refused.len(), 1);

    let events = run_events(&*store, run, EventKind::RunCompleted).await;
    assert_eq!(count(&events, EventKind::StepCompleted), 1);
    assert_eq!(count(&events, EventKind::StepFailed), 0);
    assert_eq!(count(&events, EventKind::StepReleased), 0);
    assert_eq!(count(&events, EventKind::StepStarted), 2);
    assert_eq!(count(&events, EventKind::StepReaped), 1);
    assert_eq!(count(&events, EventKind::RunCompleted), 1);
}

/// Invariant 7: a worker's reap call never reaps that worker, another's does.
pub async fn reaper_never_reaps_its_caller(store: Arc<dyn Store>) {
    register(&*store, &one_step("self-reap")).await;
    let run = start(&*store, "self-reap", 1).await[0];
    let a = worker(&*store, secs(10)).await;
    let claimed = claim(&*store, a, 1).await;
    assert_eq!(claimed.len(), 1);
    store.advance_clock(secs(11)).await.unwrap();

    let own = store.reap(a).await.unwrap();
    assert_eq!(
        own,
        ReapReport::default(),
        "the caller is not reaped by itself"
    );
    let view = get_run(&*store, run).await;
    assert_eq!(step_of(&view, "only").status, StepStatus::Running);
    assert_eq!(step_of(&view, "only").worker_id, Some(a));
    let listed = store.list_workers().await.unwrap();
    let row = listed.iter().find(|w| w.id == a).expect("a is listed");
    assert_eq!(row.status, "alive");
    assert_eq!(row.running_steps, 1);

    let b = worker(&*store, secs(30)).await;
    let theirs = store.reap(b).await.unwrap();
    assert_eq!(theirs.workers, vec![a]);
    assert_eq!(theirs.steps_retried, vec![claimed[0].lease.step_id]);
    let listed = store.list_workers().await.unwrap();
    let row = listed.iter().find(|w| w.id == a).expect("a is listed");
    assert_ne!(row.status, "alive");
    assert_eq!(row.running_steps, 0);

    // b outlives its own lease: its own pass still spares it.
    store.advance_clock(secs(31)).await.unwrap();
    assert_eq!(store.reap(b).await.unwrap(), ReapReport::default());
    let c = worker(&*store, secs(30)).await;
    assert_eq!(store.reap(c).await.unwrap().workers, vec![b]);
}

/// A reaped step goes back to pending and is claimed again under a new lease.
pub async fn reaped_steps_are_claimable_again_with_a_new_lease(store: Arc<dyn Store>) {
    register(&*store, &one_step("reclaim")).await;
    let runs = start(&*store, "reclaim", 3).await;
    let a = worker(&*store, secs(10)).await;
    let old = claim(&*store, a, 10).await;
    assert_eq!(old.len(), 3);
    store.advance_clock(secs(11)).await.unwrap();
    let b = worker(&*store, secs(60)).await;
    let report = store.reap(b).await.unwrap();
    let retried: HashSet<StepId> = report.steps_retried.iter().copied().collect();
    let held: HashSet<StepId> = old.iter().map(|c| c.lease.step_id).collect();
    assert_eq!(retried, held);

    for run in &runs {
        let view = get_run(&*store, *run).await;
        let s = step_of(&view, "only");
        assert_eq!(s.status, StepStatus::Pending);
        assert_eq!(s.history.len(), 1);
        assert_eq!(s.history[0].outcome, "reaped");
        assert_eq!(s.history[0].number, 1);
        assert_eq!(s.history[0].worker_id, Some(a));
    }

    assert!(
        claim(&*store, a, 10).await.is_empty(),
        "a reaped worker claims nothing"
    );
    let new = claim(&*store, b, 10).await;
    assert_eq!(new.len(), 3);
    let tokens: HashSet<LeaseToken> = old.iter().map(|c| c.lease.token).collect();
    for c in &new {
        assert!(held.contains(&c.lease.step_id));
        assert!(!tokens.contains(&c.lease.token), "a fresh token per claim");
        assert_eq!(c.attempt, 2);
    }
    let report = complete_all(&*store, &new).await;
    assert_eq!(report.finished_runs.len(), 3);
    let stale = complete(&*store, &old).await;
    assert_eq!(stale.refused.len(), 3);
}

/// Reaping the last allowed attempt fails the step and its run.
pub async fn reaping_the_last_attempt_fails_the_step(store: Arc<dyn Store>) {
    let spec = workflow("fragile", vec![retrying(step("a"), 1, secs(1)), step("b")]);
    register(&*store, &spec).await;
    let run = start(&*store, "fragile", 1).await[0];
    let a = worker(&*store, secs(10)).await;
    let claimed = claim(&*store, a, 1).await;
    assert_eq!(claimed.len(), 1);
    store.advance_clock(secs(11)).await.unwrap();
    let b = worker(&*store, secs(60)).await;
    let report = store.reap(b).await.unwrap();
    assert_eq!(report.steps_failed, vec![claimed[0].lease.step_id]);
    assert!(report.steps_retried.is_empty());

    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Failed);
    assert!(view.finished_at.is_some());
    assert_eq!(step_of(&view, "a").status, StepStatus::Failed);
    assert_eq!(step_of(&view, "b").status, StepStatus::Skipped);
    assert!(claim(&*store, b, 10).await.is_empty());
    let events = run_events(&*store, run, EventKind::RunFailed).await;
    assert_eq!(count(&events, EventKind::StepReaped), 1);
    assert_eq!(count(&events, EventKind::StepSkipped), 1);
    assert_eq!(count(&events, EventKind::RunFailed), 1);
}

/// Heartbeats extend the lease judged by the database clock.
pub async fn heartbeats_keep_a_slow_step_from_being_reaped(store: Arc<dyn Store>) {
    register(&*store, &one_step("slow")).await;
    let run = start(&*store, "slow", 1).await[0];
    let a = worker(&*store, secs(10)).await;
    let b = worker(&*store, secs(600)).await;
    let mine = claim(&*store, a, 1).await;
    assert_eq!(mine.len(), 1);

    store.advance_clock(secs(8)).await.unwrap();
    let Heartbeat::Alive { expires_at } = store.heartbeat(a).await.unwrap() else {
        panic!("a is alive");
    };
    let now = store.now().await.unwrap();
    let left = expires_at - now;
    assert!(
        left > chrono::Duration::seconds(5) && left <= chrono::Duration::seconds(10),
        "the heartbeat extends the lease by its length from now: {left}"
    );
    store.advance_clock(secs(8)).await.unwrap();
    assert_eq!(
        store.reap(b).await.unwrap(),
        ReapReport::default(),
        "nothing reaped"
    );
    let view = get_run(&*store, run).await;
    assert_eq!(step_of(&view, "only").status, StepStatus::Running);
    assert_eq!(step_of(&view, "only").worker_id, Some(a));
    let report = complete_all(&*store, &mine).await;
    assert_eq!(report.finished_runs, vec![(run, RunStatus::Completed)]);

    // Without heartbeats the same worker is reaped.
    start(&*store, "slow", 1).await;
    let next = claim(&*store, a, 1).await;
    assert_eq!(next.len(), 1);
    store.advance_clock(secs(11)).await.unwrap();
    let report = store.reap(b).await.unwrap();
    assert_eq!(report.workers, vec![a]);
    assert_eq!(report.steps_retried, vec![next[0].lease.step_id]);
}

/// One stale lease in a batch is reported; the others commit.
pub async fn batch_complete_with_one_stale_lease_commits_the_others_and_reports_it(
    store: Arc<dyn Store>,
) {
    register(&*store, &one_step("mixed")).await;
    let runs = start(&*store, "mixed", 4).await;
    let a = worker(&*store, secs(60)).await;
    let b = worker(&*store, secs(60)).await;
    let mine = claim(&*store, a, 4).await;
    assert_eq!(mine.len(), 4);
    let stale = mine[2].clone();
    let released = store.release_steps(&[stale.lease]).await.unwrap();
    assert_eq!(released.accepted, vec![stale.lease.step_id]);
    let theirs = claim(&*store, b, 4).await;
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].lease.step_id, stale.lease.step_id);

    let report = complete(&*store, &mine).await;
    assert_eq!(report.refused, vec![stale.lease]);
    let accepted: HashSet<StepId> = report.accepted.iter().copied().collect();
    let expected: HashSet<StepId> = [0, 1, 3].iter().map(|&i| mine[i].lease.step_id).collect();
    assert_eq!(accepted, expected);
    assert_eq!(accepted.len(), report.accepted.len());
    let finished: HashSet<_> = report.finished_runs.iter().copied().collect();
    let expected: HashSet<_> = [0, 1, 3]
        .iter()
        .map(|&i| (mine[i].run_id, RunStatus::Completed))
        .collect();
    assert_eq!(finished, expected);

    let view = get_run(&*store, stale.run_id).await;
    assert_eq!(step_of(&view, "only").status, StepStatus::Running);
    assert_eq!(step_of(&view, "only").worker_id, Some(b));
    assert_eq!(
        step_of(&view, "only").attempts,
        1,
        "the released attempt is not counted"
    );
    complete_all(&*store, &theirs).await;
    for run in runs {
        let events = run_events(&*store, run, EventKind::RunCompleted).await;
        assert_eq!(count(&events, EventKind::StepCompleted), 1);
        assert_eq!(count(&events, EventKind::RunCompleted), 1);
    }
}

/// A stopping worker hands its steps back; it claims nothing afterwards.
pub async fn deregistering_a_worker_releases_its_steps(store: Arc<dyn Store>) {
    register(&*store, &one_step("stopping")).await;
    let runs = start(&*store, "stopping", 2).await;
    let a = worker(&*store, secs(60)).await;
    let held = claim(&*store, a, 10).await;
    assert_eq!(held.len(), 2);
    let report = store.deregister_worker(a).await.unwrap();
    let released: HashSet<StepId> = report.accepted.iter().copied().collect();
    assert_eq!(released, held.iter().map(|c| c.lease.step_id).collect());
    assert!(report.refused.is_empty());
    for run in &runs {
        let view = get_run(&*store, *run).await;
        assert_eq!(step_of(&view, "only").status, StepStatus::Pending);
        assert_eq!(step_of(&view, "only").attempts, 0);
    }
    assert_eq!(store.heartbeat(a).await.unwrap(), Heartbeat::Reaped);
    assert!(
        claim(&*store, a, 10).await.is_empty(),
        "a stopped worker claims nothing"
    );
    assert_eq!(complete(&*store, &held).await.refused.len(), 2);
    let b = worker(&*store, secs(60)).await;
    let again = claim(&*store, b, 10).await;
    assert_eq!(again.len(), 2);
    assert!(again.iter().all(|c| c.attempt == 1));
    complete_all(&*store, &again).await;
}

/// A completion racing the reaper for the same step: exactly one of them wins, and
/// the step's history, the answers and the events all agree on which.
pub async fn a_completion_racing_the_reaper_wins_or_is_refused_never_both(store: Arc<dyn Store>) {
    const RUNS: usize = 60;
    register(&*store, &one_step("photo-finish")).await;
    let runs = start(&*store, "photo-finish", RUNS).await;
    let a = worker(&*store, secs(10)).await;
    let held = claim(&*store, a, 100).await;
    assert_eq!(held.len(), RUNS);
    store.advance_clock(secs(11)).await.unwrap();
    let b = worker(&*store, secs(3600)).await;

    let barrier = Arc::new(tokio::sync::Barrier::new(RUNS + 1));
    let mut completions = Vec::new();
    for c in held.clone() {
        let store = store.clone();
        let barrier = barrier.clone();
        completions.push(tokio::spawn(async move {
            barrier.wait().await;
            complete(&*store, &[c]).await
        }));
    }
    let reaper = {
        let store = store.clone();
        let barrier = barrier.clone();
        tokio::spawn(async move {
            barrier.wait().await;
            store.reap(b).await.expect("reap")
        })
    };
    let mut accepted = HashSet::new();
    for t in completions {
        let report = t.await.unwrap();
        assert_eq!(report.accepted.len() + report.refused.len(), 1);
        accepted.extend(report.accepted);
    }
    let reaped = reaper.await.unwrap();
    assert_eq!(reaped.workers, vec![a]);
    let requeued: HashSet<StepId> = reaped.steps_retried.iter().copied().collect();
    assert!(
        accepted.is_disjoint(&requeued),
        "a step both completed and reaped"
    );
    assert_eq!(
        accepted.len() + requeued.len(),
        RUNS,
        "every step had one winner"
    );

    let redone = drain(&*store, b).await;
    let redone: HashSet<StepId> = redone.iter().map(|c| c.lease.step_id).collect();
    assert_eq!(redone, requeued, "exactly the reaped steps ran again");
    for run in &runs {
        let view = get_run(&*store, *run).await;
        assert_eq!(view.status, RunStatus::Completed);
        let s = step_of(&view, "only");
        let outcomes: Vec<&str> = s.history.iter().map(|h| h.outcome.as_str()).collect();
        if accepted.contains(&s.id) {
            assert_eq!(outcomes, vec!["completed"]);
        } else {
            assert_eq!(outcomes, vec!["reaped", "completed"]);
        }
    }
    let events = events_when(&*store, None, "every run completed", |e| {
        count(e, EventKind::RunCompleted) == RUNS
    })
    .await;
    assert_eq!(count(&events, EventKind::StepCompleted), RUNS);
    assert_eq!(count(&events, EventKind::StepReaped), requeued.len());
    assert_eq!(
        count(&events, EventKind::StepStarted),
        RUNS + requeued.len()
    );
}

/// A heartbeat racing the reaper: the worker is either reaped (and told so) or alive
/// with its steps, never both and never neither.
pub async fn a_heartbeat_racing_the_reaper_agrees_with_it(store: Arc<dyn Store>) {
    const WORKERS: usize = 30;
    register(&*store, &one_step("pulse")).await;
    start(&*store, "pulse", WORKERS).await;
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let w = worker(&*store, secs(10)).await;
        let held = claim(&*store, w, 1).await;
        assert_eq!(held.len(), 1);
        workers.push((w, held[0].clone()));
    }
    store.advance_clock(secs(11)).await.unwrap();
    let reaper_id = worker(&*store, secs(3600)).await;

    let barrier = Arc::new(tokio::sync::Barrier::new(WORKERS + 1));
    let mut beats = Vec::new();
    for (w, _) in &workers {
        let (store, barrier, w) = (store.clone(), barrier.clone(), *w);
        beats.push(tokio::spawn(async move {
            barrier.wait().await;
            (w, store.heartbeat(w).await.expect("heartbeat"))
        }));
    }
    let reaper = {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            store.reap(reaper_id).await.expect("reap")
        })
    };
    let mut alive = HashSet::new();
    for t in beats {
        let (w, beat) = t.await.unwrap();
        if matches!(beat, Heartbeat::Alive { .. }) {
            alive.insert(w);
        }
    }
    let reaped: HashSet<_> = reaper.await.unwrap().workers.into_iter().collect();
    assert!(
        alive.is_disjoint(&reaped),
        "a reaped worker was told it is alive"
    );
    assert_eq!(alive.len() + reaped.len(), WORKERS);

    for (w, held) in &workers {
        let view = get_run(&*store, held.run_id).await;
        let s = step_of(&view, "only");
        if alive.contains(w) {
            assert_eq!(s.status, StepStatus::Running);
            assert_eq!(s.worker_id, Some(*w));
            assert_eq!(
                store.heartbeat(*w).await.unwrap(),
                store_alive(&*store, *w).await
            );
            complete_all(&*store, std::slice::from_ref(held)).await;
        } else {
            assert_eq!(s.status, StepStatus::Pending);
            assert_eq!(store.heartbeat(*w).await.unwrap(), Heartbeat::Reaped);
            assert_eq!(
                complete(&*store, std::slice::from_ref(held))
                    .await
                    .refused
                    .len(),
                1
            );
        }
    }
}

/// The answer a live worker's heartbeat gets: its lease as `list_workers` shows it.
async fn store_alive(store: &dyn Store, w: stepwise_core::WorkerId) -> Heartbeat {
    let listed = store.list_workers().await.unwrap();
    let row = listed.iter().find(|v| v.id == w).expect("listed");
    assert_eq!(row.status, "alive");
    Heartbeat::Alive {
        expires_at: row.expires_at,
    }
}
