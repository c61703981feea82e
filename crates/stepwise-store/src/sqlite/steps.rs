//! The hot path on SQLite: claim, complete, fail, release.

use super::claims::{claim_with_locks, finish_claims, ClaimRow};
use super::locks;
use super::settle::{self, AttemptRecord, NewEvent};
use super::{time, SqliteStore};
use crate::failure::{self, FailedAttempt};
use crate::model::*;
use crate::sanitize;
use crate::transient::{millis, with_retries};
use crate::{first_per_lease, refused, Result, StepStore};
use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use std::collections::HashSet;
use stepwise_core::{EventKind, FailureDecision, Lease, StepId};
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
        // data_version changes when another connection (of any process) commits to
        // the file; one pooled connection keeps watching it.
        let mut conn = self.reader.acquire().await?.detach();
        let (tx, rx) = tokio::sync::watch::channel(0u64);
        tokio::spawn(async move {
            let mut last: Option<i64> = None;
            while !tx.is_closed() {
                match sqlx::query_scalar::<_, i64>("PRAGMA data_version")
                    .fetch_one(&mut conn)
                    .await
                {
                    Ok(v) => {
                        if last.is_some_and(|l| l != v) {
                            tx.send_modify(|n| *n = n.wrapping_add(1));
                        }
                        last = Some(v);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "data_version polling failed");
                        return;
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        });
        Ok(rx)
    }
}

/// A step whose completion was accepted, as `complete_steps.sql` returns it.
struct CompletedRow {
    seq: i64,
    lease: Lease,
    run_id: Uuid,
    /// Whether it holds a resource lock.
    locked: bool,
    /// The steps that wait for it.
    dependents: Vec<StepId>,
}

impl CompletedRow {
    fn from_row(row: &SqliteRow) -> Result<Self> {
        Ok(Self {
            seq: row.try_get("seq")?,
            lease: super::rows::lease_from_row(row)?,
            run_id: row.try_get("run_id")?,
            locked: row.try_get("locked")?,
            dependents: super::fan_out::parse_dependents(&row.try_get::<String, _>("dependents")?)?,
        })
    }
}

/// Step sequence numbers as the JSON array the set-based statements unnest.
pub(super) fn seq_list(seqs: impl Iterator<Item = i64>) -> String {
    Value::from(seqs.collect::<Vec<i64>>()).to_string()
}

impl SqliteStore {
    async fn claim_once(&self, request: &ClaimRequest) -> Result<Vec<ClaimedStep>> {
        let mut tx = self.write().await?;
        sqlx::query(include_str!("sql/promote_due_steps.sql"))
            .execute(&mut *tx)
            .await?;
        let (rated, fair) = super::limits::keyed_claims(&mut tx).await?;
        let mut rows: Vec<ClaimRow> = Vec::new();
        // A `for_each` step found claimable expands instead of running; its items
        // are claimable at once, so the claim looks again (once) to fill the batch.
        for _ in 0..2 {
            let mut expanding = Vec::new();
            for queue in &request.queues {
                let want = request.limit as usize - rows.len();
                if want == 0 {
                    break;
                }
                // Steps that need a resource lock first: the plain claim never looks
                // at locks, so under load it would starve them.
                let mut found = claim_with_locks(&mut tx, queue, want, request.worker).await?;
                // Rate-limited steps, then fairness keys, then the rest: each path
                // looks only at its own pending steps.
                let mut keyed = Vec::new();
                if rated {
                    let left = want - found.len();
                    keyed =
                        super::limits::claim_rated(&mut tx, queue, left, request.worker).await?;
                }
                if fair {
                    let left = want - found.len() - keyed.len();
                    keyed.extend(
                        super::limits::claim_fair(&mut tx, queue, left, request.worker).await?,
                    );
                }
                for row in &keyed {
                    found.push(ClaimRow::from_row(row)?);
                }
                let want = want - found.len();
                if want > 0 {
                    let mut claimed = sqlx::query(include_str!("sql/claim_steps.sql"))
                        .bind(queue)
                        .bind(want as i64)
                        .bind(request.worker.0)
                        .fetch_all(&mut *tx)
                        .await?
                        .iter()
                        .map(ClaimRow::from_row)
                        .collect::<Result<Vec<_>>>()?;
                    // RETURNING comes back in no particular order.
                    claimed.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.seq));
                    found.extend(claimed);
                }
                for row in found {
                    if row.expands {
                        expanding.push(row.lease.step_id);
                    } else {
                        rows.push(row);
                    }
                }
            }
            if expanding.is_empty() {
                break;
            }
            let settled = crate::fan_out::expand_claimed(
                &mut super::fan_out::SqliteFanOut(&mut tx),
                &expanding,
            )
            .await?;
            let closed: Vec<Uuid> = settled.closed.iter().map(|r| r.0).collect();
            settle::close_steps(&mut tx, &closed).await?;
        }
        let steps = finish_claims(&mut tx, rows, request.worker).await?;
        tx.commit().await?;
        Ok(steps)
    }

    async fn complete_once(&self, all: &[StepSuccess]) -> Result<BatchReport> {
        let mut tx = self.write().await?;
        let (report, _) = complete_in(&mut tx, all).await?;
        tx.commit().await?;
        Ok(report)
    }

    async fn complete_and_hand_off_once(
        &self,
        all: &[StepSuccess],
        handoff: &HandOff,
    ) -> Result<Completion> {
        let mut tx = self.write().await?;
        let (report, ready) = complete_in(&mut tx, all).await?;
        let accepted: HashSet<_> = report.accepted.iter().copied().collect();
        let mut after = Vec::new();
        let mut rows = Vec::new();
        for (slot, step) in assign_hand_offs(&ready, &handoff.slots, &accepted) {
            if let Some(row) = sqlx::query(include_str!("sql/claim_step.sql"))
                .bind(step.0)
                .bind(handoff.worker.0)
                .fetch_optional(&mut *tx)
                .await?
            {
                after.push(slot);
                rows.push(ClaimRow::from_row(&row)?);
            }
        }
        let steps = finish_claims(&mut tx, rows, handoff.worker).await?;
        tx.commit().await?;
        Ok(Completion {
            report,
            handed_off: after.into_iter().zip(steps).collect(),
        })
    }
}

