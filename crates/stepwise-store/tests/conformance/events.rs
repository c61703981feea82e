//! The transactional outbox (invariants 3 and 10).

use crate::support::*;
use serde_json::json;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use stepwise_core::{EventKind, RunId, RunStatus};
use stepwise_store::*;

/// Invariant 3: every committed state change has its event and no refused or
/// rolled-back write has one. Checked by accounting events against attempt history.
pub async fn events_exist_iff_state_change_committed(store: Arc<dyn Store>) {
    const RUNS: usize = 20;
    let spec = workflow("ledger", vec![retrying(step("a"), 3, secs(1)), step("b")]);
    register(&*store, &spec).await;
    let runs = start(&*store, "ledger", RUNS).await;
    let w1 = worker(&*store, secs(10)).await;
    let w2 = worker(&*store, secs(3600)).await;

    let held = claim(&*store, w1, 100).await;
    assert_eq!(held.len(), RUNS);
    complete_all(&*store, &held[0..5]).await;
    for c in &held[5..10] {
        assert!(matches!(
            fail(&*store, c, true, "again").await,
            FailOutcome::Retrying { .. }
        ));
    }
    let leases: Vec<_> = held[10..15].iter().map(|c| c.lease).collect();
    assert_eq!(
        store.release_steps(&leases).await.unwrap().accepted.len(),
        5
    );
    // held[15..] stay with w1, whose lease runs out.
    store.advance_clock(secs(11)).await.unwrap();
    let reaped = store.reap(w2).await.unwrap();
    assert_eq!(reaped.workers, vec![w1]);
    assert_eq!(reaped.steps_retried.len(), 5);

    // Every one of w1's leases is stale now: each write is refused, and must leave
    // no event behind.
    let report = complete(&*store, &held).await;
    assert!(report.accepted.is_empty());
    assert_eq!(report.refused.len(), RUNS);
    for c in &held {
        assert_eq!(fail(&*store, c, true, "late").await, FailOutcome::Refused);
    }
    let all: Vec<_> = held.iter().map(|c| c.lease).collect();
    assert_eq!(store.release_steps(&all).await.unwrap().refused.len(), RUNS);

    store.advance_clock(secs(5)).await.unwrap();
    let drained = drain(&*store, w2).await;
    assert_eq!(
        drained.len(),
        RUNS + (RUNS - 5),
        "every a not yet done, and every b"
    );

    let events = events_when(&*store, None, "every run completed", |e| {
        count(e, EventKind::RunCompleted) == RUNS
    })
    .await;
    let mut per_kind: HashMap<EventKind, usize> = HashMap::new();
    for e in &events {
        *per_kind.entry(e.kind).or_default() += 1;
    }
    let mut attempts: HashMap<&str, usize> = HashMap::new();
    let mut retried = 0;
    let views: Vec<RunView> = {
        let mut v = Vec::new();
        for run in &runs {
            v.push(get_run(&*store, *run).await);
        }
        v
    };
    for view in &views {
        assert_eq!(view.status, RunStatus::Completed);
        for s in &view.steps {
            for h in &s.history {
                *attempts.entry(h.outcome.as_str()).or_default() += 1;
            }
            // Failed attempts that were followed by another attempt were retried.
            retried += s.history.iter().filter(|h| h.outcome == "failed").count();
        }
    }
    let n = |k: EventKind| per_kind.get(&k).copied().unwrap_or(0);
    let a = |o: &str| attempts.get(o).copied().unwrap_or(0);
    let total_attempts: usize = attempts.values().sum();
    assert_eq!(n(EventKind::RunCreated), RUNS);
    assert_eq!(
        n(EventKind::StepStarted),
        total_attempts,
        "one start per attempt"
    );
    assert_eq!(n(EventKind::StepCompleted), a("completed"));
    assert_eq!(a("completed"), RUNS * 2);
    assert_eq!(n(EventKind::StepFailed), a("failed"));
    assert_eq!(a("failed"), 5);
    assert_eq!(n(EventKind::StepRetrying), retried);
    assert_eq!(n(EventKind::StepReleased), a("released"));
    assert_eq!(a("released"), 5);
    assert_eq!(n(EventKind::StepReaped), a("reaped"));
    assert_eq!(a("reaped"), 5);
    assert_eq!(n(EventKind::WorkerReaped), 1);
    assert_eq!(n(EventKind::RunCompleted), RUNS);
    assert_eq!(n(EventKind::RunFailed), 0);
    for view in &views {
        let mine: Vec<&Event> = events
            .iter()
            .filter(|e| e.run_id == Some(view.id))
            .collect();
        assert_eq!(mine.first().unwrap().kind, EventKind::RunCreated);
        assert_eq!(mine.last().unwrap().kind, EventKind::RunCompleted);
    }
}

