//! Workers on PostgreSQL: registration, heartbeats, the reaper.

use super::settle::{self, NewEvent};
use super::PgStore;
use crate::model::*;
use crate::transient::{millis, with_retries};
use crate::{Result, WorkerStore};
use async_trait::async_trait;
use serde_json::json;
use sqlx::Row;
use stepwise_core::{EventKind, Lease, StepId, WorkerId};
use uuid::Uuid;

#[async_trait]
impl WorkerStore for PgStore {
    async fn register_worker(&self, registration: &WorkerRegistration) -> Result<WorkerLease> {
        crate::plan::check_lease(registration.lease)?;
        let id = WorkerId::new();
        let expires_at = sqlx::query_scalar(include_str!("sql/register_worker.sql"))
            .bind(id.0)
            .bind(&registration.name)
            .bind(&registration.queues)
            .bind(millis(registration.lease))
            .fetch_one(&self.pool)
            .await?;
        Ok(WorkerLease { id, expires_at })
    }

    async fn heartbeat(&self, worker: WorkerId) -> Result<Heartbeat> {
        let expires_at = sqlx::query_scalar(include_str!("sql/heartbeat.sql"))
            .bind(worker.0)
            .fetch_optional(&self.pool)
            .await?;
        let Some(expires_at) = expires_at else {
            return Ok(Heartbeat::Reaped);
        };
        // The locks of its running steps live as long as its lease (plus a margin).
        // Its own statement, racing completions that free locks: retried on deadlock.
        with_retries(|| async {
            sqlx::query(include_str!("sql/extend_step_locks.sql"))
                .bind(worker.0)
                .execute(&self.pool)
                .await?;
            Ok(())
        })
        .await?;
        Ok(Heartbeat::Alive { expires_at })
    }

    async fn deregister_worker(&self, worker: WorkerId) -> Result<BatchReport> {
        with_retries(|| self.deregister_once(worker)).await
    }

    async fn reap(&self, caller: WorkerId) -> Result<ReapReport> {
        self.reap_pass(caller).await
    }

    async fn list_workers(&self) -> Result<Vec<WorkerView>> {
        let rows = sqlx::query(include_str!("sql/list_workers.sql"))
            .fetch_all(&self.pool)
            .await?;
        let mut workers = Vec::with_capacity(rows.len());
        for row in rows {
            workers.push(WorkerView {
                id: WorkerId(row.try_get("id")?),
                name: row.try_get("name")?,
                queues: row.try_get("queues")?,
                status: row.try_get("status")?,
                started_at: row.try_get("started_at")?,
                heartbeat_at: row.try_get("heartbeat_at")?,
                expires_at: row.try_get("expires_at")?,
                running_steps: row.try_get("running_steps")?,
            });
        }
        Ok(workers)
    }

