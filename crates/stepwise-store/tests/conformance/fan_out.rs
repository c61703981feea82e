//! `for_each` steps: expanded in the transaction that completes their last
//! dependency, joined by a counter of their items (invariant 5), bounded by
//! `max_parallel` with a counter, never a scan.

use crate::support::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use stepwise_core::{ForEach, ItemFailure, RunId, RunStatus, StepSpec, StepStatus, WorkerId};
use stepwise_store::*;

fn for_each(name: &str, deps: &[&str], path: &str) -> StepSpec {
    let mut s = after(name, deps);
    s.for_each = Some(ForEach {
        path: path.into(),
        max_parallel: None,
        max_items: None,
        on_item_failure: ItemFailure::Fail,
    });
    s
}

/// `plan` → `hooks` (one item per element of plan's `hooks`) → `report`.
async fn hooks_run(store: &dyn Store, hooks: StepSpec) -> (WorkerId, RunId) {
    register(
        store,
        &workflow(
            "fan",
            vec![root("plan"), hooks, after("report", &["hooks"])],
        ),
    )
    .await;
    let runs = start(store, "fan", 1).await;
    (worker(store, secs(600)).await, runs[0])
}

async fn complete_with(store: &dyn Store, c: &ClaimedStep, output: Value) -> BatchReport {
    store
        .complete_steps(&[StepSuccess {
            lease: c.lease,
            output,
            log: None,
        }])
        .await
        .expect("complete")
}

/// Claims `plan` and completes it with `hooks` as its output's `hooks`.
async fn plan_with(store: &dyn Store, w: WorkerId, hooks: Value) -> BatchReport {
    let c = claim(store, w, 1).await;
    assert_eq!(c[0].step, "plan");
    complete_with(store, &c[0], json!({ "hooks": hooks })).await
}

async fn items(store: &dyn Store, run: RunId, step: &str) -> ItemPage {
    store
        .list_items(&ItemsRequest {
            run,
            step: step.into(),
            from: 0,
            limit: 1000,
        })
        .await
        .expect("list items")
        .expect("the step exists")
}

pub async fn expansion_is_atomic_with_the_dependencys_completion(store: Arc<dyn Store>) {
    let (w, run) = hooks_run(
        &*store,
        for_each("hooks", &["plan"], "steps.plan.output.hooks"),
    )
    .await;
    let c = claim(&*store, w, 1).await;
    // A refused completion (a stale lease) expands nothing.
    let mut stale = c[0].clone();
    stale.lease.token = stepwise_core::LeaseToken::new();
    let refused = complete_with(&*store, &stale, json!({"hooks": [1, 2, 3]})).await;
    assert_eq!(refused.refused.len(), 1);
    assert_eq!(items(&*store, run, "hooks").await.counts.total, 0);
    // The accepted one: the items exist when it returns, counted in the run.
    let done = complete_with(
        &*store,
        &c[0],
        json!({"hooks": ["a", "b", "c"], "batch": 7}),
    )
    .await;
    assert_eq!(done.accepted.len(), 1);
    let view = get_run(&*store, run).await;
    assert_eq!(
        view.progress.total, 6,
        "plan, hooks, report and three items"
    );
    let hooks = step_of(&view, "hooks");
    assert_eq!(hooks.status, StepStatus::Blocked);
    assert_eq!(
        hooks.items.as_ref().map(|i| (i.total, i.pending)),
        Some((3, 3))
    );
    assert!(
        view.steps.iter().all(|s| !s.name.starts_with("hooks[")),
        "items are paged, not listed"
    );
    let page = items(&*store, run, "hooks").await;
    let names: Vec<&str> = page.items.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["hooks[0]", "hooks[1]", "hooks[2]"]);
    // Each item carries its element and its step's context, without the array
    // (ten thousand items must not each carry ten thousand elements).
    let claimed = claim(&*store, w, 10).await;
    assert_eq!(claimed.len(), 3);
    for c in &claimed {
        let item = c.item.as_ref().expect("an item");
        assert_eq!(c.step, format!("hooks[{}]", item.index));
        assert_eq!(item.value, json!(["a", "b", "c"][item.index as usize]));
        assert_eq!(c.dependency_outputs["plan"], json!({"batch": 7}));
    }
}

