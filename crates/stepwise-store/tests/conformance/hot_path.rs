//! The claimable set and the live leases kept beside the step rows (PostgreSQL keeps
//! them in `step_ready` and `step_lease`): a stale or duplicated entry in either must
//! never hand out a step twice or let a lost attempt's outcome land.

use crate::support::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use stepwise_core::spec::ConcurrencySpec;
use stepwise_core::{RunStatus, StepId, StepStatus, WorkerId};
use stepwise_store::*;

/// Steps leased right now, shared by racing claimers: a second lease of a step
/// whose first one has no outcome yet is the bug these cases look for.
#[derive(Clone, Default)]
struct Leased(Arc<Mutex<HashSet<StepId>>>);

impl Leased {
    fn take(&self, batch: &[ClaimedStep]) {
        let mut held = self.0.lock().unwrap();
        for c in batch {
            assert!(
                held.insert(c.lease.step_id),
                "two live leases for one step: {c:?}"
            );
        }
    }

    fn give_back(&self, batch: &[ClaimedStep]) {
        let mut held = self.0.lock().unwrap();
        for c in batch {
            held.remove(&c.lease.step_id);
        }
    }
}

/// Claims and completes until a claim comes back empty; returns the steps whose
/// completion was accepted.
async fn claim_and_complete(store: Arc<dyn Store>, leased: Leased, limit: u32) -> Vec<StepId> {
    let me = worker(&*store, secs(600)).await;
    let mut done = Vec::new();
    loop {
        let batch = claim(&*store, me, limit).await;
        if batch.is_empty() {
            return done;
        }
        leased.take(&batch);
        let report = complete(&*store, &batch).await;
        leased.give_back(&batch);
        done.extend(report.accepted);
    }
}

async fn racing_claimers(store: &Arc<dyn Store>, n: usize, limit: u32) -> Vec<StepId> {
    let leased = Leased::default();
    let tasks: Vec<_> = (0..n)
        .map(|_| tokio::spawn(claim_and_complete(store.clone(), leased.clone(), limit)))
        .collect();
    let mut done = Vec::new();
    for task in tasks {
        done.extend(task.await.expect("claimer task"));
    }
    done
}

fn once_each(done: &[StepId]) -> HashMap<StepId, usize> {
    let mut seen = HashMap::new();
    for id in done {
        *seen.entry(*id).or_insert(0) += 1;
    }
    for (id, n) in &seen {
        assert_eq!(*n, 1, "step {id:?} completed {n} times");
    }
    seen
}

/// Steps cancelled while claimable (some while a claimer reads them) and then
/// retried are claimable again, and each is leased once at a time and completed once.
pub async fn a_stale_ready_row_never_yields_two_leases_for_one_step(store: Arc<dyn Store>) {
    const RUNS: usize = 60;
    register(&*store, &one_step("stale")).await;
    let runs = start(&*store, "stale", RUNS).await;
    let claimers = {
        let store = store.clone();
        tokio::spawn(async move { racing_claimers(&store, 3, 4).await })
    };
    for run in &runs {
        store
            .cancel_run(&CancelRequest {
                run: *run,
                compensate: false,
            })
            .await
            .expect("cancel");
    }
    let early = claimers.await.expect("claimers");
    // A claimer that raced a cancel may still hold a revoked step: stop it.
    let w = worker(&*store, secs(600)).await;
    assert!(
        claim(&*store, w, 10).await.is_empty(),
        "cancelled runs are not claimable"
    );
    let mut cancelled = Vec::new();
    for run in &runs {
        match get_run(&*store, *run).await.status {
            RunStatus::Cancelled => cancelled.push(*run),
            RunStatus::Completed => {}
            other => panic!("run {run:?} is {other:?}"),
        }
    }
    for run in &cancelled {
        let outcome = store
            .retry_run(&RetryRequest {
                run: *run,
                from: None,
            })
            .await
            .expect("retry");
        assert!(
            matches!(outcome, RetryOutcome::Retried { .. }),
            "{outcome:?}"
        );
    }
    let late = racing_claimers(&store, 4, 3).await;
    once_each(&late);
    assert_eq!(late.len(), cancelled.len(), "every retried step ran once");
    assert!(claim(&*store, w, 10).await.is_empty());
    for run in &runs {
        assert_eq!(get_run(&*store, *run).await.status, RunStatus::Completed);
    }
    let all: Vec<StepId> = early.into_iter().chain(late).collect();
    assert_eq!(once_each(&all).len(), RUNS);
}

