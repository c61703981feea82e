//! Rate limits and fairness: a key's starts stay within `limit + burst` per `per`
//! whatever the racing claimers, a changed limit and a pause apply to the next
//! claim, keys are independent, back-pressure pauses its key, and a fairness key
//! with one run is served in the next claim however long another key's backlog.

use crate::support::*;
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use stepwise_core::{EventKind, RateLimitSpec, RunId, StepSpec};
use stepwise_store::*;

fn limited(key: &str, limit: u32, per_ms: u64, burst: u32) -> StepSpec {
    let mut s = step("call");
    s.rate_limit = Some(RateLimitSpec {
        key: key.into(),
        limit,
        per_ms,
        burst,
    });
    s
}

async fn runs_with_input(
    store: &dyn Store,
    workflow: &str,
    inputs: Vec<serde_json::Value>,
) -> Vec<RunId> {
    let runs = inputs
        .into_iter()
        .map(|i| NewRun::new(workflow, i))
        .collect();
    create(store, RunBatch { group: None, runs }).await
}

pub async fn the_admitted_rate_never_exceeds_limit_plus_burst_with_racing_claimers(
    store: Arc<dyn Store>,
) {
    register(&*store, &workflow("api", vec![limited("api", 10, 1000, 2)])).await;
    let runs = start(&*store, "api", 60).await;
    let done = Arc::new(AtomicUsize::new(0));
    let mut claimers = Vec::new();
    for _ in 0..4 {
        let (store, done) = (store.clone(), done.clone());
        claimers.push(tokio::spawn(async move {
            let w = worker(&*store, secs(3600)).await;
            while done.load(Ordering::SeqCst) < 60 {
                let claimed = claim(&*store, w, 5).await;
                if claimed.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                complete_all(&*store, &claimed).await;
                done.fetch_add(claimed.len(), Ordering::SeqCst);
            }
        }));
    }
    // Time moves by the database clock only, in steps shorter than the interval.
    while done.load(Ordering::SeqCst) < 60 {
        store
            .advance_clock(Duration::from_millis(40))
            .await
            .expect("advance");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for c in claimers {
        c.await.expect("claimer");
    }
    let mut starts = Vec::new();
    for run in runs {
        let view = get_run(&*store, run).await;
        starts.push(step_of(&view, "call").started_at.expect("started"));
    }
    starts.sort();
    for (i, first) in starts.iter().enumerate() {
        let window = starts[i..]
            .iter()
            .take_while(|s| **s < *first + chrono::Duration::seconds(1))
            .count();
        assert!(window <= 12, "{window} starts in the second from {first}");
    }
    let span = *starts.last().unwrap() - starts[0];
    assert!(
        span >= chrono::Duration::milliseconds(4500),
        "60 starts at 10/s take 5 s: {span}"
    );
    let limits = store.list_limits().await.expect("limits");
    assert_eq!(limits.len(), 1);
    assert_eq!((limits[0].key.as_str(), limits[0].admitted), ("api", 60));
}

pub async fn a_changed_limit_applies_to_the_next_claim(store: Arc<dyn Store>) {
    register(
        &*store,
        &workflow("api", vec![limited("slow", 1, 3_600_000, 1)]),
    )
    .await;
    start(&*store, "api", 3).await;
    let w = worker(&*store, secs(600)).await;
    assert_eq!(claim(&*store, w, 5).await.len(), 1, "one an hour");
    assert!(claim(&*store, w, 5).await.is_empty());
    let view = store
        .set_limit(&LimitSetting {
            key: "slow".into(),
            limit: 100,
            per_ms: 1000,
            burst: 5,
        })
        .await
        .expect("set");
    assert!(view.overridden);
    assert_eq!(view.waiting, 2);
    // The old limit's TAT was an hour ahead: the new limit applies from now.
    assert_eq!(view.next_start, None, "the raised limit admits now");
    assert_eq!(claim(&*store, w, 5).await.len(), 2);
    // A file does not change an overridden key back.
    register(
        &*store,
        &workflow("api", vec![limited("slow", 1, 3_600_000, 1), step("more")]),
    )
    .await;
    start(&*store, "api", 1).await;
    let limits = store.list_limits().await.expect("limits");
    assert_eq!(
        (limits[0].limit, limits[0].per_ms, limits[0].burst),
        (100, 1000, 5)
    );
    let bad = store
        .set_limit(&LimitSetting {
            key: "slow".into(),
            limit: 0,
            per_ms: 1000,
            burst: 1,
        })
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidInput(_))), "{bad:?}");
}

