//! Steps that wait on SQLite: the SQL of [`WaitTx`] and the waker's scan. Every
//! decision is in `crate::waiting`.
//!
//! Every transaction here is a write transaction (`BEGIN IMMEDIATE`): the single
//! writer keeps a park and a signal of one run from interleaving, so a signal sent
//! while a wait begins is either in the mailbox when the park looks, or finds the
//! step waiting. A wait ends through the ordinary completion and failure paths
//! (`complete_in`, `fail_locked`) under the lease token it was parked with.

use super::settle::{self, NewEvent};
use super::steps::{complete_in, fail_locked};
use super::{time, SqliteStore};
use crate::model::*;
use crate::transient::with_retries;
use crate::waiting::flow::{
    self, Ended, EndedAttempt, Mail, ParkedStep, Sent, WaitEnd, WaitEvent, WaitTx,
};
use crate::waiting::{self, Waiting, WakePlan};
use crate::{token, Result, StoreError, WaitStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, Transaction};
use stepwise_core::{Lease, LeaseToken, RunId, RunStatus, StepId};
use uuid::Uuid;

#[async_trait]
impl WaitStore for SqliteStore {
    async fn park_step(&self, request: &ParkRequest) -> Result<ParkOutcome> {
        with_retries(|| async { flow::park(self.wait_tx().await?, request).await }).await
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
        let hash = token::hash(&request.token);
        with_retries(|| async {
            flow::callback(self.wait_tx().await?, &hash, &request.result).await
        })
        .await
    }

    async fn send_signal(&self, request: &SignalRequest) -> Result<SignalOutcome> {
        waiting::check_signal(request)?;
        with_retries(|| async { flow::signal(self.wait_tx().await?, request).await }).await
    }

