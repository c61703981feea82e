//! Upgrading a live v4 database: its runs, in every state, finish under the new code.
//!
//! The v4 database is built without today's code: the v4 migration files applied
//! as they are, the `stepwise_schema` rows the runner writes, then the fixture's rows
//! (written the way v4 writes them, completed attempt rows included). Then
//! `migrate()` takes it to the current version and the current code drives every
//! run to its end through the store API only, so the case tests whichever migration
//! the current version adds.

use crate::harness::{Database, Harness};
use crate::support::*;
use sqlx::Connection;
use std::str::FromStr;
use std::sync::Arc;
use stepwise_core::{EventKind, RunId, RunStatus, StepStatus, WorkerId};
use stepwise_store::*;
use uuid::Uuid;

const SQLITE_V4: &[&str] = &[
    include_str!("../../src/sqlite/migrations/0001_init.sql"),
    include_str!("../../src/sqlite/migrations/0002_early_end.sql"),
    include_str!("../../src/sqlite/migrations/0003_flow_control.sql"),
    include_str!("../../src/sqlite/migrations/0004_tokens.sql"),
    // As `SqliteStore::migrate` creates it.
    "CREATE TABLE stepwise_schema (
        version INTEGER PRIMARY KEY,
        applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP);
     INSERT INTO stepwise_schema (version) VALUES (1), (2), (3), (4);",
    include_str!("fixtures/v4_sqlite.sql"),
];

const POSTGRES_V4: &[&str] = &[
    include_str!("../../src/postgres/migrations/0001_init.sql"),
    include_str!("../../src/postgres/migrations/0002_early_end.sql"),
    include_str!("../../src/postgres/migrations/0003_flow_control.sql"),
    include_str!("../../src/postgres/migrations/0004_tokens.sql"),
    // As `PgStore::migrate` creates it.
    "CREATE TABLE stepwise_schema (
        version bigint PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now());
     INSERT INTO stepwise_schema (version) VALUES (1), (2), (3), (4);",
    include_str!("fixtures/v4_postgres.sql"),
];

/// The fixture's id `n` (its last hex digits), as v4 wrote it.
fn id(n: u32) -> Uuid {
    Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0000 | n as u128)
}

/// Writes the v4 database in one transaction, on a connection of its own.
async fn build_v4(database: &Database) {
    match database {
        Database::Sqlite(path) => {
            let options =
                sqlx::sqlite::SqliteConnectOptions::from_str(&stepwise_testkit::sqlite_url(path))
                    .expect("sqlite url")
                    .create_if_missing(true);
            let mut conn = sqlx::SqliteConnection::connect_with(&options)
                .await
                .expect("open the v4 file");
            let mut tx = conn.begin().await.expect("begin");
            for sql in SQLITE_V4 {
                sqlx::raw_sql(sql).execute(&mut *tx).await.expect("v4 sql");
            }
            tx.commit().await.expect("commit v4");
            conn.close().await.expect("close");
        }
        Database::Postgres(schema) => {
            let options =
                sqlx::postgres::PgConnectOptions::from_str(&stepwise_testkit::pg_base_url())
                    .expect("postgres url")
                    .options([("search_path", schema.as_str())]);
            let mut conn = sqlx::PgConnection::connect_with(&options)
                .await
                .expect("connect for v4");
            let mut tx = conn.begin().await.expect("begin");
            for sql in POSTGRES_V4 {
                sqlx::raw_sql(sql).execute(&mut *tx).await.expect("v4 sql");
            }
            tx.commit().await.expect("commit v4");
            conn.close().await.expect("close");
        }
    }
}

/// A step's finished attempts, as (number, outcome), oldest first.
type History = &'static [(u32, &'static str)];

