//! Workers on PostgreSQL: registration, heartbeats, the reaper.

use super::settle::{self, NewEvent};
use super::PgStore;
use crate::model::*;
use crate::transient::{millis, with_retries};
use crate::{Result, WorkerStore};
use async_trait::async_trait;
use serde_json::json;
use sqlx::Row;
use stepwise_core::{EventKind, Lease, LeaseToken, StepId, WorkerId};
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
        with_retries(|| self.reap_once(caller)).await
    }

    async fn list_workers(&self) -> Result<Vec<WorkerView>> {
        let rows = sqlx::query(include_str!("sql/list_workers.sql"))
            .fetch_all(&self.pool)
            .await?;
        let mut workers = Vec::with_capacity(rows.len());
        for row in rows {
            workers.push(WorkerView {
                id: WorkerId(row.try_get(0)?),
                name: row.try_get(1)?,
                queues: row.try_get(2)?,
                status: row.try_get(3)?,
                started_at: row.try_get(4)?,
                heartbeat_at: row.try_get(5)?,
                expires_at: row.try_get(6)?,
                running_steps: row.try_get(7)?,
            });
        }
        Ok(workers)
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
        let mut leases = Vec::with_capacity(rows.len());
        for row in rows {
            leases.push(Lease {
                step_id: StepId(row.try_get(0)?),
                token: LeaseToken(row.try_get(1)?),
            });
        }
        let report = super::steps::release_in(&mut tx, &leases).await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn reap_once(&self, caller: WorkerId) -> Result<ReapReport> {
        let mut tx = self.pool.begin().await?;
        let mut report = ReapReport::default();
        let dead = sqlx::query(include_str!("sql/reap_workers.sql"))
            .bind(caller.0)
            .fetch_all(&mut *tx)
            .await?;
        for row in dead {
            let id: Uuid = row.try_get(0)?;
            let name: String = row.try_get(1)?;
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
        // Also steps of workers reaped earlier that claimed while being reaped.
        let orphans = sqlx::query(include_str!("sql/orphaned_steps.sql"))
            .fetch_all(&mut *tx)
            .await?;
        for row in orphans {
            let (id, token): (Uuid, Uuid) = (row.try_get(0)?, row.try_get(1)?);
            let Some(step) = settle::lock_running_step(&mut tx, id, token).await? else {
                continue;
            };
            if step.revoked {
                settle::stop_revoked(&mut tx, &[step.lease()]).await?;
                continue;
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
            let exhausted = step.halted || step.attempts_used() >= step.retry.max_attempts;
            settle::insert_event(
                &mut tx,
                NewEvent {
                    kind: EventKind::StepReaped,
                    run_id: Some(step.run_id),
                    step: Some(&step.name),
                    group: step.group.as_deref(),
                    data: json!({"attempt": step.attempt, "worker_id": step.worker_id, "final": exhausted}),
                },
            )
            .await?;
            if exhausted {
                let error = format!("worker lost during attempt {}", step.attempt);
                settle::fail_for_good(&mut tx, &step, &error).await?;
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
        let overdue: Vec<Lease> = sqlx::query(include_str!("sql/overdue_revoked_steps.sql"))
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                Ok(Lease {
                    step_id: StepId(row.try_get(0)?),
                    token: LeaseToken(row.try_get(1)?),
                })
            })
            .collect::<Result<_>>()?;
        settle::stop_revoked(&mut tx, &overdue).await?;
        sqlx::query(include_str!("sql/sweep_locks.sql"))
            .execute(&mut *tx)
            .await?;
        if !report.steps_retried.is_empty() {
            sqlx::query(include_str!("sql/notify_work.sql"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(report)
    }
}
