//! Steps that wait on SQLite: parking, signals, callbacks and the waker.
//!
//! Every transaction here is a write transaction (`BEGIN IMMEDIATE`): the single
//! writer is what keeps a park and a signal of one run from interleaving, so a signal
//! sent while a wait begins is either in the mailbox when the park looks, or finds
//! the step waiting. A wait ends through the ordinary completion and failure paths
//! (`complete_in`, `fail_locked`) under the lease token it was parked with.

use super::settle::{self, NewEvent};
use super::steps::{complete_in, fail_locked};
use super::{time, SqliteStore};
use crate::model::*;
use crate::transient::with_retries;
use crate::waiting::{self, ParkFacts, ParkPlan, WakePlan};
use crate::{sanitize, token, Result, StoreError, WaitStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use stepwise_core::{EventKind, Lease, LeaseToken, RunId, RunStatus, StepId};
use uuid::Uuid;

#[async_trait]
impl WaitStore for SqliteStore {
    async fn park_step(&self, request: &ParkRequest) -> Result<ParkOutcome> {
        with_retries(|| self.park_once(request)).await
    }

    async fn issue_callback(&self, lease: Lease) -> Result<Option<String>> {
        let secret = token::new_secret();
        let issued: Option<Uuid> = sqlx::query_scalar(include_str!("sql/issue_callback.sql"))
            .bind(lease.step_id.0)
            .bind(lease.token.0)
            .bind(token::hash(&secret))
            .fetch_optional(&self.writer)
            .await?;
        Ok(issued.map(|_| secret))
    }

    async fn complete_callback(&self, request: &CallbackRequest) -> Result<CallbackOutcome> {
        with_retries(|| self.callback_once(request)).await
    }

    async fn send_signal(&self, request: &SignalRequest) -> Result<SignalOutcome> {
        waiting::check_signal(request)?;
        with_retries(|| self.signal_once(request)).await
    }

    async fn wake_steps(&self, limit: u32) -> Result<WakeReport> {
        let due = sqlx::query(include_str!("sql/due_waits.sql"))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        let mut report = WakeReport::default();
        for row in &due {
            let step: Uuid = row.try_get("id")?;
            match with_retries(|| self.wake_once(step)).await? {
                Some(WakePlan::Complete) => report.slept.push(StepId(step)),
                Some(WakePlan::Fail {
                    retryable: false, ..
                }) => report.timed_out.push(StepId(step)),
                Some(WakePlan::Fail { .. }) => report.callbacks_expired.push(StepId(step)),
                None => {}
            }
        }
        Ok(report)
    }

    async fn waiting_counts(&self) -> Result<Vec<(String, u64)>> {
        let rows = sqlx::query(include_str!("sql/waiting_counts.sql"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get("kind")?,
                    r.try_get::<i64, _>("steps")?.max(0) as u64,
                ))
            })
            .collect()
    }
}

/// How a wait ends, recorded like the attempt's own outcome.
enum WaitEnd {
    Complete(Value),
    Fail { error: String, retryable: bool },
}

