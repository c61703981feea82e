//! Schedules on PostgreSQL: `apply`'s sync, firing with no leader (a due schedule row
//! is locked `FOR UPDATE SKIP LOCKED` by whichever process finds it), trigger and
//! backfill. Which fire times fire and which run each starts is decided in
//! `crate::schedules` and `stepwise_core::schedule`.

use super::settle::{self, NewEvent};
use super::PgStore;
use crate::model::*;
use crate::schedules::{self, FireRequest, Start, StoredSchedule};
use crate::transient::with_retries;
use crate::{Result, ScheduleStore, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use stepwise_core::schedule::plan_fires;
use stepwise_core::{EventKind, RunId, RunStatus, ScheduleSpec};
use uuid::Uuid;

/// How many runs a schedule's listing shows.
const RECENT_RUNS: i64 = 5;

#[async_trait]
impl ScheduleStore for PgStore {
    async fn sync_schedules(
        &self,
        workflow: &str,
        schedules: &[ScheduleSpec],
    ) -> Result<ScheduleSync> {
        with_retries(|| self.sync_once(workflow, schedules)).await
    }

    async fn fire_schedules(&self, limit: u32) -> Result<Vec<ScheduleFire>> {
        with_retries(|| self.fire_once(limit)).await
    }

    async fn list_schedules(&self) -> Result<Vec<ScheduleView>> {
        let mut conn = self.pool.acquire().await?;
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
            .fetch_optional(&self.pool)
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
        with_retries(|| self.trigger_once(name)).await
    }

    async fn backfill_schedule(&self, backfill: &Backfill) -> Result<Option<Vec<ScheduleFire>>> {
        if backfill.from > backfill.to {
            return Err(StoreError::InvalidInput(
                "backfill: --from must not be after --to".into(),
            ));
        }
        with_retries(|| self.backfill_once(backfill)).await
    }
}

impl PgStore {
    async fn sync_once(&self, workflow: &str, wanted: &[ScheduleSpec]) -> Result<ScheduleSync> {
        let mut tx = self.pool.begin().await?;
        let names: Vec<&str> = wanted.iter().map(|s| s.name.as_str()).collect();
        let rows = sqlx::query(include_str!("sql/stored_schedules.sql"))
            .bind(workflow)
            .bind(&names)
            .fetch_all(&mut *tx)
            .await?;
        let stored = rows
            .iter()
            .map(|row| {
                Ok(StoredSchedule {
                    name: row.try_get("name")?,
                    workflow: row.try_get("workflow")?,
                    spec: spec_of(row.try_get("spec")?)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let plan = schedules::plan_sync(workflow, wanted, &stored)?;
        let now: DateTime<Utc> = sqlx::query_scalar(include_str!("sql/now.sql"))
            .fetch_one(&mut *tx)
            .await?;
        for (spec, timetable) in &plan.create {
            sqlx::query(include_str!("sql/insert_schedule.sql"))
                .bind(&spec.name)
                .bind(workflow)
                .bind(json!(spec))
                .bind(timetable.next_after(now))
                .execute(&mut *tx)
                .await?;
        }
        for (spec, timetable) in &plan.update {
            sqlx::query(include_str!("sql/update_schedule.sql"))
                .bind(&spec.name)
                .bind(json!(spec))
                .bind(timetable.next_after(now))
                .execute(&mut *tx)
                .await?;
        }
        if !plan.remove.is_empty() {
            sqlx::query(include_str!("sql/delete_schedules.sql"))
                .bind(&plan.remove)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(plan.report)
    }

    async fn fire_once(&self, limit: u32) -> Result<Vec<ScheduleFire>> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(include_str!("sql/due_schedules.sql"))
            .bind(i64::from(limit))
            .fetch_all(&mut *tx)
            .await?;
        let mut fires = Vec::new();
        for row in &rows {
            let due = DueSchedule::from_row(row)?;
            let Ok(timetable) = due.spec.validate() else {
                // Stored by an older version with rules this one refuses: it stops
                // rather than firing by guesswork (`apply` the file again to fix it).
                advance_to(&mut tx, &due.spec.name, None).await?;
                continue;
            };
            let Some(due_at) = due.next_fire_at else {
                continue;
            };
            let plan = plan_fires(&timetable, due.spec.catchup, due_at, due.now);
            let keyed = workflow_keyed(&mut tx, &due.spec.workflow).await?;
            let mut previous = due.last_run_id;
            let mut last = None;
            for fire_time in plan.fire {
                let fire = fire_at(
                    &mut tx,
                    &FireRequest {
                        spec: &due.spec,
                        fire_time,
                        previous: None,
                        workflow_keyed: keyed,
                        by_hand: false,
                    },
                    previous,
                    due.now,
                )
                .await?;
                previous = fire.run_id.map(|r| r.0).or(previous);
                last = Some(fire.fire_time);
                fires.push(fire);
            }
            sqlx::query(include_str!("sql/advance_schedule.sql"))
                .bind(&due.spec.name)
                .bind(plan.next)
                .bind(last)
                .bind(previous)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(fires)
    }

    async fn trigger_once(&self, name: &str) -> Result<Option<ScheduleFire>> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(include_str!("sql/lock_schedule.sql"))
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let due = DueSchedule::from_row(&row)?;
        let keyed = workflow_keyed(&mut tx, &due.spec.workflow).await?;
        let fire = fire_at(
            &mut tx,
            &FireRequest {
                spec: &due.spec,
                fire_time: due.now,
                previous: None,
                workflow_keyed: keyed,
                by_hand: true,
            },
            due.last_run_id,
            due.now,
        )
        .await?;
        advance(&mut tx, name, due.next_fire_at, &fire).await?;
        tx.commit().await?;
        Ok(Some(fire))
    }

    async fn backfill_once(&self, backfill: &Backfill) -> Result<Option<Vec<ScheduleFire>>> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(include_str!("sql/lock_schedule.sql"))
            .bind(&backfill.schedule)
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        let due = DueSchedule::from_row(&row)?;
        let timetable = due
            .spec
            .validate()
            .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        let times = schedules::fire_times_between(&timetable, backfill)?;
        let keyed = workflow_keyed(&mut tx, &due.spec.workflow).await?;
        let mut fires = Vec::with_capacity(times.len());
        for fire_time in times {
            let request = FireRequest {
                spec: &due.spec,
                fire_time,
                previous: None,
                workflow_keyed: keyed,
                by_hand: true,
            };
            fires.push(fire_at(&mut tx, &request, None, due.now).await?);
        }
        tx.commit().await?;
        Ok(Some(fires))
    }
}

/// A schedule row of `due_schedules.sql` or `lock_schedule.sql`.
struct DueSchedule {
    spec: ScheduleSpec,
    next_fire_at: Option<DateTime<Utc>>,
    last_run_id: Option<Uuid>,
    now: DateTime<Utc>,
}

impl DueSchedule {
    fn from_row(row: &PgRow) -> Result<Self> {
        Ok(Self {
            spec: spec_of(row.try_get("spec")?)?,
            next_fire_at: row.try_get("next_fire_at")?,
            last_run_id: row.try_get("last_run_id")?,
            now: row.try_get("now")?,
        })
    }
}

fn spec_of(value: Value) -> Result<ScheduleSpec> {
    serde_json::from_value(value).map_err(|e| StoreError::Corrupt(format!("schedule spec: {e}")))
}

/// Starts (or skips) the run of one fire time; a fire time that already started a
/// run keeps it. `previous` is the schedule's last run, for `overlap`.
async fn fire_at(
    conn: &mut PgConnection,
    request: &FireRequest<'_>,
    previous: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<ScheduleFire> {
    let name = &request.spec.name;
    let fire = |outcome, run_id: Option<Uuid>| ScheduleFire {
        schedule: name.clone(),
        fire_time: request.fire_time,
        outcome,
        run_id: run_id.map(RunId),
        lag_seconds: schedules::lag_seconds(request.fire_time, now),
    };
    let existing: Option<Uuid> = sqlx::query_scalar(include_str!("sql/schedule_fire_run.sql"))
        .bind(name)
        .bind(request.fire_time)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(run) = existing {
        return Ok(fire(FireOutcome::Existing, Some(run)));
    }
    let previous_status = match previous {
        None => None,
        Some(run) => sqlx::query_scalar::<_, String>(include_str!("sql/run_status.sql"))
            .bind(run)
            .fetch_optional(&mut *conn)
            .await?
            .and_then(|s| RunStatus::parse(&s)),
    };
    let request = FireRequest {
        previous: previous_status,
        ..*request
    };
    let data = |run: Option<Uuid>| json!({"schedule": name, "fire_time": request.fire_time, "run_id": run});
    match schedules::start(&request) {
        Start::Skip => {
            settle::insert_event(
                conn,
                NewEvent {
                    kind: EventKind::ScheduleSkipped,
                    run_id: previous,
                    step: None,
                    group: None,
                    data: data(previous),
                },
            )
            .await?;
            Ok(fire(FireOutcome::Skipped, None))
        }
        Start::Run(run) => {
            let batch = RunBatch {
                group: None,
                runs: vec![*run],
            };
            let created = super::runs::create_runs_in(conn, &batch).await?;
            let run = created
                .first()
                .ok_or_else(|| StoreError::Corrupt("a scheduled run was not created".into()))?
                .id
                .0;
            sqlx::query(include_str!("sql/record_schedule_fire.sql"))
                .bind(name)
                .bind(request.fire_time)
                .bind(run)
                .execute(&mut *conn)
                .await?;
            settle::insert_event(
                conn,
                NewEvent {
                    kind: EventKind::ScheduleFired,
                    run_id: Some(run),
                    step: None,
                    group: None,
                    data: data(Some(run)),
                },
            )
            .await?;
            Ok(fire(FireOutcome::Fired, Some(run)))
        }
    }
}

/// Records a trigger's fire as the schedule's last; its next fire time stays.
async fn advance(
    conn: &mut PgConnection,
    name: &str,
    next: Option<DateTime<Utc>>,
    fire: &ScheduleFire,
) -> Result<()> {
    sqlx::query(include_str!("sql/advance_schedule.sql"))
        .bind(name)
        .bind(next)
        .bind(fire.run_id.map(|_| fire.fire_time))
        .bind(fire.run_id.map(|r| r.0))
        .execute(conn)
        .await?;
    Ok(())
}

/// Moves a schedule's next fire time, nothing else.
async fn advance_to(
    conn: &mut PgConnection,
    name: &str,
    next: Option<DateTime<Utc>>,
) -> Result<()> {
    sqlx::query(include_str!("sql/advance_schedule.sql"))
        .bind(name)
        .bind(next)
        .bind(None::<DateTime<Utc>>)
        .bind(None::<Uuid>)
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether the workflow's runs have a concurrency key of their own.
async fn workflow_keyed(conn: &mut PgConnection, workflow: &str) -> Result<bool> {
    Ok(super::runs::latest_workflow(conn, workflow, None)
        .await?
        .is_some_and(|w| w.spec.run.concurrency.is_some()))
}

async fn schedule_view(conn: &mut PgConnection, row: &PgRow) -> Result<ScheduleView> {
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
                scheduled_for: r.try_get("fire_time")?,
                status: RunStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ScheduleView {
        spec,
        paused: row.try_get("paused")?,
        next_fire_at: row.try_get("next_fire_at")?,
        last_fire_at: row.try_get("last_fire_at")?,
        recent_runs,
    })
}
