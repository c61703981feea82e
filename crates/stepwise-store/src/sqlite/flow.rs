//! Flow control on SQLite: concurrency-key admission and paused queues (resource
//! locks are in `locks.rs`).
//!
//! The single writer serializes every admission and release, so a key's slot count
//! needs no row lock: it changes only in the transactions that admit a run and that
//! end one, and a slot can neither leak nor be given twice (invariant 4).

use super::settle::id_list;
use super::{opt_time, SqliteStore};
use crate::model::*;
use crate::plan::RunPlan;
use crate::transient::with_retries;
use crate::{FlowStore, Result};
use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use std::collections::BTreeMap;
use stepwise_core::RunId;
use uuid::Uuid;

/// Creates the keys of a batch's keyed runs (a workflow's limit unless an operator
/// set one); returns them, in key order.
pub(super) async fn upsert_keys(
    conn: &mut SqliteConnection,
    plan: &RunPlan,
) -> Result<Vec<String>> {
    let mut limits = BTreeMap::new();
    for run in &plan.runs {
        if let Some(key) = &run.concurrency_key {
            limits.insert(key.clone(), run.concurrency_limit);
        }
    }
    if limits.is_empty() {
        return Ok(vec![]);
    }
    let rows: Vec<Value> = limits
        .iter()
        .map(|(key, limit)| json!({"key": key, "limit": limit}))
        .collect();
    sqlx::query(include_str!("sql/upsert_keys.sql"))
        .bind(Value::Array(rows).to_string())
        .execute(&mut *conn)
        .await?;
    Ok(limits.into_keys().collect())
}

/// Draws `n` consecutive places at the back of the lines; returns the first.
pub(super) async fn draw_line_seqs(conn: &mut SqliteConnection, n: i64) -> Result<i64> {
    Ok(sqlx::query_scalar(include_str!("sql/draw_line_seqs.sql"))
        .bind(n)
        .fetch_one(&mut *conn)
        .await?)
}

/// Admits the oldest waiting runs of `key` while it has free slots, in the caller's
/// write transaction: the slots are taken, the roots freed and the `run.started`
/// events written with the admission.
pub(super) async fn admit(conn: &mut SqliteConnection, key: &str) -> Result<usize> {
    let admitted: Vec<Uuid> = sqlx::query_scalar(include_str!("sql/admit_runs.sql"))
        .bind(key)
        .fetch_all(&mut *conn)
        .await?;
    if admitted.is_empty() {
        return Ok(0);
    }
    sqlx::query(include_str!("sql/take_slots.sql"))
        .bind(key)
        .bind(admitted.len() as i64)
        .execute(&mut *conn)
        .await?;
    let ids = id_list(admitted.iter().copied())?;
    for sql in [
        include_str!("sql/admit_roots.sql"),
        include_str!("sql/run_started_events.sql"),
    ] {
        sqlx::query(sql).bind(&ids).execute(&mut *conn).await?;
    }
    Ok(admitted.len())
}

/// Gives back the slots of runs that just ended, and hands them to the next runs in
/// line, in the same transaction as the runs' terminal state (invariant 4).
pub(super) async fn release_slots(conn: &mut SqliteConnection, ended: &[Uuid]) -> Result<()> {
    if ended.is_empty() {
        return Ok(());
    }
    let keys: Vec<Option<String>> = sqlx::query_scalar(include_str!("sql/release_slots.sql"))
        .bind(id_list(ended.iter().copied())?)
        .fetch_all(&mut *conn)
        .await?;
    let mut freed = BTreeMap::<String, i64>::new();
    for key in keys.into_iter().flatten() {
        *freed.entry(key).or_default() += 1;
    }
    for (key, n) in freed {
        sqlx::query(include_str!("sql/free_slots.sql"))
            .bind(&key)
            .bind(n)
            .execute(&mut *conn)
            .await?;
        admit(conn, &key).await?;
    }
    Ok(())
}

