//! The event feed's order across a transaction id that gains a digit (invariant 10).
//!
//! PostgreSQL cursors carry the writing transaction's id. Ordered as text, xid 10000
//! sorts before 9999, and a reader paging by cursor then skips the older events and
//! serves some twice. SQLite orders by sequence alone; there the case simply pages.

use crate::harness::{Database, Harness};
use crate::support::*;
use serde_json::json;
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use stepwise_core::{EventKind, RunId};
use stepwise_store::*;

const RUNS_BEFORE: usize = 3;
const RUNS_AFTER: usize = 3;
const EVENTS_PER_RUN: usize = 4;

/// Invariant 10: paging the feed two events at a time reads every event exactly once,
/// in commit order, when the events straddle a power of ten of transaction ids; the
/// newest events and the latest cursor are the tail of that order.
pub async fn the_feed_keeps_commit_order_when_transaction_ids_gain_a_digit(harness: Arc<Harness>) {
    let store = harness.store.clone();
    register(&*store, &one_step("digits")).await;
    // One transaction per run, so the events carry several transaction ids.
    let mut before = Vec::new();
    for i in 0..RUNS_BEFORE {
        before.extend(one_run(&*store, i).await);
    }
    if let Database::Postgres(schema) = &harness.primary {
        move_below_the_current_power_of_ten(schema).await;
    }
    let mut after = Vec::new();
    for i in RUNS_BEFORE..RUNS_BEFORE + RUNS_AFTER {
        after.extend(one_run(&*store, i).await);
    }
    let me = worker(&*store, secs(3600)).await;
    drain(&*store, me).await;
    let total = (RUNS_BEFORE + RUNS_AFTER) * EVENTS_PER_RUN;
    let full = events_when(&*store, None, "every run completed", |e| {
        count(e, EventKind::RunCompleted) >= RUNS_BEFORE + RUNS_AFTER
    })
    .await;
    assert_eq!(full.len(), total, "{}", describe(&full));

    // Commit order: the earlier runs were created first, and every cursor is past the
    // one before it.
    let created: Vec<RunId> = full
        .iter()
        .filter(|e| e.kind == EventKind::RunCreated)
        .filter_map(|e| e.run_id)
        .collect();
    let expected: Vec<RunId> = before.iter().chain(&after).copied().collect();
    assert_eq!(created, expected, "runs are created in feed order");
    for pair in full.windows(2) {
        assert!(
            cursor_order(&pair[0].cursor) < cursor_order(&pair[1].cursor),
            "cursors ascend: {}",
            describe(&full)
        );
    }

    let paged = page_through(&*store, None, 2).await;
    let cursors = |events: &[Event]| events.iter().map(|e| e.cursor.clone()).collect::<Vec<_>>();
    let distinct: HashSet<&EventCursor> = paged.iter().map(|e| &e.cursor).collect();
    assert_eq!(distinct.len(), paged.len(), "no event read twice");
    assert_eq!(
        cursors(&paged),
        cursors(&full),
        "paging by two reads every event once, in order"
    );
    let first = before[0];
    let of_first: Vec<Event> = full
        .iter()
        .filter(|e| e.run_id == Some(first))
        .cloned()
        .collect();
    assert_eq!(of_first.len(), EVENTS_PER_RUN);
    assert_eq!(
        cursors(&page_through(&*store, Some(first), 2).await),
        cursors(&of_first),
        "one run's events page the same way"
    );

    let newest = store.newest_events(None, 5).await.unwrap();
    assert_eq!(cursors(&newest), cursors(&full[total - 5..]));
    let everything = store.newest_events(None, 1000).await.unwrap();
    assert_eq!(cursors(&everything), cursors(&full));
    assert_eq!(
        store.latest_event_cursor().await.unwrap().as_ref(),
        Some(&full[total - 1].cursor)
    );
    let past_latest = store
        .read_events(&EventQuery {
            after: Some(full[total - 1].cursor.clone()),
            run: None,
            limit: 2,
        })
        .await
        .unwrap();
    assert!(past_latest.is_empty(), "nothing after the latest cursor");
}

async fn one_run(store: &dyn Store, i: usize) -> Vec<RunId> {
    let runs = vec![NewRun::new("digits", json!({ "i": i }))];
    create(store, RunBatch { group: None, runs }).await
}

/// Reads the feed `limit` events at a time, from the start, until a page is empty.
async fn page_through(store: &dyn Store, run: Option<RunId>, limit: u32) -> Vec<Event> {
    let mut events: Vec<Event> = Vec::new();
    loop {
        let page = store
            .read_events(&EventQuery {
                after: events.last().map(|e| e.cursor.clone()),
                run,
                limit,
            })
            .await
            .expect("read events");
        assert!(page.len() <= limit as usize);
        if page.is_empty() {
            return events;
        }
        assert!(
            events.len() < 1000,
            "paging does not end: {}",
            describe(&events)
        );
        events.extend(page);
    }
}

/// A cursor's numbers (`seq` on SQLite, `xid:seq` on PostgreSQL), compared as numbers.
fn cursor_order(cursor: &EventCursor) -> Vec<u64> {
    cursor
        .0
        .split(':')
        .map(|n| n.parse().expect("a cursor is made of numbers"))
        .collect()
}

fn describe(events: &[Event]) -> String {
    let shown: Vec<String> = events
        .iter()
        .map(|e| format!("{} {}", e.cursor, e.kind))
        .collect();
    shown.join(", ")
}

/// Gives the events written so far the transaction ids just below the power of ten
/// under the current transaction id, keeping their order, so every later event's id
/// has one digit more.
///
/// Transaction ids belong to the whole PostgreSQL server, not to one database, so
/// burning ids up to the next power of ten costs up to nine times the current id and
/// each run of the case would make the next one ten times dearer. Moving the earlier
/// events down gives the same feed — committed events on both sides of a power of ten,
/// all older than every running transaction — at no cost.
async fn move_below_the_current_power_of_ten(schema: &str) {
    let url = std::env::var("STEPWISE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let options = PgConnectOptions::from_str(&url)
        .expect("a PostgreSQL URL")
        .options([("search_path", schema)]);
    let mut conn = PgConnection::connect_with(&options)
        .await
        .expect("connect to the case's schema");
    let current: i64 = sqlx::query_scalar("SELECT pg_current_xact_id()::text::bigint")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    let old: Vec<i64> = sqlx::query_scalar(
        "SELECT DISTINCT xid::text::bigint AS old_xid FROM event ORDER BY old_xid",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let power = 10_i64.pow(current.ilog10());
    let count = old.len() as i64;
    assert!(
        count > 0 && power > count,
        "{count} transactions to move below {power}"
    );
    let new: Vec<i64> = (power - count..power).collect();
    let moved = sqlx::query(
        "UPDATE event SET xid = m.new_xid::text::xid8
         FROM unnest($1::bigint[], $2::bigint[]) AS m(old_xid, new_xid)
         WHERE event.xid = m.old_xid::text::xid8",
    )
    .bind(&old)
    .bind(&new)
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(moved.rows_affected(), RUNS_BEFORE as u64);
    conn.close().await.unwrap();
}
