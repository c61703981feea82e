//! Steps that wait without a worker: sleeps, signals and callbacks. A waiting step
//! holds no lease and is never claimed; a signal sent while a wait begins is never
//! lost; a wait ends once, whoever races to end it.

use crate::harness::Harness;
use crate::support::*;
use serde_json::{json, Value};
use std::sync::Arc;
use stepwise_core::{EventKind, RunId, RunStatus, StepStatus};
use stepwise_store::*;

fn signal_to(run: RunId, name: &str, data: Value, id: Option<&str>) -> SignalRequest {
    SignalRequest {
        target: SignalTarget::Run(run),
        name: name.into(),
        data,
        id: id.map(str::to_string),
    }
}

fn wait_for(name: &str, timeout_secs: Option<u64>) -> WaitFor {
    WaitFor::Signal {
        name: name.into(),
        timeout: timeout_secs.map(secs),
    }
}

async fn park(store: &dyn Store, c: &ClaimedStep, wait: WaitFor) -> ParkOutcome {
    store
        .park_step(&ParkRequest {
            lease: c.lease,
            wait,
        })
        .await
        .expect("park")
}

async fn signal(store: &dyn Store, request: &SignalRequest) -> SignalOutcome {
    store.send_signal(request).await.expect("send signal")
}

/// Two-step runs: `wait` (parked by the test) then `after`.
async fn waiting_runs(store: &dyn Store, n: usize) -> (WorkerId, Vec<RunId>) {
    register(store, &workflow("w", vec![step("wait"), step("after")])).await;
    let runs = start(store, "w", n).await;
    (worker(store, secs(600)).await, runs)
}

use stepwise_core::WorkerId;

pub async fn a_signal_sent_before_the_wait_is_kept_and_taken_when_it_begins(store: Arc<dyn Store>) {
    let (w, runs) = waiting_runs(&*store, 1).await;
    let sent = signal(
        &*store,
        &signal_to(runs[0], "approved", json!({"by": "ann"}), None),
    )
    .await;
    let SignalOutcome::Delivered(d) = sent else {
        panic!("delivered: {sent:?}")
    };
    assert_eq!(d.consumed_by, None, "nothing waits yet");
    let c = claim(&*store, w, 1).await;
    assert_eq!(
        park(&*store, &c[0], wait_for("approved", Some(60))).await,
        ParkOutcome::Completed
    );
    let run = get_run(&*store, runs[0]).await;
    assert_eq!(step_of(&run, "wait").status, StepStatus::Completed);
    assert_eq!(step_of(&run, "wait").output, Some(json!({"by": "ann"})));
    // The next step is claimable at once.
    let next = claim(&*store, w, 1).await;
    assert_eq!(next[0].step, "after");
    assert_eq!(next[0].dependency_outputs["wait"], json!({"by": "ann"}));
}

pub async fn a_waiting_step_holds_no_lease_and_is_never_claimed(store: Arc<dyn Store>) {
    let (w, runs) = waiting_runs(&*store, 1).await;
    let c = claim(&*store, w, 1).await;
    let parked = park(&*store, &c[0], wait_for("go", Some(60))).await;
    let ParkOutcome::Waiting { until: Some(_) } = parked else {
        panic!("waiting with a time limit: {parked:?}")
    };
    assert!(claim(&*store, w, 10).await.is_empty());
    let run = get_run(&*store, runs[0]).await;
    let step = step_of(&run, "wait");
    assert_eq!(step.status, StepStatus::Waiting);
    let waiting = step.waiting.as_ref().expect("what it waits for");
    assert_eq!(
        (waiting.kind.as_str(), waiting.signal.as_deref()),
        ("signal", Some("go"))
    );
    // Its old lease writes nothing: the worker let go of it.
    assert_eq!(complete(&*store, &c).await.refused.len(), 1);
    let workers = store.list_workers().await.unwrap();
    assert_eq!(workers.iter().map(|x| x.running_steps).sum::<i64>(), 0);
    let counts = store.waiting_counts().await.unwrap();
    assert_eq!(counts, vec![("signal".to_string(), 1)]);
    // The signal ends the wait in its own transaction.
    let sent = signal(&*store, &signal_to(runs[0], "go", json!(7), None)).await;
    let SignalOutcome::Delivered(d) = sent else {
        panic!("delivered: {sent:?}")
    };
    assert_eq!(d.consumed_by.as_deref(), Some("wait"));
    assert_eq!(claim(&*store, w, 1).await[0].step, "after");
    let events = events_when(&*store, Some(runs[0]), "signal.received", |e| {
        count(e, EventKind::SignalReceived) == 1
    })
    .await;
    assert_eq!(count(&events, EventKind::StepWaiting), 1);
}

