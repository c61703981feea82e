//! Schedules on SQLite: the SQL of [`ScheduleTx`] (the write transaction that finds a
//! schedule due fires it; the single writer keeps two processes from firing one
//! schedule at once) and the read side. Every decision is in `crate::schedules`.

use super::settle::{self, NewEvent};
use super::{opt_time, time, SqliteStore};
use crate::model::*;
use crate::schedules::firing::{self, DueSchedule, ScheduleTx};
use crate::schedules::StoredSchedule;
use crate::transient::with_retries;
use crate::{Result, ScheduleStore, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection, Transaction};
use stepwise_core::{EventKind, RunId, RunStatus, ScheduleSpec};
use uuid::Uuid;

/// How many runs a schedule's listing shows.
const RECENT_RUNS: i64 = 5;

#[async_trait]
impl ScheduleStore for SqliteStore {
    async fn sync_schedules(
        &self,
        workflow: &str,
        schedules: &[ScheduleSpec],
    ) -> Result<ScheduleSync> {
        with_retries(|| async {
            firing::sync(self.schedule_tx().await?, workflow, schedules).await
        })
        .await
    }

    async fn fire_schedules(&self, limit: u32) -> Result<Vec<ScheduleFire>> {
        // Read first: an idle process must not take the write lock every second just
        // to find nothing due.
        let due: bool = sqlx::query_scalar(include_str!("sql/any_schedule_due.sql"))
            .fetch_one(&self.reader)
            .await?;
        if !due {
            return Ok(vec![]);
        }
        with_retries(|| async { firing::fire(self.schedule_tx().await?, limit).await }).await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleView>> {
        let mut conn = self.reader.acquire().await?;
        let rows = sqlx::query(include_str!("sql/list_schedules.sql"))
            .fetch_all(&mut *conn)
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(schedule_view(&mut conn, row).await?);
        }
        Ok(out)
    }

    async fn set_schedule_paused(&self, name: &str, paused: bool) -> Result<Option<ScheduleView>> {
        let found: Option<String> = sqlx::query_scalar(include_str!("sql/set_schedule_paused.sql"))
            .bind(name)
            .bind(paused)
            .fetch_optional(&self.writer)
            .await?;
        if found.is_none() {
            return Ok(None);
        }
        Ok(self
            .list_schedules()
            .await?
            .into_iter()
            .find(|s| s.spec.name == name))
    }

    async fn trigger_schedule(&self, name: &str) -> Result<Option<ScheduleFire>> {
        with_retries(|| async { firing::trigger(self.schedule_tx().await?, name).await }).await
    }

    async fn backfill_schedule(&self, backfill: &Backfill) -> Result<Option<Vec<ScheduleFire>>> {
        with_retries(|| async { firing::backfill(self.schedule_tx().await?, backfill).await }).await
    }
}

impl SqliteStore {
    async fn schedule_tx(&self) -> Result<SqliteScheduleTx> {
        Ok(SqliteScheduleTx(self.write().await?))
    }
}

