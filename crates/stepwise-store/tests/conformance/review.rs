//! Cases from the store review: fencing inside one batch, values both backends must
//! store alike, and worker liveness judged by the database clock.

use crate::support::*;
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use stepwise_core::{StepStatus, WorkerId};
use stepwise_store::*;

/// A batch naming one step twice, once under a stale lease (released, then claimed
/// again by the same worker) and once under its current lease: only the current one
/// is recorded, and the stale one is reported refused (invariant 1).
pub async fn a_stale_lease_beside_the_current_one_in_a_batch_is_refused(store: Arc<dyn Store>) {
    register(&*store, &one_step("twice")).await;
    let run = start(&*store, "twice", 1).await[0];
    let w = worker(&*store, secs(3600)).await;
    let first = claim(&*store, w, 1).await;
    assert_eq!(first.len(), 1);
    let stale = first[0].lease;
    assert_eq!(
        store.release_steps(&[stale]).await.unwrap().accepted.len(),
        1
    );
    let second = claim(&*store, w, 1).await;
    assert_eq!(second.len(), 1);
    let current = second[0].lease;
    assert_eq!(current.step_id, stale.step_id);

    let report = store
        .complete_steps(&[
            StepSuccess {
                lease: stale,
                output: json!("stale"),
                log: Some("stale log".into()),
            },
            StepSuccess {
                lease: current,
                output: json!("current"),
                log: Some("current log".into()),
            },
        ])
        .await
        .unwrap();
    assert_eq!(report.accepted, vec![current.step_id]);
    assert_eq!(
        report.refused,
        vec![stale],
        "the stale write is refused, and said so"
    );

    let view = get_run(&*store, run).await;
    let s = step_of(&view, "only");
    assert_eq!(s.output, Some(json!("current")));
    let outcomes: Vec<&str> = s.history.iter().map(|h| h.outcome.as_str()).collect();
    assert_eq!(
        outcomes,
        vec!["released", "completed"],
        "one completed attempt"
    );
    let logs = store.attempt_logs(run, "only", None).await.unwrap();
    let logs: Vec<Option<&str>> = logs.iter().map(|l| l.log.as_deref()).collect();
    assert_eq!(
        logs,
        vec![None, Some("current log")],
        "no log of the stale write"
    );
}

/// The same outcome sent twice in one batch is one attempt.
pub async fn a_duplicated_outcome_in_a_batch_is_one_attempt(store: Arc<dyn Store>) {
    register(&*store, &one_step("dup")).await;
    let run = start(&*store, "dup", 1).await[0];
    let w = worker(&*store, secs(3600)).await;
    let c = claim(&*store, w, 1).await;
    assert_eq!(c.len(), 1);
    let report = complete(&*store, &[c[0].clone(), c[0].clone()]).await;
    assert_eq!(report.accepted, vec![c[0].lease.step_id]);
    let view = get_run(&*store, run).await;
    assert_eq!(step_of(&view, "only").history.len(), 1, "one attempt row");
}

/// A NUL character in one step's output, log or error is stored (or refused) for that
/// step alone: it neither fails the call nor sinks the other outcomes of its batch.
/// Program output is arbitrary bytes, so this happens with real `exec` steps.
pub async fn a_nul_character_in_an_outcome_does_not_fail_the_batch(store: Arc<dyn Store>) {
    register(&*store, &one_step("nul")).await;
    start(&*store, "nul", 4).await;
    let w = worker(&*store, secs(3600)).await;
    let c = claim(&*store, w, 4).await;
    assert_eq!(c.len(), 4);
    let report = store
        .complete_steps(&[
            StepSuccess {
                lease: c[0].lease,
                output: json!("a\u{0}b"),
                log: None,
            },
            StepSuccess {
                lease: c[1].lease,
                output: json!({"ok": true}),
                log: Some("binary\u{0}output".into()),
            },
            StepSuccess {
                lease: c[2].lease,
                output: json!({"ok": true}),
                log: None,
            },
        ])
        .await
        .expect("a NUL in one outcome must not fail the whole batch");
    assert!(
        report.accepted.contains(&c[2].lease.step_id),
        "the clean outcome is recorded: {report:?}"
    );
    assert_eq!(report.accepted.len() + report.refused.len(), 3);
    let failed = store
        .fail_step(&StepFailure {
            lease: c[3].lease,
            error: "bad\u{0}error".into(),
            log: None,
            retryable: false,
            retry_after: None,
        })
        .await;
    assert!(
        failed.is_ok(),
        "fail_step with a NUL in its error: {failed:?}"
    );
}

