//! Counted joins under racing completions (invariants 5 and 6).

use crate::support::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use stepwise_core::{EventKind, RunId, RunStatus, StepStatus};
use stepwise_store::*;
use tokio::sync::Barrier;

/// Claims `n` steps with several workers at once.
async fn claim_exactly(store: &Arc<dyn Store>, n: usize, workers: usize) -> Vec<ClaimedStep> {
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let me = worker(&*store, secs(3600)).await;
            let mut got = Vec::new();
            loop {
                let batch = claim(&*store, me, 16).await;
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    assert_eq!(all.len(), n);
    all
}

/// Completes (or, for `failing`, permanently fails) each step in its own call, all
/// released at once.
async fn settle_concurrently(
    store: &Arc<dyn Store>,
    steps: Vec<ClaimedStep>,
    failing: &HashSet<RunId>,
) -> Vec<BatchReport> {
    let barrier = Arc::new(Barrier::new(steps.len()));
    let mut tasks = Vec::new();
    for c in steps {
        let store = store.clone();
        let barrier = barrier.clone();
        let fails = failing.contains(&c.run_id);
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            if fails {
                assert_eq!(fail(&*store, &c, false, "no").await, FailOutcome::Failed);
                None
            } else {
                Some(complete_all(&*store, &[c]).await)
            }
        }));
    }
    let mut reports = Vec::new();
    for t in tasks {
        reports.extend(t.await.unwrap());
    }
    reports
}

/// Invariant 6: a group completes exactly once, however its last runs race.
pub async fn racing_completions_of_a_groups_last_runs_complete_it_once(store: Arc<dyn Store>) {
    const RUNS: usize = 24;
    register(&*store, &one_step("grouped")).await;
    for round in 0..4 {
        let group = format!("batch-{round}");
        let runs = (0..RUNS)
            .map(|i| NewRun::new("grouped", json!({ "i": i })))
            .collect();
        let ids = create(
            &*store,
            RunBatch {
                group: Some(group.clone()),
                runs,
            },
        )
        .await;
        let view = store
            .get_group(&group)
            .await
            .unwrap()
            .expect("group exists");
        assert_eq!((view.total, view.remaining), (RUNS as i64, RUNS as i64));
        assert!(view.completed_at.is_none());

        let claimed = claim_exactly(&store, RUNS, 3).await;
        // Odd rounds end one member with a failure, racing the others.
        let failing: HashSet<RunId> = if round % 2 == 1 {
            [ids[RUNS / 2]].into_iter().collect()
        } else {
            HashSet::new()
        };
        let reports = settle_concurrently(&store, claimed, &failing).await;
        let finished: usize = reports.iter().map(|r| r.finished_runs.len()).sum();
        assert_eq!(finished, RUNS - failing.len());

        let view = store.get_group(&group).await.unwrap().unwrap();
        assert_eq!(view.remaining, 0);
        assert_eq!(view.total, RUNS as i64);
        assert!(view.completed_at.is_some());
        let completed = (RUNS - failing.len()) as i64;
        assert_eq!(view.counts.get("completed").copied(), Some(completed));
        assert_eq!(
            view.counts.get("failed").copied().unwrap_or(0),
            failing.len() as i64
        );

        // Every member's terminal event committed with (or before) any group event.
        let events = events_when(&*store, None, "every member finished", |e| {
            e.iter()
                .filter(|e| {
                    e.group.as_deref() == Some(group.as_str())
                        && matches!(e.kind, EventKind::RunCompleted | EventKind::RunFailed)
                })
                .count()
                == RUNS
        })
        .await;
        let done: Vec<&Event> = events
            .iter()
            .filter(|e| e.kind == EventKind::GroupCompleted && e.group.as_deref() == Some(&group))
            .collect();
        assert_eq!(done.len(), 1, "round {round}: exactly one group.completed");
        assert_eq!(done[0].data["total"], json!(RUNS));
        assert_eq!(done[0].data["counts"]["completed"], json!(completed));
        if !failing.is_empty() {
            assert_eq!(done[0].data["counts"]["failed"], json!(1));
        }
    }
    let all = read_all_events(&*store, None).await;
    assert_eq!(count(&all, EventKind::GroupCompleted), 4);
}