/// A retried run with a concurrency key queues again at the back of its line.
pub(super) async fn rejoin_line(conn: &mut SqliteConnection, run: Uuid) -> Result<()> {
    let key: Option<String> = sqlx::query_scalar(include_str!("sql/run_concurrency_key.sql"))
        .bind(run)
        .fetch_one(&mut *conn)
        .await?;
    let Some(key) = key else { return Ok(()) };
    let seq = draw_line_seqs(conn, 1).await?;
    sqlx::query(include_str!("sql/rejoin_line.sql"))
        .bind(run)
        .bind(seq)
        .execute(&mut *conn)
        .await?;
    sqlx::query(include_str!("sql/hold_roots.sql"))
        .bind(run)
        .execute(&mut *conn)
        .await?;
    admit(conn, &key).await?;
    Ok(())
}

fn key_from_row(row: &SqliteRow) -> Result<ConcurrencyKeyView> {
    Ok(ConcurrencyKeyView {
        key: row.try_get("key")?,
        limit: row
            .try_get::<i64, _>("max_active")?
            .clamp(0, i64::from(u32::MAX)) as u32,
        active: row.try_get("active")?,
        waiting: row.try_get("waiting")?,
        limit_set: row.try_get("limit_set")?,
    })
}

#[async_trait]
impl FlowStore for SqliteStore {
    async fn queue_stats(&self) -> Result<Vec<QueueStats>> {
        let rows = sqlx::query(include_str!("sql/queue_stats.sql"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(QueueStats {
                    name: r.try_get("name")?,
                    paused: r.try_get("paused")?,
                    pending: r.try_get("pending")?,
                    scheduled: r.try_get("scheduled")?,
                    running: r.try_get("running")?,
                    oldest_pending_since: opt_time(r.try_get("oldest")?)?,
                })
            })
            .collect()
    }

    async fn set_queue_paused(&self, queue: &str, paused: bool) -> Result<bool> {
        with_retries(|| async {
            let mut tx = self.write().await?;
            let done = sqlx::query(include_str!("sql/set_queue_paused.sql"))
                .bind(queue)
                .bind(paused)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    async fn concurrency_keys(&self) -> Result<Vec<ConcurrencyKeyView>> {
        let rows = sqlx::query(include_str!("sql/concurrency_keys.sql"))
            .bind(None::<String>)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn key_line(&self, key: &str) -> Result<Option<KeyLine>> {
        // One read transaction: the key's counts and its line from one snapshot.
        let mut tx = self.reader.begin().await?;
        let Some(view) = sqlx::query(include_str!("sql/concurrency_keys.sql"))
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let view = key_from_row(&view)?;
        let mut line = KeyLine {
            key: key.to_string(),
            limit: view.limit,
            holders: vec![],
            waiting: vec![],
        };
        for row in sqlx::query(include_str!("sql/key_runs.sql"))
            .bind(key)
            .fetch_all(&mut *tx)
            .await?
        {
            let id = RunId(row.try_get("id")?);
            if row.try_get::<bool, _>("holds_slot")? {
                line.holders.push(id);
            } else {
                line.waiting.push(id);
            }
        }
        Ok(Some(line))
    }

    async fn set_key_limit(&self, key: &str, limit: u32) -> Result<ConcurrencyKeyView> {
        crate::rules::check_key_limit(key, limit)?;
        with_retries(|| async {
            let mut tx = self.write().await?;
            sqlx::query(include_str!("sql/set_key_limit.sql"))
                .bind(key)
                .bind(i64::from(limit))
                .execute(&mut *tx)
                .await?;
            admit(&mut tx, key).await?;
            let row = sqlx::query(include_str!("sql/concurrency_keys.sql"))
                .bind(key)
                .fetch_one(&mut *tx)
                .await?;
            tx.commit().await?;
            key_from_row(&row)
        })
        .await
    }

    async fn acquire_lock(&self, request: &LockRequest) -> Result<LockOutcome> {
        super::locks::acquire(self, request).await
    }

    async fn release_lock(&self, name: &str, token: Uuid) -> Result<ReleaseOutcome> {
        super::locks::release(self, name, token).await
    }

    async fn force_release_lock(&self, name: &str, reason: &str) -> Result<Option<LockView>> {
        super::locks::force_release(self, name, reason).await
    }

    async fn list_locks(&self) -> Result<Vec<LockView>> {
        super::locks::list(self).await
    }
}
