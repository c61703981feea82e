//! What happens after steps reach a terminal state, shared by complete, fail and
//! reap: run counters, group counters, and halting a run whose step failed for good.

use crate::{Result, StoreError};
use serde_json::{json, Value};
use sqlx::{PgConnection, Row};
use std::time::Duration;
use stepwise_core::{Backoff, EventKind, RetryPolicy, RunId, RunStatus};
use uuid::Uuid;

/// A running step locked for an outcome, as read by `lock_running_step.sql`.
pub(super) struct LockedStep {
    pub id: Uuid,
    pub token: Uuid,
    pub run_id: Uuid,
    pub name: String,
    pub attempt: i32,
    pub retry: RetryPolicy,
    pub worker_id: Option<Uuid>,
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    pub group: Option<String>,
    /// The run is halting: the step must not go back to the queue.
    pub halted: bool,
}

pub(super) async fn lock_running_step(
    conn: &mut PgConnection,
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
            max_attempts: row.try_get::<i32, _>(3)?.max(1) as u32,
            backoff: Backoff {
                initial: duration(row.try_get(4)?),
                factor: row.try_get(5)?,
                max: duration(row.try_get(6)?),
            },
        },
        worker_id: row.try_get(7)?,
        started_at: row.try_get(8)?,
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

pub(super) async fn insert_event(conn: &mut PgConnection, event: NewEvent<'_>) -> Result<()> {
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

/// Appends a finished attempt to the step's history.
/// How an attempt ended, for its history row.
pub(super) struct AttemptEnd<'a> {
    pub outcome: &'a str,
    pub error: Option<&'a str>,
    pub log: Option<&'a str>,
}

pub(super) async fn record_attempt(
    conn: &mut PgConnection,
    step: &LockedStep,
    end: AttemptEnd<'_>,
) -> Result<()> {
    sqlx::query(include_str!("sql/record_attempt.sql"))
        .bind(step.id)
        .bind(step.run_id)
        .bind(step.attempt)
        .bind(step.worker_id)
        .bind(step.token)
        .bind(step.started_at)
        .bind(end.outcome)
        .bind(end.error)
        .bind(end.log)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks a locked running step failed for good and halts its run: the run's
/// unstarted steps are skipped, and the run fails once nothing of it runs.
pub(super) async fn fail_for_good(
    conn: &mut PgConnection,
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
    let skipped: Vec<String> = sqlx::query_scalar(include_str!("sql/halt_run.sql"))
        .bind(step.run_id)
        .bind(RunStatus::Failed.as_str())
        .bind(format!("step {:?} failed: {error}", step.name))
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
    let closed = vec![step.run_id; skipped.len() + 1];
    close_steps(conn, &closed).await
}

/// Decrements the open-step counter of each run once per entry in `run_ids`; runs
/// reaching zero become terminal (with their event), and their groups are counted.
pub(super) async fn close_steps(
    conn: &mut PgConnection,
    run_ids: &[Uuid],
) -> Result<Vec<(RunId, RunStatus)>> {
    if run_ids.is_empty() {
        return Ok(vec![]);
    }
    let rows = sqlx::query(include_str!("sql/close_run_steps.sql"))
        .bind(run_ids)
        .fetch_all(&mut *conn)
        .await?;
    let mut finished = Vec::with_capacity(rows.len());
    let mut groups = Vec::new();
    for row in rows {
        let status: String = row.try_get(1)?;
        let status = RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?;
        finished.push((RunId(row.try_get(0)?), status));
        if let Some(group) = row.try_get::<Option<String>, _>(2)? {
            groups.push(group);
        }
    }
    close_group_runs(conn, &groups).await?;
    Ok(finished)
}

async fn close_group_runs(conn: &mut PgConnection, groups: &[String]) -> Result<()> {
    if groups.is_empty() {
        return Ok(());
    }
    let rows = sqlx::query(include_str!("sql/close_group_runs.sql"))
        .bind(groups)
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        let remaining: i32 = row.try_get(2)?;
        if remaining == 0 {
            let name: String = row.try_get(0)?;
            let total: i32 = row.try_get(1)?;
            complete_group(conn, &name, total).await?;
        }
    }
    Ok(())
}

/// Writes the one `group.completed` event, with the count of runs per status.
pub(super) async fn complete_group(conn: &mut PgConnection, name: &str, total: i32) -> Result<()> {
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
