//! Times the hot path writes come from the database clock, offset included.

use crate::support::*;
use std::sync::Arc;
use stepwise_core::{EventKind, RunStatus};
use stepwise_store::*;

/// Every time a run's life writes (the run's, the steps' and attempts', each event's)
/// reads the moved database clock: a statement that fell back to the server's own
/// time, or to a column default evaluated elsewhere, would be a day early.
pub async fn written_times_follow_the_moved_clock(store: Arc<dyn Store>) {
    register(
        &*store,
        &workflow("timed", vec![retrying(step("a"), 3, secs(1))]),
    )
    .await;
    store.advance_clock(secs(86_400)).await.unwrap();
    let before = store.now().await.unwrap();
    let run = start(&*store, "timed", 1).await[0];
    let w = worker(&*store, secs(60)).await;
    let first = claim(&*store, w, 1).await;
    assert!(matches!(
        fail(&*store, &first[0], true, "again").await,
        FailOutcome::Retrying { .. }
    ));
    store.advance_clock(secs(2)).await.unwrap();
    let second = claim(&*store, w, 1).await;
    assert_eq!(second.len(), 1, "the retry is due");
    complete_all(&*store, &second).await;
    let after = store.now().await.unwrap();

    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Completed);
    let a = step_of(&view, "a");
    let mut times = vec![("run created", view.created_at)];
    times.extend(view.started_at.map(|t| ("run started", t)));
    times.extend(view.finished_at.map(|t| ("run finished", t)));
    times.extend(a.started_at.map(|t| ("step started", t)));
    times.extend(a.finished_at.map(|t| ("step finished", t)));
    for attempt in &a.history {
        times.extend(attempt.started_at.map(|t| ("attempt started", t)));
        times.push(("attempt finished", attempt.finished_at));
    }
    assert_eq!(a.history.len(), 2, "the failed and the completed attempt");
    let events = run_events(&*store, run, EventKind::RunCompleted).await;
    assert!(
        events.len() >= 5,
        "created, 2 × started, failed, completed, ..."
    );
    times.extend(events.iter().map(|e| (e.kind.as_str(), e.at)));
    for (what, t) in times {
        assert!(
            before <= t && t <= after,
            "{what} at {t} is outside the database clock's {before}..{after}"
        );
    }
}
