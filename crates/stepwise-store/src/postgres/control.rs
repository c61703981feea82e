//! Ending runs early and reopening them on PostgreSQL: cancel, deadlines, retry.

use super::settle::{self, NewEvent};
use super::PgStore;
use crate::model::*;
use crate::retry_plan::{
    plan_retry, reopened_deadline_ms, retried_data, retryable, FanOutState, StepState,
};
use crate::stop::{plan_stop, unstarted_cancelled_data, StopPlan, StopRequest};
use crate::transient::with_retries;
use crate::{ControlStore, Result, StoreError};
use async_trait::async_trait;
use sqlx::{PgConnection, Row};
use stepwise_core::{EventKind, Lease, RunId, RunStatus, StepId, StepStatus, WorkerId};
use uuid::Uuid;

/// What stopping one run did.
enum StopOutcome {
    NotFound,
    /// Nothing to do: the run ended, or (deadline) it is not due any more.
    Unchanged(RunStatus),
    Compensating,
    Halted {
        status: RunStatus,
        revoked: u32,
    },
}

#[async_trait]
impl ControlStore for PgStore {
    async fn cancel_run(&self, request: &CancelRequest) -> Result<CancelOutcome> {
        let reason = StopRequest::Cancel {
            compensate: request.compensate,
        };
        let stopped = with_retries(|| async {
            let mut tx = self.pool.begin().await?;
            let stopped = stop_run(&mut tx, request.run.0, reason).await?;
            tx.commit().await?;
            Ok(stopped)
        })
        .await?;
        Ok(match stopped {
            StopOutcome::NotFound => CancelOutcome::NotFound,
            StopOutcome::Unchanged(status) => CancelOutcome::AlreadyEnded(status),
            StopOutcome::Compensating => CancelOutcome::Compensating,
            StopOutcome::Halted { status, revoked } => CancelOutcome::Cancelled { status, revoked },
        })
    }

