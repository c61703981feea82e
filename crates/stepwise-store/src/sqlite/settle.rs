//! What happens after steps reach a terminal state, shared by complete, fail, release
//! and reap: run counters, group counters, halting a run whose step failed for good,
//! starting a compensation chain, and cancelling revoked steps once they stopped.

use super::opt_time;
use crate::failure;
use crate::{Result, StoreError};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::{Row, SqliteConnection};
use std::time::Duration;
use stepwise_core::{Backoff, EventKind, Lease, LeaseToken, RetryPolicy, RunId, RunStatus, StepId};
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
    /// Attempts made before the run's latest retry.
    pub attempt_base: i64,
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
    pub attempt: i64,
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
        run_id: row.try_get("run_id")?,
        name: row.try_get("name")?,
        attempt: row.try_get("attempt")?,
        retry: RetryPolicy {
            max_attempts: row.try_get::<i64, _>("max_attempts")?.max(1) as u32,
            backoff: Backoff {
                initial: duration(row.try_get("backoff_initial_ms")?),
                factor: row.try_get("backoff_factor")?,
                max: duration(row.try_get("backoff_max_ms")?),
            },
        },
        worker_id: row.try_get("worker_id")?,
        started_at: opt_time(row.try_get("started_at")?)?,
        group: row.try_get("group_name")?,
        halted: row.try_get("halted")?,
        attempt_base: row.try_get("attempt_base")?,
        revoked: row.try_get("revoked")?,
        tolerated_by: row.try_get("tolerated_by")?,
        rate_key: row.try_get("rate_key")?,
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
            data: failure::final_failure_data(step.attempt, error),
        },
    )
    .await?;
    if let Some(parent) = step.tolerated_by {
        let settled =
            crate::fan_out::settle(&mut super::fan_out::SqliteFanOut(conn), &[StepId(parent)])
                .await?;
        let mut finished = settled.finished;
        let mut closed: Vec<Uuid> = settled.closed.iter().map(|r| r.0).collect();
        closed.push(step.run_id);
        finished.extend(close_steps(conn, &closed).await?);
        return Ok(finished);
    }
    sqlx::query(include_str!("sql/halt_run.sql"))
        .bind(step.run_id)
        .bind(RunStatus::Failed.as_str())
        .bind(failure::run_error(step.name, error))
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
                group: step.group,
                data: failure::skipped_data(step.name),
            },
        )
        .await?;
    }
    close_steps(conn, &vec![step.run_id; skipped.len() + 1]).await
}

/// A run whose open-step counter reached 0 in this transaction: it ended, or it
/// started compensating.
struct FinishedRun {
    id: Uuid,
    status: RunStatus,
    group: Option<String>,
    /// The data of its `run.*` event.
    data: Value,
    /// Whether it has a concurrency slot to give back.
    holds_slot: bool,
    /// For a child run: its parent run and step.
    parent: Option<(Uuid, String)>,
    error: Option<String>,
}