/// A keyed run retried after it failed queues again and is admitted at once; its
/// step (PostgreSQL: now with a second ready row) is claimed once by racing claimers.
pub async fn racing_claimers_over_duplicated_ready_rows_claim_each_step_once(
    store: Arc<dyn Store>,
) {
    const RUNS: usize = 40;
    let mut spec = workflow("dup", vec![root("only")]);
    spec.steps[0].max_attempts = Some(1);
    spec.run.concurrency = Some(ConcurrencySpec {
        key: "k-{{ input.k }}".into(),
        limit: 1,
    });
    register(&*store, &spec).await;
    let runs = create(
        &*store,
        RunBatch {
            group: None,
            runs: (0..RUNS)
                .map(|i| NewRun::new("dup", json!({"k": i})))
                .collect(),
        },
    )
    .await;
    let w = worker(&*store, secs(600)).await;
    let first = claim(&*store, w, RUNS as u32).await;
    assert_eq!(first.len(), RUNS);
    for c in &first {
        assert_eq!(fail(&*store, c, false, "boom").await, FailOutcome::Failed);
    }
    for run in &runs {
        assert_eq!(get_run(&*store, *run).await.status, RunStatus::Failed);
        let outcome = store
            .retry_run(&RetryRequest {
                run: *run,
                from: None,
            })
            .await
            .expect("retry");
        assert_eq!(
            outcome,
            RetryOutcome::Retried {
                status: RunStatus::Running,
                steps: vec!["only".into()],
            }
        );
    }
    let done = racing_claimers(&store, 6, 5).await;
    assert_eq!(once_each(&done).len(), RUNS);
    for run in &runs {
        let view = get_run(&*store, *run).await;
        assert_eq!(view.status, RunStatus::Completed);
        assert_eq!(step_of(&view, "only").attempts, 2);
    }
}

/// A worker reaped while it ran a step leaves nothing that lets its late outcome
/// land: the step runs under the new worker, and the dead worker runs nothing.
pub async fn a_lease_row_left_by_a_reaped_worker_never_lets_its_late_outcome_land(
    store: Arc<dyn Store>,
) {
    register(&*store, &one_step("lost")).await;
    let run = start(&*store, "lost", 1).await[0];
    let a = worker(&*store, secs(10)).await;
    let old = claim(&*store, a, 1).await.remove(0);
    store.advance_clock(secs(11)).await.unwrap();
    let b = worker(&*store, secs(600)).await;
    let reaped = store.reap(b).await.unwrap();
    assert_eq!(reaped.workers, vec![a]);
    let new = claim(&*store, b, 1).await.remove(0);
    assert_eq!(new.lease.step_id, old.lease.step_id);

    let late = complete(&*store, std::slice::from_ref(&old)).await;
    assert!(late.accepted.is_empty());
    assert_eq!(late.refused, vec![old.lease]);
    assert_eq!(
        fail(&*store, &old, true, "late").await,
        FailOutcome::Refused
    );
    let released = store.release_steps(&[old.lease]).await.unwrap();
    assert_eq!(released.refused, vec![old.lease]);
    // The dead worker hands back nothing: the step is b's.
    let gone = store.deregister_worker(a).await.unwrap();
    assert!(gone.accepted.is_empty(), "{gone:?}");
    let again = store.reap(b).await.unwrap();
    assert!(again.steps_retried.is_empty() && again.steps_failed.is_empty());
    let counts: HashMap<WorkerId, i64> = store
        .list_workers()
        .await
        .unwrap()
        .into_iter()
        .map(|w| (w.id, w.running_steps))
        .collect();
    assert_eq!(counts.get(&a).copied().unwrap_or(0), 0);
    assert_eq!(counts.get(&b).copied(), Some(1));

    let view = get_run(&*store, run).await;
    let s = step_of(&view, "only");
    assert_eq!((s.status, s.worker_id), (StepStatus::Running, Some(b)));
    let report = complete(&*store, &[new]).await;
    assert_eq!(report.finished_runs, vec![(run, RunStatus::Completed)]);
    assert_eq!(
        step_of(&get_run(&*store, run).await, "only").output,
        Some(json!({"step": "only", "attempt": 2}))
    );
}