    async fn retry_run(&self, request: &RetryRequest) -> Result<RetryOutcome> {
        with_retries(|| async {
            let mut tx = self.pool.begin().await?;
            let outcome = retry_in(&mut tx, request).await?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    async fn expire_runs(&self, limit: u32) -> Result<Vec<RunId>> {
        let due: Vec<Uuid> = sqlx::query_scalar(include_str!("sql/due_runs.sql"))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        let mut expired = Vec::new();
        for id in due {
            let stopped = with_retries(|| async {
                let mut tx = self.pool.begin().await?;
                let stopped = stop_run(&mut tx, id, StopRequest::Deadline).await?;
                tx.commit().await?;
                Ok(stopped)
            })
            .await?;
            if matches!(stopped, StopOutcome::Halted { .. }) {
                expired.push(RunId(id));
            }
        }
        Ok(expired)
    }

    async fn revoked_leases(&self, worker: WorkerId) -> Result<Vec<Lease>> {
        let rows = sqlx::query(include_str!("sql/revoked_leases.sql"))
            .bind(worker.0)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(super::rows::lease_from_row).collect()
    }

    async fn revocation_signal(&self) -> Result<Option<tokio::sync::watch::Receiver<u64>>> {
        let channel: String = sqlx::query_scalar(include_str!("sql/revoke_channel.sql"))
            .fetch_one(&self.pool)
            .await?;
        Ok(Some(super::listen(&self.pool, &channel).await?))
    }
}

/// Stops a run in the caller's transaction: unstarted steps are cancelled, running
/// steps' leases revoked. The run ends (or starts compensating) in this transaction
/// when nothing of it is running.
async fn stop_run(conn: &mut PgConnection, run: Uuid, reason: StopRequest) -> Result<StopOutcome> {
    sqlx::query(include_str!("sql/lock_unfinished_steps.sql"))
        .bind(run)
        .execute(&mut *conn)
        .await?;
    let Some(row) = sqlx::query(include_str!("sql/lock_run.sql"))
        .bind(run)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(StopOutcome::NotFound);
    };
    let status = run_status(row.try_get("status")?)?;
    let overdue: bool = row.try_get("overdue")?;
    match plan_stop(reason, status, overdue) {
        StopPlan::Unchanged => return Ok(StopOutcome::Unchanged(status)),
        StopPlan::Compensating => return Ok(StopOutcome::Compensating),
        StopPlan::GiveUpCompensation => {
            sqlx::query(include_str!("sql/give_up_compensation.sql"))
                .bind(run)
                .execute(&mut *conn)
                .await?;
        }
        StopPlan::Halt {
            reason,
            error,
            give_up,
        } => {
            sqlx::query(include_str!("sql/stop_run.sql"))
                .bind(run)
                .bind(reason.as_str())
                .bind(error)
                .bind(give_up)
                .execute(&mut *conn)
                .await?;
        }
    }
    let group: Option<String> = sqlx::query_scalar("SELECT group_name FROM run WHERE id = $1")
        .bind(run)
        .fetch_one(&mut *conn)
        .await?;
    let cancelled: Vec<String> = sqlx::query_scalar(include_str!("sql/cancel_unstarted_steps.sql"))
        .bind(run)
        .fetch_all(&mut *conn)
        .await?;
    for name in &cancelled {
        settle::insert_event(
            conn,
            NewEvent {
                kind: EventKind::StepCancelled,
                run_id: Some(run),
                step: Some(name),
                group: group.as_deref(),
                data: unstarted_cancelled_data(reason),
            },
        )
        .await?;
    }
    let revoked: Vec<String> = sqlx::query_scalar(include_str!("sql/revoke_running_steps.sql"))
        .bind(run)
        .fetch_all(&mut *conn)
        .await?;
    if !revoked.is_empty() {
        sqlx::query(include_str!("sql/notify_revoke.sql"))
            .execute(&mut *conn)
            .await?;
    }
    settle::close_steps(conn, &vec![run; cancelled.len()]).await?;
    // Cancel and deadline reach the run's children. The run's waiting `run` steps
    // were cancelled above, so a child's end finds no parent step to complete.
    let children: Vec<Uuid> = sqlx::query_scalar(include_str!("sql/open_children.sql"))
        .bind(run)
        .fetch_all(&mut *conn)
        .await?;
    for child in children {
        Box::pin(stop_run(conn, child, reason.for_children())).await?;
    }
    let status: String = sqlx::query_scalar("SELECT status FROM run WHERE id = $1")
        .bind(run)
        .fetch_one(&mut *conn)
        .await?;
    Ok(StopOutcome::Halted {
        status: run_status(status)?,
        revoked: revoked.len() as u32,
    })
}

pub(super) async fn retry_in(
    conn: &mut PgConnection,
    request: &RetryRequest,
) -> Result<RetryOutcome> {
    let run = request.run.0;
    let Some(row) = sqlx::query(include_str!("sql/lock_run.sql"))
        .bind(run)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(RetryOutcome::NotFound);
    };
    let status = run_status(row.try_get("status")?)?;
    if !retryable(status) {
        return Ok(RetryOutcome::NotRetryable(status));
    }
    let workflow: String = row.try_get("workflow")?;
    let version: i32 = row.try_get("workflow_version")?;
    let mut steps = Vec::new();
    for s in sqlx::query(include_str!("sql/run_step_states.sql"))
        .bind(run)
        .fetch_all(&mut *conn)
        .await?
    {
        let status: String = s.try_get("status")?;
        steps.push(StepState {
            id: StepId(s.try_get("id")?),
            name: s.try_get("name")?,
            status: StepStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("step status {status:?}")))?,
            dependents: s
                .try_get::<Vec<Uuid>, _>("dependents")?
                .into_iter()
                .map(StepId)
                .collect(),
            compensation: s.try_get("compensation")?,
            item_of: match s.try_get::<Option<Uuid>, _>("item_of")? {
                Some(parent) => Some((StepId(parent), s.try_get("item_index")?)),
                None => None,
            },
            fan_out: s
                .try_get::<bool, _>("fans_out")?
                .then(|| -> Result<FanOutState> {
                    Ok(FanOutState {
                        expanded: s.try_get("expanded")?,
                        max_parallel: s
                            .try_get::<Option<i64>, _>("max_parallel")?
                            .map(|p| p.clamp(1, i64::from(u32::MAX)) as u32),
                    })
                })
                .transpose()?,
        });
    }
    let plan = plan_retry(status, &steps, request.from.as_deref())?;
    super::fan_out::reshape_items(conn, RunId(run), &plan).await?;
    sqlx::query(include_str!("sql/reset_steps.sql"))
        .bind(plan.resets.iter().map(|r| r.id.0).collect::<Vec<_>>())
        .bind(
            plan.resets
                .iter()
                .map(|r| r.status.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            plan.resets
                .iter()
                .map(|r| r.deps_remaining)
                .collect::<Vec<_>>(),
        )
        .execute(&mut *conn)
        .await?;
    let workflow = super::runs::latest_workflow(conn, &workflow, Some(version)).await?;
    let deadline_ms = reopened_deadline_ms(workflow.as_ref());
    let group: Option<String> = sqlx::query_scalar(include_str!("sql/reopen_run.sql"))
        .bind(run)
        .bind(plan.status.as_str())
        .bind(plan.resets.len() as i32)
        .bind(deadline_ms)
        .fetch_one(&mut *conn)
        .await?;
    // A keyed run queues for a slot again, whether it re-runs forward or resumes
    // its compensation (a compensating run holds a slot too).
    super::flow::rejoin_line(conn, run).await?;
    if let Some(group) = &group {
        sqlx::query(include_str!("sql/reopen_group.sql"))
            .bind(group)
            .execute(&mut *conn)
            .await?;
    }
    let names = plan.step_names();
    settle::insert_event(
        conn,
        NewEvent {
            kind: EventKind::RunRetried,
            run_id: Some(run),
            step: None,
            group: group.as_deref(),
            data: retried_data(request.from.as_deref(), status, &names),
        },
    )
    .await?;
    sqlx::query(include_str!("sql/notify_work.sql"))
        .execute(&mut *conn)
        .await?;
    // A keyed run may wait in its line now.
    let status: String = sqlx::query_scalar("SELECT status FROM run WHERE id = $1")
        .bind(run)
        .fetch_one(&mut *conn)
        .await?;
    Ok(RetryOutcome::Retried {
        status: run_status(status)?,
        steps: names,
    })
}

fn run_status(text: String) -> Result<RunStatus> {
    RunStatus::parse(&text).ok_or_else(|| StoreError::Corrupt(format!("run status {text:?}")))
}
