//! Child runs (`run = { workflow, input? }` steps): the parent step waits without a
//! lease, the child's end settles it in the child's closing transaction, a retried
//! parent step finds its child again by key, and cancel reaches the children.

use crate::support::*;
use serde_json::{json, Value};
use std::sync::Arc;
use stepwise_core::{RunAction, RunId, RunStatus, StepAction, StepSpec, StepStatus, WorkerId};
use stepwise_store::*;

/// `child`: `parse` → `index`; `parent`: `spawn` (a `run` step) → `report`.
async fn family(store: &dyn Store) -> (WorkerId, RunId) {
    register(
        store,
        &workflow("child", vec![step("parse"), step("index")]),
    )
    .await;
    let mut spawn = root("spawn");
    spawn.action = StepAction::Run(RunAction {
        workflow: "child".into(),
        input: None,
    });
    spawn.max_attempts = Some(1);
    register(
        store,
        &workflow("parent", vec![spawn, after("report", &["spawn"])]),
    )
    .await;
    let run = start(store, "parent", 1).await[0];
    (worker(store, secs(600)).await, run)
}

async fn park_child(store: &dyn Store, c: &ClaimedStep, input: Value) -> ParkOutcome {
    store
        .park_step(&ParkRequest {
            lease: c.lease,
            wait: WaitFor::Child(ChildRun {
                workflow: "child".into(),
                input,
            }),
        })
        .await
        .expect("park")
}

async fn children_of(store: &dyn Store, run: RunId) -> Vec<RunView> {
    store
        .list_runs(RunFilter {
            parent: Some(run),
            ..RunFilter::default()
        })
        .await
        .expect("list children")
        .runs
}

/// Claims one step of the named run only (other runs' steps are completed as they
/// come, so the test drives exactly the run it names).
async fn claim_of(store: &dyn Store, w: WorkerId, run: RunId) -> ClaimedStep {
    for _ in 0..50 {
        for c in claim(store, w, 1).await {
            if c.run_id == run {
                return c;
            }
            complete_all(store, &[c]).await;
        }
    }
    panic!("no step of run {run} became claimable")
}

pub async fn a_child_completes_its_waiting_parent_step_with_its_outputs(store: Arc<dyn Store>) {
    let (w, parent) = family(&*store).await;
    let spawn = claim(&*store, w, 1).await;
    assert_eq!(spawn[0].step, "spawn");
    let parked = park_child(&*store, &spawn[0], json!({"doc": "a"})).await;
    assert_eq!(parked, ParkOutcome::Waiting { until: None });
    let view = get_run(&*store, parent).await;
    assert_eq!(step_of(&view, "spawn").status, StepStatus::Waiting);
    let children = children_of(&*store, parent).await;
    assert_eq!(children.len(), 1);
    let child = &children[0];
    assert_eq!(child.parent_run, Some(parent));
    assert_eq!(child.parent_step.as_deref(), Some("spawn"));
    assert_eq!(child.idempotency_key, Some(format!("{parent}:spawn")));
    assert_eq!(child.input, json!({"doc": "a"}));
    let waiting = step_of(&view, "spawn")
        .waiting
        .clone()
        .expect("a waiting view");
    assert_eq!(
        (waiting.kind.as_str(), waiting.child),
        ("child", Some(child.id))
    );
    assert_eq!(
        stepwise_store::explain::describe_waiting(&waiting),
        format!("waiting for child run {}", child.id)
    );
    // The child's steps, then the parent's `report` with the child's last outputs.
    let parse = claim(&*store, w, 5).await;
    assert_eq!(parse.len(), 1, "only the child's first step is claimable");
    complete_all(&*store, &parse).await;
    let index = claim(&*store, w, 5).await;
    assert_eq!(index[0].step, "index");
    complete_all(&*store, &index).await;
    let report = claim(&*store, w, 5).await;
    assert_eq!(report.len(), 1);
    assert_eq!(report[0].step, "report");
    assert_eq!(
        report[0].dependency_outputs["spawn"],
        json!({"index": {"step": "index", "attempt": 1}})
    );
}

pub async fn a_child_finished_before_its_parent_parked_completes_it_at_once(store: Arc<dyn Store>) {
    let (w, parent) = family(&*store).await;
    let spawn = claim(&*store, w, 1).await;
    // The child already exists under the key the park will use, and has finished
    // (as after a crash between the child's end and the parent's park).
    let early = create(
        &*store,
        RunBatch {
            group: None,
            runs: vec![NewRun::new("child", json!({})).idempotency_key(format!("{parent}:spawn"))],
        },
    )
    .await[0];
    drain(&*store, w).await;
    assert_eq!(get_run(&*store, early).await.status, RunStatus::Completed);
    assert_eq!(
        park_child(&*store, &spawn[0], json!({})).await,
        ParkOutcome::Completed
    );
    let view = get_run(&*store, parent).await;
    assert_eq!(step_of(&view, "spawn").status, StepStatus::Completed);
    assert!(step_of(&view, "spawn")
        .output
        .as_ref()
        .is_some_and(|o| o.get("index").is_some()));
}