/// Each run's expected end, and the histories of its steps a and b.
fn expected() -> Vec<(u32, RunStatus, [History; 2])> {
    const DONE: History = &[(1, "completed")];
    const RETRIED: History = &[(1, "failed"), (2, "completed")];
    vec![
        // A pending root and its blocked dependent.
        (0x10, RunStatus::Completed, [DONE, DONE]),
        // A retry whose backoff was already due, and one due only after the upgrade.
        (0x20, RunStatus::Completed, [RETRIED, DONE]),
        (0x30, RunStatus::Completed, [RETRIED, DONE]),
        // Running under a worker whose lease had expired: reaped, then done.
        (
            0x40,
            RunStatus::Completed,
            [&[(1, "reaped"), (2, "completed")], DONE],
        ),
        // Completed and failed under v4: untouched, history as v4 wrote it.
        (0x50, RunStatus::Completed, [DONE, DONE]),
        (0x60, RunStatus::Failed, [&[(1, "failed")], &[]]),
        // Holding the key's only slot, and waiting in its line.
        (0x70, RunStatus::Completed, [DONE, DONE]),
        (0x80, RunStatus::Completed, [DONE, DONE]),
        (0x90, RunStatus::Cancelled, [&[], &[]]),
    ]
}

pub async fn a_v4_database_upgrades_and_its_runs_finish(h: Arc<Harness>) {
    let database = h.new_database().await;
    build_v4(&database).await;
    let store = h.connect(&database).await;
    let store = store.as_ref();
    // Refused until migrated, once this code is past v4.
    assert_eq!(store.check_schema().await.is_ok(), SCHEMA_VERSION == 4);
    assert_eq!(store.migrate().await.expect("migrate v4"), SCHEMA_VERSION);
    store
        .check_schema()
        .await
        .expect("migrated to the current version");
    for name in ["upgrade", "upgrade-keyed"] {
        let stored = store.get_workflow(name, None).await.expect("read workflow");
        assert!(stored.is_some(), "workflow {name} survives the upgrade");
    }

    let worker = worker(store, secs(600)).await;
    // Past the future backoff and the dead worker's lease.
    store.advance_clock(secs(120)).await.expect("advance");
    let reaped = store.reap(worker).await.expect("reap");
    assert_eq!(reaped.workers, vec![WorkerId(id(0xf0))]);
    assert_eq!(reaped.steps_retried.len(), 1, "{reaped:?}");
    assert_eq!(reaped.steps_retried[0].0, id(0x41));

    let mut rounds = 0;
    loop {
        let batch = claim(store, worker, 100).await;
        if batch.is_empty() {
            break;
        }
        complete_all(store, &batch).await;
        rounds += 1;
        assert!(rounds < 20, "the runs never finish");
    }

    for (n, status, steps) in expected() {
        let run = get_run(store, RunId(id(n))).await;
        assert_eq!(run.status, status, "run {n:#x}");
        for (name, want) in ["a", "b"].into_iter().zip(steps) {
            let step = step_of(&run, name);
            let got: Vec<(u32, &str)> = step
                .history
                .iter()
                .map(|a| (a.number, a.outcome.as_str()))
                .collect();
            assert_eq!(got, want, "history of run {n:#x} step {name}");
            if status == RunStatus::Completed {
                assert_eq!(step.status, StepStatus::Completed, "run {n:#x} step {name}");
                assert_eq!(step.attempts as usize, want.len(), "run {n:#x} step {name}");
            }
        }
    }

    // v4's events read as before, and the new ones follow them.
    let kinds = |events: &[Event]| -> Vec<String> {
        events.iter().map(|e| e.kind.as_str().to_string()).collect()
    };
    let done = RunId(id(0x50));
    let events = run_events(store, done, EventKind::RunCompleted).await;
    let steps = ["step.started", "step.completed"];
    let mut want = vec!["run.created"];
    want.extend(steps.iter().chain(&steps));
    want.push("run.completed");
    assert_eq!(kinds(&events), want, "run 0x50's v4 events");
    let first = RunId(id(0x10));
    let events = run_events(store, first, EventKind::RunCompleted).await;
    let kinds = kinds(&events);
    assert_eq!(kinds.first().map(String::as_str), Some("run.created"));
    assert_eq!(kinds.last().map(String::as_str), Some("run.completed"));
    assert_eq!(
        kinds.len(),
        6,
        "created, two steps started and completed, completed"
    );

    let keys = store.concurrency_keys().await.expect("keys");
    let key = keys.iter().find(|k| k.key == "k").expect("key k");
    assert_eq!((key.active, key.waiting), (0, 0), "{key:?}");
}
