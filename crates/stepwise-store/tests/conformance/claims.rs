//! Claiming: exclusivity, limits, order, dependencies.

use crate::support::*;
use serde_json::json;
use std::collections::HashSet;
use std::sync::Arc;
use stepwise_core::{RunId, StepId, StepStatus};
use stepwise_store::*;

/// Invariant 1: eight workers claiming concurrently never share a step.
pub async fn claim_is_exclusive(store: Arc<dyn Store>) {
    const RUNS: usize = 2000;
    register(&*store, &one_step("exclusive")).await;
    let mut runs = HashSet::new();
    for _ in 0..4 {
        runs.extend(start(&*store, "exclusive", RUNS / 4).await);
    }
    assert_eq!(runs.len(), RUNS);

    let mut tasks = Vec::new();
    for _ in 0..8 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let me = worker(&*store, secs(600)).await;
            let mut mine: Vec<(StepId, RunId)> = Vec::new();
            loop {
                let batch = claim(&*store, me, 50).await;
                if batch.is_empty() {
                    return mine;
                }
                for c in &batch {
                    assert_eq!(c.attempt, 1, "a step claimed twice: {c:?}");
                    assert_eq!(c.workflow, "exclusive");
                }
                complete_all(&*store, &batch).await;
                mine.extend(batch.iter().map(|c| (c.lease.step_id, c.run_id)));
            }
        }));
    }
    let mut claimed = Vec::new();
    for task in tasks {
        claimed.extend(task.await.expect("claimer task"));
    }
    let distinct: HashSet<StepId> = claimed.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        distinct.len(),
        claimed.len(),
        "a step was claimed more than once"
    );
    assert_eq!(claimed.len(), RUNS, "every step claimed exactly once");
    let claimed_runs: HashSet<RunId> = claimed.iter().map(|(_, r)| *r).collect();
    assert_eq!(claimed_runs, runs);

    let completed = store
        .list_runs(RunFilter {
            status: Some(stepwise_core::RunStatus::Completed),
            workflow: Some("exclusive".into()),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(completed.runs.len(), RUNS, "all runs completed");
    let late = worker(&*store, secs(60)).await;
    assert!(claim(&*store, late, 10).await.is_empty(), "nothing left");
}

/// A claim returns at most `limit` steps: alone, concurrently and across queues.
pub async fn batch_claim_never_returns_more_than_limit(store: Arc<dyn Store>) {
    register(&*store, &one_step("limits")).await;
    let mut qa = one_step("limits-a");
    qa.steps[0].queue = Some("qa".into());
    let mut qb = one_step("limits-b");
    qb.steps[0].queue = Some("qb".into());
    register(&*store, &qa).await;
    register(&*store, &qb).await;
    let w = worker(&*store, secs(600)).await;

    start(&*store, "limits", 40).await;
    let mut sizes = Vec::new();
    loop {
        let batch = claim(&*store, w, 7).await;
        if batch.is_empty() {
            break;
        }
        sizes.push(batch.len());
        complete_all(&*store, &batch).await;
    }
    assert_eq!(sizes, vec![7, 7, 7, 7, 7, 5]);

    start(&*store, "limits", 1).await;
    assert!(
        claim(&*store, w, 0).await.is_empty(),
        "limit 0 claims nothing"
    );
    let one = claim(&*store, w, 1).await;
    assert_eq!(one.len(), 1);
    complete_all(&*store, &one).await;

    // Concurrent claimers, small limits.
    start(&*store, "limits", 120).await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let me = worker(&*store, secs(600)).await;
            let mut got = Vec::new();
            loop {
                let batch = claim(&*store, me, 3).await;
                if batch.is_empty() {
                    return got;
                }
                complete_all(&*store, &batch).await;
                got.extend(batch.iter().map(|c| c.lease.step_id));
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), 120);
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), 120);

    // Several queues share one limit, tried in the order given.
    start(&*store, "limits-a", 2).await;
    start(&*store, "limits-b", 2).await;
    let first = claim_from(&*store, w, &["qa", "qb"], 3).await;
    let queues: Vec<&str> = first.iter().map(|c| c.queue.as_str()).collect();
    assert_eq!(queues, vec!["qa", "qa", "qb"]);
    let rest = claim_from(&*store, w, &["qa", "qb"], 3).await;
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].queue, "qb");
    assert!(
        claim(&*store, w, 10).await.is_empty(),
        "other queues untouched"
    );
}