    async fn vacuum_claim_tables(&self) -> Result<()> {
        // VACUUM cannot run in a transaction block: sent as a simple query.
        sqlx::raw_sql(include_str!("sql/vacuum_claim_tables.sql"))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl PgStore {
    /// Stops the worker first (its row lock orders this after any reap of it), then
    /// hands back whatever it still runs, in one transaction: no claim can slip in
    /// between and leave a step under a stopped worker unnoticed.
    async fn deregister_once(&self, worker: WorkerId) -> Result<BatchReport> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(include_str!("sql/deregister_worker.sql"))
            .bind(worker.0)
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(include_str!("sql/running_steps_of_worker.sql"))
            .bind(worker.0)
            .fetch_all(&mut *tx)
            .await?;
        let leases = rows
            .iter()
            .map(super::rows::lease_from_row)
            .collect::<Result<Vec<_>>>()?;
        let report = super::steps::release_in(&mut tx, &leases).await?;
        tx.commit().await?;
        Ok(report)
    }

    /// One pass, in short transactions of their own: marking dead workers (so a
    /// heartbeat of a late worker waits for one statement, never for the reaping of
    /// its steps), then each orphaned step, each overdue revoked step, and the
    /// sweep of expired locks. Nothing here waits for a row another session holds:
    /// such steps are reported as skipped and taken on a later pass, and what a step
    /// needs beyond its own rows is waited for only briefly (`lock_timeout`).
    async fn reap_pass(&self, caller: WorkerId) -> Result<ReapReport> {
        let mut report = ReapReport {
            workers: with_retries(|| self.mark_dead(caller)).await?,
            ..ReapReport::default()
        };
        // Also steps of workers reaped earlier that claimed while being reaped, and
        // those skipped by an earlier pass.
        let orphans = sqlx::query(include_str!("sql/orphaned_steps.sql"))
            .fetch_all(&self.pool)
            .await?;
        for row in &orphans {
            let Lease { step_id, token } = super::rows::lease_from_row(row)?;
            let (id, token) = (step_id.0, token.0);
            match skip_when_held(with_retries(|| self.reap_step(id, token)).await)? {
                Some(Reaped::Retried) => report.steps_retried.push(StepId(id)),
                Some(Reaped::Failed) => report.steps_failed.push(StepId(id)),
                Some(Reaped::Gone) => {}
                Some(Reaped::Held) | None => report.steps_skipped.push(StepId(id)),
            }
        }
        // Revoked steps whose worker never confirmed the stop within a lease.
        let overdue = sqlx::query(include_str!("sql/overdue_revoked_steps.sql"))
            .fetch_all(&self.pool)
            .await?;
        for row in &overdue {
            let lease = super::rows::lease_from_row(row)?;
            match skip_when_held(with_retries(|| self.stop_overdue(lease)).await)? {
                Some(Reaped::Held) | None => report.steps_skipped.push(lease.step_id),
                Some(_) => {}
            }
        }
        sqlx::query(include_str!("sql/sweep_locks.sql"))
            .execute(&self.pool)
            .await?;
        sqlx::query(include_str!("sql/drop_stale_leases.sql"))
            .execute(&self.pool)
            .await?;
        if !report.steps_retried.is_empty() {
            sqlx::query(include_str!("sql/notify_work.sql"))
                .execute(&self.pool)
                .await?;
        }
        Ok(report)
    }

    async fn mark_dead(&self, caller: WorkerId) -> Result<Vec<WorkerId>> {
        let mut tx = self.pool.begin().await?;
        let dead = sqlx::query(include_str!("sql/reap_workers.sql"))
            .bind(caller.0)
            .fetch_all(&mut *tx)
            .await?;
        let mut workers = Vec::with_capacity(dead.len());
        for row in dead {
            let id: Uuid = row.try_get("id")?;
            let name: String = row.try_get("name")?;
            workers.push(WorkerId(id));
            settle::insert_event(
                &mut tx,
                NewEvent {
                    kind: EventKind::WorkerReaped,
                    run_id: None,
                    step: None,
                    group: None,
                    data: json!({"worker_id": id, "name": name}),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(workers)
    }

    /// Reaps one orphaned step in a transaction of its own, unless another session
    /// holds it or its run.
    async fn reap_step(&self, id: Uuid, token: Uuid) -> Result<Reaped> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(include_str!("sql/reaper_lock_timeout.sql"))
            .execute(&mut *tx)
            .await?;
        let Some(step) = settle::try_lock_running_step(&mut tx, id, token).await? else {
            return held_or_gone(&mut tx, id, token).await;
        };
        if step.revoked {
            settle::stop_revoked(&mut tx, &[step.lease()]).await?;
            tx.commit().await?;
            return Ok(Reaped::Gone);
        }
        settle::record_attempt(
            &mut tx,
            &step,
            settle::AttemptEnd {
                outcome: "reaped",
                error: Some("worker lost"),
                log: None,
            },
        )
        .await?;
        let exhausted = crate::failure::lost_for_good(
            &step.retry,
            step.attempt.into(),
            step.attempt_base.into(),
            step.halted,
        );
        settle::insert_event(
            &mut tx,
            NewEvent {
                kind: EventKind::StepReaped,
                run_id: Some(step.run_id),
                step: Some(&step.name),
                group: step.group.as_deref(),
                data: crate::failure::reaped_data(step.attempt.into(), step.worker_id, exhausted),
            },
        )
        .await?;
        let reaped = if exhausted {
            let error = crate::failure::lost_error(step.attempt.into());
            settle::fail_for_good(&mut tx, &step.failing(), &error).await?;
            Reaped::Failed
        } else {
            sqlx::query(include_str!("sql/requeue_step.sql"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
            Reaped::Retried
        };
        tx.commit().await?;
        Ok(reaped)
    }

    /// Cancels one overdue revoked step in a transaction of its own, unless another
    /// session holds it or its run.
    async fn stop_overdue(&self, lease: Lease) -> Result<Reaped> {
        let (id, token) = (lease.step_id.0, lease.token.0);
        let mut tx = self.pool.begin().await?;
        sqlx::query(include_str!("sql/reaper_lock_timeout.sql"))
            .execute(&mut *tx)
            .await?;
        if settle::try_lock_running_step(&mut tx, id, token)
            .await?
            .is_none()
        {
            return held_or_gone(&mut tx, id, token).await;
        }
        settle::stop_revoked(&mut tx, &[lease]).await?;
        tx.commit().await?;
        Ok(Reaped::Gone)
    }
}

/// What became of one step the reaper looked at.
enum Reaped {
    Retried,
    Failed,
    /// Nothing left to reap: it moved on, or it was stopped (revoked).
    Gone,
    /// Another session holds it or its run: left for a later pass.
    Held,
}

/// Why the reaper could not lock a step: it moved on, or someone holds it.
async fn held_or_gone(conn: &mut sqlx::PgConnection, id: Uuid, token: Uuid) -> Result<Reaped> {
    let leased: bool = sqlx::query_scalar(include_str!("sql/step_still_leased.sql"))
        .bind(id)
        .bind(token)
        .fetch_one(conn)
        .await?;
    Ok(if leased { Reaped::Held } else { Reaped::Gone })
}

/// A step whose reaping gave up waiting (`lock_timeout`) is skipped like a held one
/// (`None`); other errors end the pass.
fn skip_when_held(result: Result<Reaped>) -> Result<Option<Reaped>> {
    match result {
        Ok(reaped) => Ok(Some(reaped)),
        Err(e) if e.is_timeout() => Ok(None),
        Err(e) => Err(e),
    }
}