/// A clean success is part of its step's history (worker, times, outcome), in the
/// order it happened, and stays there when a retry from that step runs it again.
pub async fn a_clean_success_stays_in_its_steps_history_across_a_retry(store: Arc<dyn Store>) {
    let mut last = after("b", &["a"]);
    last.max_attempts = Some(1);
    register(&*store, &workflow("clean", vec![root("a"), last])).await;
    let run = start(&*store, "clean", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    let a = claim(&*store, w, 1).await.remove(0);
    complete_all(&*store, std::slice::from_ref(&a)).await;
    let b = claim(&*store, w, 1).await.remove(0);
    assert_eq!(fail(&*store, &b, false, "boom").await, FailOutcome::Failed);

    let view = get_run(&*store, run).await;
    let history = &step_of(&view, "a").history;
    assert_eq!(history.len(), 1, "{history:?}");
    let first = history[0].clone();
    assert_eq!((first.number, first.outcome.as_str()), (1, "completed"));
    assert_eq!(first.worker_id, Some(w));
    assert!(first.started_at.is_some_and(|t| t <= first.finished_at));
    let logs = store.attempt_logs(run, "a", None).await.unwrap();
    assert_eq!(
        logs.iter()
            .map(|l| (l.number, l.outcome.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "completed")]
    );

    let outcome = store
        .retry_run(&RetryRequest {
            run,
            from: Some("a".into()),
        })
        .await
        .expect("retry");
    assert!(
        matches!(outcome, RetryOutcome::Retried { .. }),
        "{outcome:?}"
    );
    let view = get_run(&*store, run).await;
    let kept: Vec<_> = step_of(&view, "a")
        .history
        .iter()
        .map(|h| {
            (
                h.number,
                h.outcome.clone(),
                h.worker_id,
                h.started_at,
                h.finished_at,
            )
        })
        .collect();
    assert_eq!(
        kept,
        vec![(
            1,
            "completed".to_string(),
            Some(w),
            first.started_at,
            first.finished_at
        )],
        "kept by the reset"
    );
    let again = claim(&*store, w, 1).await.remove(0);
    assert_eq!((again.step.as_str(), again.attempt), ("a", 2));
    complete_all(&*store, &[again]).await;
    let view = get_run(&*store, run).await;
    let outcomes: Vec<(u32, &str)> = step_of(&view, "a")
        .history
        .iter()
        .map(|h| (h.number, h.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, vec![(1, "completed"), (2, "completed")]);
    let outcomes: Vec<(u32, &str)> = step_of(&view, "b")
        .history
        .iter()
        .map(|h| (h.number, h.outcome.as_str()))
        .collect();
    assert_eq!(outcomes, vec![(1, "failed")]);
}

/// Workers vacuum the claim tables every few seconds while others claim and
/// complete: a vacuum racing the hot path neither fails nor loses or doubles a step.
pub async fn vacuuming_the_claim_tables_beside_claims_loses_nothing(store: Arc<dyn Store>) {
    register(&*store, &workflow("v", vec![step("a"), step("b")])).await;
    let runs = start(&*store, "v", 200).await;
    let w = worker(&*store, secs(600)).await;
    let vacuum = {
        let s = store.clone();
        tokio::spawn(async move {
            for _ in 0..20 {
                s.vacuum_claim_tables().await.expect("vacuum");
            }
        })
    };
    let done = drain(&*store, w).await;
    vacuum.await.unwrap();
    store.vacuum_claim_tables().await.expect("vacuum");
    assert_eq!(done.len() + drain(&*store, w).await.len(), 400);
    for run in runs {
        assert_eq!(
            get_run(&*store, run).await.status,
            stepwise_core::RunStatus::Completed
        );
    }
}
