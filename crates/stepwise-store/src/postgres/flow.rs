//! Flow control on PostgreSQL: concurrency-key admission, paused queues, resource
//! locks.
//!
//! A key's row is the serialization point of its line: every admission locks it in
//! one statement and admits in the next (whose snapshot then sees every earlier
//! admission and release), and the slot count changes only there and in the
//! transaction that ends a run, so a slot can neither leak nor be given twice.

use super::settle::{self, NewEvent};
use super::PgStore;
use crate::model::*;
use crate::plan::RunPlan;
use crate::transient::{millis, with_retries};
use crate::{FlowStore, Result, StoreError};
use async_trait::async_trait;
use serde_json::json;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use std::collections::BTreeMap;
use stepwise_core::{EventKind, RunId};
use uuid::Uuid;

/// Creates and locks the keys of a batch's keyed runs, in key order; returns them.
pub(super) async fn lock_keys(conn: &mut PgConnection, plan: &RunPlan) -> Result<Vec<String>> {
    let mut limits = BTreeMap::new();
    for run in &plan.runs {
        if let Some(key) = &run.concurrency_key {
            limits.insert(key.clone(), run.concurrency_limit);
        }
    }
    if limits.is_empty() {
        return Ok(vec![]);
    }
    let (keys, max): (Vec<String>, Vec<i32>) = limits.into_iter().unzip();
    sqlx::query(include_str!("sql/upsert_keys.sql"))
        .bind(&keys)
        .bind(&max)
        .execute(&mut *conn)
        .await?;
    Ok(keys)
}

/// Admits the oldest waiting runs of `key` while it has free slots. The caller has
/// locked the key's row in an earlier statement of this transaction.
pub(super) async fn admit(conn: &mut PgConnection, key: &str) -> Result<usize> {
    let admitted: Vec<Uuid> = sqlx::query_scalar(include_str!("sql/admit_key.sql"))
        .bind(key)
        .fetch_all(&mut *conn)
        .await?;
    if !admitted.is_empty() {
        sqlx::query(include_str!("sql/notify_work.sql"))
            .execute(&mut *conn)
            .await?;
    }
    Ok(admitted.len())
}