/// A SQLite write transaction, as schedules use it.
struct SqliteScheduleTx(Transaction<'static, Sqlite>);

#[async_trait]
impl ScheduleTx for SqliteScheduleTx {
    async fn now(&mut self) -> Result<DateTime<Utc>> {
        time(
            sqlx::query_scalar(include_str!("sql/now.sql"))
                .fetch_one(&mut *self.0)
                .await?,
        )
    }

    async fn stored(&mut self, workflow: &str, names: &[&str]) -> Result<Vec<StoredSchedule>> {
        let rows = sqlx::query(include_str!("sql/stored_schedules.sql"))
            .bind(workflow)
            .bind(json!(names).to_string())
            .fetch_all(&mut *self.0)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(StoredSchedule {
                    name: row.try_get("name")?,
                    workflow: row.try_get("workflow")?,
                    spec: spec_of(row.try_get("spec")?)?,
                })
            })
            .collect()
    }

    async fn insert(&mut self, spec: &ScheduleSpec, next: Option<DateTime<Utc>>) -> Result<()> {
        sqlx::query(include_str!("sql/insert_schedule.sql"))
            .bind(&spec.name)
            .bind(&spec.workflow)
            .bind(json!(spec).to_string())
            .bind(millis_of(next))
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn update(&mut self, spec: &ScheduleSpec, next: Option<DateTime<Utc>>) -> Result<()> {
        sqlx::query(include_str!("sql/update_schedule.sql"))
            .bind(&spec.name)
            .bind(json!(spec).to_string())
            .bind(millis_of(next))
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn remove(&mut self, names: &[String]) -> Result<()> {
        sqlx::query(include_str!("sql/delete_schedules.sql"))
            .bind(json!(names).to_string())
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn due(&mut self, limit: u32) -> Result<Vec<DueSchedule>> {
        let rows = sqlx::query(include_str!("sql/due_schedules.sql"))
            .bind(i64::from(limit))
            .fetch_all(&mut *self.0)
            .await?;
        rows.iter().map(due_schedule).collect()
    }

    async fn lock(&mut self, name: &str) -> Result<Option<DueSchedule>> {
        sqlx::query(include_str!("sql/lock_schedule.sql"))
            .bind(name)
            .fetch_optional(&mut *self.0)
            .await?
            .as_ref()
            .map(due_schedule)
            .transpose()
    }

    async fn advance(
        &mut self,
        name: &str,
        next: Option<DateTime<Utc>>,
        last: Option<(DateTime<Utc>, RunId)>,
    ) -> Result<()> {
        sqlx::query(include_str!("sql/advance_schedule.sql"))
            .bind(name)
            .bind(millis_of(next))
            .bind(last.map(|(at, _)| at.timestamp_millis()))
            .bind(last.map(|(_, run)| run.0))
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn fired_run(&mut self, name: &str, fire_time: DateTime<Utc>) -> Result<Option<RunId>> {
        let run: Option<Uuid> = sqlx::query_scalar(include_str!("sql/schedule_fire_run.sql"))
            .bind(name)
            .bind(fire_time.timestamp_millis())
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(run.map(RunId))
    }

    async fn run_status(&mut self, run: RunId) -> Result<Option<RunStatus>> {
        let status: Option<String> = sqlx::query_scalar(include_str!("sql/run_status.sql"))
            .bind(run.0)
            .fetch_optional(&mut *self.0)
            .await?;
        Ok(status.and_then(|s| RunStatus::parse(&s)))
    }

    async fn workflow_keyed(&mut self, workflow: &str) -> Result<bool> {
        Ok(super::runs::latest_workflow(&mut self.0, workflow, None)
            .await?
            .is_some_and(|w| w.spec.run.concurrency.is_some()))
    }

    async fn create_run(&mut self, run: NewRun) -> Result<RunId> {
        let batch = RunBatch {
            group: None,
            runs: vec![run],
        };
        let created = super::runs::create_runs_in(&mut self.0, &batch).await?;
        Ok(created
            .first()
            .ok_or_else(|| StoreError::Corrupt("a scheduled run was not created".into()))?
            .id)
    }

    async fn record_fire(
        &mut self,
        name: &str,
        fire_time: DateTime<Utc>,
        run: RunId,
    ) -> Result<()> {
        sqlx::query(include_str!("sql/record_schedule_fire.sql"))
            .bind(name)
            .bind(fire_time.timestamp_millis())
            .bind(run.0)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn event(&mut self, kind: EventKind, run: Option<RunId>, data: Value) -> Result<()> {
        let event = NewEvent {
            kind,
            run_id: run.map(|r| r.0),
            step: None,
            group: None,
            data,
        };
        settle::insert_event(&mut self.0, event).await
    }

    async fn commit(self) -> Result<()> {
        Ok(self.0.commit().await?)
    }
}

fn due_schedule(row: &SqliteRow) -> Result<DueSchedule> {
    Ok(DueSchedule {
        spec: spec_of(row.try_get("spec")?)?,
        next_fire_at: opt_time(row.try_get("next_fire_at")?)?,
        last_run_id: row.try_get::<Option<Uuid>, _>("last_run_id")?.map(RunId),
        now: time(row.try_get("now")?)?,
    })
}

fn spec_of(text: String) -> Result<ScheduleSpec> {
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("schedule spec: {e}")))
}

fn millis_of(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_millis())
}

async fn schedule_view(conn: &mut SqliteConnection, row: &SqliteRow) -> Result<ScheduleView> {
    let spec = spec_of(row.try_get("spec")?)?;
    let runs = sqlx::query(include_str!("sql/recent_scheduled_runs.sql"))
        .bind(&spec.name)
        .bind(RECENT_RUNS)
        .fetch_all(&mut *conn)
        .await?;
    let recent_runs = runs
        .iter()
        .map(|r| {
            let status: String = r.try_get("status")?;
            Ok(ScheduledRun {
                run_id: RunId(r.try_get("run_id")?),
                scheduled_for: time(r.try_get("fire_time")?)?,
                status: RunStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ScheduleView {
        spec,
        paused: row.try_get("paused")?,
        next_fire_at: opt_time(row.try_get("next_fire_at")?)?,
        last_fire_at: opt_time(row.try_get("last_fire_at")?)?,
        recent_runs,
    })
}