/// Run ids as the JSON array of hex strings the set-based statements unnest.
pub(super) fn id_list(ids: impl IntoIterator<Item = Uuid>) -> Result<String> {
    let ids: Vec<String> = ids.into_iter().map(|id| id.simple().to_string()).collect();
    serde_json::to_string(&ids).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Decrements the open-step counter of each run once per entry in `run_ids`; runs
/// reaching zero become terminal or start compensating (with their event), and the
/// ended ones are counted in their groups.
pub(super) async fn close_steps(
    conn: &mut SqliteConnection,
    run_ids: &[Uuid],
) -> Result<Vec<(RunId, RunStatus)>> {
    if run_ids.is_empty() {
        return Ok(vec![]);
    }
    let rows = sqlx::query(include_str!("sql/close_run_steps.sql"))
        .bind(id_list(run_ids.iter().copied())?)
        .fetch_all(&mut *conn)
        .await?;
    let mut finished = Vec::new();
    for row in rows {
        if row.try_get::<i64, _>("steps_open")? == 0 {
            let status: String = row.try_get("status")?;
            let status = RunStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?;
            finished.push(FinishedRun {
                id: row.try_get("id")?,
                status,
                group: row.try_get("group_name")?,
                data: crate::stop::run_event_data(
                    status,
                    row.try_get("error")?,
                    row.try_get("halt")?,
                )?,
                holds_slot: row.try_get("holds_slot")?,
                parent: match row.try_get::<Option<Uuid>, _>("parent_run")? {
                    Some(run) => Some((run, row.try_get("parent_step")?)),
                    None => None,
                },
                error: row.try_get("error")?,
            });
        }
    }
    runs_finished(conn, finished).await
}

/// Writes the event of each run that reached zero open steps; starts the
/// compensation of those now compensating, and counts the others in their groups
/// (a compensating run has not ended, so it holds its group open).
async fn runs_finished(
    conn: &mut SqliteConnection,
    finished: Vec<FinishedRun>,
) -> Result<Vec<(RunId, RunStatus)>> {
    if finished.is_empty() {
        return Ok(vec![]);
    }
    let events: Vec<Value> = finished
        .iter()
        .map(|r| json!({"id": r.id.simple().to_string(), "data": r.data}))
        .collect();
    let events = serde_json::to_string(&events).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(include_str!("sql/run_finished_events.sql"))
        .bind(events)
        .execute(&mut *conn)
        .await?;
    let mut answer = Vec::with_capacity(finished.len());
    // Most runs have no concurrency key: nothing to release for them.
    let mut slot_holders = Vec::new();
    let mut children = Vec::new();
    for run in finished {
        let status = run.status;
        if status == RunStatus::Compensating {
            begin_compensation(conn, run.id).await?;
            continue;
        }
        if let Some((parent_run, parent_step)) = run.parent {
            children.push(super::children::EndedChild {
                id: run.id,
                status,
                error: run.error.clone(),
                parent_run,
                parent_step,
            });
        }
        if let Some(group) = &run.group {
            let row = sqlx::query(include_str!("sql/close_group_runs.sql"))
                .bind(group)
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(row) = row {
                if row.try_get::<i64, _>("remaining")? == 0 {
                    complete_group(conn, group, row.try_get("total")?).await?;
                }
            }
        }
        answer.push((RunId(run.id), status));
        if run.holds_slot {
            slot_holders.push(run.id);
        }
    }
    // A compensating run keeps its slot: it has not ended.
    super::flow::release_slots(conn, &slot_holders).await?;
    for child in children {
        answer.extend(super::children::child_ended(conn, child).await?);
    }
    Ok(answer)
}

/// Inserts the compensation chain of a run that just started compensating: one step
/// per completed compensable step, last completed first, each waiting for the one
/// before it.
async fn begin_compensation(conn: &mut SqliteConnection, run_id: Uuid) -> Result<()> {
    let rows = sqlx::query(include_str!("sql/compensable_steps.sql"))
        .bind(run_id)
        .fetch_all(&mut *conn)
        .await?;
    let names = rows
        .iter()
        .map(|row| row.try_get::<String, _>("name"))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let steps = crate::stop::compensation_chain(run_id, names)?;
    let mut chain = Vec::with_capacity(rows.len());
    for (row, step) in rows.iter().zip(&steps) {
        chain.push(json!({
            "id": step.id.0.simple().to_string(),
            "name": step.name,
            "undoes": step.undoes,
            "queue": row.try_get::<String, _>("queue")?,
            "priority": row.try_get::<i64, _>("priority")?,
            "max_attempts": row.try_get::<i64, _>("max_attempts")?,
            "b_initial": row.try_get::<i64, _>("backoff_initial_ms")?,
            "b_factor": row.try_get::<f64, _>("backoff_factor")?,
            "b_max": row.try_get::<i64, _>("backoff_max_ms")?,
            "resource": row.try_get::<Option<String>, _>("resource")?,
            "next": step.next.map(|n| n.0.simple().to_string()),
        }));
    }
    sqlx::query(include_str!("sql/insert_compensations.sql"))
        .bind(run_id)
        .bind(Value::Array(chain).to_string())
        .execute(&mut *conn)
        .await?;
    sqlx::query(include_str!("sql/begin_compensation.sql"))
        .bind(run_id)
        .bind(steps.len() as i64)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Cancels revoked running steps whose worker reported (any outcome write confirms
/// the attempt stopped) or whose revocation outlived the lease; returns the runs
/// that ended. Leases that are not of a revoked running step change nothing.
pub(super) async fn stop_revoked(
    conn: &mut SqliteConnection,
    leases: &[Lease],
) -> Result<Vec<(RunId, RunStatus)>> {
    let mut runs = Vec::new();
    let mut stopped = Vec::new();
    for lease in leases {
        let Some(row) = sqlx::query(include_str!("sql/stop_revoked_step.sql"))
            .bind(lease.step_id.0)
            .bind(lease.token.0)
            .fetch_optional(&mut *conn)
            .await?
        else {
            continue;
        };
        let run_id: Uuid = row.try_get("run_id")?;
        let name: String = row.try_get("name")?;
        let attempt: i64 = row.try_get("attempt")?;
        record_attempt(
            conn,
            AttemptRecord {
                step_id: lease.step_id.0,
                run_id,
                number: attempt,
                worker_id: row.try_get("worker_id")?,
                token: lease.token.0,
                started_at: row.try_get("started_at")?,
                outcome: "cancelled",
                error: Some(crate::stop::REVOKED_ATTEMPT_ERROR),
                log: None,
            },
        )
        .await?;
        let group: Option<String> = row.try_get("group_name")?;
        let halt: Option<String> = row.try_get("halt")?;
        insert_event(
            conn,
            NewEvent {
                kind: EventKind::StepCancelled,
                run_id: Some(run_id),
                step: Some(&name),
                group: group.as_deref(),
                data: crate::stop::revoked_cancelled_data(attempt, halt.as_deref()),
            },
        )
        .await?;
        runs.push(run_id);
        stopped.push(lease.step_id.0);
    }
    super::locks::release_for_steps(conn, &stopped).await?;
    close_steps(conn, &runs).await
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