pub async fn a_paused_key_admits_nothing_until_its_time(store: Arc<dyn Store>) {
    register(
        &*store,
        &workflow("api", vec![limited("k", 1000, 1000, 100)]),
    )
    .await;
    start(&*store, "api", 4).await;
    let w = worker(&*store, secs(3600)).await;
    assert!(store
        .pause_limit("unknown", PauseUntil::For(secs(60)))
        .await
        .expect("pause")
        .is_none());
    // Nothing stored yet for a key no run used is unknown; this one is known.
    let paused = store
        .pause_limit("k", PauseUntil::For(secs(60)))
        .await
        .expect("pause")
        .expect("known key");
    assert!(paused.paused_until.is_some());
    assert!(claim(&*store, w, 5).await.is_empty(), "paused");
    store.advance_clock(secs(61)).await.expect("advance");
    assert_eq!(
        claim(&*store, w, 1).await.len(),
        1,
        "the pause ended by the clock"
    );
    store
        .pause_limit("k", PauseUntil::For(secs(3600)))
        .await
        .expect("pause");
    assert!(claim(&*store, w, 5).await.is_empty());
    let resumed = store
        .resume_limit("k")
        .await
        .expect("resume")
        .expect("known");
    assert_eq!(resumed.paused_until, None);
    assert_eq!(claim(&*store, w, 5).await.len(), 3);
    let events = events_when(&*store, None, "two pauses and a resume", |e| {
        e.iter()
            .filter(|e| e.kind == EventKind::LimitPaused)
            .count()
            == 2
            && e.iter().any(|e| e.kind == EventKind::LimitResumed)
    })
    .await;
    assert!(events
        .iter()
        .any(|e| e.kind == EventKind::LimitPaused && e.data["key"] == "k"));
}

pub async fn keys_are_independent(store: Arc<dyn Store>) {
    register(
        &*store,
        &workflow(
            "api",
            vec![limited("tenant:{{ input.tenant }}", 1, 3_600_000, 1)],
        ),
    )
    .await;
    runs_with_input(
        &*store,
        "api",
        vec![
            json!({"tenant": "a"}),
            json!({"tenant": "a"}),
            json!({"tenant": "b"}),
        ],
    )
    .await;
    let w = worker(&*store, secs(600)).await;
    let first = claim(&*store, w, 5).await;
    assert_eq!(first.len(), 2, "one of a, one of b");
    let tenants: Vec<&serde_json::Value> = first.iter().map(|c| &c.input["tenant"]).collect();
    assert!(tenants.contains(&&json!("a")) && tenants.contains(&&json!("b")));
    assert!(
        claim(&*store, w, 5).await.is_empty(),
        "a's second waits an hour"
    );
    let keys: Vec<String> = store
        .list_limits()
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.key)
        .collect();
    assert_eq!(keys, ["tenant:a", "tenant:b"]);
}

pub async fn back_pressure_pauses_the_key_and_delays_the_retry(store: Arc<dyn Store>) {
    let mut call = limited("svc", 1000, 1000, 100);
    call.max_attempts = Some(3);
    register(&*store, &workflow("api", vec![call])).await;
    start(&*store, "api", 3).await;
    let w = worker(&*store, secs(3600)).await;
    let c = claim(&*store, w, 1).await;
    let outcome = store
        .fail_step(&StepFailure {
            lease: c[0].lease,
            error: "HTTP 429: the service asked to retry after 30s".into(),
            log: None,
            retryable: true,
            retry_after: Some(secs(30)),
        })
        .await
        .expect("fail");
    let FailOutcome::Retrying {
        attempt: 2,
        run_after,
    } = outcome
    else {
        panic!("retrying: {outcome:?}")
    };
    let limits = store.list_limits().await.unwrap();
    let paused = limits[0].paused_until.expect("the key is paused");
    assert!(
        (paused - run_after).num_seconds().abs() <= 1,
        "{paused} vs {run_after}"
    );
    assert!(claim(&*store, w, 5).await.is_empty(), "the whole key waits");
    store.advance_clock(secs(31)).await.expect("advance");
    assert_eq!(
        claim(&*store, w, 5).await.len(),
        3,
        "the retry and the others"
    );
}