/// A batch that fails part-way leaves neither rows nor events.
pub async fn failed_writes_leave_no_trace(store: Arc<dyn Store>) {
    register(&*store, &one_step("atomic")).await;
    let bad_key = NewRun::new("atomic", json!(2)).idempotency_key("");
    let batch = RunBatch {
        group: Some("all-or-nothing".into()),
        runs: vec![NewRun::new("atomic", json!(1)), bad_key],
    };
    let err = store.create_runs(batch).await.unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)), "{err:?}");
    let unknown = RunBatch {
        group: Some("all-or-nothing".into()),
        runs: vec![
            NewRun::new("atomic", json!(1)),
            NewRun::new("nowhere", json!(2)),
        ],
    };
    let err = store.create_runs(unknown).await.unwrap_err();
    assert!(
        matches!(err, StoreError::UnknownWorkflow(ref w) if w == "nowhere"),
        "{err:?}"
    );

    assert!(store.get_group("all-or-nothing").await.unwrap().is_none());
    assert!(runs_of(&*store, "atomic").await.is_empty());

    // The name is free, and the first event served is this batch's.
    let ok = RunBatch {
        group: Some("all-or-nothing".into()),
        runs: vec![NewRun::new("atomic", json!(1))],
    };
    let id = create(&*store, ok).await[0];
    let events = events_when(&*store, None, "run.created", |e| !e.is_empty()).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, EventKind::RunCreated);
    assert_eq!(events[0].run_id, Some(id));
    assert_eq!(events[0].group.as_deref(), Some("all-or-nothing"));
}

