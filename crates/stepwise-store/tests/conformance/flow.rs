//! Flow control: concurrency keys (FIFO admission, slots that cannot leak), paused
//! queues, resource locks, and `explain`.

use crate::support::*;
use serde_json::json;
use std::sync::Arc;
use stepwise_core::spec::ConcurrencySpec;
use stepwise_core::{EventKind, RunId, RunStatus, StepSpec, WorkerId, WorkflowSpec};
use stepwise_store::explain::{explain_run, Reason};
use stepwise_store::*;

fn keyed(name: &str, steps: Vec<StepSpec>, limit: u32) -> WorkflowSpec {
    let mut spec = workflow(name, steps);
    spec.run.concurrency = Some(ConcurrencySpec {
        key: "tenant-{{ input.tenant }}".into(),
        limit,
    });
    spec
}

fn with_resource(mut s: StepSpec, template: &str) -> StepSpec {
    s.resource = Some(template.into());
    s
}

async fn start_for(store: &dyn Store, workflow: &str, tenants: &[&str]) -> Vec<RunId> {
    let runs = tenants
        .iter()
        .enumerate()
        .map(|(i, t)| NewRun::new(workflow, json!({"tenant": t, "i": i})))
        .collect();
    create(store, RunBatch { group: None, runs }).await
}

async fn status(store: &dyn Store, run: RunId) -> RunStatus {
    get_run(store, run).await.status
}

async fn key(store: &dyn Store, name: &str) -> ConcurrencyKeyView {
    store
        .concurrency_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.key == name)
        .unwrap_or_else(|| panic!("key {name} exists"))
}

async fn finish(store: &dyn Store, w: WorkerId) -> Vec<RunId> {
    let claimed = claim(store, w, 100).await;
    complete_all(store, &claimed).await;
    claimed.iter().map(|c| c.run_id).collect()
}

/// Runs of one key are admitted in creation order, at most `limit` at a time; other
/// keys are not held up, and a waiting run's steps are not claimable.
pub async fn a_key_admits_its_runs_in_creation_order_up_to_its_limit(store: Arc<dyn Store>) {
    register(&*store, &keyed("fifo", vec![step("work")], 1)).await;
    let runs = start_for(&*store, "fifo", &["a", "b", "a", "a", "b"]).await;
    let expected = [
        RunStatus::Running,
        RunStatus::Running,
        RunStatus::Pending,
        RunStatus::Pending,
        RunStatus::Pending,
    ];
    for (run, want) in runs.iter().zip(expected) {
        assert_eq!(status(&*store, *run).await, want);
    }
    let view = get_run(&*store, runs[2]).await;
    assert!(view.started_at.is_none());
    let w = worker(&*store, secs(600)).await;
    let mut order = Vec::new();
    loop {
        let claimed = claim(&*store, w, 100).await;
        if claimed.is_empty() {
            break;
        }
        let keys: Vec<String> = claimed
            .iter()
            .map(|c| c.input["tenant"].as_str().unwrap().to_string())
            .collect();
        let mut distinct = keys.clone();
        distinct.dedup();
        assert_eq!(
            distinct.len(),
            keys.len(),
            "one run per key at a time: {keys:?}"
        );
        order.extend(claimed.iter().map(|c| c.run_id));
        complete_all(&*store, &claimed).await;
    }
    assert_eq!(order, [runs[0], runs[1], runs[2], runs[4], runs[3]]);
    assert_eq!(key(&*store, "tenant-a").await.active, 0);
    let events = events_when(&*store, None, "every run completed", |e| {
        count(e, EventKind::RunCompleted) == 5
    })
    .await;
    let started: Vec<RunId> = events
        .iter()
        .filter(|e| e.kind == EventKind::RunStarted)
        .filter_map(|e| e.run_id)
        .collect();
    assert_eq!(started.len(), 5, "each run is started once");
}