    async fn wake_steps(&self, limit: u32) -> Result<WakeReport> {
        let due = sqlx::query(include_str!("sql/due_waits.sql"))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        let mut report = WakeReport::default();
        for row in &due {
            let step = StepId(row.try_get("id")?);
            let run = RunId(row.try_get("run_id")?);
            match with_retries(|| async { flow::wake(self.wait_tx().await?, step, run).await })
                .await?
            {
                Some(WakePlan::Complete) => report.slept.push(step),
                Some(WakePlan::Fail {
                    retryable: false, ..
                }) => report.timed_out.push(step),
                Some(WakePlan::Fail { .. }) => report.callbacks_expired.push(step),
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

impl SqliteStore {
    async fn wait_tx(&self) -> Result<SqliteWaitTx> {
        Ok(SqliteWaitTx(self.write().await?))
    }
}

/// A SQLite write transaction, as waiting steps use it.
struct SqliteWaitTx(Transaction<'static, Sqlite>);

#[async_trait]
impl WaitTx for SqliteWaitTx {
    async fn step_run(&mut self, step: StepId) -> Result<Option<RunId>> {
        let run: Option<Uuid> = sqlx::query_scalar(include_str!("sql/step_run.sql"))
            .bind(step.0)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(run.map(RunId))
    }

    async fn lock_mailbox(&mut self, _run: RunId) -> Result<()> {
        // The write transaction already holds the database's write lock.
        Ok(())
    }

    async fn lock_running(&mut self, lease: Lease) -> Result<Option<ParkedStep>> {
        let step = settle::lock_running_step(&mut self.0, lease.step_id.0, lease.token.0).await?;
        Ok(step.map(|s| ParkedStep {
            run_id: RunId(s.run_id),
            name: s.name,
            attempt: s.attempt,
            group: s.group,
            started_at: s.started_at,
            revoked: s.revoked,
        }))
    }

    async fn stop_revoked(&mut self, lease: Lease) -> Result<()> {
        settle::stop_revoked(&mut self.0, &[lease]).await?;
        Ok(())
    }

    async fn oldest_signal(&mut self, run: RunId, name: &str) -> Result<Option<Mail>> {
        sqlx::query(include_str!("sql/oldest_signal.sql"))
            .bind(run.0)
            .bind(name)
            .fetch_optional(&mut *self.0)
            .await?
            .map(|row| {
                Ok(Mail {
                    seq: row.try_get("seq")?,
                    data: json_text(&row)?,
                })
            })
            .transpose()
    }

    async fn now(&mut self) -> Result<DateTime<Utc>> {
        time(
            sqlx::query_scalar(include_str!("sql/now.sql"))
                .fetch_one(&mut *self.0)
                .await?,
        )
    }

    async fn park(&mut self, step: StepId, wait: &Waiting) -> Result<()> {
        sqlx::query(include_str!("sql/park_step.sql"))
            .bind(step.0)
            .bind(wait.kind)
            .bind(&wait.signal)
            .bind(wait.until.map(|t| t.timestamp_millis()))
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn event(&mut self, event: WaitEvent<'_>) -> Result<()> {
        let event = NewEvent {
            kind: event.kind,
            run_id: Some(event.run.0),
            step: event.step,
            group: event.group,
            data: event.data,
        };
        settle::insert_event(&mut self.0, event).await
    }

    async fn consume_signal(&mut self, seq: i64, step: &str) -> Result<()> {
        sqlx::query(include_str!("sql/consume_signal.sql"))
            .bind(seq)
            .bind(step)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn end_attempt(&mut self, lease: Lease, end: WaitEnd) -> Result<EndedAttempt> {
        let conn = &mut *self.0;
        let Some(step) = settle::lock_running_step(conn, lease.step_id.0, lease.token.0).await?
        else {
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
                    retry_after: None,
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

    async fn callback_step(&mut self, hash: &str) -> Result<Option<(StepId, RunId)>> {
        sqlx::query(include_str!("sql/callback_step.sql"))
            .bind(hash)
            .fetch_optional(&mut *self.0)
            .await?
            .map(|row| Ok((StepId(row.try_get("id")?), RunId(row.try_get("run_id")?))))
            .transpose()
    }

    async fn lock_callback_step(
        &mut self,
        step: StepId,
        hash: &str,
    ) -> Result<Option<(String, LeaseToken)>> {
        sqlx::query(include_str!("sql/lock_callback_step.sql"))
            .bind(step.0)
            .bind(hash)
            .fetch_optional(&mut *self.0)
            .await?
            .map(|row| {
                Ok((
                    row.try_get("status")?,
                    LeaseToken(row.try_get("lease_token")?),
                ))
            })
            .transpose()
    }

    async fn forget_callback(&mut self, step: StepId) -> Result<()> {
        sqlx::query(include_str!("sql/forget_callback.sql"))
            .bind(step.0)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn unpark(&mut self, step: StepId) -> Result<Option<LeaseToken>> {
        let token: Option<Uuid> = sqlx::query_scalar(include_str!("sql/unpark_step.sql"))
            .bind(step.0)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(token.map(LeaseToken))
    }

    async fn run_by_key(&mut self, workflow: &str, key: &str) -> Result<Option<RunId>> {
        let run: Option<Uuid> = sqlx::query_scalar(include_str!("sql/run_by_key.sql"))
            .bind(workflow)
            .bind(key)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(run.map(RunId))
    }

    async fn create_run(&mut self, run: NewRun) -> Result<CreatedRun> {
        let batch = RunBatch {
            group: None,
            runs: vec![run],
        };
        super::runs::create_runs_in(&mut self.0, &batch)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("a started run was not created".into()))
    }

    async fn run_of_signal(&mut self, run: RunId) -> Result<Option<(RunStatus, Option<String>)>> {
        let Some(row) = sqlx::query(include_str!("sql/run_of_signal.sql"))
            .bind(run.0)
            .fetch_optional(&mut *self.0)
            .await?
        else {
            return Ok(None);
        };
        let status: String = row.try_get("status")?;
        let status = RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?;
        Ok(Some((status, row.try_get("group_name")?)))
    }

    async fn sent_signal(&mut self, run: RunId, id: &str) -> Result<Option<Sent>> {
        sqlx::query(include_str!("sql/sent_signal.sql"))
            .bind(run.0)
            .bind(id)
            .fetch_optional(&mut *self.0)
            .await?
            .map(|row| {
                Ok(Sent {
                    seq: row.try_get("seq")?,
                    name: row.try_get("name")?,
                    consumed_by: row.try_get("consumed_by")?,
                })
            })
            .transpose()
    }

    async fn insert_signal(
        &mut self,
        run: RunId,
        request: &SignalRequest,
        data: &Value,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(include_str!("sql/insert_signal.sql"))
            .bind(run.0)
            .bind(&request.name)
            .bind(&request.id)
            .bind(data.to_string())
            .fetch_one(&mut *self.0)
            .await?)
    }

    async fn waiting_for_signal(
        &mut self,
        run: RunId,
        name: &str,
    ) -> Result<Option<(StepId, String)>> {
        sqlx::query(include_str!("sql/waiting_for_signal.sql"))
            .bind(run.0)
            .bind(name)
            .fetch_optional(&mut *self.0)
            .await?
            .map(|row| Ok((StepId(row.try_get("id")?), row.try_get("name")?)))
            .transpose()
    }

    async fn lock_due_wait(&mut self, step: StepId) -> Result<Option<(String, Option<String>)>> {
        sqlx::query(include_str!("sql/lock_due_wait.sql"))
            .bind(step.0)
            .fetch_optional(&mut *self.0)
            .await?
            .map(|row| Ok((row.try_get("wait_kind")?, row.try_get("wait_signal")?)))
            .transpose()
    }

    async fn child_state(&mut self, run: RunId) -> Result<Option<(RunStatus, Option<String>)>> {
        let Some(row) = sqlx::query(include_str!("sql/child_state.sql"))
            .bind(run.0)
            .fetch_optional(&mut *self.0)
            .await?
        else {
            return Ok(None);
        };
        let status: String = row.try_get("status")?;
        let status = RunStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?;
        Ok(Some((status, row.try_get("error")?)))
    }

    async fn child_outputs(&mut self, run: RunId) -> Result<Value> {
        let text: String = sqlx::query_scalar(include_str!("sql/child_outputs.sql"))
            .bind(run.0)
            .fetch_one(&mut *self.0)
            .await?;
        serde_json::from_str(&text)
            .map_err(|e| StoreError::Corrupt(format!("a child's outputs: {e}")))
    }

    async fn retry_child(&mut self, run: RunId) -> Result<()> {
        let request = RetryRequest { run, from: None };
        super::control::retry_in(&mut self.0, &request).await?;
        Ok(())
    }

    async fn commit(self) -> Result<()> {
        Ok(self.0.commit().await?)
    }
}

/// A signal's data, stored as JSON text.
fn json_text(row: &SqliteRow) -> Result<Value> {
    let text: String = row.try_get("data")?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("signal data: {e}")))
}
