//! Claims on SQLite: what a claim reads back for its workers, and the claims of
//! steps that need a resource lock.

use super::locks;
use super::steps::seq_list;
use super::time;
use crate::model::*;
use crate::{Result, StoreError};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use std::collections::{HashMap, HashSet};
use stepwise_core::{Lease, RunId, WorkerId};
use uuid::Uuid;

/// What a claim needs from the step's run.
pub(super) struct RunOfClaim {
    id: Uuid,
    workflow: String,
    version: i32,
    input: Value,
    dependency_outputs: Value,
    /// For a compensation: the output of the step it undoes.
    compensated_output: Option<Value>,
    error: Option<String>,
    /// For an item of a `for_each` step: its element.
    item: Option<StepItem>,
}

impl RunOfClaim {
    /// A row of `run_of_claim.sql`, with the seq of the claimed step it serves.
    pub(super) fn from_row(row: &SqliteRow) -> Result<(i64, Self)> {
        Ok((
            row.try_get("seq")?,
            Self {
                id: row.try_get("id")?,
                workflow: row.try_get("workflow")?,
                version: row.try_get("workflow_version")?,
                input: row.try_get("input")?,
                dependency_outputs: row.try_get("dependency_outputs")?,
                compensated_output: row.try_get("compensated_output")?,
                error: row.try_get("error")?,
                item: match row.try_get::<Option<i64>, _>("item_index")? {
                    None => None,
                    Some(index) => Some(StepItem {
                        index: index.max(0) as u32,
                        value: row
                            .try_get::<Option<Value>, _>("item")?
                            .unwrap_or(Value::Null),
                    }),
                },
            },
        ))
    }
}

/// A step just claimed, as `claim_steps.sql` and `claim_step.sql` return it.
pub(super) struct ClaimRow {
    pub(super) seq: i64,
    pub(super) lease: Lease,
    pub(super) name: String,
    pub(super) queue: String,
    pub(super) attempt: i64,
    /// The budget since the run's latest retry.
    pub(super) max_attempts: i64,
    pub(super) priority: i64,
    /// For a compensation: the step it undoes.
    pub(super) compensates: Option<String>,
    /// A `for_each` step found claimable: it expands instead of running.
    pub(super) expands: bool,
}

impl ClaimRow {
    pub(super) fn from_row(row: &SqliteRow) -> Result<Self> {
        Ok(Self {
            seq: row.try_get("seq")?,
            lease: super::rows::lease_from_row(row)?,
            name: row.try_get("name")?,
            queue: row.try_get("queue")?,
            attempt: row.try_get("attempt")?,
            max_attempts: row.try_get("max_attempts")?,
            priority: row.try_get("priority")?,
            compensates: row.try_get("compensates")?,
            expands: row.try_get("expands")?,
        })
    }
}

/// Writes the started events of just-claimed steps and reads what their workers
/// need (run input, dependency outputs, lease expiry), in the claiming transaction.
pub(super) async fn finish_claims(
    conn: &mut SqliteConnection,
    rows: Vec<ClaimRow>,
    worker: WorkerId,
) -> Result<Vec<ClaimedStep>> {
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let seqs = seq_list(rows.iter().map(|r| r.seq));
    sqlx::query(include_str!("sql/step_started_events.sql"))
        .bind(&seqs)
        .bind(worker.to_string())
        .execute(&mut *conn)
        .await?;
    let mut runs: HashMap<i64, RunOfClaim> = HashMap::with_capacity(rows.len());
    let mut expires_at = None;
    for r in sqlx::query(include_str!("sql/run_of_claim.sql"))
        .bind(&seqs)
        .bind(worker.0)
        .fetch_all(&mut *conn)
        .await?
    {
        expires_at = Some(r.try_get::<i64, _>("lease_expires_at")?);
        let (seq, run) = RunOfClaim::from_row(&r)?;
        runs.insert(seq, run);
    }
    let expires_at =
        expires_at.ok_or_else(|| StoreError::Corrupt("claimed steps have no runs".into()))?;
    let mut steps = Vec::with_capacity(rows.len());
    for row in rows {
        let seq = row.seq;
        let run = runs
            .remove(&seq)
            .ok_or_else(|| StoreError::Corrupt(format!("claimed step {seq} has no run")))?;
        steps.push(ClaimedStep {
            lease: row.lease,
            run_id: RunId(run.id),
            workflow: run.workflow,
            workflow_version: run.version,
            step: row.name,
            queue: row.queue,
            attempt: row.attempt as u32,
            max_attempts: row.max_attempts as u32,
            input: run.input,
            lease_expires_at: time(expires_at)?,
            dependency_outputs: match run.dependency_outputs {
                Value::Object(map) => map,
                _ => serde_json::Map::new(),
            },
            compensating: row.compensates.map(|step| Compensating {
                step,
                output: run.compensated_output.unwrap_or(Value::Null),
                error: run.error,
            }),
            item: run.item,
        });
    }
    Ok(steps)
}

/// Claims up to `want` steps of `queue` that need a resource lock, each with its lock
/// taken in this transaction; at most one step per resource. The single writer
/// means a lock seen free here is still free when taken.
pub(super) async fn claim_with_locks(
    conn: &mut SqliteConnection,
    queue: &str,
    want: usize,
    worker: WorkerId,
) -> Result<Vec<ClaimRow>> {
    let candidates = sqlx::query(include_str!("sql/resource_candidates.sql"))
        .bind(queue)
        .bind(want as i64 * 2)
        .bind(worker.0)
        .fetch_all(&mut *conn)
        .await?;
    let mut rows = Vec::new();
    let mut taken = HashSet::new();
    for candidate in candidates {
        if rows.len() == want {
            break;
        }
        let id: Uuid = candidate.try_get("id")?;
        let resource: String = candidate.try_get("resource")?;
        if !taken.insert(resource.clone()) {
            continue;
        }
        let Some(token) = locks::take_for_step(conn, &resource, id, worker).await? else {
            continue;
        };
        match sqlx::query(include_str!("sql/claim_step.sql"))
            .bind(id)
            .bind(worker.0)
            .fetch_optional(&mut *conn)
            .await?
        {
            Some(row) => rows.push(ClaimRow::from_row(&row)?),
            None => locks::drop_for_step(conn, &resource, token).await?,
        }
    }
    Ok(rows)
}
