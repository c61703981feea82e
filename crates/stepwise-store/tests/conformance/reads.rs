//! Figures the read side computes in SQL (counts, spans) rather than copies from a
//! column: each must land in the field it names.

use crate::support::*;
use std::sync::Arc;
use stepwise_store::*;

/// `step_activity` counts only completed steps of the workflow asked about, and spans
/// their first start to their last finish.
pub async fn step_activity_counts_the_completed_steps_of_one_workflow(store: Arc<dyn Store>) {
    register(&*store, &one_step("active")).await;
    register(&*store, &one_step("idle")).await;
    let none = store.step_activity("active").await.expect("activity");
    assert_eq!(none.completed, 0);
    assert!(none.first_started.is_none() && none.last_finished.is_none());
    start(&*store, "active", 3).await;
    start(&*store, "idle", 2).await;
    let w = worker(&*store, secs(60)).await;
    let claimed = claim(&*store, w, 10).await;
    assert_eq!(claimed.len(), 5);
    let done: Vec<ClaimedStep> = claimed
        .iter()
        .filter(|c| c.workflow == "active")
        .take(2)
        .cloned()
        .collect();
    complete(&*store, &done).await;
    let activity = store.step_activity("active").await.expect("activity");
    assert_eq!(
        activity.completed, 2,
        "running steps and other workflows do not count"
    );
    let (first, last) = (activity.first_started, activity.last_finished);
    assert!(
        first.is_some() && last.is_some() && first <= last,
        "{activity:?}"
    );
    assert_eq!(store.step_activity("idle").await.unwrap().completed, 0);
}

/// A worker's `running_steps` is the number of steps it holds right now.
pub async fn listed_workers_count_the_steps_they_run(store: Arc<dyn Store>) {
    register(&*store, &one_step("held")).await;
    start(&*store, "held", 3).await;
    let busy = worker(&*store, secs(60)).await;
    let idle = worker(&*store, secs(60)).await;
    let claimed = claim(&*store, busy, 3).await;
    complete(&*store, &claimed[..1]).await;
    let workers = store.list_workers().await.expect("list workers");
    let running = |id| workers.iter().find(|w| w.id == id).map(|w| w.running_steps);
    assert_eq!(running(busy), Some(2));
    assert_eq!(running(idle), Some(0));
}
