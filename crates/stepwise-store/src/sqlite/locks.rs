//! Resource locks on SQLite: named mutexes with a TTL on the database clock, held by
//! a running step (taken in its claim), an API client or the CLI.
//!
//! A step's lock names the step (its id as hyphenated text, as on PostgreSQL) and
//! goes with the step's outcome; a reaped step keeps it until it expires, and the
//! reaper sweeps expired rows.

use super::settle::{self, NewEvent};
use super::{time, SqliteStore};
use crate::model::*;
use crate::transient::{millis, with_retries};
use crate::{Result, StoreError};
use serde_json::json;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use stepwise_core::{EventKind, WorkerId};
use uuid::Uuid;

/// Takes the lock of `resource` for step `step` claimed by `worker`, unless a live
/// holder has it; returns the token it was taken with.
pub(super) async fn take_for_step(
    conn: &mut SqliteConnection,
    resource: &str,
    step: Uuid,
    worker: WorkerId,
) -> Result<Option<Uuid>> {
    let token = Uuid::new_v4();
    let got: Option<String> = sqlx::query_scalar(include_str!("sql/take_step_lock.sql"))
        .bind(resource)
        .bind(step.to_string())
        .bind(token)
        .bind(worker.0)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(got.map(|_| token))
}

/// Undoes `take_for_step` for a step that could not be claimed after all.
pub(super) async fn drop_for_step(
    conn: &mut SqliteConnection,
    resource: &str,
    token: Uuid,
) -> Result<()> {
    sqlx::query(include_str!("sql/drop_lock.sql"))
        .bind(resource)
        .bind(token)
        .execute(conn)
        .await?;
    Ok(())
}

/// Frees the resource locks held by steps whose outcome was just recorded.
pub(super) async fn release_for_steps(conn: &mut SqliteConnection, steps: &[Uuid]) -> Result<()> {
    if steps.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = steps.iter().map(Uuid::to_string).collect();
    let ids = serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(include_str!("sql/release_step_locks.sql"))
        .bind(ids)
        .execute(conn)
        .await?;
    Ok(())
}

/// After a heartbeat: the locks of the worker's running steps live as long as its
/// new lease (plus the margin).
pub(super) async fn extend_for_worker(conn: &mut SqliteConnection, worker: WorkerId) -> Result<()> {
    sqlx::query(include_str!("sql/extend_step_locks.sql"))
        .bind(worker.0)
        .execute(conn)
        .await?;
    Ok(())
}

/// Removes expired locks, each with a `lock.released` event (reason "expired").
pub(super) async fn sweep(conn: &mut SqliteConnection) -> Result<()> {
    let mut swept = sqlx::query(include_str!("sql/sweep_locks.sql"))
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok((
                r.try_get("name")?,
                r.try_get("holder_kind")?,
                r.try_get("holder_id")?,
            ))
        })
        .collect::<Result<Vec<(String, String, String)>>>()?;
    // RETURNING comes back in no particular order.
    swept.sort_unstable();
    for (name, holder_kind, holder_id) in swept {
        settle::insert_event(
            conn,
            NewEvent {
                kind: EventKind::LockReleased,
                run_id: None,
                step: None,
                group: None,
                data: json!({
                    "key": name,
                    "holder_kind": holder_kind,
                    "holder_id": holder_id,
                    "reason": "expired",
                }),
            },
        )
        .await?;
    }
    Ok(())
}

fn lock_from_row(row: &SqliteRow) -> Result<LockView> {
    let kind: String = row.try_get("holder_kind")?;
    Ok(LockView {
        key: row.try_get("name")?,
        holder_kind: HolderKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("lock holder kind {kind:?}")))?,
        holder_id: row.try_get("holder_id")?,
        acquired_at: time(row.try_get("acquired_at")?)?,
        expires_at: time(row.try_get("expires_at")?)?,
    })
}

async fn lock_event(
    conn: &mut SqliteConnection,
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

/// The live lock `name`, if any.
async fn get(conn: &mut SqliteConnection, name: &str) -> Result<Option<(LockView, Uuid)>> {
    let row = sqlx::query(include_str!("sql/get_lock.sql"))
        .bind(name)
        .fetch_optional(conn)
        .await?;
    row.map(|row| Ok((lock_from_row(&row)?, row.try_get("token")?)))
        .transpose()
}

pub(super) async fn acquire(store: &SqliteStore, request: &LockRequest) -> Result<LockOutcome> {
    crate::rules::check_lock(&request.key, Some(request.ttl))?;
    crate::plan::check_key("lock holder", &Some(request.holder_id.clone()))?;
    with_retries(|| async {
        let mut tx = store.write().await?;
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
                let (lock, _) = get(&mut tx, &request.key).await?.ok_or_else(|| {
                    StoreError::Corrupt(format!("lock {:?} neither free nor held", request.key))
                })?;
                LockOutcome::Held(lock)
            }
        };
        tx.commit().await?;
        Ok(outcome)
    })
    .await
}

pub(super) async fn release(
    store: &SqliteStore,
    name: &str,
    token: Uuid,
) -> Result<ReleaseOutcome> {
    crate::rules::check_lock(name, None)?;
    with_retries(|| async {
        let mut tx = store.write().await?;
        let Some((lock, held_with)) = get(&mut tx, name).await? else {
            return Ok(ReleaseOutcome::NotHeld);
        };
        if held_with != token {
            return Ok(ReleaseOutcome::WrongToken(lock));
        }
        sqlx::query(include_str!("sql/delete_lock.sql"))
            .bind(name)
            .execute(&mut *tx)
            .await?;
        lock_event(&mut tx, EventKind::LockReleased, &lock, json!({})).await?;
        tx.commit().await?;
        Ok(ReleaseOutcome::Released)
    })
    .await
}

pub(super) async fn force_release(
    store: &SqliteStore,
    name: &str,
    reason: &str,
) -> Result<Option<LockView>> {
    crate::rules::check_lock(name, None)?;
    crate::rules::check_force_reason(reason)?;
    with_retries(|| async {
        let mut tx = store.write().await?;
        let Some((lock, _)) = get(&mut tx, name).await? else {
            return Ok(None);
        };
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
        tx.commit().await?;
        Ok(Some(lock))
    })
    .await
}

pub(super) async fn list(store: &SqliteStore) -> Result<Vec<LockView>> {
    let rows = sqlx::query(include_str!("sql/list_locks.sql"))
        .fetch_all(&store.reader)
        .await?;
    rows.iter().map(lock_from_row).collect()
}