/// Parks and signals race over many runs: each wait ends, none hangs.
pub async fn a_signal_racing_the_wait_is_never_lost(store: Arc<dyn Store>) {
    const RUNS: usize = 40;
    let (w, runs) = waiting_runs(&*store, RUNS).await;
    let claimed = claim(&*store, w, RUNS as u32).await;
    assert_eq!(claimed.len(), RUNS);
    let mut tasks = Vec::new();
    for c in claimed {
        let run = c.run_id;
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            park(&*s, &c, wait_for("go", None)).await;
        }));
        let s = store.clone();
        tasks.push(tokio::spawn(async move {
            signal(&*s, &signal_to(run, "go", json!(run.0.to_string()), None)).await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for run in runs {
        let view = get_run(&*store, run).await;
        let wait = step_of(&view, "wait");
        assert_eq!(wait.status, StepStatus::Completed, "run {run} hangs");
        assert_eq!(wait.output, Some(json!(run.0.to_string())));
    }
}

pub async fn a_repeated_signal_id_is_accepted_once(store: Arc<dyn Store>) {
    let (w, runs) = waiting_runs(&*store, 1).await;
    let first = signal(&*store, &signal_to(runs[0], "go", json!(1), Some("msg-1"))).await;
    let again = signal(&*store, &signal_to(runs[0], "go", json!(2), Some("msg-1"))).await;
    let (SignalOutcome::Delivered(a), SignalOutcome::Duplicate(b)) = (&first, &again) else {
        panic!("delivered then duplicate: {first:?} {again:?}")
    };
    assert_eq!(a.seq, b.seq);
    let c = claim(&*store, w, 1).await;
    assert_eq!(
        park(&*store, &c[0], wait_for("go", None)).await,
        ParkOutcome::Completed
    );
    assert_eq!(
        step_of(&get_run(&*store, runs[0]).await, "wait").output,
        Some(json!(1))
    );
    // A second wait for "go" finds no second signal: the duplicate was not stored.
    let c = claim(&*store, w, 1).await;
    let parked = park(&*store, &c[0], wait_for("go", None)).await;
    assert_eq!(parked, ParkOutcome::Waiting { until: None });
}

/// The timeout and the signal arrive together: exactly one ends the wait.
pub async fn a_timeout_racing_its_signal_has_exactly_one_winner(h: Arc<Harness>) {
    const RUNS: usize = 12;
    let store = h.store.clone();
    let (w, runs) = waiting_runs(&*store, RUNS).await;
    for c in claim(&*store, w, RUNS as u32).await {
        park(&*store, &c, wait_for("go", Some(30))).await;
    }
    store.advance_clock(secs(31)).await.unwrap();
    let waker = {
        let s = h.store.clone();
        tokio::spawn(async move { s.wake_steps(1000).await.unwrap() })
    };
    let mut senders = Vec::new();
    for &run in &runs {
        let s = h.store.clone();
        senders.push(tokio::spawn(async move {
            signal(&*s, &signal_to(run, "go", json!("yes"), None)).await
        }));
    }
    let woken = waker.await.unwrap();
    let mut consumed = 0;
    for s in senders {
        if let SignalOutcome::Delivered(d) = s.await.unwrap() {
            consumed += usize::from(d.consumed_by.is_some());
        }
    }
    assert_eq!(
        woken.timed_out.len() + consumed,
        RUNS,
        "each wait ended once"
    );
    for run in runs {
        let view = get_run(&*store, run).await;
        let wait = step_of(&view, "wait");
        match wait.status {
            StepStatus::Completed => assert_eq!(wait.output, Some(json!("yes"))),
            StepStatus::Failed => {
                assert_eq!(
                    wait.error.as_deref(),
                    Some("timed out waiting for signal go")
                );
                assert_eq!(view.status, RunStatus::Failed);
            }
            other => panic!("run {run}: step {other}"),
        }
    }
}

pub async fn a_sleep_due_while_no_worker_runs_completes_on_the_next_wake(store: Arc<dyn Store>) {
    let (w, runs) = waiting_runs(&*store, 1).await;
    let c = claim(&*store, w, 1).await;
    let parked = park(&*store, &c[0], WaitFor::Sleep(SleepUntil::After(secs(600)))).await;
    assert!(matches!(parked, ParkOutcome::Waiting { until: Some(_) }));
    assert_eq!(store.wake_steps(100).await.unwrap(), WakeReport::default());
    // The worker that slept is gone; time passes with nobody around.
    store.deregister_worker(w).await.unwrap();
    store.advance_clock(secs(3600)).await.unwrap();
    let woken = store.wake_steps(100).await.unwrap();
    assert_eq!(woken.slept.len(), 1);
    // A second waker finds nothing left to do.
    assert!(store.wake_steps(100).await.unwrap().is_empty());
    let other = worker(&*store, secs(600)).await;
    assert_eq!(claim(&*store, other, 1).await[0].step, "after");
    let run = get_run(&*store, runs[0]).await;
    assert_eq!(step_of(&run, "wait").output, Some(Value::Null));
    // A sleep whose time is already past completes at once.
    let (w2, runs2) = (other, start(&*store, "w", 1).await);
    let c = claim_from(&*store, w2, &[DEFAULT_QUEUE], 1).await;
    let now = store.now().await.unwrap();
    let at = now - chrono::Duration::seconds(5);
    assert_eq!(
        park(&*store, &c[0], WaitFor::Sleep(SleepUntil::At(at))).await,
        ParkOutcome::Completed
    );
    assert_eq!(
        step_of(&get_run(&*store, runs2[0]).await, "wait").status,
        StepStatus::Completed
    );
}

async fn callback_run(store: &dyn Store) -> (WorkerId, RunId) {
    let mut s = retrying(step("submit"), 3, secs(1));
    s.action = stepwise_core::StepAction::Exec {
        argv: vec!["./submit.sh".into()],
    };
    s.complete = Some(stepwise_core::CompleteBy::Callback);
    register(store, &workflow("cb", vec![s, step("after")])).await;
    let runs = start(store, "cb", 1).await;
    (worker(store, secs(600)).await, runs[0])
}

async fn callback(store: &dyn Store, token: &str, result: CallbackResult) -> CallbackOutcome {
    store
        .complete_callback(&CallbackRequest {
            token: token.into(),
            result,
        })
        .await
        .expect("callback")
}

pub async fn a_callback_of_an_old_attempt_is_refused(store: Arc<dyn Store>) {
    let (w, run) = callback_run(&*store).await;
    let first = claim(&*store, w, 1).await;
    let old = store
        .issue_callback(first[0].lease)
        .await
        .unwrap()
        .expect("token");
    park(
        &*store,
        &first[0],
        WaitFor::Callback {
            timeout: Some(secs(60)),
        },
    )
    .await;
    // The callback reports an error: the attempt fails and is retried.
    let failed = callback(
        &*store,
        &old,
        CallbackResult::Error {
            message: "remote job crashed".into(),
            permanent: false,
        },
    )
    .await;
    assert!(
        matches!(failed, CallbackOutcome::Retrying { .. }),
        "{failed:?}"
    );
    // The token worked once.
    let again = callback(&*store, &old, CallbackResult::Output(json!(1))).await;
    assert_eq!(again, CallbackOutcome::Refused);
    store.advance_clock(secs(5)).await.unwrap();
    let second = claim(&*store, w, 1).await;
    assert_eq!(second[0].attempt, 2);
    let new = store
        .issue_callback(second[0].lease)
        .await
        .unwrap()
        .expect("token");
    assert_ne!(old, new);
    assert_eq!(
        callback(&*store, &old, CallbackResult::Output(json!("late"))).await,
        CallbackOutcome::Refused,
        "an old attempt's token never finishes a newer attempt"
    );
    // A callback that comes before the action finished ends the attempt; the
    // worker's park is then refused.
    let done = callback(&*store, &new, CallbackResult::Output(json!({"job": 42}))).await;
    assert!(
        matches!(done, CallbackOutcome::Completed { .. }),
        "{done:?}"
    );
    let late = park(&*store, &second[0], WaitFor::Callback { timeout: None }).await;
    assert_eq!(late, ParkOutcome::Refused);
    let view = get_run(&*store, run).await;
    assert_eq!(step_of(&view, "submit").output, Some(json!({"job": 42})));
    assert_eq!(
        store.issue_callback(second[0].lease).await.unwrap(),
        None,
        "no token for a lease that is not current"
    );
    assert_eq!(
        callback(&*store, "sw_unknown", CallbackResult::Output(json!(1))).await,
        CallbackOutcome::Refused
    );
}

pub async fn an_expired_callback_is_an_attempt_error_and_retries(store: Arc<dyn Store>) {
    let (w, run) = callback_run(&*store).await;
    let c = claim(&*store, w, 1).await;
    let token = store
        .issue_callback(c[0].lease)
        .await
        .unwrap()
        .expect("token");
    let parked = park(
        &*store,
        &c[0],
        WaitFor::Callback {
            timeout: Some(secs(60)),
        },
    )
    .await;
    assert!(matches!(parked, ParkOutcome::Waiting { until: Some(_) }));
    let view = get_run(&*store, run).await;
    let waiting = step_of(&view, "submit").waiting.clone().expect("waits");
    assert_eq!(
        (waiting.kind.as_str(), waiting.attempt),
        ("callback", Some(1))
    );
    store.advance_clock(secs(61)).await.unwrap();
    let woken = store.wake_steps(100).await.unwrap();
    assert_eq!(woken.callbacks_expired.len(), 1);
    assert_eq!(
        callback(&*store, &token, CallbackResult::Output(json!(1))).await,
        CallbackOutcome::Refused
    );
    let view = get_run(&*store, run).await;
    let step = step_of(&view, "submit");
    assert_eq!(step.status, StepStatus::Pending);
    assert_eq!(
        step.history[0].error.as_deref(),
        Some("timed out waiting for the callback")
    );
}

pub async fn cancel_ends_a_waiting_step_at_once(store: Arc<dyn Store>) {
    let (w, runs) = waiting_runs(&*store, 1).await;
    let c = claim(&*store, w, 1).await;
    park(&*store, &c[0], wait_for("go", Some(3600))).await;
    let cancelled = store
        .cancel_run(&CancelRequest {
            run: runs[0],
            compensate: true,
        })
        .await
        .unwrap();
    assert!(
        matches!(cancelled, CancelOutcome::Cancelled { .. }),
        "{cancelled:?}"
    );
    let view = get_run(&*store, runs[0]).await;
    assert_eq!(
        view.status,
        RunStatus::Cancelled,
        "nothing runs: the run ends at once"
    );
    assert_eq!(step_of(&view, "wait").status, StepStatus::Cancelled);
    assert_eq!(step_of(&view, "wait").waiting, None);
    assert!(store.waiting_counts().await.unwrap().is_empty());
    let late = signal(&*store, &signal_to(runs[0], "go", json!(1), None)).await;
    assert_eq!(
        late,
        SignalOutcome::RunFinished {
            run_id: runs[0],
            status: RunStatus::Cancelled
        }
    );
    store.advance_clock(secs(7200)).await.unwrap();
    assert!(store.wake_steps(100).await.unwrap().is_empty());
}

pub async fn signals_address_runs_by_key_and_can_start_them(store: Arc<dyn Store>) {
    let (w, _) = waiting_runs(&*store, 0).await;
    let by_key = |start: bool| SignalRequest {
        target: SignalTarget::Key {
            workflow: "w".into(),
            idempotency_key: "order-7".into(),
            start: start.then(|| NewRun::new("w", json!({"order": 7})).idempotency_key("order-7")),
        },
        name: "go".into(),
        data: json!("first"),
        id: None,
    };
    assert_eq!(
        signal(&*store, &by_key(false)).await,
        SignalOutcome::UnknownRun
    );
    let SignalOutcome::Delivered(d) = signal(&*store, &by_key(true)).await else {
        panic!("get-or-create then signal")
    };
    assert!(d.run_created);
    let SignalOutcome::Delivered(again) = signal(&*store, &by_key(true)).await else {
        panic!("the same run")
    };
    assert_eq!((again.run_id, again.run_created), (d.run_id, false));
    let c = claim(&*store, w, 1).await;
    assert_eq!(c[0].run_id, d.run_id);
    assert_eq!(
        park(&*store, &c[0], wait_for("go", None)).await,
        ParkOutcome::Completed
    );
    assert_eq!(
        signal(
            &*store,
            &signal_to(RunId(uuid::Uuid::new_v4()), "go", json!(1), None)
        )
        .await,
        SignalOutcome::UnknownRun
    );
    let bad = store
        .send_signal(&signal_to(d.run_id, "no spaces", json!(1), None))
        .await;
    assert!(matches!(bad, Err(StoreError::InvalidInput(_))), "{bad:?}");
}