impl SqliteStore {
    async fn park_once(&self, request: &ParkRequest) -> Result<ParkOutcome> {
        let lease = request.lease;
        let mut tx = self.write().await?;
        let Some(run) = step_run(&mut tx, lease.step_id.0).await? else {
            return Ok(ParkOutcome::Refused);
        };
        let Some(step) = settle::lock_running_step(&mut tx, lease.step_id.0, lease.token.0).await?
        else {
            return Ok(ParkOutcome::Refused);
        };
        if step.revoked {
            settle::stop_revoked(&mut tx, &[lease]).await?;
            tx.commit().await?;
            return Ok(ParkOutcome::Stopped);
        }
        let mailbox = match &request.wait {
            WaitFor::Signal { name, .. } => sqlx::query(include_str!("sql/oldest_signal.sql"))
                .bind(run)
                .bind(name)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| Ok::<_, StoreError>((row.try_get::<i64, _>("seq")?, json_text(&row)?)))
                .transpose()?,
            _ => None,
        };
        let now: i64 = sqlx::query_scalar(include_str!("sql/now.sql"))
            .fetch_one(&mut *tx)
            .await?;
        let now = time(now)?;
        let plan = waiting::plan_park(
            &request.wait,
            &ParkFacts {
                now,
                started_at: step.started_at,
                mailbox: mailbox.as_ref().map(|(_, data)| data),
            },
        );
        let outcome = match plan {
            ParkPlan::Wait(wait) => {
                sqlx::query(include_str!("sql/park_step.sql"))
                    .bind(step.id)
                    .bind(wait.kind)
                    .bind(&wait.signal)
                    .bind(wait.until.map(|t| t.timestamp_millis()))
                    .execute(&mut *tx)
                    .await?;
                settle::insert_event(
                    &mut tx,
                    NewEvent {
                        kind: EventKind::StepWaiting,
                        run_id: Some(step.run_id),
                        step: Some(&step.name),
                        group: step.group.as_deref(),
                        data: wait.event_data(step.attempt),
                    },
                )
                .await?;
                ParkOutcome::Waiting { until: wait.until }
            }
            ParkPlan::Complete(output) => {
                if let Some((seq, _)) = mailbox {
                    consume_signal(&mut tx, seq, &step.name).await?;
                }
                end_attempt(&mut tx, lease, WaitEnd::Complete(output)).await?;
                ParkOutcome::Completed
            }
            ParkPlan::Fail { error, retryable } => {
                end_attempt(&mut tx, lease, WaitEnd::Fail { error, retryable }).await?;
                ParkOutcome::Completed
            }
        };
        tx.commit().await?;
        Ok(outcome)
    }

    async fn callback_once(&self, request: &CallbackRequest) -> Result<CallbackOutcome> {
        let hash = token::hash(&request.token);
        let mut tx = self.write().await?;
        let Some(found) = sqlx::query(include_str!("sql/callback_step.sql"))
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(CallbackOutcome::Refused);
        };
        let step_id: Uuid = found.try_get("id")?;
        let run: Uuid = found.try_get("run_id")?;
        let Some(locked) = sqlx::query(include_str!("sql/lock_callback_step.sql"))
            .bind(step_id)
            .bind(&hash)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(CallbackOutcome::Refused);
        };
        let status: String = locked.try_get("status")?;
        let token: Uuid = match status.as_str() {
            // The callback came before the action finished: it ends the attempt, and
            // the worker's later park is refused (its lease is spent).
            "running" => {
                sqlx::query(include_str!("sql/forget_callback.sql"))
                    .bind(step_id)
                    .execute(&mut *tx)
                    .await?;
                locked.try_get("lease_token")?
            }
            _ => match unpark(&mut tx, step_id).await? {
                Some(token) => token,
                None => return Ok(CallbackOutcome::Refused),
            },
        };
        let lease = Lease {
            step_id: StepId(step_id),
            token: LeaseToken(token),
        };
        let end = match &request.result {
            CallbackResult::Output(output) => WaitEnd::Complete(output.clone()),
            CallbackResult::Error { message, permanent } => WaitEnd::Fail {
                error: message.clone(),
                retryable: !permanent,
            },
        };
        let ended = end_attempt(&mut tx, lease, end).await?;
        tx.commit().await?;
        let (run_id, step) = (RunId(run), ended.step);
        Ok(match ended.outcome {
            Ended::Completed => CallbackOutcome::Completed { run_id, step },
            Ended::Retrying(run_after) => CallbackOutcome::Retrying {
                run_id,
                step,
                run_after,
            },
            Ended::Failed => CallbackOutcome::Failed { run_id, step },
            Ended::Refused => CallbackOutcome::Refused,
        })
    }

    async fn signal_once(&self, request: &SignalRequest) -> Result<SignalOutcome> {
        let mut tx = self.write().await?;
        let (run, run_created) = match &request.target {
            SignalTarget::Run(id) => (id.0, false),
            SignalTarget::Key {
                workflow,
                idempotency_key,
                start,
            } => {
                let found: Option<Uuid> = sqlx::query_scalar(include_str!("sql/run_by_key.sql"))
                    .bind(workflow)
                    .bind(idempotency_key)
                    .fetch_optional(&mut *tx)
                    .await?;
                match (found, start) {
                    (Some(id), _) => (id, false),
                    (None, None) => return Ok(SignalOutcome::UnknownRun),
                    (None, Some(start)) => {
                        let batch = RunBatch {
                            group: None,
                            runs: vec![start.clone()],
                        };
                        let created = super::runs::create_runs_in(&mut tx, &batch).await?;
                        let run = created.first().ok_or_else(|| {
                            StoreError::Corrupt("a started run was not created".into())
                        })?;
                        (run.id.0, run.created)
                    }
                }
            }
        };
        let Some(row) = sqlx::query(include_str!("sql/run_of_signal.sql"))
            .bind(run)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(SignalOutcome::UnknownRun);
        };
        let status: String = row.try_get("status")?;
        let status = RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?;
        let group: Option<String> = row.try_get("group_name")?;
        let delivery = |seq, name: String, consumed_by| SignalDelivery {
            run_id: RunId(run),
            name,
            id: request.id.clone(),
            seq,
            consumed_by,
            run_created,
        };
        if let Some(id) = &request.id {
            if let Some(sent) = sqlx::query(include_str!("sql/sent_signal.sql"))
                .bind(run)
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?
            {
                return Ok(SignalOutcome::Duplicate(delivery(
                    sent.try_get("seq")?,
                    sent.try_get("name")?,
                    sent.try_get("consumed_by")?,
                )));
            }
        }
        if status.is_terminal() {
            return Ok(SignalOutcome::RunFinished {
                run_id: RunId(run),
                status,
            });
        }
        let data = sanitize::json(&request.data);
        let seq: i64 = sqlx::query_scalar(include_str!("sql/insert_signal.sql"))
            .bind(run)
            .bind(&request.name)
            .bind(&request.id)
            .bind(data.to_string())
            .fetch_one(&mut *tx)
            .await?;
        settle::insert_event(
            &mut tx,
            NewEvent {
                kind: EventKind::SignalReceived,
                run_id: Some(run),
                step: None,
                group: group.as_deref(),
                data: json!({ "name": request.name, "id": request.id }),
            },
        )
        .await?;
        let consumed_by = deliver(&mut tx, run, &request.name).await?;
        tx.commit().await?;
        Ok(SignalOutcome::Delivered(delivery(
            seq,
            request.name.clone(),
            consumed_by,
        )))
    }

    async fn wake_once(&self, step: Uuid) -> Result<Option<WakePlan>> {
        let mut tx = self.write().await?;
        let Some(row) = sqlx::query(include_str!("sql/lock_due_wait.sql"))
            .bind(step)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let kind: String = row.try_get("wait_kind")?;
        let signal: Option<String> = row.try_get("wait_signal")?;
        let Some(plan) = waiting::plan_wake(&kind, signal.as_deref()) else {
            return Ok(None);
        };
        let Some(token) = unpark(&mut tx, step).await? else {
            return Ok(None);
        };
        let lease = Lease {
            step_id: StepId(step),
            token: LeaseToken(token),
        };
        let end = match &plan {
            WakePlan::Complete => WaitEnd::Complete(Value::Null),
            WakePlan::Fail { error, retryable } => WaitEnd::Fail {
                error: error.clone(),
                retryable: *retryable,
            },
        };
        end_attempt(&mut tx, lease, end).await?;
        tx.commit().await?;
        Ok(Some(plan))
    }
}

