//! PostgreSQL only: nothing a worker does in the background waits for a row lock
//! another session holds. The other session stands for a worker frozen (cut off,
//! `SIGSTOP`) inside a transaction: it holds its locks until the server ends it.
//!
//! SQLite has no row locks: its writers take turns on the file lock, and a process
//! stopped while holding it stops every writer (see the README).

use crate::harness::{Database, Harness};
use crate::support::*;
use serde_json::json;
use sqlx::{Connection, PgConnection};
use std::sync::Arc;
use std::time::Duration;
use stepwise_core::{StepStatus, WorkerId};
use stepwise_store::*;

/// Far longer than any of these operations takes, far shorter than a lock held
/// "forever": an operation that waited for the held lock would miss it.
const PROMPTLY: Duration = Duration::from_secs(5);

fn pg_url() -> String {
    std::env::var("STEPWISE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

/// Another session on the harness's database, in a transaction: the silent worker.
async fn holder(harness: &Harness) -> PgConnection {
    let Database::Postgres(schema) = &harness.primary else {
        panic!("PostgreSQL only");
    };
    let mut conn = PgConnection::connect(&pg_url()).await.unwrap();
    sqlx::query(&format!("SET search_path = {schema}"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut conn).await.unwrap();
    conn
}

async fn hold(conn: &mut PgConnection, sql: &str) {
    let locked = sqlx::query(sql).execute(&mut *conn).await.unwrap();
    assert!(locked.rows_affected() > 0, "{sql} locked nothing");
}

async fn promptly<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(PROMPTLY, f)
        .await
        .unwrap_or_else(|_| panic!("{what} waited for a lock another session holds"))
}

/// Two steps of a worker whose lease ran out, and a live worker to reap them.
async fn two_orphans(store: &dyn Store) -> (WorkerId, WorkerId, Vec<ClaimedStep>) {
    register(store, &one_step("held")).await;
    start(store, "held", 2).await;
    let a = worker(store, secs(10)).await;
    let mut mine = claim(store, a, 2).await;
    assert_eq!(mine.len(), 2);
    mine.sort_by_key(|c| c.lease.step_id.0);
    store.advance_clock(secs(11)).await.unwrap();
    let b = worker(store, secs(60)).await;
    (a, b, mine)
}

async fn step_status(store: &dyn Store, claimed: &ClaimedStep) -> StepStatus {
    step_of(&get_run(store, claimed.run_id).await, &claimed.step).status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reaper_skips_a_step_another_session_holds_and_takes_it_on_a_later_pass() {
    let harness = Harness::postgres().await;
    let store = &*harness.store;
    let (a, b, mine) = two_orphans(store).await;
    let mut silent = holder(&harness).await;
    let held = mine[0].lease.step_id.0;
    hold(
        &mut silent,
        &format!("SELECT id FROM step WHERE id = '{held}' FOR UPDATE"),
    )
    .await;

    let first = promptly("the reaper", store.reap(b)).await.unwrap();
    assert_eq!(first.workers, vec![a]);
    assert_eq!(first.steps_retried, vec![mine[1].lease.step_id]);
    assert_eq!(first.steps_skipped, vec![mine[0].lease.step_id]);
    assert_eq!(step_status(store, &mine[0]).await, StepStatus::Running);

    // Another reaper meanwhile neither waits nor reaps it.
    let c = worker(store, secs(60)).await;
    let other = promptly("a second reaper", store.reap(c)).await.unwrap();
    assert_eq!(other.steps_skipped, vec![mine[0].lease.step_id]);
    assert!(other.steps_retried.is_empty());

    sqlx::query("ROLLBACK").execute(&mut silent).await.unwrap();
    let later = store.reap(b).await.unwrap();
    assert!(later.workers.is_empty(), "reaped once");
    assert_eq!(later.steps_retried, vec![mine[0].lease.step_id]);
    assert!(later.steps_skipped.is_empty());
    assert_eq!(step_status(store, &mine[0]).await, StepStatus::Pending);
    harness.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reaper_skips_a_worker_row_another_session_holds() {
    let harness = Harness::postgres().await;
    let store = &*harness.store;
    let (a, b, mine) = two_orphans(store).await;
    let mut silent = holder(&harness).await;
    hold(
        &mut silent,
        &format!("SELECT id FROM worker WHERE id = '{}' FOR UPDATE", a.0),
    )
    .await;

    let first = promptly("the reaper", store.reap(b)).await.unwrap();
    assert!(first.workers.is_empty(), "{first:?}");
    assert!(first.steps_retried.is_empty(), "its worker is not dead yet");

    sqlx::query("ROLLBACK").execute(&mut silent).await.unwrap();
    let later = store.reap(b).await.unwrap();
    assert_eq!(later.workers, vec![a]);
    let mut retried = later.steps_retried.clone();
    retried.sort_by_key(|s| s.0);
    assert_eq!(
        retried,
        mine.iter().map(|c| c.lease.step_id).collect::<Vec<_>>()
    );
    harness.finish().await;
}

/// What reaping a step needs beyond the step and its run (here the counter of its
/// group, as the step fails for good) is waited for only briefly; the step is then
/// skipped, and reaped once the row is free.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reaper_gives_up_waiting_for_a_group_row_and_skips_the_step() {
    let harness = Harness::postgres().await;
    let store = &*harness.store;
    let spec = workflow("once", vec![retrying(step("only"), 1, secs(1))]);
    register(store, &spec).await;
    create(
        store,
        RunBatch {
            group: Some("g".into()),
            runs: vec![NewRun::new("once", json!({}))],
        },
    )
    .await;
    let a = worker(store, secs(10)).await;
    let mine = claim(store, a, 1).await;
    assert_eq!(mine.len(), 1);
    store.advance_clock(secs(11)).await.unwrap();
    let b = worker(store, secs(60)).await;
    let mut silent = holder(&harness).await;
    hold(
        &mut silent,
        "SELECT name FROM run_group WHERE name = 'g' FOR UPDATE",
    )
    .await;

    let first = promptly("the reaper", store.reap(b)).await.unwrap();
    assert_eq!(first.workers, vec![a]);
    assert_eq!(first.steps_skipped, vec![mine[0].lease.step_id]);
    assert!(first.steps_failed.is_empty());
    assert_eq!(step_status(store, &mine[0]).await, StepStatus::Running);

    sqlx::query("ROLLBACK").execute(&mut silent).await.unwrap();
    let later = store.reap(b).await.unwrap();
    assert_eq!(later.steps_failed, vec![mine[0].lease.step_id]);
    assert_eq!(step_status(store, &mine[0]).await, StepStatus::Failed);
    harness.finish().await;
}

/// A heartbeat extends its steps' resource locks, skipping a lock row another
/// session holds (a claimer frozen while it looked at that resource) rather than
/// stalling behind it past the worker's own lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_heartbeat_never_waits_on_a_lock_row_another_session_holds() {
    let harness = Harness::postgres().await;
    let store = &*harness.store;
    let mut s = step("write");
    s.resource = Some("db".into());
    register(store, &workflow("locked", vec![s])).await;
    start(store, "locked", 1).await;
    let x = worker(store, secs(10)).await;
    assert_eq!(claim(store, x, 1).await.len(), 1);
    let mut silent = holder(&harness).await;
    hold(
        &mut silent,
        "SELECT name FROM resource_lock WHERE name = 'db' FOR UPDATE",
    )
    .await;

    let beat = promptly("the heartbeat", store.heartbeat(x)).await.unwrap();
    assert!(matches!(beat, Heartbeat::Alive { .. }), "{beat:?}");
    sqlx::query("ROLLBACK").execute(&mut silent).await.unwrap();
    harness.finish().await;
}

/// A worker's sessions carry the bounds of its lease from their first statement.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_workers_sessions_give_up_on_a_silent_client_within_its_lease() {
    let harness: Arc<Harness> = Harness::postgres().await;
    let Database::Postgres(schema) = &harness.primary else {
        panic!("PostgreSQL only");
    };
    let session = SessionOptions {
        lease: Some(secs(3)),
        application_name: Some("stepwise worker test:1".into()),
    };
    let store = PgStore::connect_in_schema_for(&pg_url(), schema, &session)
        .await
        .unwrap();
    let show = |name: &'static str| {
        let pool = store.pool().clone();
        async move {
            sqlx::query_scalar::<_, String>(&format!("SHOW {name}"))
                .fetch_one(&pool)
                .await
                .unwrap()
        }
    };
    assert_eq!(show("idle_in_transaction_session_timeout").await, "1s");
    assert_eq!(show("statement_timeout").await, "1500ms");
    assert_eq!(show("tcp_user_timeout").await, "3000", "milliseconds");
    assert_eq!(show("application_name").await, "stepwise worker test:1");
    // The store still works under them, including its search path.
    store.check_schema().await.unwrap();
    harness.finish().await;
}