/// Invariant 9: highest priority first, then oldest by database sequence.
pub async fn claims_follow_priority_then_age(store: Arc<dyn Store>) {
    register(&*store, &one_step("prio")).await;
    let w = worker(&*store, secs(600)).await;

    // One batch: order inside the batch is creation order.
    let priorities = [0, 5, 0, 10, 5, 0, -1];
    let runs: Vec<NewRun> = priorities
        .iter()
        .map(|&p| NewRun::new("prio", json!({ "p": p })).priority(p))
        .collect();
    let ids = create(&*store, RunBatch { group: None, runs }).await;
    let mut expected: Vec<usize> = (0..priorities.len()).collect();
    expected.sort_by_key(|&i| -priorities[i]);
    let expected: Vec<RunId> = expected.into_iter().map(|i| ids[i]).collect();
    let claimed = claim(&*store, w, 100).await;
    let got: Vec<RunId> = claimed.iter().map(|c| c.run_id).collect();
    assert_eq!(
        got, expected,
        "one claim returns priority desc, then creation order"
    );
    for c in &claimed {
        let p = c.input["p"]
            .as_i64()
            .expect("the run's input comes with the claim");
        let i = ids.iter().position(|id| *id == c.run_id).unwrap();
        assert_eq!(p, i64::from(priorities[i]));
        assert_eq!((c.workflow.as_str(), c.workflow_version), ("prio", 1));
        assert_eq!(
            (c.step.as_str(), c.queue.as_str(), c.attempt),
            ("only", "default", 1)
        );
    }
    complete_all(&*store, &claimed).await;

    // Separate creations, claimed one at a time.
    let priorities = [1, 3, 1, 3, 2, 1];
    let mut ids = Vec::new();
    for (i, &p) in priorities.iter().enumerate() {
        let batch = RunBatch {
            group: None,
            runs: vec![NewRun::new("prio", json!({ "second": i })).priority(p)],
        };
        ids.extend(create(&*store, batch).await);
    }
    let mut expected: Vec<usize> = (0..priorities.len()).collect();
    expected.sort_by_key(|&i| -priorities[i]);
    let mut got = Vec::new();
    loop {
        let one = claim(&*store, w, 1).await;
        let Some(c) = one.first() else { break };
        got.push(c.run_id);
        complete_all(&*store, &one).await;
    }
    let expected: Vec<RunId> = expected.into_iter().map(|i| ids[i]).collect();
    assert_eq!(got, expected, "claims one by one follow priority, then age");

    // A step's own priority overrides its run's.
    let mut urgent = one_step("prio-step");
    urgent.steps[0].priority = Some(100);
    register(&*store, &urgent).await;
    let normal = start(&*store, "prio", 1).await[0];
    let high_run = NewRun::new("prio", json!({})).priority(50);
    let high = create(
        &*store,
        RunBatch {
            group: None,
            runs: vec![high_run],
        },
    )
    .await[0];
    let urgent = start(&*store, "prio-step", 1).await[0];
    let got: Vec<RunId> = claim(&*store, w, 10)
        .await
        .iter()
        .map(|c| c.run_id)
        .collect();
    assert_eq!(got, vec![urgent, high, normal]);
}

/// A step becomes claimable only once every dependency completed.
pub async fn dag_step_is_claimable_only_when_all_dependencies_completed(store: Arc<dyn Store>) {
    let spec = workflow(
        "diamond",
        vec![
            root("a"),
            after("b", &["a"]),
            retrying(after("c", &["a"]), 3, secs(1)),
            after("d", &["b", "c"]),
        ],
    );
    register(&*store, &spec).await;
    let run = start(&*store, "diamond", 1).await[0];
    let w = worker(&*store, secs(600)).await;

    let view = get_run(&*store, run).await;
    assert_eq!(step_of(&view, "a").status, StepStatus::Pending);
    for name in ["b", "c", "d"] {
        assert_eq!(step_of(&view, name).status, StepStatus::Blocked, "{name}");
    }

    let first = claim(&*store, w, 10).await;
    let names: Vec<&str> = first.iter().map(|c| c.step.as_str()).collect();
    assert_eq!(names, vec!["a"], "only the root is claimable");
    complete_all(&*store, &first).await;

    let second = claim(&*store, w, 10).await;
    let mut names: Vec<&str> = second.iter().map(|c| c.step.as_str()).collect();
    names.sort();
    assert_eq!(names, vec!["b", "c"]);
    let b = second.iter().find(|c| c.step == "b").unwrap();
    let c = second.iter().find(|c| c.step == "c").unwrap();

    complete_all(&*store, std::slice::from_ref(b)).await;
    assert!(claim(&*store, w, 10).await.is_empty(), "d waits for c");
    assert_eq!(
        step_of(&get_run(&*store, run).await, "d").status,
        StepStatus::Blocked
    );

    // c fails once: d stays blocked through the retry.
    assert!(matches!(
        fail(&*store, c, true, "flaky").await,
        FailOutcome::Retrying { attempt: 2, .. }
    ));
    assert!(
        claim(&*store, w, 10).await.is_empty(),
        "c waits out its backoff"
    );
    store.advance_clock(secs(2)).await.unwrap();
    let retry = claim(&*store, w, 10).await;
    assert_eq!(retry.len(), 1);
    assert_eq!((retry[0].step.as_str(), retry[0].attempt), ("c", 2));
    assert_eq!(
        step_of(&get_run(&*store, run).await, "d").status,
        StepStatus::Blocked
    );
    complete_all(&*store, &retry).await;

    let last = claim(&*store, w, 10).await;
    assert_eq!(last.len(), 1);
    assert_eq!(last[0].step, "d");
    let report = complete_all(&*store, &last).await;
    assert_eq!(
        report.finished_runs,
        vec![(run, stepwise_core::RunStatus::Completed)]
    );
}