/// Records successful attempts in `conn`'s transaction; returns the report and the
/// steps these completions made claimable, in the order they were created.
pub(super) async fn complete_in(
    conn: &mut SqliteConnection,
    all: &[StepSuccess],
) -> Result<(BatchReport, Vec<ReadyStep>)> {
    let firsts = first_per_lease(all, |o| o.lease);
    let logged = firsts.iter().any(|o| o.log.is_some());
    let input: Vec<Value> = firsts
        .into_iter()
        .map(|o| {
            json!({
                "id": o.lease.step_id.0.simple().to_string(),
                "token": o.lease.token.0.simple().to_string(),
                "output": sanitize::json(&o.output),
                "log": sanitize::opt_text(&o.log),
            })
        })
        .collect();
    let input = Value::Array(input).to_string();
    let rows = sqlx::query(include_str!("sql/complete_steps.sql"))
        .bind(&input)
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(CompletedRow::from_row)
        .collect::<Result<Vec<_>>>()?;
    let mut accepted = Vec::with_capacity(rows.len());
    let mut leases = HashSet::with_capacity(rows.len());
    let mut runs = Vec::with_capacity(rows.len());
    let mut locked = Vec::new();
    let mut settled = crate::fan_out::Settled::default();
    if !rows.is_empty() {
        let seqs = seq_list(rows.iter().map(|r| r.seq));
        for row in &rows {
            if row.locked {
                locked.push(row.lease.step_id.0);
            }
            accepted.push(row.lease.step_id);
            leases.insert(row.lease);
            runs.push(row.run_id);
        }
        // A clean success leaves no attempt row: the step row is its history.
        if logged {
            sqlx::query(include_str!("sql/completed_history.sql"))
                .bind(&input)
                .bind(&seqs)
                .execute(&mut *conn)
                .await?;
        }
        sqlx::query(include_str!("sql/step_completed_events.sql"))
            .bind(&seqs)
            .execute(&mut *conn)
            .await?;
        // Last steps of their runs (most of them) unblock nothing.
        let dependents: Vec<StepId> = rows.iter().flat_map(|r| r.dependents.clone()).collect();
        settled =
            crate::fan_out::settle(&mut super::fan_out::SqliteFanOut(conn), &dependents).await?;
    }
    runs.extend(settled.closed.iter().map(|r| r.0));
    locks::release_for_steps(conn, &locked).await?;
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

impl SqliteStore {
    async fn fail_once(&self, failure: &StepFailure) -> Result<FailOutcome> {
        let mut tx = self.write().await?;
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
        let mut tx = self.write().await?;
        let report = release_in(&mut tx, all).await?;
        tx.commit().await?;
        Ok(report)
    }
}

/// Records a failed attempt of a step found by `lock_running_step`, in `conn`'s
/// transaction: a retry after backoff, or the step fails for good.
pub(super) async fn fail_locked(
    conn: &mut SqliteConnection,
    step: &settle::LockedStep,
    failure: &StepFailure,
) -> Result<FailOutcome> {
    if step.revoked {
        settle::stop_revoked(&mut *conn, &[step.lease()]).await?;
        return Ok(FailOutcome::Stopped);
    }
    locks::release_for_steps(&mut *conn, &[step.id]).await?;
    let error = sanitize::text(&failure.error).into_owned();
    let log = sanitize::opt_text(&failure.log);
    let decision = failure::decide(&FailedAttempt {
        retry: &step.retry,
        attempt: step.attempt,
        attempt_base: step.attempt_base,
        retryable: failure.retryable,
        halted: step.halted,
        retry_after: failure.retry_after,
    });
    // Back-pressure: the service's rate limit key waits as long as it asked.
    if let (Some(after), Some(key)) = (failure.retry_after, &step.rate_key) {
        let ms = crate::limits::pause_ms(after).unwrap_or(i64::MAX / 4);
        super::limits::hold_key(&mut *conn, key, ms, step.run_id, &error).await?;
    }
    settle::record_attempt(
        &mut *conn,
        AttemptRecord {
            log: log.as_deref(),
            ..step.attempt_record("failed", Some(&error))
        },
    )
    .await?;
    let outcome = match decision {
        FailureDecision::RetryAfter(delay) => {
            let run_after: i64 = sqlx::query_scalar(include_str!("sql/schedule_retry.sql"))
                .bind(step.id)
                .bind(millis(delay))
                .bind(&error)
                .fetch_one(&mut *conn)
                .await?;
            let run_after = time(run_after)?;
            for (kind, data) in failure::retry_events(step.attempt, &error, run_after) {
                settle::insert_event(
                    &mut *conn,
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
            settle::fail_for_good(&mut *conn, &step.failing(), &error).await?;
            FailOutcome::Failed
        }
    };
    Ok(outcome)
}

/// Hands running steps back within the caller's transaction (release, deregister).
pub(super) async fn release_in(conn: &mut SqliteConnection, all: &[Lease]) -> Result<BatchReport> {
    let leases = first_per_lease(all, |l| *l);
    let owned: Vec<Lease> = leases.iter().map(|l| **l).collect();
    // Revoked steps are not handed back: their run is stopping, so they are cancelled.
    let stopped = settle::stop_revoked(conn, &owned).await?;
    let mut accepted = Vec::with_capacity(leases.len());
    let mut held = HashSet::with_capacity(leases.len());
    let mut skipped_runs = Vec::new();
    for lease in leases {
        let Some(row) = sqlx::query(include_str!("sql/release_steps.sql"))
            .bind(lease.step_id.0)
            .bind(lease.token.0)
            .fetch_optional(&mut *conn)
            .await?
        else {
            continue;
        };
        let run_id: Uuid = row.try_get("run_id")?;
        let name: String = row.try_get("name")?;
        let number: i64 = row.try_get("attempt")?;
        settle::record_attempt(
            conn,
            AttemptRecord {
                step_id: lease.step_id.0,
                run_id,
                number,
                worker_id: row.try_get("worker_id")?,
                token: lease.token.0,
                started_at: row.try_get("started_at")?,
                outcome: "released",
                error: None,
                log: None,
            },
        )
        .await?;
        let group: Option<String> = sqlx::query_scalar(include_str!("sql/run_group_name.sql"))
            .bind(run_id)
            .fetch_one(&mut *conn)
            .await?;
        settle::insert_event(
            conn,
            NewEvent {
                kind: EventKind::StepReleased,
                run_id: Some(run_id),
                step: Some(&name),
                group: group.as_deref(),
                data: json!({"attempt": number}),
            },
        )
        .await?;
        if row.try_get::<String, _>("status")? == "skipped" {
            let halt: Option<String> = row.try_get("halt")?;
            let reason = format!("run {}", halt.as_deref().unwrap_or("stopped compensating"));
            settle::insert_event(
                conn,
                NewEvent {
                    kind: EventKind::StepSkipped,
                    run_id: Some(run_id),
                    step: Some(&name),
                    group: group.as_deref(),
                    data: json!({ "reason": reason }),
                },
            )
            .await?;
            skipped_runs.push(run_id);
        }
        accepted.push(lease.step_id);
        held.insert(*lease);
    }
    locks::release_for_steps(conn, &accepted.iter().map(|s| s.0).collect::<Vec<_>>()).await?;
    let mut finished_runs = settle::close_steps(conn, &skipped_runs).await?;
    finished_runs.extend(stopped);
    Ok(BatchReport {
        refused: refused(all.iter().copied(), &held),
        accepted,
        finished_runs,
    })
}