/// Limit 3 is reached and never exceeded.
pub async fn a_limit_is_reached_and_never_exceeded(store: Arc<dyn Store>) {
    register(&*store, &keyed("three", vec![step("a"), step("b")], 3)).await;
    start_for(&*store, "three", &["t"; 10]).await;
    let w = worker(&*store, secs(600)).await;
    let mut peak = 0;
    for _ in 0..100 {
        let k = key(&*store, "tenant-t").await;
        assert!(k.active <= 3, "{k:?}");
        peak = peak.max(k.active);
        let running = runs_of(&*store, "three")
            .await
            .iter()
            .filter(|r| r.status == RunStatus::Running)
            .count();
        assert!(running <= 3, "{running} runs hold slots");
        // One step at a time, so runs overlap as much as they can.
        let claimed = claim(&*store, w, 1).await;
        if claimed.is_empty() {
            break;
        }
        complete_all(&*store, &claimed).await;
    }
    assert_eq!(peak, 3);
    assert!(runs_of(&*store, "three")
        .await
        .iter()
        .all(|r| r.status == RunStatus::Completed));
}

/// Every terminal path frees the slot for the next run: a failure, a deadline, a
/// cancel (of a running and of a waiting run).
pub async fn every_terminal_path_frees_the_slot(store: Arc<dyn Store>) {
    let mut spec = keyed("paths", vec![retrying(step("work"), 1, secs(1))], 1);
    spec.run.deadline_ms = Some(60_000);
    register(&*store, &spec).await;
    let runs = start_for(&*store, "paths", &["k"; 5]).await;
    let w = worker(&*store, secs(3600)).await;
    // 0 fails.
    let c = claim(&*store, w, 10).await;
    assert_eq!(c.len(), 1);
    fail(&*store, &c[0], false, "no").await;
    assert_eq!(status(&*store, runs[1]).await, RunStatus::Running);
    // 1 times out (3 and 4 wait; their deadlines are later: pushed by a retry below).
    claim(&*store, w, 10).await;
    store.advance_clock(secs(61)).await.unwrap();
    let expired = store.expire_runs(100).await.unwrap();
    assert!(expired.contains(&runs[1]));
    // Waiting runs time out too: a deadline counts time spent in line.
    for run in &runs[2..] {
        assert_eq!(status(&*store, *run).await, RunStatus::TimedOut);
    }
    let revoked = store.revoked_leases(w).await.unwrap();
    assert_eq!(revoked.len(), 1);
    store
        .fail_step(&StepFailure {
            lease: revoked[0],
            error: "stopped".into(),
            log: None,
            retryable: false,
            retry_after: None,
        })
        .await
        .unwrap();
    assert_eq!(status(&*store, runs[1]).await, RunStatus::TimedOut);
    assert_eq!(key(&*store, "tenant-k").await.active, 0);
    // Retried, they queue again; a cancel of the running one admits the next, and a
    // cancel of a waiting one takes it out of line.
    for run in &runs[2..] {
        retry_run(&*store, *run).await;
    }
    assert_eq!(status(&*store, runs[2]).await, RunStatus::Running);
    assert_eq!(status(&*store, runs[3]).await, RunStatus::Pending);
    store
        .cancel_run(&CancelRequest {
            run: runs[2],
            compensate: true,
        })
        .await
        .unwrap();
    assert_eq!(status(&*store, runs[2]).await, RunStatus::Cancelled);
    assert_eq!(status(&*store, runs[3]).await, RunStatus::Running);
    store
        .cancel_run(&CancelRequest {
            run: runs[4],
            compensate: true,
        })
        .await
        .unwrap();
    assert_eq!(status(&*store, runs[4]).await, RunStatus::Cancelled);
    let done = finish(&*store, w).await;
    assert_eq!(done, [runs[3]]);
    let k = key(&*store, "tenant-k").await;
    assert_eq!((k.active, k.waiting), (0, 0), "{k:?}");
}