pub async fn a_retried_parent_finds_its_failed_child_again_and_retries_it(store: Arc<dyn Store>) {
    let (w, parent) = family(&*store).await;
    let spawn = claim(&*store, w, 1).await;
    park_child(&*store, &spawn[0], json!({})).await;
    let child = children_of(&*store, parent).await[0].id;
    let parse = claim_of(&*store, w, child).await;
    complete_all(&*store, &[parse]).await;
    let index = claim_of(&*store, w, child).await;
    assert_eq!(
        fail(&*store, &index, false, "index broke").await,
        FailOutcome::Failed
    );
    assert_eq!(get_run(&*store, child).await.status, RunStatus::Failed);
    let view = get_run(&*store, parent).await;
    assert_eq!(
        view.status,
        RunStatus::Failed,
        "the child's failure fails its step"
    );
    let error = step_of(&view, "spawn").error.clone().unwrap_or_default();
    assert!(
        error.contains(&child.to_string()) && error.contains("index broke"),
        "{error}"
    );
    // Retrying the parent runs `spawn` again: it finds the same child and retries it.
    store
        .retry_run(&RetryRequest {
            run: parent,
            from: None,
        })
        .await
        .expect("retry");
    let again = claim_of(&*store, w, parent).await;
    assert_eq!(again.step, "spawn");
    assert_eq!(
        park_child(&*store, &again, json!({})).await,
        ParkOutcome::Waiting { until: None }
    );
    assert_eq!(
        children_of(&*store, parent).await.len(),
        1,
        "no second child"
    );
    let index = claim_of(&*store, w, child).await;
    assert_eq!(
        index.step, "index",
        "only the child's failed step runs again"
    );
    complete_all(&*store, &[index]).await;
    let report = claim_of(&*store, w, parent).await;
    assert_eq!(report.step, "report");
}

pub async fn cancelling_a_parent_cancels_its_children(store: Arc<dyn Store>) {
    let (w, parent) = family(&*store).await;
    let spawn = claim(&*store, w, 1).await;
    park_child(&*store, &spawn[0], json!({})).await;
    let child = children_of(&*store, parent).await[0].id;
    let cancelled = store
        .cancel_run(&CancelRequest {
            run: parent,
            compensate: true,
        })
        .await
        .expect("cancel");
    assert!(
        matches!(cancelled, CancelOutcome::Cancelled { .. }),
        "{cancelled:?}"
    );
    assert_eq!(get_run(&*store, parent).await.status, RunStatus::Cancelled);
    assert_eq!(get_run(&*store, child).await.status, RunStatus::Cancelled);
    assert!(claim(&*store, w, 5).await.is_empty());
}

pub async fn a_childs_completion_racing_its_parents_cancel_settles_once(store: Arc<dyn Store>) {
    register(&*store, &workflow("child", vec![step("only")])).await;
    let mut spawn: StepSpec = root("spawn");
    spawn.action = StepAction::Run(RunAction {
        workflow: "child".into(),
        input: None,
    });
    register(
        &*store,
        &workflow("parent", vec![spawn, after("report", &["spawn"])]),
    )
    .await;
    let w = worker(&*store, secs(600)).await;
    for _ in 0..8 {
        let parent = start(&*store, "parent", 1).await[0];
        let spawn = claim_of(&*store, w, parent).await;
        park_child(&*store, &spawn, json!({})).await;
        let child = children_of(&*store, parent).await[0].id;
        let only = claim_of(&*store, w, child).await;
        let (a, b) = (store.clone(), store.clone());
        let finish = tokio::spawn(async move { complete(&*a, &[only]).await });
        let cancel = tokio::spawn(async move {
            b.cancel_run(&CancelRequest {
                run: parent,
                compensate: false,
            })
            .await
            .expect("cancel")
        });
        finish.await.expect("finish");
        cancel.await.expect("cancel");
        let parent_view = get_run(&*store, parent).await;
        assert_eq!(parent_view.status, RunStatus::Cancelled);
        let spawn = step_of(&parent_view, "spawn").status;
        assert!(
            matches!(spawn, StepStatus::Completed | StepStatus::Cancelled),
            "the parent step ends once: {spawn:?}"
        );
        let child_view = get_run(&*store, child).await;
        assert!(child_view.status.is_terminal(), "{:?}", child_view.status);
        assert!(
            parent_view
                .steps
                .iter()
                .all(|s| s.status != StepStatus::Waiting && s.status != StepStatus::Running),
            "nothing of the parent is left waiting: {:?}",
            parent_view.steps
        );
    }
}
