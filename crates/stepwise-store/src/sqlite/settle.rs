//! What happens after steps reach a terminal state, shared by complete, fail and
//! reap: run counters, group counters, and halting a run whose step failed for good.

use super::opt_time;
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{Row, SqliteConnection};
use std::time::Duration;
use stepwise_core::{Backoff, EventKind, RetryPolicy, RunId, RunStatus};
use uuid::Uuid;

/// A running step read for an outcome, as by `lock_running_step.sql`.
pub(super) struct LockedStep {
    pub id: Uuid,
    pub token: Uuid,
    pub run_id: Uuid,
    pub name: String,
    pub attempt: i64,
    pub retry: RetryPolicy,
    pub worker_id: Option<Uuid>,
    pub started_at: Option<DateTime<Utc>>,
    pub group: Option<String>,
    /// The run is halting: the step must not go back to the queue.
    pub halted: bool,
}

pub(super) async fn lock_running_step(
    conn: &mut SqliteConnection,
    id: Uuid,
    token: Uuid,
) -> Result<Option<LockedStep>> {
    let row = sqlx::query(include_str!("sql/lock_running_step.sql"))
        .bind(id)
        .bind(token)
        .fetch_optional(conn)
        .await?;
    let Some(row) = row else { return Ok(None) };
    let duration = |ms: i64| Duration::from_millis(ms.max(0) as u64);
    Ok(Some(LockedStep {
        id,
        token,
        run_id: row.try_get(0)?,
        name: row.try_get(1)?,
        attempt: row.try_get(2)?,
        retry: RetryPolicy {
            max_attempts: row.try_get::<i64, _>(3)?.max(1) as u32,
            backoff: Backoff {
                initial: duration(row.try_get(4)?),
                factor: row.try_get(5)?,
                max: duration(row.try_get(6)?),
            },
        },
        worker_id: row.try_get(7)?,
        started_at: opt_time(row.try_get(8)?)?,
        group: row.try_get(9)?,
        halted: row.try_get(10)?,
    }))
}

pub(super) struct NewEvent<'a> {
    pub kind: EventKind,
    pub run_id: Option<Uuid>,
    pub step: Option<&'a str>,
    pub group: Option<&'a str>,
    pub data: Value,
}

pub(super) async fn insert_event(conn: &mut SqliteConnection, event: NewEvent<'_>) -> Result<()> {
    sqlx::query(include_str!("sql/insert_event.sql"))
        .bind(event.kind.as_str())
        .bind(event.run_id)
        .bind(event.step)
        .bind(event.group)
        .bind(event.data)
        .execute(conn)
        .await?;
    Ok(())
}

/// One finished attempt for the step's history.
pub(super) struct AttemptRecord<'a> {
    pub step_id: Uuid,
    pub run_id: Uuid,
    pub number: i64,
    pub worker_id: Option<Uuid>,
    pub token: Uuid,
    pub started_at: Option<i64>,
    pub outcome: &'a str,
    pub error: Option<&'a str>,
    pub log: Option<&'a str>,
}

pub(super) async fn record_attempt(
    conn: &mut SqliteConnection,
    a: AttemptRecord<'_>,
) -> Result<()> {
    sqlx::query(include_str!("sql/record_attempt.sql"))
        .bind(a.step_id)
        .bind(a.run_id)
        .bind(a.number)
        .bind(a.worker_id)
        .bind(a.token)
        .bind(a.started_at)
        .bind(a.outcome)
        .bind(a.error)
        .bind(a.log)
        .execute(conn)
        .await?;
    Ok(())
}

impl LockedStep {
    pub fn attempt_record<'a>(
        &self,
        outcome: &'a str,
        error: Option<&'a str>,
    ) -> AttemptRecord<'a> {
        AttemptRecord {
            step_id: self.id,
            run_id: self.run_id,
            number: self.attempt,
            worker_id: self.worker_id,
            token: self.token,
            started_at: self.started_at.map(|t| t.timestamp_millis()),
            outcome,
            error,
            log: None,
        }
    }
}