/// What ending an attempt did.
enum Ended {
    Completed,
    Retrying(DateTime<Utc>),
    Failed,
    Refused,
}

struct EndedAttempt {
    step: String,
    outcome: Ended,
}

/// Records the end of a wait (or of a callback's attempt) for the step running under
/// `lease` in this transaction, through the ordinary paths.
async fn end_attempt(
    conn: &mut SqliteConnection,
    lease: Lease,
    end: WaitEnd,
) -> Result<EndedAttempt> {
    let Some(step) = settle::lock_running_step(conn, lease.step_id.0, lease.token.0).await? else {
        return Ok(EndedAttempt {
            step: String::new(),
            outcome: Ended::Refused,
        });
    };
    let name = step.name.clone();
    let outcome = match end {
        WaitEnd::Complete(output) => {
            let success = StepSuccess {
                lease,
                output,
                log: None,
            };
            // Unblocked steps are pending at once; other processes see the file
            // change (their work signal).
            let (report, _) = complete_in(conn, &[success]).await?;
            if report.accepted.is_empty() {
                Ended::Refused
            } else {
                Ended::Completed
            }
        }
        WaitEnd::Fail { error, retryable } => {
            let failure = StepFailure {
                lease,
                error,
                log: None,
                retryable,
            };
            match fail_locked(conn, &step, &failure).await? {
                FailOutcome::Retrying { run_after, .. } => Ended::Retrying(run_after),
                FailOutcome::Failed => Ended::Failed,
                FailOutcome::Refused | FailOutcome::Stopped => Ended::Refused,
            }
        }
    };
    Ok(EndedAttempt {
        step: name,
        outcome,
    })
}

/// Gives a waiting signal step of `run` the oldest unconsumed signal of `name`, if
/// one waits; returns that step's name.
async fn deliver(conn: &mut SqliteConnection, run: Uuid, name: &str) -> Result<Option<String>> {
    let Some(waiter) = sqlx::query(include_str!("sql/waiting_for_signal.sql"))
        .bind(run)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let step: Uuid = waiter.try_get("id")?;
    let step_name: String = waiter.try_get("name")?;
    let Some(oldest) = sqlx::query(include_str!("sql/oldest_signal.sql"))
        .bind(run)
        .bind(name)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let Some(token) = unpark(conn, step).await? else {
        return Ok(None);
    };
    consume_signal(conn, oldest.try_get("seq")?, &step_name).await?;
    let lease = Lease {
        step_id: StepId(step),
        token: LeaseToken(token),
    };
    end_attempt(conn, lease, WaitEnd::Complete(json_text(&oldest)?)).await?;
    Ok(Some(step_name))
}

async fn step_run(conn: &mut SqliteConnection, step: Uuid) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(include_str!("sql/step_run.sql"))
        .bind(step)
        .fetch_optional(conn)
        .await?)
}

async fn unpark(conn: &mut SqliteConnection, step: Uuid) -> Result<Option<Uuid>> {
    Ok(sqlx::query_scalar(include_str!("sql/unpark_step.sql"))
        .bind(step)
        .fetch_optional(conn)
        .await?)
}

async fn consume_signal(conn: &mut SqliteConnection, seq: i64, step: &str) -> Result<()> {
    sqlx::query(include_str!("sql/consume_signal.sql"))
        .bind(seq)
        .bind(step)
        .execute(conn)
        .await?;
    Ok(())
}

/// A signal's data, stored as JSON text.
fn json_text(row: &SqliteRow) -> Result<Value> {
    let text: String = row.try_get("data")?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("signal data: {e}")))
}