pub async fn dependents_get_the_item_outputs_in_order(store: Arc<dyn Store>) {
    let (w, run) = hooks_run(
        &*store,
        for_each("hooks", &["plan"], "steps.plan.output.hooks"),
    )
    .await;
    plan_with(&*store, w, json!([10, 20, 30, 40])).await;
    let mut claimed = claim(&*store, w, 10).await;
    assert_eq!(claimed.len(), 4);
    // Completed last to first: the output keeps the items' order.
    claimed.sort_by_key(|c| std::cmp::Reverse(c.item.as_ref().unwrap().index));
    for c in &claimed {
        let v = c.item.as_ref().unwrap().value.as_i64().unwrap();
        complete_with(&*store, c, json!(v + 1)).await;
    }
    let report = claim(&*store, w, 1).await;
    assert_eq!(report[0].step, "report");
    assert_eq!(
        report[0].dependency_outputs["hooks"],
        json!([11, 21, 31, 41])
    );
    complete_all(&*store, &report).await;
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Completed);
    assert_eq!(
        step_of(&view, "hooks").output,
        Some(json!([11, 21, 31, 41]))
    );
    let events = run_events(&*store, run, stepwise_core::EventKind::RunCompleted).await;
    let joined = events
        .iter()
        .find(|e| {
            e.kind == stepwise_core::EventKind::StepCompleted && e.step.as_deref() == Some("hooks")
        })
        .expect("the join's event");
    assert_eq!(joined.data["items"], json!(4));
}

pub async fn an_empty_array_completes_at_once_with_an_empty_list(store: Arc<dyn Store>) {
    let (w, run) = hooks_run(
        &*store,
        for_each("hooks", &["plan"], "steps.plan.output.hooks"),
    )
    .await;
    plan_with(&*store, w, json!([])).await;
    let view = get_run(&*store, run).await;
    assert_eq!(step_of(&view, "hooks").status, StepStatus::Completed);
    assert_eq!(step_of(&view, "hooks").output, Some(json!([])));
    assert_eq!(
        step_of(&view, "hooks").items,
        Some(ItemCounts::default()),
        "an expanded step with no items shows 0 of 0, not a plain step"
    );
    let next = claim(&*store, w, 5).await;
    assert_eq!(next.len(), 1);
    assert_eq!(
        next[0].step, "report",
        "the dependent runs, it is not cancelled"
    );
    assert_eq!(next[0].dependency_outputs["hooks"], json!([]));
    complete_all(&*store, &next).await;
    assert_eq!(get_run(&*store, run).await.status, RunStatus::Completed);
}

pub async fn a_value_that_is_not_an_array_fails_the_step_naming_the_path(store: Arc<dyn Store>) {
    let (w, run) = hooks_run(
        &*store,
        for_each("hooks", &["plan"], "steps.plan.output.hooks"),
    )
    .await;
    plan_with(&*store, w, json!({"not": "a list"})).await;
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Failed);
    let hooks = step_of(&view, "hooks");
    assert_eq!(hooks.status, StepStatus::Failed);
    let error = hooks.error.clone().unwrap_or_default();
    assert!(
        error.contains("steps.plan.output.hooks") && error.contains("an object"),
        "{error}"
    );
    assert_eq!(step_of(&view, "report").status, StepStatus::Skipped);
}

pub async fn more_items_than_max_items_fail_the_step(store: Arc<dyn Store>) {
    let mut hooks = for_each("hooks", &["plan"], "steps.plan.output.hooks");
    hooks.for_each.as_mut().unwrap().max_items = Some(3);
    let (w, run) = hooks_run(&*store, hooks).await;
    plan_with(&*store, w, json!([1, 2, 3, 4])).await;
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Failed);
    let error = step_of(&view, "hooks").error.clone().unwrap_or_default();
    assert!(
        error.contains("4 items, more than max_items (3)"),
        "{error}"
    );
    assert_eq!(
        items(&*store, run, "hooks").await.counts.total,
        0,
        "no item was inserted"
    );
}