async fn retry_run(store: &dyn Store, run: RunId) -> RetryOutcome {
    store
        .retry_run(&RetryRequest { run, from: None })
        .await
        .expect("retry")
}

/// A keyed run whose worker dies keeps its slot while its step is retried, and gives
/// it back exactly once when it ends, even when the reap is its last attempt.
pub async fn a_reaped_keyed_step_does_not_leak_the_slot(store: Arc<dyn Store>) {
    register(
        &*store,
        &keyed("reaped", vec![retrying(step("work"), 2, secs(1))], 1),
    )
    .await;
    let runs = start_for(&*store, "reaped", &["r"; 2]).await;
    let reaper = worker(&*store, secs(3600)).await;
    for attempt in 1..=2 {
        let dying = worker(&*store, secs(10)).await;
        let c = claim(&*store, dying, 10).await;
        assert_eq!((c.len(), c[0].run_id, c[0].attempt), (1, runs[0], attempt));
        store.advance_clock(secs(11)).await.unwrap();
        store.reap(reaper).await.unwrap();
        assert_eq!(key(&*store, "tenant-r").await.active, 1);
    }
    assert_eq!(status(&*store, runs[0]).await, RunStatus::Failed);
    assert_eq!(status(&*store, runs[1]).await, RunStatus::Running);
    assert_eq!(finish(&*store, reaper).await, [runs[1]]);
    assert_eq!(key(&*store, "tenant-r").await.active, 0);
}

/// Raising a key's limit admits waiting runs in the same call; a retried run queues
/// at the back of its key's line.
pub async fn raising_a_limit_admits_at_once_and_retries_queue_at_the_back(store: Arc<dyn Store>) {
    register(
        &*store,
        &keyed("raise", vec![retrying(step("work"), 1, secs(1))], 1),
    )
    .await;
    let runs = start_for(&*store, "raise", &["x"; 4]).await;
    let w = worker(&*store, secs(600)).await;
    let c = claim(&*store, w, 10).await;
    fail(&*store, &c[0], false, "no").await;
    assert_eq!(status(&*store, runs[1]).await, RunStatus::Running);
    retry_run(&*store, runs[0]).await;
    let line = store.key_line("tenant-x").await.unwrap().unwrap();
    assert_eq!(line.holders, [runs[1]]);
    assert_eq!(
        line.waiting,
        [runs[2], runs[3], runs[0]],
        "the retried run is last"
    );
    let view = store.set_key_limit("tenant-x", 3).await.unwrap();
    assert_eq!((view.limit, view.active, view.waiting), (3, 3, 1));
    assert!(view.limit_set);
    for run in &runs[1..] {
        assert_eq!(status(&*store, *run).await, RunStatus::Running);
    }
    // An operator's limit outlives new runs of a workflow that says 1.
    start_for(&*store, "raise", &["x"]).await;
    assert_eq!(key(&*store, "tenant-x").await.limit, 3);
    let invalid = store.set_key_limit("tenant-x", 0).await;
    assert!(matches!(invalid, Err(StoreError::InvalidInput(_))));
}

/// A paused queue's steps are not claimed until it is resumed.
pub async fn a_paused_queue_is_not_claimed(store: Arc<dyn Store>) {
    register(&*store, &one_step("paused")).await;
    start(&*store, "paused", 2).await;
    assert!(store.set_queue_paused(DEFAULT_QUEUE, true).await.unwrap());
    assert!(!store.set_queue_paused("no-such-queue", true).await.unwrap());
    let w = worker(&*store, secs(600)).await;
    assert!(claim(&*store, w, 10).await.is_empty());
    let stats = store.queue_stats().await.unwrap();
    let q = stats.iter().find(|q| q.name == DEFAULT_QUEUE).unwrap();
    assert!(q.paused);
    assert_eq!((q.pending, q.running), (2, 0));
    assert!(q.oldest_pending_since.is_some());
    store.set_queue_paused(DEFAULT_QUEUE, false).await.unwrap();
    assert_eq!(claim(&*store, w, 10).await.len(), 2);
    let stats = store.queue_stats().await.unwrap();
    let q = stats.iter().find(|q| q.name == DEFAULT_QUEUE).unwrap();
    assert_eq!((q.pending, q.running), (0, 2));
}

