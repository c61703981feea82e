//! The library API an embedding program uses: `Engine`, handlers, transactional enqueue.

use crate::support::{Backend, Scratch, TestDb};
use serde_json::json;
use std::time::Duration;
use stepwise::core::spec::{RunPolicy, StepDefaults};
use stepwise::core::{RunStatus, StepSpec, WorkflowSpec};
use stepwise::{CancellationToken, Engine, HandlerContext, HandlerError};

fn spec() -> WorkflowSpec {
    WorkflowSpec {
        name: "embedded".into(),
        defaults: StepDefaults::default(),
        run: RunPolicy::default(),
        steps: vec![
            StepSpec::handler("double", "double"),
            StepSpec::handler("add-one", "add-one"),
        ],
    }
}

async fn handlers_run_a_pipeline(backend: Backend) {
    let scratch = Scratch::new();
    let db = TestDb::new(backend, &scratch);
    let engine = Engine::connect(&db.url).await.unwrap();
    engine.register(&spec()).await.unwrap();
    let run = engine
        .start("embedded", json!({"n": 20}))
        .idempotency_key("order-20")
        .send()
        .await
        .unwrap();
    let again = engine
        .start("embedded", json!({"n": 20}))
        .idempotency_key("order-20")
        .send()
        .await
        .unwrap();
    assert_eq!(run, again, "the idempotency key returns the first run");
    let worker = engine
        .worker()
        .pool("*", 4)
        .handler("double", |cx: HandlerContext| async move {
            let n = cx.context["input"]["n"]
                .as_i64()
                .ok_or_else(|| HandlerError::permanent("no n"))?;
            Ok(json!(n * 2))
        })
        .handler("add-one", |cx: HandlerContext| async move {
            Ok(json!(
                cx.context["steps"]["double"].as_i64().unwrap_or(0) + 1
            ))
        })
        .build()
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    let store = engine.store();
    // Generous: the machine may be loaded; a pass takes well under a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let view = loop {
        let view = store.get_run(run).await.unwrap().unwrap();
        if view.status.is_terminal() || std::time::Instant::now() > deadline {
            break view;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(view.status, RunStatus::Completed, "{view:?}");
    assert_eq!(view.steps[1].output, Some(json!(41)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_handlers_run_a_pipeline() {
    handlers_run_a_pipeline(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_handlers_run_a_pipeline() {
    handlers_run_a_pipeline(Backend::Postgres).await;
}

/// A run started in the caller's transaction exists exactly when that commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_start_in_commits_or_rolls_back_with_the_caller() {
    use sqlx::Connection;
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Postgres, &scratch);
    let engine = Engine::connect(&db.url).await.unwrap();
    engine.register(&spec()).await.unwrap();
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();

    let mut tx = conn.begin().await.unwrap();
    let dropped = engine
        .start("embedded", json!({"n": 1}))
        .send_in(&mut tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert!(engine.store().get_run(dropped).await.unwrap().is_none());

    let mut tx = conn.begin().await.unwrap();
    let kept = engine
        .start("embedded", json!({"n": 2}))
        .send_in(&mut tx)
        .await
        .unwrap();
    assert!(
        engine.store().get_run(kept).await.unwrap().is_none(),
        "invisible before the caller commits"
    );
    tx.commit().await.unwrap();
    let view = engine.store().get_run(kept).await.unwrap().unwrap();
    assert_eq!(view.status, RunStatus::Running);
}

/// An embedding program signals a run whose step waits, holding no worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_signal_from_the_library_ends_a_wait() {
    use stepwise::core::{StepAction, StepStatus, WaitAction};
    let scratch = Scratch::new();
    let db = TestDb::new(Backend::Sqlite, &scratch);
    let engine = Engine::connect(&db.url).await.unwrap();
    let mut approval = StepSpec::handler("approval", "unused");
    approval.action = StepAction::Wait(WaitAction {
        signal: "approved".into(),
        timeout_ms: None,
    });
    let spec = WorkflowSpec {
        name: "gated".into(),
        defaults: StepDefaults::default(),
        run: RunPolicy::default(),
        steps: vec![approval, StepSpec::handler("ship", "ship")],
    };
    engine.register(&spec).await.unwrap();
    let run = engine.start("gated", json!({})).send().await.unwrap();
    let worker = engine
        .worker()
        .pool("*", 1)
        .handler("ship", |cx: HandlerContext| async move {
            Ok(json!({"shipped_by": cx.context["steps"]["approval"]["by"]}))
        })
        .build()
        .await
        .unwrap();
    let shutdown = CancellationToken::new();
    let handle = tokio::spawn(worker.run(shutdown.clone()));
    let store = engine.store();
    let until = |want: fn(&stepwise::store::RunView) -> bool| {
        let store = store.clone();
        async move {
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            loop {
                let view = store.get_run(run).await.unwrap().unwrap();
                if want(&view) || std::time::Instant::now() > deadline {
                    return view;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let view = until(|v| v.steps[0].status == StepStatus::Waiting).await;
    assert_eq!(view.steps[0].status, StepStatus::Waiting, "{view:?}");
    let sent = engine
        .signal(run, "approved", json!({"by": "ann"}))
        .await
        .unwrap();
    assert!(
        matches!(sent, stepwise::store::SignalOutcome::Delivered(_)),
        "{sent:?}"
    );
    let view = until(|v| v.status.is_terminal()).await;
    shutdown.cancel();
    handle.await.unwrap().unwrap();
    assert_eq!(view.status, RunStatus::Completed, "{view:?}");
    assert_eq!(view.steps[1].output, Some(json!({"shipped_by": "ann"})));
}