/// Invariant 5: racing completions of a join's branches unblock it exactly once.
pub async fn racing_completions_of_a_join_unblock_it_exactly_once(store: Arc<dyn Store>) {
    const RUNS: usize = 50;
    const BRANCHES: [&str; 4] = ["b1", "b2", "b3", "b4"];
    let mut steps = vec![root("a")];
    steps.extend(BRANCHES.iter().map(|b| after(b, &["a"])));
    steps.push(after("join", &BRANCHES));
    register(&*store, &workflow("fan", steps)).await;
    let runs = start(&*store, "fan", RUNS).await;
    let w = worker(&*store, secs(3600)).await;

    let roots = claim(&*store, w, 100).await;
    assert_eq!(roots.len(), RUNS);
    assert!(roots.iter().all(|c| c.step == "a"));
    complete_all(&*store, &roots).await;

    let branches = claim_exactly(&store, RUNS * BRANCHES.len(), 4).await;
    assert!(branches.iter().all(|c| BRANCHES.contains(&c.step.as_str())));
    let reports = settle_concurrently(&store, branches, &HashSet::new()).await;
    assert!(reports.iter().all(|r| r.finished_runs.is_empty()));

    for run in runs.iter().take(5) {
        let view = get_run(&*store, *run).await;
        assert_eq!(step_of(&view, "join").status, StepStatus::Pending);
        assert_eq!(view.status, RunStatus::Running);
    }
    let joins = claim(&*store, w, 1000).await;
    assert_eq!(joins.len(), RUNS, "each join became claimable exactly once");
    assert!(joins.iter().all(|c| c.step == "join" && c.attempt == 1));
    let join_runs: HashSet<RunId> = joins.iter().map(|c| c.run_id).collect();
    assert_eq!(join_runs, runs.iter().copied().collect());
    assert!(claim(&*store, w, 1000).await.is_empty());

    let report = complete_all(&*store, &joins).await;
    assert_eq!(report.finished_runs.len(), RUNS);
    assert!(report
        .finished_runs
        .iter()
        .all(|(_, s)| *s == RunStatus::Completed));

    let events = events_when(&*store, None, "every run completed", |e| {
        count(e, EventKind::RunCompleted) == RUNS
    })
    .await;
    let mut join_starts: HashMap<RunId, usize> = HashMap::new();
    for e in &events {
        if e.kind == EventKind::StepStarted && e.step.as_deref() == Some("join") {
            *join_starts.entry(e.run_id.unwrap()).or_default() += 1;
        }
    }
    assert_eq!(join_starts.len(), RUNS);
    assert!(join_starts.values().all(|&n| n == 1));
    assert_eq!(count(&events, EventKind::StepCompleted), RUNS * 6);
}

/// A run is running until its last step completes, then completed, once.
pub async fn run_completes_exactly_when_its_last_step_does(store: Arc<dyn Store>) {
    let spec = workflow(
        "lifecycle",
        vec![step("s1"), step("s2"), root("side"), after("s3", &["s2"])],
    );
    register(&*store, &spec).await;
    let run = start(&*store, "lifecycle", 1).await[0];
    let w = worker(&*store, secs(600)).await;

    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Running);
    assert!(view.started_at.is_some());
    assert_eq!(view.progress, Progress { done: 0, total: 4 });

    let mut done = 0;
    loop {
        let batch = claim(&*store, w, 1).await;
        let Some(c) = batch.first() else { break };
        let report = complete_all(&*store, &batch).await;
        done += 1;
        let view = get_run(&*store, run).await;
        assert_eq!(
            view.progress,
            Progress { done, total: 4 },
            "after {}",
            c.step
        );
        if done < 4 {
            assert!(report.finished_runs.is_empty(), "after {}", c.step);
            assert_eq!(view.status, RunStatus::Running);
            assert!(view.finished_at.is_none());
        } else {
            assert_eq!(report.finished_runs, vec![(run, RunStatus::Completed)]);
            assert_eq!(view.status, RunStatus::Completed);
            let finished = view.finished_at.expect("finished_at set");
            assert!(finished >= view.started_at.unwrap());
            assert!(view.steps.iter().all(|s| s.status == StepStatus::Completed));
        }
    }
    assert_eq!(done, 4);
    let events = run_events(&*store, run, EventKind::RunCompleted).await;
    assert_eq!(count(&events, EventKind::RunCompleted), 1);
    assert_eq!(count(&events, EventKind::StepCompleted), 4);
    assert_eq!(events.last().unwrap().kind, EventKind::RunCompleted);
}

/// The run's view carries its graph: each step names the steps it runs after.
pub async fn a_run_names_each_steps_dependencies(store: Arc<dyn Store>) {
    register(
        &*store,
        &workflow(
            "diamond",
            vec![
                root("fetch"),
                after("parse", &["fetch"]),
                after("count", &["fetch"]),
                after("report", &["parse", "count"]),
                step("notify"),
            ],
        ),
    )
    .await;
    let run = start(&*store, "diamond", 1).await[0];
    let view = get_run(&*store, run).await;
    let after = |name: &str| step_of(&view, name).after.clone();
    assert_eq!(after("fetch"), Vec::<String>::new());
    assert_eq!(after("parse"), ["fetch"]);
    assert_eq!(after("count"), ["fetch"]);
    assert_eq!(after("report"), ["parse", "count"]);
    assert_eq!(
        after("notify"),
        ["report"],
        "a step without `after` follows the previous one"
    );
}
