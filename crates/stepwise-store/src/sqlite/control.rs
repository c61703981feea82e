//! Ending runs early and reopening them on SQLite: cancel, deadlines, retry.
//!
//! Every change runs in one write transaction; SQLite's single writer stands in for
//! the row locks the PostgreSQL backend takes, so a check and the write it decides
//! cannot be split by another writer.

use super::settle::{self, NewEvent};
use super::SqliteStore;
use crate::model::*;
use crate::retry_plan::{
    plan_retry, reopened_deadline_ms, retried_data, retryable, FanOutState, StepState,
};
use crate::stop::{plan_stop, unstarted_cancelled_data, StopPlan, StopRequest};
use crate::transient::with_retries;
use crate::{ControlStore, Result, StoreError};
use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::{Row, SqliteConnection};
use stepwise_core::{EventKind, Lease, RunId, RunStatus, StepId, StepStatus, WorkerId};
use uuid::Uuid;

/// What stopping one run did.
enum StopOutcome {
    NotFound,
    /// Nothing to do: the run ended, or (deadline) it is not due any more.
    Unchanged(RunStatus),
    Compensating,
    Stopped {
        status: RunStatus,
        revoked: u32,
    },
}

#[async_trait]
impl ControlStore for SqliteStore {
    async fn cancel_run(&self, request: &CancelRequest) -> Result<CancelOutcome> {
        let reason = StopRequest::Cancel {
            compensate: request.compensate,
        };
        let stopped = with_retries(|| async {
            let mut tx = self.write().await?;
            let stopped = stop_run(&mut tx, request.run.0, reason).await?;
            tx.commit().await?;
            Ok(stopped)
        })
        .await?;
        Ok(match stopped {
            StopOutcome::NotFound => CancelOutcome::NotFound,
            StopOutcome::Unchanged(status) => CancelOutcome::AlreadyEnded(status),
            StopOutcome::Compensating => CancelOutcome::Compensating,
            StopOutcome::Stopped { status, revoked } => {
                CancelOutcome::Cancelled { status, revoked }
            }
        })
    }

    async fn retry_run(&self, request: &RetryRequest) -> Result<RetryOutcome> {
        with_retries(|| async {
            let mut tx = self.write().await?;
            let outcome = retry_in(&mut tx, request).await?;
            tx.commit().await?;
            Ok(outcome)
        })
        .await
    }

    async fn expire_runs(&self, limit: u32) -> Result<Vec<RunId>> {
        // Picking the due runs inside the write transaction that stops them (and
        // clears their deadlines) is what makes each deadline fire once.
        with_retries(|| async {
            let mut tx = self.write().await?;
            let due: Vec<Uuid> = sqlx::query_scalar(include_str!("sql/due_runs.sql"))
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            let mut expired = Vec::with_capacity(due.len());
            for id in due {
                if let StopOutcome::Stopped { .. } =
                    stop_run(&mut tx, id, StopRequest::Deadline).await?
                {
                    expired.push(RunId(id));
                }
            }
            tx.commit().await?;
            Ok(expired)
        })
        .await
    }

    async fn revoked_leases(&self, worker: WorkerId) -> Result<Vec<Lease>> {
        let rows = sqlx::query(include_str!("sql/revoked_leases.sql"))
            .bind(worker.0)
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(super::rows::lease_from_row).collect()
    }
}

/// The run as `run_to_stop.sql` reads it.
struct RunToStop {
    status: RunStatus,
    workflow: String,
    version: i32,
    group: Option<String>,
    overdue: bool,
}

async fn read_run(conn: &mut SqliteConnection, run: Uuid) -> Result<Option<RunToStop>> {
    let Some(row) = sqlx::query(include_str!("sql/run_to_stop.sql"))
        .bind(run)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(RunToStop {
        status: run_status(row.try_get("status")?)?,
        workflow: row.try_get("workflow")?,
        version: row.try_get("workflow_version")?,
        group: row.try_get("group_name")?,
        overdue: row.try_get("overdue")?,
    }))
}