/// Marks a running step failed for good and halts its run: the run's unstarted
/// steps are skipped, and the run fails once nothing of it runs.
pub(super) async fn fail_for_good(
    conn: &mut SqliteConnection,
    step: &LockedStep,
    error: &str,
) -> Result<Vec<(RunId, RunStatus)>> {
    sqlx::query(include_str!("sql/fail_step.sql"))
        .bind(step.id)
        .bind(error)
        .execute(&mut *conn)
        .await?;
    insert_event(
        conn,
        NewEvent {
            kind: EventKind::StepFailed,
            run_id: Some(step.run_id),
            step: Some(&step.name),
            group: step.group.as_deref(),
            data: json!({"attempt": step.attempt, "error": error, "final": true}),
        },
    )
    .await?;
    sqlx::query(include_str!("sql/halt_run.sql"))
        .bind(step.run_id)
        .bind(RunStatus::Failed.as_str())
        .bind(format!("step {:?} failed: {error}", step.name))
        .execute(&mut *conn)
        .await?;
    let skipped: Vec<String> = sqlx::query_scalar(include_str!("sql/skip_unstarted_steps.sql"))
        .bind(step.run_id)
        .fetch_all(&mut *conn)
        .await?;
    for name in &skipped {
        insert_event(
            conn,
            NewEvent {
                kind: EventKind::StepSkipped,
                run_id: Some(step.run_id),
                step: Some(name),
                group: step.group.as_deref(),
                data: json!({"reason": format!("step {:?} failed", step.name)}),
            },
        )
        .await?;
    }
    close_steps(conn, step.run_id, skipped.len() as i64 + 1).await
}

/// A run that reached a terminal state in this transaction.
pub(super) struct FinishedRun {
    pub id: Uuid,
    pub status: String,
    pub group: Option<String>,
}

impl FinishedRun {
    pub fn from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Self> {
        Ok(Self {
            id: row.try_get(0)?,
            status: row.try_get(1)?,
            group: row.try_get(2)?,
        })
    }
}

/// Decrements run `run_id`'s open-step counter by `closed`; at zero the run becomes
/// terminal (with its event) and its group is counted.
pub(super) async fn close_steps(
    conn: &mut SqliteConnection,
    run_id: Uuid,
    closed: i64,
) -> Result<Vec<(RunId, RunStatus)>> {
    let row = sqlx::query(include_str!("sql/close_run_steps.sql"))
        .bind(run_id)
        .bind(closed)
        .fetch_optional(&mut *conn)
        .await?;
    let mut finished = Vec::new();
    if let Some(row) = row {
        if row.try_get::<i64, _>(3)? == 0 {
            finished.push(FinishedRun::from_row(&row)?);
        }
    }
    runs_finished(conn, finished).await
}

/// Writes the terminal event of each finished run and counts them in their groups.
pub(super) async fn runs_finished(
    conn: &mut SqliteConnection,
    finished: Vec<FinishedRun>,
) -> Result<Vec<(RunId, RunStatus)>> {
    if finished.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<String> = finished.iter().map(|r| r.id.simple().to_string()).collect();
    sqlx::query(include_str!("sql/run_finished_events.sql"))
        .bind(serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))?)
        .execute(&mut *conn)
        .await?;
    let mut answer = Vec::with_capacity(finished.len());
    for run in finished {
        let status = RunStatus::parse(&run.status)
            .ok_or_else(|| StoreError::Corrupt(format!("run status {:?}", run.status)))?;
        if let Some(group) = &run.group {
            let row = sqlx::query(include_str!("sql/close_group_runs.sql"))
                .bind(group)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = row {
                if row.try_get::<i64, _>(1)? == 0 {
                    complete_group(conn, group, row.try_get(0)?).await?;
                }
            }
        }
        answer.push((RunId(run.id), status));
    }
    Ok(answer)
}

/// Writes the one `group.completed` event, with the count of runs per status.
pub(super) async fn complete_group(
    conn: &mut SqliteConnection,
    name: &str,
    total: i64,
) -> Result<()> {
    let counts = sqlx::query(include_str!("sql/group_counts.sql"))
        .bind(name)
        .fetch_all(&mut *conn)
        .await?;
    let mut by_status = serde_json::Map::new();
    for row in counts {
        let status: String = row.try_get(0)?;
        let n: i64 = row.try_get(1)?;
        by_status.insert(status, n.into());
    }
    insert_event(
        conn,
        NewEvent {
            kind: EventKind::GroupCompleted,
            run_id: None,
            step: None,
            group: Some(name),
            data: json!({"total": total, "counts": by_status}),
        },
    )
    .await
}
