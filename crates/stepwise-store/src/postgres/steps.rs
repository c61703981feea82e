//! The hot path on PostgreSQL: claim, complete, fail, release.

use super::fan_out::PgFanOut;
use super::limits;
use super::settle::{self, AttemptEnd, NewEvent};
use super::PgStore;
use crate::failure::{self, FailedAttempt};
use crate::model::*;
use crate::sanitize;
use crate::transient::{millis, with_retries};
use crate::{first_per_lease, refused, Result, StepStore};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use std::collections::{HashMap, HashSet};
use stepwise_core::{FailureDecision, Lease, LeaseToken, RunId, StepId};
use uuid::Uuid;

#[async_trait]
impl StepStore for PgStore {
    async fn claim_steps(&self, request: &ClaimRequest) -> Result<Vec<ClaimedStep>> {
        with_retries(|| self.claim_once(request)).await
    }

    async fn complete_steps(&self, outcomes: &[StepSuccess]) -> Result<BatchReport> {
        if outcomes.is_empty() {
            return Ok(BatchReport::default());
        }
        with_retries(|| self.complete_once(outcomes)).await
    }

    async fn complete_and_hand_off(
        &self,
        outcomes: &[StepSuccess],
        handoff: &HandOff,
    ) -> Result<Completion> {
        if outcomes.is_empty() {
            return Ok(Completion::default());
        }
        with_retries(|| self.complete_and_hand_off_once(outcomes, handoff)).await
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

    async fn work_signal(&self) -> Result<tokio::sync::watch::Receiver<u64>> {
        let channel: String = sqlx::query_scalar(include_str!("sql/work_channel.sql"))
            .fetch_one(&self.pool)
            .await?;
        super::listen(&self.pool, &channel).await
    }
}

impl PgStore {
    async fn claim_once(&self, request: &ClaimRequest) -> Result<Vec<ClaimedStep>> {
        // BEGIN and the claim's commit mode travel as one simple query: one round trip
        // fewer per claim. (Promotion stays a prepared statement: planning it afresh
        // each time would cost more than the round trip.)
        let mut tx = self
            .pool
            .begin_with(concat!(
                "BEGIN;\n",
                include_str!("sql/claim_commit_mode.sql")
            ))
            .await?;
        let uses = sqlx::query(include_str!("sql/promote_due_steps.sql"))
            .fetch_one(&mut *tx)
            .await?;
        let (rated, fair): (bool, bool) = (uses.try_get("rated")?, uses.try_get("fair")?);
        let mut claimed = Vec::new();
        // A `for_each` step found claimable expands instead of running; its items
        // are claimable at once, so the claim looks again (once) to fill the batch.
        for _ in 0..2 {
            let mut expanding = Vec::new();
            for queue in &request.queues {
                let want = request.limit as usize - claimed.len();
                if want == 0 {
                    break;
                }
                // Steps that need a resource lock first: the plain claim never looks
                // at locks, so under load it would starve them.
                let mut rows = claim_with_locks(&mut tx, queue, want, request.worker).await?;
                // Rate-limited steps, then fairness keys, then the rest: each path
                // looks only at its own ready rows.
                if rated && rows.len() < want {
                    let left = want - rows.len();
                    rows.extend(limits::claim_rated(&mut tx, queue, left, request.worker).await?);
                }
                if fair && rows.len() < want {
                    let left = want - rows.len();
                    rows.extend(limits::claim_fair(&mut tx, queue, left, request.worker).await?);
                }
                let want = want - rows.len();
                if want > 0 {
                    rows.extend(
                        sqlx::query(concat!(
                            include_str!("sql/claim_steps.sql"),
                            include_str!("sql/claim_tail.sql")
                        ))
                        .bind(queue)
                        .bind(want as i64)
                        .bind(request.worker.0)
                        .fetch_all(&mut *tx)
                        .await?,
                    );
                }
                for row in &rows {
                    if row.try_get("expands")? {
                        expanding.push(StepId(row.try_get("id")?));
                    } else {
                        claimed.push(claimed_from_row(row)?);
                    }
                }
            }
            if expanding.is_empty() {
                break;
            }
            expand_claimed(&mut tx, &expanding).await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn complete_once(&self, all: &[StepSuccess]) -> Result<BatchReport> {
        let mut tx = self.pool.begin().await?;
        let (report, ready) = complete_in(&mut tx, all).await?;
        make_ready(&mut tx, ready.iter().map(|r| r.id)).await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn complete_and_hand_off_once(
        &self,
        all: &[StepSuccess],
        handoff: &HandOff,
    ) -> Result<Completion> {
        let mut tx = self.pool.begin().await?;
        let (report, ready) = complete_in(&mut tx, all).await?;
        let accepted: HashSet<StepId> = report.accepted.iter().copied().collect();
        let chosen = assign_hand_offs(&ready, &handoff.slots, &accepted);
        let mut handed_off = Vec::with_capacity(chosen.len());
        if !chosen.is_empty() {
            let ids: Vec<Uuid> = chosen.iter().map(|(_, step)| step.0).collect();
            let rows = sqlx::query(include_str!("sql/hand_off_steps.sql"))
                .bind(&ids)
                .bind(handoff.worker.0)
                .fetch_all(&mut *tx)
                .await?;
            let mut claimed: HashMap<StepId, ClaimedStep> = HashMap::with_capacity(rows.len());
            for row in &rows {
                let step = claimed_from_row(row)?;
                claimed.insert(step.lease.step_id, step);
            }
            for (slot, step) in chosen {
                if let Some(step) = claimed.remove(&step) {
                    handed_off.push((slot, step));
                }
            }
        }
        let taken: HashSet<StepId> = handed_off.iter().map(|(_, s)| s.lease.step_id).collect();
        make_ready(
            &mut tx,
            ready.iter().map(|r| r.id).filter(|id| !taken.contains(id)),
        )
        .await?;
        tx.commit().await?;
        Ok(Completion { report, handed_off })
    }

    async fn fail_once(&self, failure: &StepFailure) -> Result<FailOutcome> {
        let mut tx = self.pool.begin().await?;
        let lease = failure.lease;
        let Some(step) = settle::lock_running_step(&mut tx, lease.step_id.0, lease.token.0).await?
        else {
            return Ok(FailOutcome::Refused);
        };
        let outcome = fail_locked(&mut tx, &step, failure).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    async fn release_once(&self, all: &[Lease]) -> Result<BatchReport> {
        let mut tx = self.pool.begin().await?;
        let report = release_in(&mut tx, all).await?;
        if !report.accepted.is_empty() {
            sqlx::query(include_str!("sql/notify_work.sql"))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(report)
    }
}

/// Records a failed attempt of a step locked by `lock_running_step`, in `conn`'s
/// transaction: a retry after backoff, or the step fails for good.
pub(super) async fn fail_locked(
    conn: &mut PgConnection,
    step: &settle::LockedStep,
    failure: &StepFailure,
) -> Result<FailOutcome> {
    if step.revoked {
        settle::stop_revoked(conn, &[step.lease()]).await?;
        return Ok(FailOutcome::Stopped);
    }
    settle::release_step_locks(conn, &[step.id]).await?;
    let error = sanitize::text(&failure.error).into_owned();
    let log = sanitize::opt_text(&failure.log);
    let decision = failure::decide(&FailedAttempt {
        retry: &step.retry,
        attempt: step.attempt.into(),
        attempt_base: step.attempt_base.into(),
        retryable: failure.retryable,
        halted: step.halted,
        retry_after: failure.retry_after,
    });
    // Back-pressure: the service's rate limit key waits as long as it asked.
    if let (Some(after), Some(key)) = (failure.retry_after, &step.rate_key) {
        let ms = crate::limits::pause_ms(after).unwrap_or(i64::MAX / 4);
        super::limits::hold_key(conn, key, ms, step.run_id, &error).await?;
    }
    let end = AttemptEnd {
        outcome: "failed",
        error: Some(&error),
        log: log.as_deref(),
    };
    Ok(match decision {
        FailureDecision::RetryAfter(delay) => {
            settle::record_attempt(conn, step, end).await?;
            let run_after = sqlx::query_scalar(include_str!("sql/schedule_retry.sql"))
                .bind(step.id)
                .bind(millis(delay))
                .bind(&error)
                .fetch_one(&mut *conn)
                .await?;
            for (kind, data) in failure::retry_events(step.attempt.into(), &error, run_after) {
                settle::insert_event(
                    conn,
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
            settle::record_attempt(conn, step, end).await?;
            settle::fail_for_good(conn, &step.failing(), &error).await?;
            FailOutcome::Failed
        }
    })
}

/// Hands running steps back within the caller's transaction (release, deregister).
pub(super) async fn release_in(conn: &mut PgConnection, all: &[Lease]) -> Result<BatchReport> {
    let leases = first_per_lease(all, |l| *l);
    let owned: Vec<Lease> = leases.iter().map(|l| **l).collect();
    // Revoked steps are not handed back: their run is stopping, so they are cancelled.
    let stopped = settle::stop_revoked(conn, &owned).await?;
    let ids: Vec<Uuid> = leases.iter().map(|l| l.step_id.0).collect();
    let tokens: Vec<Uuid> = leases.iter().map(|l| l.token.0).collect();
    sqlx::query(include_str!("sql/lock_leased_steps.sql"))
        .bind(&ids)
        .bind(&tokens)
        .execute(&mut *conn)
        .await?;
    let rows = sqlx::query(include_str!("sql/release_steps.sql"))
        .bind(&ids)
        .bind(&tokens)
        .fetch_all(&mut *conn)
        .await?;
    let rows = rows
        .iter()
        .map(ReleasedRow::from_row)
        .collect::<Result<Vec<_>>>()?;
    let mut accepted = Vec::with_capacity(rows.len());
    let released: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    settle::release_step_locks(conn, &released).await?;
    let mut held = HashSet::with_capacity(rows.len());
    let mut skipped_runs = Vec::new();
    for row in rows {
        let step_id = StepId(row.id);
        accepted.push(step_id);
        held.insert(Lease {
            step_id,
            token: LeaseToken(row.lease_token),
        });
        if row.status == "skipped" {
            skipped_runs.push(row.run_id);
        }
    }
    let mut finished_runs = settle::close_steps(conn, &skipped_runs).await?;
    finished_runs.extend(stopped);
    Ok(BatchReport {
        refused: refused(all.iter().copied(), &held),
        accepted,
        finished_runs,
    })
}

/// Claims up to `want` steps of `queue` that need a resource lock, taking each lock in
/// this transaction: a step is claimed only with its lock, and two claimers racing
/// for one resource get it once (the second waits for the first's lock row, then
/// finds it held and moves on).
async fn claim_with_locks(
    conn: &mut PgConnection,
    queue: &str,
    want: usize,
    worker: stepwise_core::WorkerId,
) -> Result<Vec<PgRow>> {
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
        let token = Uuid::new_v4();
        let got: Option<String> = sqlx::query_scalar(include_str!("sql/take_step_lock.sql"))
            .bind(&resource)
            .bind(id)
            .bind(token)
            .bind(worker.0)
            .fetch_optional(&mut *conn)
            .await?;
        if got.is_none() {
            continue;
        }
        match sqlx::query(include_str!("sql/claim_step.sql"))
            .bind(id)
            .bind(1i64)
            .bind(worker.0)
            .fetch_optional(&mut *conn)
            .await?
        {
            Some(row) => rows.push(row),
            None => {
                sqlx::query(include_str!("sql/drop_lock.sql"))
                    .bind(&resource)
                    .bind(token)
                    .execute(&mut *conn)
                    .await?;
            }
        }
    }
    Ok(rows)
}

/// Records successful attempts in `conn`'s transaction; returns the report and the
/// steps these completions made claimable, oldest first.
pub(super) async fn complete_in(
    conn: &mut PgConnection,
    all: &[StepSuccess],
) -> Result<(BatchReport, Vec<ReadyStep>)> {
    let outcomes = first_per_lease(all, |o| o.lease);
    let ids: Vec<Uuid> = outcomes.iter().map(|o| o.lease.step_id.0).collect();
    let tokens: Vec<Uuid> = outcomes.iter().map(|o| o.lease.token.0).collect();
    let outputs: Vec<Value> = outcomes.iter().map(|o| sanitize::json(&o.output)).collect();
    let logs: Vec<Option<String>> = outcomes
        .iter()
        .map(|o| sanitize::opt_text(&o.log))
        .collect();
    let rows = sqlx::query(include_str!("sql/complete_steps.sql"))
        .bind(&ids)
        .bind(&tokens)
        .bind(&outputs)
        .bind(&logs)
        .fetch_all(&mut *conn)
        .await?;
    let mut accepted = Vec::with_capacity(rows.len());
    let mut leases = HashSet::with_capacity(rows.len());
    let mut runs = Vec::with_capacity(rows.len());
    let mut dependents = Vec::new();
    let mut locked = Vec::new();
    for row in &rows {
        let done = CompletedRow::from_row(row)?;
        if done.locked {
            locked.push(done.id);
        }
        let step_id = StepId(done.id);
        accepted.push(step_id);
        leases.insert(Lease {
            step_id,
            token: LeaseToken(done.lease_token),
        });
        runs.push(done.run_id);
        dependents.extend(done.dependents);
    }
    let mut settled = crate::fan_out::Settled::default();
    if !dependents.is_empty() {
        sqlx::query(include_str!("sql/lock_runs.sql"))
            .bind(&runs)
            .execute(&mut *conn)
            .await?;
        let dependents: Vec<StepId> = dependents.into_iter().map(StepId).collect();
        settled = crate::fan_out::settle(&mut PgFanOut(conn), &dependents).await?;
    }
    runs.extend(settled.closed.iter().map(|r| r.0));
    settle::release_step_locks(conn, &locked).await?;
    let mut finished_runs = settle::close_steps(conn, &runs).await?;
    finished_runs.extend(settled.finished);
    let refused = refused(all.iter().map(|o| o.lease), &leases);
    // A refused write of a revoked step still tells us its attempt stopped.
    finished_runs.extend(settle::stop_revoked(conn, &refused).await?);
    Ok((
        BatchReport {
            refused,
            accepted,
            finished_runs,
        },
        settled.ready,
    ))
}

/// Expands `for_each` steps a claim found instead of handing them to the worker
/// (roots, delayed starts, admissions, retries: whatever made them claimable
/// without a dependency's completion).
async fn expand_claimed(conn: &mut PgConnection, steps: &[StepId]) -> Result<()> {
    let settled = crate::fan_out::expand_claimed(&mut PgFanOut(conn), steps).await?;
    make_ready(conn, settled.ready.iter().map(|r| r.id)).await?;
    let closed: Vec<Uuid> = settled.closed.iter().map(|r| r.0).collect();
    settle::close_steps(conn, &closed).await?;
    Ok(())
}

/// Gives steps that just became pending their ready rows: the claimable set.
pub(super) async fn make_ready(
    conn: &mut PgConnection,
    steps: impl Iterator<Item = StepId>,
) -> Result<()> {
    let ids: Vec<Uuid> = steps.map(|s| s.0).collect();
    if !ids.is_empty() {
        sqlx::query(include_str!("sql/insert_ready_steps.sql"))
            .bind(&ids)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// A step `claim_steps.sql` or `claim_step.sql` handed to this worker.
fn claimed_from_row(row: &PgRow) -> Result<ClaimedStep> {
    Ok(ClaimedStep {
        lease: Lease {
            step_id: StepId(row.try_get("id")?),
            token: LeaseToken(row.try_get("lease_token")?),
        },
        run_id: RunId(row.try_get("run_id")?),
        step: row.try_get("name")?,
        queue: row.try_get("queue")?,
        attempt: row.try_get::<i32, _>("attempt")? as u32,
        max_attempts: row.try_get::<i32, _>("max_attempts")? as u32,
        workflow: row.try_get("workflow")?,
        workflow_version: row.try_get("workflow_version")?,
        input: row.try_get("input")?,
        lease_expires_at: row.try_get("lease_expires_at")?,
        dependency_outputs: match row.try_get::<Value, _>("dependency_outputs")? {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        },
        compensating: match row.try_get::<Option<String>, _>("compensates")? {
            None => None,
            Some(step) => Some(Compensating {
                step,
                output: row
                    .try_get::<Option<Value>, _>("compensated_output")?
                    .unwrap_or(Value::Null),
                error: row.try_get("run_error")?,
            }),
        },
        item: match row.try_get::<Option<i32>, _>("item_index")? {
            None => None,
            Some(index) => Some(StepItem {
                index: index.max(0) as u32,
                value: row
                    .try_get::<Option<Value>, _>("item")?
                    .unwrap_or(Value::Null),
            }),
        },
    })
}

/// A step `complete_steps.sql` completed.
struct CompletedRow {
    id: Uuid,
    run_id: Uuid,
    dependents: Vec<Uuid>,
    lease_token: Uuid,
    /// It held a resource lock, to be released with the completion.
    locked: bool,
}

impl CompletedRow {
    fn from_row(row: &PgRow) -> Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            run_id: row.try_get("run_id")?,
            dependents: row.try_get("dependents")?,
            lease_token: row.try_get("lease_token")?,
            locked: row.try_get("locked")?,
        })
    }
}

/// A step `release_steps.sql` handed back: pending again, or skipped when its run is
/// stopping.
struct ReleasedRow {
    id: Uuid,
    run_id: Uuid,
    status: String,
    lease_token: Uuid,
}

impl ReleasedRow {
    fn from_row(row: &PgRow) -> Result<Self> {
        Ok(Self {
            id: row.try_get("id")?,
            run_id: row.try_get("run_id")?,
            status: row.try_get("status")?,
            lease_token: row.try_get("lease_token")?,
        })
    }
}