/// Stops a run in the caller's transaction: unstarted steps are cancelled, running
/// steps' leases revoked. The run ends (or starts compensating) in this transaction
/// when nothing of it is running.
async fn stop_run(
    conn: &mut SqliteConnection,
    run: Uuid,
    reason: StopRequest,
) -> Result<StopOutcome> {
    let Some(found) = read_run(conn, run).await? else {
        return Ok(StopOutcome::NotFound);
    };
    let status = found.status;
    match plan_stop(reason, status, found.overdue) {
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
    let mut cancelled = sqlx::query(include_str!("sql/cancel_unstarted_steps.sql"))
        .bind(run)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| {
            Ok((
                row.try_get::<i64, _>("seq")?,
                row.try_get::<String, _>("name")?,
            ))
        })
        .collect::<Result<Vec<_>>>()?;
    // RETURNING comes back in no particular order; events follow the workflow's.
    cancelled.sort_unstable();
    for (_, name) in &cancelled {
        settle::insert_event(
            conn,
            NewEvent {
                kind: EventKind::StepCancelled,
                run_id: Some(run),
                step: Some(name),
                group: found.group.as_deref(),
                data: unstarted_cancelled_data(reason),
            },
        )
        .await?;
    }
    let revoked: Vec<String> = sqlx::query_scalar(include_str!("sql/revoke_running_steps.sql"))
        .bind(run)
        .fetch_all(&mut *conn)
        .await?;
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
    let status: String = sqlx::query_scalar(include_str!("sql/run_status.sql"))
        .bind(run)
        .fetch_one(&mut *conn)
        .await?;
    Ok(StopOutcome::Stopped {
        status: run_status(status)?,
        revoked: revoked.len() as u32,
    })
}

pub(super) async fn retry_in(
    conn: &mut SqliteConnection,
    request: &RetryRequest,
) -> Result<RetryOutcome> {
    let run = request.run.0;
    let Some(found) = read_run(conn, run).await? else {
        return Ok(RetryOutcome::NotFound);
    };
    let status = found.status;
    if !retryable(status) {
        return Ok(RetryOutcome::NotRetryable(status));
    }
    let mut steps = Vec::new();
    for s in sqlx::query(include_str!("sql/run_step_states.sql"))
        .bind(run)
        .fetch_all(&mut *conn)
        .await?
    {
        let status: String = s.try_get("status")?;
        let dependents: String = s.try_get("dependents")?;
        let dependents: Vec<String> = serde_json::from_str(&dependents)
            .map_err(|e| StoreError::Corrupt(format!("step dependents: {e}")))?;
        steps.push(StepState {
            id: StepId(s.try_get("id")?),
            name: s.try_get("name")?,
            status: StepStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("step status {status:?}")))?,
            dependents: dependents
                .iter()
                .map(|d| {
                    Uuid::parse_str(d)
                        .map(StepId)
                        .map_err(|e| StoreError::Corrupt(format!("step dependent {d:?}: {e}")))
                })
                .collect::<Result<_>>()?,
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
    let resets: Vec<Value> = plan
        .resets
        .iter()
        .map(|r| {
            json!({
                "id": r.id.0.simple().to_string(),
                "status": r.status.as_str(),
                "deps": r.deps_remaining,
            })
        })
        .collect();
    let resets = Value::Array(resets).to_string();
    // A completed step's step row is its last attempt's history: keep it as a row.
    for sql in [
        include_str!("sql/keep_completed_attempts.sql"),
        include_str!("sql/reset_steps.sql"),
    ] {
        sqlx::query(sql).bind(&resets).execute(&mut *conn).await?;
    }
    let workflow = super::runs::latest_workflow(conn, &found.workflow, Some(found.version)).await?;
    let deadline_ms = reopened_deadline_ms(workflow.as_ref());
    let group: Option<String> = sqlx::query_scalar(include_str!("sql/reopen_run.sql"))
        .bind(run)
        .bind(plan.status.as_str())
        .bind(plan.resets.len() as i64)
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
    // A keyed run may wait in its line now.
    let status: String = sqlx::query_scalar(include_str!("sql/run_status.sql"))
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
