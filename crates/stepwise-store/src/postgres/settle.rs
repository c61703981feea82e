//! What happens after steps reach a terminal state, shared by complete, fail and
//! reap: run counters, group counters, and halting a run whose step failed for good.

use crate::failure;
use crate::{Result, StoreError};
use serde_json::{json, Value};
use sqlx::{PgConnection, Row};
use std::time::Duration;
use stepwise_core::{Backoff, EventKind, Lease, LeaseToken, RetryPolicy, RunId, RunStatus, StepId};
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
    /// Attempts made before the run's latest retry.
    pub attempt_base: i32,
    /// The run was cancelled or timed out while the step ran: any outcome write
    /// only confirms that it stopped.
    pub revoked: bool,
    /// See [`FailingStep::tolerated_by`].
    pub tolerated_by: Option<Uuid>,
    /// Its rate limit key, which back-pressure pauses.
    pub rate_key: Option<String>,
}

/// A step failing for good, as [`fail_for_good`] needs it.
pub(super) struct FailingStep<'a> {
    pub id: Uuid,
    pub run_id: Uuid,
    pub name: &'a str,
    pub attempt: i32,
    pub group: Option<&'a str>,
    /// An item of a `for_each` step with `on_item_failure = "continue"`: its failure
    /// ends the item, not the run, and counts towards this step's join.
    pub tolerated_by: Option<Uuid>,
}

impl LockedStep {
    pub fn failing(&self) -> FailingStep<'_> {
        FailingStep {
            id: self.id,
            run_id: self.run_id,
            name: &self.name,
            attempt: self.attempt,
            group: self.group.as_deref(),
            tolerated_by: self.tolerated_by,
        }
    }

    pub fn lease(&self) -> Lease {
        Lease {
            step_id: StepId(self.id),
            token: LeaseToken(self.token),
        }
    }
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
    row.map(|row| locked_step(&row, id, token)).transpose()
}

/// [`lock_running_step`] without waiting: `None` also when another session holds
/// the step or its run.
pub(super) async fn try_lock_running_step(
    conn: &mut PgConnection,
    id: Uuid,
    token: Uuid,
) -> Result<Option<LockedStep>> {
    let row = sqlx::query(include_str!("sql/try_lock_running_step.sql"))
        .bind(id)
        .bind(token)
        .fetch_optional(conn)
        .await?;
    row.map(|row| locked_step(&row, id, token)).transpose()
}