pub async fn a_small_tenant_is_served_in_the_next_claim(store: Arc<dyn Store>) {
    let mut spec = workflow("t", vec![step("work")]);
    spec.run.fairness_key = Some("{{ input.tenant }}".into());
    register(&*store, &spec).await;
    let big: Vec<serde_json::Value> = (0..10_000).map(|_| json!({"tenant": "a"})).collect();
    runs_with_input(&*store, "t", big).await;
    let w = worker(&*store, secs(600)).await;
    let first = claim(&*store, w, 3).await;
    assert!(first.iter().all(|c| c.input["tenant"] == "a"));
    complete_all(&*store, &first).await;
    runs_with_input(&*store, "t", vec![json!({"tenant": "b"})]).await;
    let next = claim(&*store, w, 1).await;
    assert_eq!(
        next[0].input["tenant"], "b",
        "b goes before a's backlog of 9,997"
    );
    // And then round-robin: a, and a again once b has nothing left.
    let after = claim(&*store, w, 2).await;
    assert!(after.iter().all(|c| c.input["tenant"] == "a"));
}

/// A step with a rate key is never handed on by its predecessor's completion: the
/// hand-off would start it without its key's admission.
pub async fn a_rate_limited_step_is_never_handed_off(store: Arc<dyn Store>) {
    let mut b = step("b");
    b.rate_limit = Some(RateLimitSpec {
        key: "slow".into(),
        limit: 1,
        per_ms: 3_600_000,
        burst: 1,
    });
    register(&*store, &workflow("relay", vec![step("a"), b])).await;
    start(&*store, "relay", 2).await;
    let me = worker(&*store, secs(600)).await;
    let a = claim(&*store, me, 2).await;
    assert_eq!(a.len(), 2);
    let outcomes: Vec<StepSuccess> = a.iter().map(success).collect();
    let slots = a
        .iter()
        .map(|c| HandOffSlot {
            after: c.lease,
            queues: QueueFilter::AllBut(vec![]),
        })
        .collect();
    let done = store
        .complete_and_hand_off(&outcomes, &HandOff { worker: me, slots })
        .await
        .expect("complete and hand off");
    assert!(
        done.handed_off.is_empty(),
        "no b is handed off: {:?}",
        done.handed_off
    );
    assert_eq!(
        claim(&*store, me, 5).await.len(),
        1,
        "one b an hour, by its key"
    );
    assert!(claim(&*store, me, 5).await.is_empty());
}

/// Items inherit their step's rate limit key (and are admitted by it).
pub async fn items_of_a_for_each_step_are_admitted_by_its_key(store: Arc<dyn Store>) {
    let mut each = after("each", &[]);
    each.for_each = Some(stepwise_core::ForEach {
        path: "input.xs".into(),
        max_parallel: None,
        max_items: None,
        on_item_failure: stepwise_core::ItemFailure::Fail,
    });
    each.rate_limit = Some(RateLimitSpec {
        key: "items".into(),
        limit: 1,
        per_ms: 3_600_000,
        burst: 2,
    });
    register(&*store, &workflow("fan", vec![each])).await;
    let run = runs_with_input(&*store, "fan", vec![json!({"xs": [1, 2, 3, 4, 5]})]).await[0];
    let me = worker(&*store, secs(600)).await;
    let mut started = 0;
    for _ in 0..4 {
        started += claim(&*store, me, 10).await.len();
    }
    let page = store
        .list_items(&ItemsRequest {
            run,
            step: "each".into(),
            from: 0,
            limit: 10,
        })
        .await
        .expect("items")
        .expect("expanded");
    assert_eq!(page.counts.total, 5);
    assert!(page
        .items
        .iter()
        .all(|i| i.rate_key.as_deref() == Some("items")));
    // The burst, all of it for items: the expansion's own claim starts no work
    // and takes no admission of the key.
    assert_eq!(started, 2, "the burst started");
    let limits = store.list_limits().await.expect("limits");
    assert_eq!((limits[0].admitted, limits[0].waiting), (2, 3));
}

/// The widest settings `limits set` accepts (a huge burst of a one-a-year limit)
/// keep every claim and listing working: the burst's tolerance is capped.
pub async fn the_widest_limit_settings_keep_claims_working(store: Arc<dyn Store>) {
    register(&*store, &workflow("api", vec![limited("wide", 5, 1000, 1)])).await;
    start(&*store, "api", 3).await;
    store
        .set_limit(&LimitSetting {
            key: "wide".into(),
            limit: 1,
            per_ms: 365 * 86_400_000,
            burst: i32::MAX as u32,
        })
        .await
        .expect("the widest setting is accepted");
    let w = worker(&*store, secs(600)).await;
    assert_eq!(claim(&*store, w, 10).await.len(), 3, "within the burst");
    let limits = store.list_limits().await.expect("limits");
    assert_eq!((limits[0].admitted, limits[0].waiting), (3, 0));
}