/// Gives back the slots of runs that just ended, and hands them to the next runs in
/// line, in the same transaction as the runs' terminal state (invariant 4).
pub(super) async fn release_slots(conn: &mut PgConnection, ended: &[Uuid]) -> Result<()> {
    if ended.is_empty() {
        return Ok(());
    }
    let keys: Vec<Option<String>> = sqlx::query_scalar(include_str!("sql/release_slots.sql"))
        .bind(ended)
        .fetch_all(&mut *conn)
        .await?;
    let mut freed = BTreeMap::<String, i32>::new();
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
pub(super) async fn rejoin_line(conn: &mut PgConnection, run: Uuid) -> Result<()> {
    let key: Option<String> = sqlx::query_scalar("SELECT concurrency_key FROM run WHERE id = $1")
        .bind(run)
        .fetch_one(&mut *conn)
        .await?;
    let Some(key) = key else { return Ok(()) };
    sqlx::query(include_str!("sql/lock_key.sql"))
        .bind(&key)
        .execute(&mut *conn)
        .await?;
    sqlx::query(include_str!("sql/rejoin_line.sql"))
        .bind(run)
        .execute(&mut *conn)
        .await?;
    sqlx::query(include_str!("sql/hold_roots.sql"))
        .bind(run)
        .execute(&mut *conn)
        .await?;
    admit(conn, &key).await?;
    Ok(())
}

fn lock_from_row(row: &PgRow) -> Result<LockView> {
    let kind: String = row.try_get("holder_kind")?;
    Ok(LockView {
        key: row.try_get("name")?,
        holder_kind: HolderKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("lock holder kind {kind:?}")))?,
        holder_id: row.try_get("holder_id")?,
        acquired_at: row.try_get("acquired_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

async fn lock_event(
    conn: &mut PgConnection,
    kind: EventKind,
    lock: &LockView,
    extra: serde_json::Value,
) -> Result<()> {
    let data = crate::rules::lock_event_data(lock, extra);
    settle::insert_event(
        conn,
        NewEvent {
            kind,
            run_id: None,
            step: None,
            group: None,
            data,
        },
    )
    .await
}

#[async_trait]
impl FlowStore for PgStore {
    async fn queue_stats(&self) -> Result<Vec<QueueStats>> {
        let rows = sqlx::query(include_str!("sql/queue_stats.sql"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(QueueStats {
                    name: r.try_get("name")?,
                    paused: r.try_get("paused")?,
                    pending: r.try_get("pending")?,
                    scheduled: r.try_get("scheduled")?,
                    running: r.try_get("running")?,
                    oldest_pending_since: r.try_get("oldest")?,
                })
            })
            .collect()
    }

    async fn set_queue_paused(&self, queue: &str, paused: bool) -> Result<bool> {
        if crate::sanitize::unstorable(queue) {
            return Ok(false);
        }
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(include_str!("sql/set_queue_paused.sql"))
            .bind(queue)
            .bind(paused)
            .execute(&mut *tx)
            .await?;
        if !paused {
            sqlx::query(include_str!("sql/notify_work.sql"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn concurrency_keys(&self) -> Result<Vec<ConcurrencyKeyView>> {
        let rows = sqlx::query(include_str!("sql/concurrency_keys.sql"))
            .bind(None::<String>)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(key_from_row).collect()
    }

    async fn key_line(&self, key: &str) -> Result<Option<KeyLine>> {
        if crate::sanitize::unstorable(key) {
            return Ok(None);
        }
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
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
            let mut tx = self.pool.begin().await?;
            sqlx::query(include_str!("sql/set_key_limit.sql"))
                .bind(key)
                .bind(limit as i32)
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
        crate::rules::check_lock(&request.key, Some(request.ttl))?;
        crate::plan::check_key("lock holder", &Some(request.holder_id.clone()))?;
        with_retries(|| async {
            let mut tx = self.pool.begin().await?;
            let token = Uuid::new_v4();
            let row = sqlx::query(include_str!("sql/acquire_lock.sql"))
                .bind(&request.key)
                .bind(request.holder_kind.as_str())
                .bind(&request.holder_id)
                .bind(token)
                .bind(millis(request.ttl))
                .fetch_optional(&mut *tx)
                .await?;
            let outcome = match row {
                Some(row) => {
                    let lock = lock_from_row(&row)?;
                    lock_event(&mut tx, EventKind::LockAcquired, &lock, json!({})).await?;
                    LockOutcome::Acquired { lock, token }
                }
                None => {
                    let row = sqlx::query(include_str!("sql/get_lock.sql"))
                        .bind(&request.key)
                        .fetch_one(&mut *tx)
                        .await?;
                    LockOutcome::Held(lock_from_row(&row)?)
                }
            };
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    async fn release_lock(&self, name: &str, token: Uuid) -> Result<ReleaseOutcome> {
        crate::rules::check_lock(name, None)?;
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(include_str!("sql/get_lock.sql"))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        let lock = lock_from_row(&row)?;
        if row.try_get::<Uuid, _>("token")? != token {
            return Ok(ReleaseOutcome::WrongToken(lock));
        }
        sqlx::query(include_str!("sql/delete_lock.sql"))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        lock_event(&mut tx, EventKind::LockReleased, &lock, json!({})).await?;
        sqlx::query(include_str!("sql/notify_work.sql"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(ReleaseOutcome::Released)
    }

    async fn force_release_lock(&self, name: &str, reason: &str) -> Result<Option<LockView>> {
        crate::rules::check_lock(name, None)?;
        crate::rules::check_force_reason(reason)?;
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(include_str!("sql/get_lock.sql"))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let lock = lock_from_row(&row)?;
        sqlx::query(include_str!("sql/delete_lock.sql"))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        lock_event(
            &mut tx,
            EventKind::LockForceReleased,
            &lock,
            json!({"reason": reason}),
        )
        .await?;
        sqlx::query(include_str!("sql/notify_work.sql"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(lock))
    }

    async fn list_locks(&self) -> Result<Vec<LockView>> {
        let rows = sqlx::query(include_str!("sql/list_locks.sql"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(lock_from_row).collect()
    }
}

fn key_from_row(row: &PgRow) -> Result<ConcurrencyKeyView> {
    Ok(ConcurrencyKeyView {
        key: row.try_get("key")?,
        limit: row.try_get::<i32, _>("max_active")?.max(0) as u32,
        active: i64::from(row.try_get::<i32, _>("active")?),
        waiting: row.try_get("waiting")?,
        limit_set: row.try_get("limit_set")?,
    })
}
