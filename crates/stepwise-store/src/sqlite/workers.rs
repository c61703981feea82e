//! Workers on SQLite: registration, heartbeats, the reaper.

use super::settle::{self, NewEvent};
use super::{time, SqliteStore};
use crate::model::*;
use crate::transient::{millis, with_retries};
use crate::{Result, StoreError, WorkerStore};
use async_trait::async_trait;
use serde_json::json;
use sqlx::Row;
use stepwise_core::{EventKind, StepId, WorkerId};
use uuid::Uuid;

#[async_trait]
impl WorkerStore for SqliteStore {
    async fn register_worker(&self, registration: &WorkerRegistration) -> Result<WorkerLease> {
        crate::plan::check_lease(registration.lease)?;
        let id = WorkerId::new();
        let queues = serde_json::to_string(&registration.queues)
            .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        let mut tx = self.write().await?;
        let expires_at: i64 = sqlx::query_scalar(include_str!("sql/register_worker.sql"))
            .bind(id.0)
            .bind(&registration.name)
            .bind(queues)
            .bind(millis(registration.lease))
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(WorkerLease {
            id,
            expires_at: time(expires_at)?,
        })
    }

    async fn heartbeat(&self, worker: WorkerId) -> Result<Heartbeat> {
        let mut tx = self.write().await?;
        let expires_at: Option<i64> = sqlx::query_scalar(include_str!("sql/heartbeat.sql"))
            .bind(worker.0)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(expires_at) = expires_at else {
            tx.commit().await?;
            return Ok(Heartbeat::Reaped);
        };
        // The locks of its running steps live as long as its lease (plus a margin).
        super::locks::extend_for_worker(&mut tx, worker).await?;
        tx.commit().await?;
        Ok(Heartbeat::Alive {
            expires_at: time(expires_at)?,
        })
    }

    /// Stops the worker, then hands back whatever it still runs, in one transaction.
    async fn deregister_worker(&self, worker: WorkerId) -> Result<BatchReport> {
        let mut tx = self.write().await?;
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

    async fn reap(&self, caller: WorkerId) -> Result<ReapReport> {
        with_retries(|| self.reap_once(caller)).await
    }

    async fn list_workers(&self) -> Result<Vec<WorkerView>> {
        let rows = sqlx::query(include_str!("sql/list_workers.sql"))
            .fetch_all(&self.reader)
            .await?;
        let mut workers = Vec::with_capacity(rows.len());
        for row in rows {
            let queues: String = row.try_get("queues")?;
            workers.push(WorkerView {
                id: WorkerId(row.try_get("id")?),
                name: row.try_get("name")?,
                queues: serde_json::from_str(&queues)
                    .map_err(|e| StoreError::Corrupt(format!("worker queues: {e}")))?,
                status: row.try_get("status")?,
                started_at: time(row.try_get("started_at")?)?,
                heartbeat_at: time(row.try_get("heartbeat_at")?)?,
                expires_at: time(row.try_get("expires_at")?)?,
                running_steps: row.try_get("running_steps")?,
            });
        }
        Ok(workers)
    }
}

impl SqliteStore {
    async fn reap_once(&self, caller: WorkerId) -> Result<ReapReport> {
        let mut tx = self.write().await?;
        let mut report = ReapReport::default();
        let dead = sqlx::query(include_str!("sql/reap_workers.sql"))
            .bind(caller.0)
            .fetch_all(&mut *tx)
            .await?;
        for row in dead {
            let id: Uuid = row.try_get("id")?;
            let name: String = row.try_get("name")?;
            report.workers.push(WorkerId(id));
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
        let orphans = sqlx::query(include_str!("sql/orphaned_steps.sql"))
            .fetch_all(&mut *tx)
            .await?;
        for row in orphans {
            let lease = super::rows::lease_from_row(&row)?;
            let id = lease.step_id.0;
            let Some(step) = settle::lock_running_step(&mut tx, id, lease.token.0).await? else {
                continue;
            };
            if step.revoked {
                settle::stop_revoked(&mut tx, &[step.lease()]).await?;
                continue;
            }
            settle::record_attempt(&mut tx, step.attempt_record("reaped", Some("worker lost")))
                .await?;
            let exhausted = crate::failure::lost_for_good(
                &step.retry,
                step.attempt,
                step.attempt_base,
                step.halted,
            );
            settle::insert_event(
                &mut tx,
                NewEvent {
                    kind: EventKind::StepReaped,
                    run_id: Some(step.run_id),
                    step: Some(&step.name),
                    group: step.group.as_deref(),
                    data: crate::failure::reaped_data(step.attempt, step.worker_id, exhausted),
                },
            )
            .await?;
            if exhausted {
                let error = crate::failure::lost_error(step.attempt);
                settle::fail_for_good(&mut tx, &step.failing(), &error).await?;
                report.steps_failed.push(StepId(id));
            } else {
                sqlx::query(include_str!("sql/requeue_step.sql"))
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                report.steps_retried.push(StepId(id));
            }
        }
        // Revoked steps whose worker never confirmed the stop within a lease.
        let overdue = sqlx::query(include_str!("sql/overdue_revoked_steps.sql"))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(super::rows::lease_from_row)
            .collect::<Result<Vec<_>>>()?;
        settle::stop_revoked(&mut tx, &overdue).await?;
        super::locks::sweep(&mut tx).await?;
        tx.commit().await?;
        Ok(report)
    }
}