/// Steps on one resource run one at a time: racing claimers get one between them,
/// the lock goes with the outcome, and the next step gets it.
pub async fn steps_on_one_resource_run_one_at_a_time(store: Arc<dyn Store>) {
    let spec = workflow(
        "locked",
        vec![with_resource(step("write"), "db:{{ input.db }}")],
    );
    register(&*store, &spec).await;
    let runs: Vec<NewRun> = (0..6)
        .map(|i| {
            NewRun::new(
                "locked",
                json!({"db": if i < 4 { "main" } else { "other" }}),
            )
        })
        .collect();
    create(&*store, RunBatch { group: None, runs }).await;
    let mut claimers = Vec::new();
    for _ in 0..3 {
        let store = store.clone();
        claimers.push(tokio::spawn(async move {
            let me = worker(&*store, secs(600)).await;
            claim(&*store, me, 10).await
        }));
    }
    let mut claimed = Vec::new();
    for c in claimers {
        claimed.extend(c.await.unwrap());
    }
    let mut dbs: Vec<&str> = claimed
        .iter()
        .map(|c| c.input["db"].as_str().unwrap())
        .collect();
    dbs.sort();
    assert_eq!(dbs, ["main", "other"], "one step per resource");
    let locks = store.list_locks().await.unwrap();
    assert_eq!(locks.len(), 2);
    assert!(locks.iter().all(|l| l.holder_kind == HolderKind::Step));
    let view = get_run(&*store, claimed[0].run_id).await;
    assert!(view.steps[0]
        .resource
        .as_deref()
        .unwrap()
        .starts_with("db:"));
    let w = worker(&*store, secs(600)).await;
    assert!(
        claim(&*store, w, 10).await.is_empty(),
        "both resources are held"
    );
    complete_all(&*store, &claimed).await;
    assert!(store.list_locks().await.unwrap().is_empty());
    let mut done = 2;
    while done < 6 {
        let next = claim(&*store, w, 10).await;
        let mut dbs: Vec<&str> = next
            .iter()
            .map(|c| c.input["db"].as_str().unwrap())
            .collect();
        dbs.dedup();
        assert!(
            !next.is_empty() && dbs.len() == next.len(),
            "one step per resource: {dbs:?}"
        );
        complete_all(&*store, &next).await;
        done += next.len();
    }
    assert_eq!(done, 6);
}