/// Invariant 10: a reader following the stream beside busy writers sees every event
/// exactly once, in the order a later full read returns.
pub async fn event_reader_never_skips_beside_concurrent_writers(store: Arc<dyn Store>) {
    const WRITERS: usize = 8;
    const ROUNDS: usize = 15;
    const PER_ROUND: usize = 2;
    const EXPECTED: usize = WRITERS * ROUNDS * PER_ROUND * 4;
    register(&*store, &one_step("stream")).await;

    // The reader follows the stream until told to stop, then reads until caught up.
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let store = store.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut seen: Vec<Event> = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                assert!(
                    Instant::now() < deadline,
                    "reader saw {} events",
                    seen.len()
                );
                // Read `stop` first: an empty page read after it means caught up.
                let stopping = stop.load(Ordering::SeqCst);
                let page = store
                    .read_events(&EventQuery {
                        after: seen.last().map(|e| e.cursor.clone()),
                        run: None,
                        limit: 37,
                    })
                    .await
                    .expect("read events");
                if page.is_empty() {
                    if stopping {
                        return seen;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                seen.extend(page);
            }
        })
    };

    let mut writers = Vec::new();
    for i in 0..WRITERS {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let me = worker(&*store, secs(3600)).await;
            for round in 0..ROUNDS {
                let runs = (0..PER_ROUND)
                    .map(|k| NewRun::new("stream", json!([i, round, k])))
                    .collect();
                create(&*store, RunBatch { group: None, runs }).await;
                let batch = claim(&*store, me, PER_ROUND as u32).await;
                if !batch.is_empty() {
                    complete_all(&*store, &batch).await;
                }
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    let sweeper = worker(&*store, secs(3600)).await;
    drain(&*store, sweeper).await;

    // Once a full read serves every event, the reader must catch up to the same list.
    let full = events_when(&*store, None, "all events", |e| e.len() >= EXPECTED).await;
    assert_eq!(full.len(), EXPECTED);
    stop.store(true, Ordering::SeqCst);
    let seen = reader.await.unwrap();
    let seen_cursors: HashSet<&EventCursor> = seen.iter().map(|e| &e.cursor).collect();
    assert_eq!(seen_cursors.len(), seen.len(), "no event served twice");
    let missed: Vec<String> = full
        .iter()
        .filter(|e| !seen_cursors.contains(&e.cursor))
        .map(|e| format!("{} {}", e.cursor, e.kind))
        .collect();
    assert!(
        missed.is_empty(),
        "the reader skipped {} of {EXPECTED} events, e.g. {:?}",
        missed.len(),
        &missed[..missed.len().min(5)]
    );
    assert_eq!(seen.len(), EXPECTED);
    let a: Vec<&EventCursor> = seen.iter().map(|e| &e.cursor).collect();
    let b: Vec<&EventCursor> = full.iter().map(|e| &e.cursor).collect();
    assert_eq!(a, b, "the reader and a fresh read agree on the order");
    let late = store
        .read_events(&EventQuery {
            after: seen.last().map(|e| e.cursor.clone()),
            run: None,
            limit: 100,
        })
        .await
        .unwrap();
    assert!(late.is_empty(), "nothing after the last cursor: {late:?}");

    // Each run's events are in lifecycle order.
    let mut per_run: HashMap<RunId, Vec<EventKind>> = HashMap::new();
    for e in &seen {
        per_run
            .entry(e.run_id.expect("run event"))
            .or_default()
            .push(e.kind);
    }
    assert_eq!(per_run.len(), WRITERS * ROUNDS * PER_ROUND);
    for kinds in per_run.values() {
        assert_eq!(
            kinds,
            &[
                EventKind::RunCreated,
                EventKind::StepStarted,
                EventKind::StepCompleted,
                EventKind::RunCompleted
            ]
        );
    }

    // The run filter serves the same events for one run.
    let (&some_run, _) = per_run.iter().next().unwrap();
    let one = read_all_events(&*store, Some(some_run)).await;
    assert_eq!(one.len(), 4);
    assert!(one.iter().all(|e| e.run_id == Some(some_run)));
}

/// A follower that starts from the latest cursor (the dashboard, `?after=now`) sees
/// every later event and none of the history.
pub async fn following_from_the_latest_cursor_yields_only_later_events(store: Arc<dyn Store>) {
    assert_eq!(
        store.latest_event_cursor().await.unwrap(),
        None,
        "no events yet"
    );
    register(&*store, &one_step("tail")).await;
    let first = create(
        &*store,
        RunBatch {
            group: None,
            runs: vec![NewRun::new("tail", json!({"n": 1}))],
        },
    )
    .await;
    let history = events_when(&*store, None, "the first run's event", |e| !e.is_empty()).await;
    let latest = store
        .latest_event_cursor()
        .await
        .unwrap()
        .expect("a cursor once there are events");
    assert_eq!(&latest, &history.last().unwrap().cursor);
    let after = |cursor: EventCursor| EventQuery {
        after: Some(cursor),
        run: None,
        limit: 100,
    };
    assert!(store
        .read_events(&after(latest.clone()))
        .await
        .unwrap()
        .is_empty());

    let second = create(
        &*store,
        RunBatch {
            group: None,
            runs: vec![NewRun::new("tail", json!({"n": 2}))],
        },
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let later = loop {
        let page = store.read_events(&after(latest.clone())).await.unwrap();
        if !page.is_empty() || Instant::now() > deadline {
            break page;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert!(!later.is_empty(), "the second run's events are served");
    assert!(
        later.iter().all(|e| e.run_id == Some(second[0])),
        "only events after the cursor: {later:?} (first run {})",
        first[0]
    );
    assert_eq!(
        store.latest_event_cursor().await.unwrap().as_ref(),
        Some(&later.last().unwrap().cursor)
    );
}

/// `newest_events` is the tail of what a reader following from the start gets, in
/// the same order, with or without a run filter.
pub async fn the_newest_events_are_the_tail_of_the_feed(store: Arc<dyn Store>) {
    assert!(store.newest_events(None, 10).await.unwrap().is_empty());
    register(&*store, &one_step("tail")).await;
    let runs = start(&*store, "tail", 3).await;
    let me = worker(&*store, secs(3600)).await;
    drain(&*store, me).await;
    let full = events_when(&*store, None, "every run completed", |e| {
        count(e, EventKind::RunCompleted) == 3
    })
    .await;
    let cursors = |events: &[Event]| events.iter().map(|e| e.cursor.clone()).collect::<Vec<_>>();
    let newest = store.newest_events(None, 4).await.unwrap();
    assert_eq!(cursors(&newest), cursors(&full[full.len() - 4..]));
    let everything = store.newest_events(None, 10_000).await.unwrap();
    assert_eq!(cursors(&everything), cursors(&full));
    let of_one: Vec<Event> = full
        .iter()
        .filter(|e| e.run_id == Some(runs[1]))
        .cloned()
        .collect();
    let newest_of_one = store.newest_events(Some(runs[1]), 100).await.unwrap();
    assert_eq!(cursors(&newest_of_one), cursors(&of_one));
    let last_two = store.newest_events(Some(runs[1]), 2).await.unwrap();
    assert_eq!(cursors(&last_two), cursors(&of_one[of_one.len() - 2..]));
}
