//! The hot path on SQLite: claim, complete, fail, release.

use super::settle::{self, AttemptRecord, NewEvent};
use super::{time, SqliteStore};
use crate::model::*;
use crate::postgres::{millis, with_retries};
use crate::{refused, Result, StepStore};
use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::Row;
use std::collections::HashMap;
use stepwise_core::{EventKind, FailureDecision, Lease, LeaseToken, RunId, StepId};
use uuid::Uuid;

#[async_trait]
impl StepStore for SqliteStore {
    async fn claim_steps(&self, request: &ClaimRequest) -> Result<Vec<ClaimedStep>> {
        with_retries(|| self.claim_once(request)).await
    }

    async fn complete_steps(&self, outcomes: &[StepSuccess]) -> Result<BatchReport> {
        if outcomes.is_empty() {
            return Ok(BatchReport::default());
        }
        with_retries(|| self.complete_once(outcomes)).await
    }

    async fn fail_step(&self, failure: &StepFailure) -> Result<FailOutcome> {
        with_retries(|| self.fail_once(failure)).await
    }

    async fn release_steps(&self, leases: &[Lease]) -> Result<BatchReport> {
        if leases.is_empty() {
            return Ok(BatchReport::default());
        }
        with_retries(|| self.release_once(leases)).await
    }
}

/// What a claim needs from the step's run, read once per run per batch.
struct RunOfClaim {
    workflow: String,
    version: i32,
    input: Value,
    group: Option<String>,
}