/// `max_attempts` has a ceiling every backend can store: above it the workflow is
/// refused, at it the value is kept whole.
pub async fn max_attempts_is_kept_whole(store: Arc<dyn Store>) {
    let too_many = workflow(
        "too-many-tries",
        vec![retrying(step("only"), u32::MAX, secs(1))],
    );
    let err = store.register_workflow(&too_many).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidSpec(_)), "{err}");
    assert!(err.to_string().contains("at most 1000000"), "{err}");
    let max = stepwise_core::spec::MAX_ATTEMPTS;
    register(
        &*store,
        &workflow("many-tries", vec![retrying(step("only"), max, secs(1))]),
    )
    .await;
    let run = start(&*store, "many-tries", 1).await[0];
    let w = worker(&*store, secs(3600)).await;
    let c = claim(&*store, w, 1).await;
    assert_eq!(c[0].max_attempts, max);
    assert!(
        matches!(
            fail(&*store, &c[0], true, "again").await,
            FailOutcome::Retrying { .. }
        ),
        "attempt 1 of {max} is retried"
    );
    let view = get_run(&*store, run).await;
    assert_eq!(step_of(&view, "only").max_attempts, max);
    assert_eq!(step_of(&view, "only").status, StepStatus::Pending);
}

/// A worker whose lease ran out on the database clock is not alive: it claims nothing
/// even before a reaper has noticed (it would hand out a lease that is already over).
pub async fn a_worker_past_its_lease_claims_nothing(store: Arc<dyn Store>) {
    register(&*store, &one_step("overdue")).await;
    start(&*store, "overdue", 1).await;
    let w = worker(&*store, secs(10)).await;
    store.advance_clock(secs(11)).await.unwrap();
    let now = store.now().await.unwrap();
    let got = claim(&*store, w, 1).await;
    assert!(
        got.is_empty(),
        "claimed {} step(s) under a lease that expired at {:?} (now {now})",
        got.len(),
        got.first().map(|c| c.lease_expires_at)
    );
}

/// Deregistering a worker while it still claims (a claim in flight at shutdown) must
/// not leave a step running under the stopped worker, where no reaper looks.
pub async fn deregistering_a_claiming_worker_strands_no_step(store: Arc<dyn Store>) {
    const ROUNDS: usize = 40;
    register(&*store, &one_step("strand")).await;
    start(&*store, "strand", ROUNDS * 20).await;
    let mut stopped: Vec<WorkerId> = Vec::new();
    for _ in 0..ROUNDS {
        let w = worker(&*store, secs(10)).await;
        let stop = Arc::new(AtomicBool::new(false));
        let claimer = {
            let (store, stop) = (store.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let got = store
                        .claim_steps(&ClaimRequest {
                            worker: w,
                            queues: vec![DEFAULT_QUEUE.into()],
                            limit: 1,
                        })
                        .await
                        .expect("claim");
                    if got.is_empty() {
                        tokio::task::yield_now().await;
                    }
                }
            })
        };
        tokio::task::yield_now().await;
        store.deregister_worker(w).await.unwrap();
        stop.store(true, Ordering::Relaxed);
        claimer.await.unwrap();
        stopped.push(w);
    }
    // Long after every lease: a reaper pass must leave nothing with a stopped worker.
    store.advance_clock(secs(60)).await.unwrap();
    let reaper = worker(&*store, secs(60)).await;
    store.reap(reaper).await.unwrap();
    let listed = store.list_workers().await.unwrap();
    let stranded: i64 = listed
        .iter()
        .filter(|v| stopped.contains(&v.id))
        .map(|v| v.running_steps)
        .sum();
    assert_eq!(stranded, 0, "steps left running under stopped workers");
}

/// PostgreSQL cannot compare text holding a NUL, SQLite can: a lookup by such a name
/// (what an API client may send) finds nothing on both, instead of failing.
pub async fn names_with_a_nul_character_are_never_found(store: Arc<dyn Store>) {
    register(&*store, &one_step("plain")).await;
    let nul = "plain\0";
    assert!(store.get_workflow(nul, None).await.unwrap().is_none());
    assert!(store.get_group(nul).await.unwrap().is_none());
    assert!(store.key_line(nul).await.unwrap().is_none());
    assert!(!store.set_queue_paused(nul, true).await.unwrap());
    for filter in [
        RunFilter {
            workflow: Some(nul.into()),
            ..Default::default()
        },
        RunFilter {
            group: Some(nul.into()),
            ..Default::default()
        },
    ] {
        assert!(store.list_runs(filter).await.unwrap().runs.is_empty());
    }
    let refused = store
        .create_runs(RunBatch {
            group: None,
            runs: vec![NewRun::new(nul, json!({}))],
        })
        .await;
    assert!(
        matches!(refused, Err(StoreError::UnknownWorkflow(_))),
        "{refused:?}"
    );
    let run = create(
        &*store,
        RunBatch {
            group: None,
            runs: vec![NewRun::new("plain", json!({}))],
        },
    )
    .await;
    assert!(store
        .attempt_logs(run[0], nul, None)
        .await
        .unwrap()
        .is_empty());
}