/// Operator locks: a held lock is refused (even to its holder) naming the holder;
/// release needs the token; an expired lock is free and swept; a forced release
/// leaves an audit event; a step waits while an operator holds its resource.
pub async fn locks_conflict_release_by_token_expire_and_force_release(store: Arc<dyn Store>) {
    let ask = |ttl| LockRequest {
        key: "db:main".into(),
        ttl: secs(ttl),
        holder_kind: HolderKind::Cli,
        holder_id: "cli:alice".into(),
    };
    let LockOutcome::Acquired { lock, token } = store.acquire_lock(&ask(60)).await.unwrap() else {
        panic!("a free lock is acquired");
    };
    assert_eq!(lock.holder_id, "cli:alice");
    let LockOutcome::Held(holder) = store.acquire_lock(&ask(60)).await.unwrap() else {
        panic!("a held lock is refused");
    };
    assert_eq!(holder.holder_id, "cli:alice");
    assert_eq!(holder.expires_at, lock.expires_at);

    let spec = workflow(
        "waits",
        vec![with_resource(step("write"), "db:{{ input.db }}")],
    );
    register(&*store, &spec).await;
    create(
        &*store,
        RunBatch {
            group: None,
            runs: vec![NewRun::new("waits", json!({"db": "main"}))],
        },
    )
    .await;
    let w = worker(&*store, secs(600)).await;
    assert!(
        claim(&*store, w, 10).await.is_empty(),
        "the operator holds db:main"
    );

    let wrong = store
        .release_lock("db:main", uuid::Uuid::new_v4())
        .await
        .unwrap();
    assert!(matches!(wrong, ReleaseOutcome::WrongToken(_)));
    assert_eq!(
        store.release_lock("db:main", token).await.unwrap(),
        ReleaseOutcome::Released
    );
    assert_eq!(
        store.release_lock("db:main", token).await.unwrap(),
        ReleaseOutcome::NotHeld
    );
    let step = claim(&*store, w, 10).await;
    assert_eq!(step.len(), 1, "free again: the step takes it");
    complete_all(&*store, &step).await;

    // Expiry: a lock past its ttl is free, and the reaper sweeps it.
    store.acquire_lock(&ask(10)).await.unwrap();
    store.advance_clock(secs(11)).await.unwrap();
    assert!(store.list_locks().await.unwrap().is_empty());
    let LockOutcome::Acquired { token, .. } = store.acquire_lock(&ask(10)).await.unwrap() else {
        panic!("an expired lock is free");
    };
    store.advance_clock(secs(11)).await.unwrap();
    store.reap(w).await.unwrap();
    assert_eq!(
        store.release_lock("db:main", token).await.unwrap(),
        ReleaseOutcome::NotHeld
    );

    store.acquire_lock(&ask(60)).await.unwrap();
    let forced = store
        .force_release_lock("db:main", "alice is on holiday")
        .await
        .unwrap()
        .expect("it was held");
    assert_eq!(forced.holder_id, "cli:alice");
    assert!(store
        .force_release_lock("db:main", "again")
        .await
        .unwrap()
        .is_none());
    let blank = store.force_release_lock("db:main", " ").await;
    assert!(matches!(blank, Err(StoreError::InvalidInput(_))));
    let events = events_when(&*store, None, "lock.force_released", |e| {
        count(e, EventKind::LockForceReleased) == 1
    })
    .await;
    let audit = events
        .iter()
        .find(|e| e.kind == EventKind::LockForceReleased)
        .unwrap();
    assert_eq!(audit.data["reason"], "alice is on holiday");
    assert_eq!(audit.data["holder_id"], "cli:alice");
    assert!(count(&events, EventKind::LockAcquired) >= 3);
    assert!(events
        .iter()
        .any(|e| e.kind == EventKind::LockReleased && e.data["reason"] == "expired"));
}

/// A reaped step's lock outlives its worker's lease by a margin, so the dead worker's
/// child cannot still be writing when the next holder starts.
pub async fn a_reaped_steps_lock_is_kept_past_its_lease(store: Arc<dyn Store>) {
    let spec = workflow("held", vec![with_resource(step("write"), "disk")]);
    register(&*store, &spec).await;
    start(&*store, "held", 1).await;
    let dying = worker(&*store, secs(30)).await;
    assert_eq!(claim(&*store, dying, 10).await.len(), 1);
    let reaper = worker(&*store, secs(3600)).await;
    store.advance_clock(secs(31)).await.unwrap();
    let report = store.reap(reaper).await.unwrap();
    assert_eq!(report.steps_retried.len(), 1);
    assert!(
        claim(&*store, reaper, 10).await.is_empty(),
        "the lock outlives the lease"
    );
    store.advance_clock(secs(31)).await.unwrap();
    let again = claim(&*store, reaper, 10).await;
    assert_eq!(again.len(), 1, "then it is free");
    assert_eq!(again[0].attempt, 2);
}