fn locked_step(row: &sqlx::postgres::PgRow, id: Uuid, token: Uuid) -> Result<LockedStep> {
    let duration = |ms: i64| Duration::from_millis(ms.max(0) as u64);
    Ok(LockedStep {
        id,
        token,
        run_id: row.try_get("run_id")?,
        name: row.try_get("name")?,
        attempt: row.try_get("attempt")?,
        retry: RetryPolicy {
            max_attempts: row.try_get::<i32, _>("max_attempts")?.max(1) as u32,
            backoff: Backoff {
                initial: duration(row.try_get("backoff_initial_ms")?),
                factor: row.try_get("backoff_factor")?,
                max: duration(row.try_get("backoff_max_ms")?),
            },
        },
        worker_id: row.try_get("worker_id")?,
        started_at: row.try_get("started_at")?,
        group: row.try_get("group_name")?,
        halted: row.try_get("halted")?,
        attempt_base: row.try_get("attempt_base")?,
        revoked: row.try_get("revoked")?,
        tolerated_by: row.try_get("tolerated_by")?,
        rate_key: row.try_get("rate_key")?,
    })
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
/// unstarted steps are skipped, and the run fails once nothing of it runs. A
/// tolerated item only ends itself and counts towards its step's join.
pub(super) async fn fail_for_good(
    conn: &mut PgConnection,
    step: &FailingStep<'_>,
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
            step: Some(step.name),
            group: step.group,
            data: failure::final_failure_data(step.attempt.into(), error),
        },
    )
    .await?;
    if let Some(parent) = step.tolerated_by {
        let settled =
            crate::fan_out::settle(&mut super::fan_out::PgFanOut(conn), &[StepId(parent)]).await?;
        let mut finished = settled.finished;
        super::steps::make_ready(conn, settled.ready.iter().map(|r| r.id)).await?;
        let mut closed: Vec<Uuid> = settled.closed.iter().map(|r| r.0).collect();
        closed.push(step.run_id);
        finished.extend(close_steps(conn, &closed).await?);
        return Ok(finished);
    }
    let skipped: Vec<String> = sqlx::query_scalar(include_str!("sql/halt_run.sql"))
        .bind(step.run_id)
        .bind(RunStatus::Failed.as_str())
        .bind(failure::run_error(step.name, error))
        .fetch_all(&mut *conn)
        .await?;
    for name in &skipped {
        insert_event(
            conn,
            NewEvent {
                kind: EventKind::StepSkipped,
                run_id: Some(step.run_id),
                step: Some(name),
                group: step.group,
                data: failure::skipped_data(step.name),
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
    let mut closed = Vec::with_capacity(rows.len());
    let mut children = Vec::new();
    let mut events = RunEvents::default();
    for row in rows {
        let status: String = row.try_get("status")?;
        let status = RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?;
        let run_id: Uuid = row.try_get("id")?;
        let group: Option<String> = row.try_get("group_name")?;
        events.kinds.push(format!("run.{}", status.as_str()));
        events.runs.push(run_id);
        events.groups.push(group.clone());
        events.data.push(crate::stop::run_event_data(
            status,
            row.try_get("error")?,
            row.try_get("halt")?,
        )?);
        let holds_slot: bool = row.try_get("holds_slot")?;
        if let Some(parent_run) = row.try_get::<Option<Uuid>, _>("parent_run")? {
            if status != RunStatus::Compensating {
                children.push(super::children::EndedChild {
                    id: run_id,
                    status,
                    error: row.try_get("error")?,
                    parent_run,
                    parent_step: row
                        .try_get::<Option<String>, _>("parent_step")?
                        .unwrap_or_default(),
                });
            }
        }
        closed.push((run_id, status, group, holds_slot));
    }
    if !events.runs.is_empty() {
        sqlx::query(include_str!("sql/insert_run_events.sql"))
            .bind(&events.kinds)
            .bind(&events.runs)
            .bind(&events.groups)
            .bind(&events.data)
            .execute(&mut *conn)
            .await?;
    }
    let mut finished = Vec::with_capacity(closed.len());
    // Most runs have no concurrency key: asking to release their slots would be a
    // statement per batch that changes nothing.
    let mut slot_holders = Vec::new();
    let mut groups = Vec::new();
    for (run_id, status, group, holds_slot) in closed {
        if status == RunStatus::Compensating {
            begin_compensation(conn, run_id).await?;
            continue;
        }
        finished.push((RunId(run_id), status));
        if holds_slot {
            slot_holders.push(run_id);
        }
        groups.extend(group);
    }
    close_group_runs(conn, &groups).await?;
    super::flow::release_slots(conn, &slot_holders).await?;
    for child in children {
        finished.extend(super::children::child_ended(conn, child).await?);
    }
    Ok(finished)
}

/// The `run.*` events of runs whose open steps reached zero, as columns.
#[derive(Default)]
struct RunEvents {
    kinds: Vec<String>,
    runs: Vec<Uuid>,
    groups: Vec<Option<String>>,
    data: Vec<Value>,
}

/// Inserts the compensation chain of a run that just started compensating: one step
/// per completed compensable step, last completed first, each waiting for the one
/// before it.
async fn begin_compensation(conn: &mut PgConnection, run_id: Uuid) -> Result<()> {
    let rows = sqlx::query(include_str!("sql/compensable_steps.sql"))
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await?;
    let mut undoes = Vec::with_capacity(rows.len());
    let (mut queues, mut priorities, mut max_attempts) = (vec![], vec![], vec![]);
    let (mut initial, mut factor, mut max) = (vec![], vec![], vec![]);
    let mut resources: Vec<Option<String>> = vec![];
    for row in &rows {
        undoes.push(row.try_get::<String, _>("name")?);
        queues.push(row.try_get::<String, _>("queue")?);
        priorities.push(row.try_get::<i32, _>("priority")?);
        max_attempts.push(row.try_get::<i32, _>("max_attempts")?);
        initial.push(row.try_get::<i64, _>("backoff_initial_ms")?);
        factor.push(row.try_get::<f64, _>("backoff_factor")?);
        max.push(row.try_get::<i64, _>("backoff_max_ms")?);
        resources.push(row.try_get("resource")?);
    }
    let chain = crate::stop::compensation_chain(run_id, undoes)?;
    let ids: Vec<Uuid> = chain.iter().map(|c| c.id.0).collect();
    let names: Vec<&str> = chain.iter().map(|c| c.name.as_str()).collect();
    let undoes: Vec<&str> = chain.iter().map(|c| c.undoes.as_str()).collect();
    let next: Vec<Option<Uuid>> = chain.iter().map(|c| c.next.map(|n| n.0)).collect();
    sqlx::query(include_str!("sql/insert_compensations.sql"))
        .bind(run_id)
        .bind(&ids)
        .bind(&names)
        .bind(&undoes)
        .bind(&queues)
        .bind(&priorities)
        .bind(&max_attempts)
        .bind(&initial)
        .bind(&factor)
        .bind(&max)
        .bind(&next)
        .bind(&resources)
        .execute(&mut *conn)
        .await?;
    sqlx::query(include_str!("sql/begin_compensation.sql"))
        .bind(run_id)
        .bind(ids.len() as i32)
        .execute(&mut *conn)
        .await?;
    sqlx::query(include_str!("sql/notify_work.sql"))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Cancels revoked running steps whose worker reported (any outcome write confirms
/// the attempt stopped) or whose revocation outlived the lease; returns the runs
/// that ended.
pub(super) async fn stop_revoked(
    conn: &mut PgConnection,
    leases: &[Lease],
) -> Result<Vec<(RunId, RunStatus)>> {
    if leases.is_empty() {
        return Ok(vec![]);
    }
    let ids: Vec<Uuid> = leases.iter().map(|l| l.step_id.0).collect();
    let tokens: Vec<Uuid> = leases.iter().map(|l| l.token.0).collect();
    let rows = sqlx::query(include_str!("sql/stop_revoked_steps.sql"))
        .bind(&ids)
        .bind(&tokens)
        .fetch_all(&mut *conn)
        .await?;
    let mut runs = Vec::with_capacity(rows.len());
    let mut stopped = Vec::with_capacity(rows.len());
    for row in rows {
        runs.push(row.try_get::<Uuid, _>("run_id")?);
        stopped.push(row.try_get::<Uuid, _>("id")?);
    }
    // Only the stopped steps' locks: a stale lease in `leases` may name a step that
    // now runs under a newer lease and holds its lock.
    release_step_locks(conn, &stopped).await?;
    close_steps(conn, &runs).await
}

/// Frees the resource locks held by steps whose outcome was just recorded.
pub(super) async fn release_step_locks(conn: &mut PgConnection, steps: &[Uuid]) -> Result<()> {
    if steps.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = steps.iter().map(Uuid::to_string).collect();
    sqlx::query(include_str!("sql/release_step_locks.sql"))
        .bind(&ids)
        .execute(conn)
        .await?;
    Ok(())
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
        let remaining: i32 = row.try_get("remaining")?;
        if remaining == 0 {
            let name: String = row.try_get("name")?;
            let total: i32 = row.try_get("total")?;
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
        let status: String = row.try_get("status")?;
        let n: i64 = row.try_get("n")?;
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