impl SqliteStore {
    async fn claim_once(&self, request: &ClaimRequest) -> Result<Vec<ClaimedStep>> {
        let mut tx = self.write().await?;
        sqlx::query(include_str!("sql/promote_due_steps.sql"))
            .execute(&mut *tx)
            .await?;
        let mut rows = Vec::new();
        for queue in &request.queues {
            let want = request.limit as usize - rows.len();
            if want == 0 {
                break;
            }
            let mut claimed = sqlx::query(include_str!("sql/claim_steps.sql"))
                .bind(queue)
                .bind(want as i64)
                .bind(request.worker.0)
                .fetch_all(&mut *tx)
                .await?;
            // RETURNING comes back in no particular order.
            claimed.sort_by_key(|r| {
                (
                    std::cmp::Reverse(r.try_get::<i64, _>(7).unwrap_or(0)),
                    r.try_get::<i64, _>(8).unwrap_or(0),
                )
            });
            rows.extend(claimed);
        }
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(vec![]);
        }
        let expires_at: i64 = sqlx::query_scalar(include_str!("sql/worker_expiry.sql"))
            .bind(request.worker.0)
            .fetch_one(&mut *tx)
            .await?;
        let mut runs: HashMap<Uuid, RunOfClaim> = HashMap::new();
        let mut steps = Vec::with_capacity(rows.len());
        for row in rows {
            let run_id: Uuid = row.try_get(1)?;
            if !runs.contains_key(&run_id) {
                let r = sqlx::query(include_str!("sql/run_of_claim.sql"))
                    .bind(run_id)
                    .fetch_one(&mut *tx)
                    .await?;
                runs.insert(
                    run_id,
                    RunOfClaim {
                        workflow: r.try_get(0)?,
                        version: r.try_get(1)?,
                        input: r.try_get(2)?,
                        group: r.try_get(3)?,
                    },
                );
            }
            let run = &runs[&run_id];
            let step: String = row.try_get(2)?;
            let attempt: i64 = row.try_get(4)?;
            settle::insert_event(
                &mut tx,
                NewEvent {
                    kind: EventKind::StepStarted,
                    run_id: Some(run_id),
                    step: Some(&step),
                    group: run.group.as_deref(),
                    data: json!({"attempt": attempt, "worker_id": request.worker}),
                },
            )
            .await?;
            steps.push(ClaimedStep {
                lease: Lease {
                    step_id: StepId(row.try_get(0)?),
                    token: LeaseToken(row.try_get(6)?),
                },
                run_id: RunId(run_id),
                workflow: run.workflow.clone(),
                workflow_version: run.version,
                step,
                queue: row.try_get(3)?,
                attempt: attempt as u32,
                max_attempts: row.try_get::<i64, _>(5)? as u32,
                input: run.input.clone(),
                lease_expires_at: time(expires_at)?,
            });
        }
        tx.commit().await?;
        Ok(steps)
    }

    async fn complete_once(&self, outcomes: &[StepSuccess]) -> Result<BatchReport> {
        let mut tx = self.write().await?;
        let mut accepted = Vec::with_capacity(outcomes.len());
        let mut closed: HashMap<Uuid, i64> = HashMap::new();
        let mut groups: HashMap<Uuid, Option<String>> = HashMap::new();
        for outcome in outcomes {
            let lease = outcome.lease;
            let Some(row) = sqlx::query(include_str!("sql/complete_steps.sql"))
                .bind(lease.step_id.0)
                .bind(lease.token.0)
                .bind(&outcome.output)
                .fetch_optional(&mut *tx)
                .await?
            else {
                continue;
            };
            let run_id: Uuid = row.try_get(0)?;
            let name: String = row.try_get(1)?;
            let attempt: i64 = row.try_get(2)?;
            settle::record_attempt(
                &mut tx,
                AttemptRecord {
                    step_id: lease.step_id.0,
                    run_id,
                    number: attempt,
                    worker_id: row.try_get(3)?,
                    token: lease.token.0,
                    started_at: row.try_get(4)?,
                    outcome: "completed",
                    error: None,
                },
            )
            .await?;
            let dependents: String = row.try_get(5)?;
            let dependents: Vec<Uuid> = serde_json::from_str(&dependents)
                .map_err(|e| crate::StoreError::Corrupt(format!("dependents: {e}")))?;
            for dependent in dependents {
                sqlx::query(include_str!("sql/unblock_dependents.sql"))
                    .bind(dependent)
                    .execute(&mut *tx)
                    .await?;
            }
            if !groups.contains_key(&run_id) {
                let group: Option<String> =
                    sqlx::query_scalar(include_str!("sql/run_group_name.sql"))
                        .bind(run_id)
                        .fetch_one(&mut *tx)
                        .await?;
                groups.insert(run_id, group);
            }
            settle::insert_event(
                &mut tx,
                NewEvent {
                    kind: EventKind::StepCompleted,
                    run_id: Some(run_id),
                    step: Some(&name),
                    group: groups[&run_id].as_deref(),
                    data: json!({"attempt": attempt}),
                },
            )
            .await?;
            *closed.entry(run_id).or_default() += 1;
            accepted.push(lease.step_id);
        }
        let mut finished_runs = Vec::new();
        for (run_id, n) in closed {
            finished_runs.extend(settle::close_steps(&mut tx, run_id, n).await?);
        }
        tx.commit().await?;
        Ok(BatchReport {
            refused: refused(outcomes.iter().map(|o| o.lease), &accepted),
            accepted,
            finished_runs,
        })
    }

    async fn fail_once(&self, failure: &StepFailure) -> Result<FailOutcome> {
        let mut tx = self.write().await?;
        let lease = failure.lease;
        let Some(step) = settle::lock_running_step(&mut tx, lease.step_id.0, lease.token.0).await?
        else {
            return Ok(FailOutcome::Refused);
        };
        let decision = step
            .retry
            .after_failure(step.attempt.max(1) as u32, failure.retryable);
        settle::record_attempt(&mut tx, step.attempt_record("failed", Some(&failure.error))).await?;
        let outcome = match decision {
            FailureDecision::RetryAfter(delay) => {
                let run_after: i64 = sqlx::query_scalar(include_str!("sql/schedule_retry.sql"))
                    .bind(step.id)
                    .bind(millis(delay))
                    .bind(&failure.error)
                    .fetch_one(&mut *tx)
                    .await?;
                let run_after = time(run_after)?;
                for (kind, data) in [
                    (
                        EventKind::StepFailed,
                        json!({"attempt": step.attempt, "error": failure.error, "final": false}),
                    ),
                    (
                        EventKind::StepRetrying,
                        json!({"attempt": step.attempt + 1, "run_after": run_after}),
                    ),
                ] {
                    settle::insert_event(
                        &mut tx,
                        NewEvent {
                            kind,
                            run_id: Some(step.run_id),
                            step: Some(&step.name),
                            group: step.group.as_deref(),
                            data,
                        },
                    )
                    .await?;
                }
                FailOutcome::Retrying {
                    attempt: step.attempt as u32 + 1,
                    run_after,
                }
            }
            FailureDecision::GiveUp => {
                settle::fail_for_good(&mut tx, &step, &failure.error).await?;
                FailOutcome::Failed
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn release_once(&self, leases: &[Lease]) -> Result<BatchReport> {
        let mut tx = self.write().await?;
        let mut accepted = Vec::with_capacity(leases.len());
        for lease in leases {
            let Some(row) = sqlx::query(include_str!("sql/release_steps.sql"))
                .bind(lease.step_id.0)
                .bind(lease.token.0)
                .fetch_optional(&mut *tx)
                .await?
            else {
                continue;
            };
            let run_id: Uuid = row.try_get(0)?;
            let name: String = row.try_get(1)?;
            let number: i64 = row.try_get(2)?;
            settle::record_attempt(
                &mut tx,
                AttemptRecord {
                    step_id: lease.step_id.0,
                    run_id,
                    number,
                    worker_id: row.try_get(3)?,
                    token: lease.token.0,
                    started_at: row.try_get(4)?,
                    outcome: "released",
                    error: None,
                },
            )
            .await?;
            let group: Option<String> = sqlx::query_scalar(include_str!("sql/run_group_name.sql"))
                .bind(run_id)
                .fetch_one(&mut *tx)
                .await?;
            settle::insert_event(
                &mut tx,
                NewEvent {
                    kind: EventKind::StepReleased,
                    run_id: Some(run_id),
                    step: Some(&name),
                    group: group.as_deref(),
                    data: json!({"attempt": number}),
                },
            )
            .await?;
            accepted.push(lease.step_id);
        }
        tx.commit().await?;
        Ok(BatchReport {
            refused: refused(leases.iter().copied(), &accepted),
            accepted,
            finished_runs: vec![],
        })
    }
}