/// `explain` names why each unfinished step is not running.
pub async fn explain_names_each_reason(store: Arc<dyn Store>) {
    let mut spec = keyed(
        "explained",
        vec![
            root("first"),
            after("second", &["first"]),
            with_resource(root("locked"), "db"),
            retrying(root("flaky"), 3, secs(60)),
        ],
        1,
    );
    spec.steps[1].queue = Some("elsewhere".into());
    register(&*store, &spec).await;
    let runs = start_for(&*store, "explained", &["e", "e"]).await;
    let why = |e: &stepwise_store::explain::RunExplanation, step: &str| {
        e.steps
            .iter()
            .find(|s| s.step == step)
            .unwrap_or_else(|| panic!("{step} is explained: {e:?}"))
            .reason
            .clone()
    };
    // Nobody serves the queue yet.
    let e = explain_run(&*store, runs[0]).await.unwrap().unwrap();
    assert!(
        matches!(why(&e, "first"), Reason::NoLiveWorker { .. }),
        "{e:?}"
    );
    assert_eq!(
        why(&e, "second"),
        Reason::WaitingForDependencies {
            steps: vec!["first".into()]
        }
    );
    let waiting = explain_run(&*store, runs[1]).await.unwrap().unwrap();
    assert_eq!(
        waiting.reason,
        Some(Reason::WaitingForSlot {
            key: "tenant-e".into(),
            position: 1,
            limit: 1,
            holders: vec![runs[0]],
        })
    );
    assert!(waiting
        .reason
        .as_ref()
        .unwrap()
        .to_string()
        .contains("number 1 in line"));

    let LockOutcome::Acquired { .. } = store
        .acquire_lock(&LockRequest {
            key: "db".into(),
            ttl: secs(600),
            holder_kind: HolderKind::Cli,
            holder_id: "cli:bob".into(),
        })
        .await
        .unwrap()
    else {
        panic!("free");
    };
    store.set_queue_paused("elsewhere", true).await.unwrap();
    let w = worker(&*store, secs(600)).await;
    let claimed = claim(&*store, w, 1).await;
    assert_eq!(claimed[0].step, "first");
    let flaky = claim(&*store, w, 10).await;
    assert_eq!(flaky.len(), 1);
    assert_eq!(flaky[0].step, "flaky");
    fail(&*store, &flaky[0], true, "flaked").await;
    complete_all(&*store, &claimed).await;

    let e = explain_run(&*store, runs[0]).await.unwrap().unwrap();
    assert!(
        matches!(why(&e, "second"), Reason::QueuePaused { .. }),
        "{e:?}"
    );
    let Reason::WaitingForResource { holder_id, .. } = why(&e, "locked") else {
        panic!("locked waits for db: {e:?}");
    };
    assert_eq!(holder_id, "cli:bob");
    let Reason::BackingOff {
        next_attempt,
        max_attempts,
        last_error,
        ..
    } = why(&e, "flaky")
    else {
        panic!("flaky backs off: {e:?}");
    };
    assert_eq!((next_attempt, max_attempts), (2, 3));
    assert_eq!(last_error.as_deref(), Some("flaked"));
    assert!(
        e.steps.iter().all(|s| s.step != "first"),
        "finished steps are not explained"
    );

    store.set_queue_paused("elsewhere", false).await.unwrap();
    let running = claim_from(&*store, w, &["elsewhere"], 1).await;
    assert_eq!(running.len(), 1);
    let e = explain_run(&*store, runs[0]).await.unwrap().unwrap();
    let Reason::Running {
        worker,
        lease_until,
        ..
    } = why(&e, "second")
    else {
        panic!("second runs: {e:?}");
    };
    assert_eq!(worker, Some(w));
    assert!(lease_until.is_some());
    assert!(explain_run(&*store, RunId::new()).await.unwrap().is_none());
}