/// A claim waits for a rate key another claim holds (a hot key's claims take turns
/// rather than come back empty) only briefly: a holder that stays silent costs the
/// claim its rate-limited steps this time, never its other work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_gives_up_on_a_rate_key_another_session_holds_and_claims_the_rest() {
    let harness = Harness::postgres().await;
    let store = &*harness.store;
    let mut call = step("call");
    call.rate_limit = Some(stepwise_core::RateLimitSpec {
        key: "hot".into(),
        limit: 100,
        per_ms: 1000,
        burst: 10,
    });
    register(store, &workflow("api", vec![call])).await;
    register(store, &one_step("plain")).await;
    start(store, "api", 2).await;
    start(store, "plain", 2).await;
    let w = worker(store, secs(60)).await;
    let mut silent = holder(&harness).await;
    hold(
        &mut silent,
        "SELECT key FROM rate_limit WHERE key = 'hot' FOR UPDATE",
    )
    .await;

    let first = promptly("a claim", claim(store, w, 10)).await;
    let mut names: Vec<_> = first.iter().map(|c| c.workflow.as_str()).collect();
    names.sort();
    assert_eq!(
        names,
        ["plain", "plain"],
        "the plain steps, not the held key's"
    );

    sqlx::query("ROLLBACK").execute(&mut silent).await.unwrap();
    let later = claim(store, w, 10).await;
    assert_eq!(later.len(), 2, "the key admits once it is free");
    assert!(later.iter().all(|c| c.workflow == "api"));
    harness.finish().await;
}