pub async fn a_root_for_each_expands_from_the_input(store: Arc<dyn Store>) {
    register(
        &*store,
        &workflow(
            "ingest",
            vec![
                for_each("docs", &[], "input.documents"),
                after("sum", &["docs"]),
            ],
        ),
    )
    .await;
    let run = create(
        &*store,
        RunBatch {
            group: None,
            runs: vec![NewRun::new("ingest", json!({"documents": ["x", "y"]}))],
        },
    )
    .await[0];
    let w = worker(&*store, secs(600)).await;
    let done = drain(&*store, w).await;
    let names: Vec<&str> = done.iter().map(|c| c.step.as_str()).collect();
    assert_eq!(names.len(), 3, "{names:?}");
    assert!(names.contains(&"docs[0]") && names.contains(&"docs[1]") && names.contains(&"sum"));
    assert_eq!(get_run(&*store, run).await.status, RunStatus::Completed);
}

pub async fn max_parallel_is_never_exceeded_by_racing_claimers(store: Arc<dyn Store>) {
    let mut hooks = for_each("hooks", &["plan"], "steps.plan.output.hooks");
    hooks.for_each.as_mut().unwrap().max_parallel = Some(3);
    let (w, run) = hooks_run(&*store, hooks).await;
    plan_with(&*store, w, json!((0..40).collect::<Vec<i32>>())).await;
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = store.clone();
        let (running, most, done) = (running.clone(), most.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let w = worker(&*store, secs(600)).await;
            while done.load(Ordering::SeqCst) < 40 {
                let claimed = claim(&*store, w, 2).await;
                if claimed.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                // `report` may be claimed here too once the last item ends.
                let n = claimed.iter().filter(|c| c.item.is_some()).count();
                let now = running.fetch_add(n, Ordering::SeqCst) + n;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                // Off the count before the outcome commits: only then may another
                // item take the place.
                running.fetch_sub(n, Ordering::SeqCst);
                complete_all(&*store, &claimed).await;
                done.fetch_add(n, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.expect("claimer");
    }
    assert!(
        most.load(Ordering::SeqCst) <= 3,
        "at most 3 items at once, saw {}",
        most.load(Ordering::SeqCst)
    );
    assert_eq!(items(&*store, run, "hooks").await.counts.completed, 40);
    drain(&*store, w).await;
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Completed);
    assert_eq!(
        step_of(&view, "hooks")
            .output
            .as_ref()
            .and_then(Value::as_array)
            .map(Vec::len),
        Some(40)
    );
}

pub async fn continue_completes_with_nulls_where_fail_fails_the_run(store: Arc<dyn Store>) {
    for policy in [ItemFailure::Continue, ItemFailure::Fail] {
        let mut hooks = for_each("hooks", &["plan"], "steps.plan.output.hooks");
        hooks.for_each.as_mut().unwrap().on_item_failure = policy;
        hooks.max_attempts = Some(1);
        let name = format!("fan-{}", policy.as_str());
        register(
            &*store,
            &workflow(
                &name,
                vec![root("plan"), hooks, after("report", &["hooks"])],
            ),
        )
        .await;
        let run = start(&*store, &name, 1).await[0];
        let w = worker(&*store, secs(600)).await;
        plan_with(&*store, w, json!(["ok", "bad", "ok"])).await;
        for c in claim(&*store, w, 10).await {
            if c.item.as_ref().unwrap().value == json!("bad") {
                assert_eq!(
                    fail(&*store, &c, true, "bad hook").await,
                    FailOutcome::Failed
                );
            } else {
                complete_with(&*store, &c, json!("fine")).await;
            }
        }
        let view = get_run(&*store, run).await;
        match policy {
            ItemFailure::Continue => {
                let hooks = step_of(&view, "hooks");
                assert_eq!(hooks.status, StepStatus::Completed);
                assert_eq!(hooks.output, Some(json!(["fine", null, "fine"])));
                let report = claim(&*store, w, 1).await;
                assert_eq!(report[0].step, "report");
                complete_all(&*store, &report).await;
                assert_eq!(get_run(&*store, run).await.status, RunStatus::Completed);
                let events = run_events(&*store, run, stepwise_core::EventKind::RunCompleted).await;
                let joined = events
                    .iter()
                    .find(|e| {
                        e.kind == stepwise_core::EventKind::StepCompleted
                            && e.step.as_deref() == Some("hooks")
                    })
                    .expect("the join's event");
                assert_eq!(joined.data["failed"], json!([1]));
            }
            ItemFailure::Fail => {
                assert_eq!(view.status, RunStatus::Failed);
                assert_eq!(step_of(&view, "hooks").status, StepStatus::Skipped);
                assert_eq!(step_of(&view, "report").status, StepStatus::Skipped);
                assert!(claim(&*store, w, 5).await.is_empty());
            }
        }
    }
}

pub async fn a_retry_reruns_only_failed_items_and_from_reruns_them_all(store: Arc<dyn Store>) {
    let mut hooks = for_each("hooks", &["plan"], "steps.plan.output.hooks");
    hooks.max_attempts = Some(1);
    let mut report = after("report", &["hooks"]);
    report.max_attempts = Some(1);
    register(&*store, &workflow("fan", vec![root("plan"), hooks, report])).await;
    let run = start(&*store, "fan", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    plan_with(&*store, w, json!(["a", "b", "c"])).await;
    for c in claim(&*store, w, 10).await {
        if c.item.as_ref().unwrap().index == 1 {
            assert_eq!(
                fail(&*store, &c, true, "b broke").await,
                FailOutcome::Failed
            );
        } else {
            complete_with(&*store, &c, json!(c.item.as_ref().unwrap().value)).await;
        }
    }
    assert_eq!(get_run(&*store, run).await.status, RunStatus::Failed);
    let retried = store
        .retry_run(&RetryRequest { run, from: None })
        .await
        .expect("retry");
    let RetryOutcome::Retried { steps, .. } = retried else {
        panic!("retried: {retried:?}")
    };
    assert_eq!(steps, ["hooks", "report", "hooks[1]"]);
    let again = claim(&*store, w, 10).await;
    let names: Vec<&str> = again.iter().map(|c| c.step.as_str()).collect();
    assert_eq!(names, ["hooks[1]"], "only the failed item runs again");
    complete_with(&*store, &again[0], json!("B")).await;
    let report = claim(&*store, w, 1).await;
    assert_eq!(
        report[0].dependency_outputs["hooks"],
        json!(["a", "B", "c"])
    );
    assert_eq!(
        fail(&*store, &report[0], false, "report broke").await,
        FailOutcome::Failed
    );
    // From the for_each step: every item runs again, from a fresh expansion.
    let retried = store
        .retry_run(&RetryRequest {
            run,
            from: Some("hooks".into()),
        })
        .await
        .expect("retry from hooks");
    assert!(
        matches!(retried, RetryOutcome::Retried { .. }),
        "{retried:?}"
    );
    let mut all = claim(&*store, w, 10).await;
    all.sort_by_key(|c| c.item.as_ref().map(|i| i.index));
    let names: Vec<&str> = all.iter().map(|c| c.step.as_str()).collect();
    assert_eq!(names, ["hooks[0]", "hooks[1]", "hooks[2]"]);
    assert_eq!(
        get_run(&*store, run).await.progress.total,
        6,
        "the old items are gone"
    );
    complete_all(&*store, &all).await;
    drain(&*store, w).await;
    assert_eq!(get_run(&*store, run).await.status, RunStatus::Completed);
}

pub async fn each_item_is_compensated_on_its_own_with_its_element(store: Arc<dyn Store>) {
    let mut hooks = for_each("hooks", &["plan"], "steps.plan.output.hooks");
    hooks.compensate = Some(stepwise_core::StepAction::Handler {
        name: "undo".into(),
    });
    let (w, run) = hooks_run(&*store, hooks).await;
    plan_with(&*store, w, json!(["x", "y"])).await;
    let items = claim(&*store, w, 5).await;
    complete_all(&*store, &items).await;
    let report = claim(&*store, w, 1).await;
    assert_eq!(report[0].step, "report");
    let failed = store
        .fail_step(&StepFailure {
            lease: report[0].lease,
            error: "report broke".into(),
            log: None,
            retryable: false,
            retry_after: None,
        })
        .await
        .expect("fail");
    assert_eq!(failed, FailOutcome::Failed);
    // One compensation per completed item, none for the joined step itself.
    let mut undone = Vec::new();
    for _ in 0..4 {
        for c in claim(&*store, w, 5).await {
            let undo = c.compensating.as_ref().expect("a compensation");
            let item = c.item.as_ref().expect("the item it undoes");
            undone.push((undo.step.clone(), item.value.clone()));
            complete_all(&*store, &[c]).await;
        }
    }
    undone.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        undone,
        vec![
            ("hooks[0]".to_string(), json!("x")),
            ("hooks[1]".to_string(), json!("y"))
        ]
    );
    assert_eq!(get_run(&*store, run).await.status, RunStatus::Compensated);
}