/// An undo takes the lock of the step it undoes: it waits while someone else holds it.
pub async fn a_compensation_takes_its_steps_resource_lock(store: Arc<dyn Store>) {
    let mut migrate = with_resource(step("migrate"), "prod-db");
    migrate.compensate = Some(stepwise_core::StepAction::Handler {
        name: "unmigrate".into(),
    });
    let mut bad = step("bad");
    bad.max_attempts = Some(1);
    register(&*store, &workflow("undo_locked", vec![migrate, bad])).await;
    let run = start(&*store, "undo_locked", 1).await[0];
    let w = worker(&*store, secs(600)).await;
    let first = claim(&*store, w, 10).await;
    complete_all(&*store, &first).await;
    let second = claim(&*store, w, 10).await;
    fail(&*store, &second[0], false, "no").await;
    let view = get_run(&*store, run).await;
    assert_eq!(view.status, RunStatus::Compensating);
    let undo = view
        .steps
        .iter()
        .find(|s| s.name == "compensate:migrate")
        .unwrap();
    assert_eq!(undo.resource.as_deref(), Some("prod-db"));
    let LockOutcome::Acquired { token, .. } = store
        .acquire_lock(&LockRequest {
            key: "prod-db".into(),
            ttl: secs(60),
            holder_kind: HolderKind::Cli,
            holder_id: "cli:ops".into(),
        })
        .await
        .unwrap()
    else {
        panic!("free");
    };
    assert!(
        claim(&*store, w, 10).await.is_empty(),
        "the undo waits for prod-db"
    );
    store.release_lock("prod-db", token).await.unwrap();
    let undo = claim(&*store, w, 10).await;
    assert_eq!(undo.len(), 1);
    complete_all(&*store, &undo).await;
    assert_eq!(get_run(&*store, run).await.status, RunStatus::Compensated);
}

/// Retrying a keyed `compensation_failed` run queues it for a slot like any retry; it
/// resumes compensating only once admitted.
pub async fn a_resumed_compensation_waits_for_its_keys_slot(store: Arc<dyn Store>) {
    let mut a = step("a");
    a.max_attempts = Some(1);
    a.compensate = Some(stepwise_core::StepAction::Handler {
        name: "undo".into(),
    });
    let mut b = step("b");
    b.max_attempts = Some(1);
    register(&*store, &keyed("resume", vec![a, b], 1)).await;
    let runs = start_for(&*store, "resume", &["k", "k"]).await;
    let w = worker(&*store, secs(600)).await;
    let step_a = claim(&*store, w, 10).await;
    complete_all(&*store, &step_a).await;
    let step_b = claim(&*store, w, 10).await;
    fail(&*store, &step_b[0], false, "b broke").await;
    let undo = claim(&*store, w, 10).await;
    assert_eq!(undo[0].step, "compensate:a");
    fail(&*store, &undo[0], false, "undo broke").await;
    assert_eq!(
        status(&*store, runs[0]).await,
        RunStatus::CompensationFailed
    );
    assert_eq!(status(&*store, runs[1]).await, RunStatus::Running);

    let RetryOutcome::Retried { status: now, .. } = retry_run(&*store, runs[0]).await else {
        panic!("retryable");
    };
    assert_eq!(
        now,
        RunStatus::Pending,
        "it waits behind the run holding the slot"
    );
    let next = claim(&*store, w, 10).await;
    assert!(
        next.iter().all(|c| c.run_id == runs[1]),
        "the resumed undo waits"
    );
    complete_all(&*store, &next).await;
    let last = claim(&*store, w, 10).await;
    complete_all(&*store, &last).await;
    assert_eq!(status(&*store, runs[1]).await, RunStatus::Completed);
    assert_eq!(status(&*store, runs[0]).await, RunStatus::Compensating);
    let resumed = claim(&*store, w, 10).await;
    assert_eq!(resumed[0].step, "compensate:a");
    complete_all(&*store, &resumed).await;
    assert_eq!(status(&*store, runs[0]).await, RunStatus::Compensated);
    assert_eq!(key(&*store, "tenant-k").await.active, 0);
}
