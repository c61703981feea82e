//! How `apply`'s sync, a firing pass, a trigger and a backfill go, once for both
//! backends: each backend implements [`ScheduleTx`] (its SQL inside one transaction)
//! and these functions make every decision.

use super::{
    fire_times_between, lag_seconds, plan_sync, start, FireRequest, Start, StoredSchedule,
};
use crate::model::*;
use crate::{Result, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use stepwise_core::schedule::plan_fires;
use stepwise_core::{EventKind, RunId, RunStatus, ScheduleSpec};

/// A schedule row as a firing pass, a trigger or a backfill reads it (locked).
pub(crate) struct DueSchedule {
    pub spec: ScheduleSpec,
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_run_id: Option<RunId>,
    /// The database clock, read in the same statement.
    pub now: DateTime<Utc>,
}

/// One transaction of a backend, as schedules use it.
#[async_trait]
pub(crate) trait ScheduleTx: Send + Sized {
    async fn now(&mut self) -> Result<DateTime<Utc>>;
    /// The workflow's schedules and any other with one of `names`, locked.
    async fn stored(&mut self, workflow: &str, names: &[&str]) -> Result<Vec<StoredSchedule>>;
    async fn insert(&mut self, spec: &ScheduleSpec, next: Option<DateTime<Utc>>) -> Result<()>;
    async fn update(&mut self, spec: &ScheduleSpec, next: Option<DateTime<Utc>>) -> Result<()>;
    async fn remove(&mut self, names: &[String]) -> Result<()>;
    /// Up to `limit` due schedules, locked; ones another process holds are skipped.
    async fn due(&mut self, limit: u32) -> Result<Vec<DueSchedule>>;
    /// One schedule, locked.
    async fn lock(&mut self, name: &str) -> Result<Option<DueSchedule>>;
    /// Sets the next fire time and, when given, the last fire and its run.
    async fn advance(
        &mut self,
        name: &str,
        next: Option<DateTime<Utc>>,
        last: Option<(DateTime<Utc>, RunId)>,
    ) -> Result<()>;
    /// The run a fire time started (the ledger).
    async fn fired_run(&mut self, name: &str, fire_time: DateTime<Utc>) -> Result<Option<RunId>>;
    async fn run_status(&mut self, run: RunId) -> Result<Option<RunStatus>>;
    /// Whether the workflow's runs have a concurrency key of their own.
    async fn workflow_keyed(&mut self, workflow: &str) -> Result<bool>;
    /// Creates the run (or finds the one with its idempotency key).
    async fn create_run(&mut self, run: NewRun) -> Result<RunId>;
    async fn record_fire(&mut self, name: &str, fire_time: DateTime<Utc>, run: RunId)
        -> Result<()>;
    async fn event(&mut self, kind: EventKind, run: Option<RunId>, data: Value) -> Result<()>;
    async fn commit(self) -> Result<()>;
}

/// `sync_schedules`: the workflow's stored schedules become `wanted`.
pub(crate) async fn sync<T: ScheduleTx>(
    mut tx: T,
    workflow: &str,
    wanted: &[ScheduleSpec],
) -> Result<ScheduleSync> {
    let names: Vec<&str> = wanted.iter().map(|s| s.name.as_str()).collect();
    let stored = tx.stored(workflow, &names).await?;
    let plan = plan_sync(workflow, wanted, &stored)?;
    let now = tx.now().await?;
    for (spec, timetable) in &plan.create {
        tx.insert(spec, timetable.next_after(now)).await?;
    }
    for (spec, timetable) in &plan.update {
        tx.update(spec, timetable.next_after(now)).await?;
    }
    if !plan.remove.is_empty() {
        tx.remove(&plan.remove).await?;
    }
    tx.commit().await?;
    Ok(plan.report)
}

/// One firing pass over up to `limit` due schedules.
pub(crate) async fn fire<T: ScheduleTx>(mut tx: T, limit: u32) -> Result<Vec<ScheduleFire>> {
    let mut fires = Vec::new();
    for due in tx.due(limit).await? {
        let Ok(timetable) = due.spec.validate() else {
            // Stored by an older version with rules this one refuses: it stops rather
            // than firing by guesswork (`apply` the file again to fix it).
            tx.advance(&due.spec.name, None, None).await?;
            continue;
        };
        let Some(due_at) = due.next_fire_at else {
            continue;
        };
        let plan = plan_fires(&timetable, due.spec.catchup, due_at, due.now);
        let keyed = tx.workflow_keyed(&due.spec.workflow).await?;
        let mut previous = due.last_run_id;
        let mut last = None;
        for fire_time in plan.fire {
            let request = FireRequest {
                spec: &due.spec,
                fire_time,
                previous: None,
                workflow_keyed: keyed,
                by_hand: false,
            };
            let fire = fire_at(&mut tx, &request, previous, due.now).await?;
            if let Some(run) = fire.run_id {
                previous = Some(run);
                last = Some((fire.fire_time, run));
            }
            fires.push(fire);
        }
        tx.advance(&due.spec.name, plan.next, last).await?;
    }
    tx.commit().await?;
    Ok(fires)
}

/// One extra run now; it becomes the schedule's last fire.
pub(crate) async fn trigger<T: ScheduleTx>(mut tx: T, name: &str) -> Result<Option<ScheduleFire>> {
    let Some(due) = tx.lock(name).await? else {
        return Ok(None);
    };
    let request = FireRequest {
        spec: &due.spec,
        fire_time: due.now,
        previous: None,
        workflow_keyed: tx.workflow_keyed(&due.spec.workflow).await?,
        by_hand: true,
    };
    let fire = fire_at(&mut tx, &request, due.last_run_id, due.now).await?;
    let last = fire.run_id.map(|run| (fire.fire_time, run));
    tx.advance(name, due.next_fire_at, last).await?;
    tx.commit().await?;
    Ok(Some(fire))
}

/// A run for every fire time of the span (at most `MAX_BACKFILL`).
pub(crate) async fn backfill<T: ScheduleTx>(
    mut tx: T,
    backfill: &Backfill,
) -> Result<Option<Vec<ScheduleFire>>> {
    if backfill.from > backfill.to {
        return Err(StoreError::InvalidInput(
            "backfill: --from must not be after --to".into(),
        ));
    }
    let Some(due) = tx.lock(&backfill.schedule).await? else {
        return Ok(None);
    };
    let timetable = due
        .spec
        .validate()
        .map_err(|e| StoreError::InvalidInput(e.to_string()))?;
    let times = fire_times_between(&timetable, backfill)?;
    let keyed = tx.workflow_keyed(&due.spec.workflow).await?;
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

/// Starts (or skips) the run of one fire time; a fire time that already started a
/// run keeps it. `previous` is the schedule's last run, for `overlap`.
async fn fire_at<T: ScheduleTx>(
    tx: &mut T,
    request: &FireRequest<'_>,
    previous: Option<RunId>,
    now: DateTime<Utc>,
) -> Result<ScheduleFire> {
    let name = &request.spec.name;
    let fire = |outcome, run_id| ScheduleFire {
        schedule: name.clone(),
        fire_time: request.fire_time,
        outcome,
        run_id,
        lag_seconds: lag_seconds(request.fire_time, now),
    };
    if let Some(run) = tx.fired_run(name, request.fire_time).await? {
        return Ok(fire(FireOutcome::Existing, Some(run)));
    }
    let previous_status = match previous {
        Some(run) => tx.run_status(run).await?,
        None => None,
    };
    let request = FireRequest {
        previous: previous_status,
        ..*request
    };
    let data = |run: Option<RunId>| json!({"schedule": name, "fire_time": request.fire_time, "run_id": run});
    match start(&request) {
        Start::Skip => {
            tx.event(EventKind::ScheduleSkipped, previous, data(previous))
                .await?;
            Ok(fire(FireOutcome::Skipped, None))
        }
        Start::Run(run) => {
            let run = tx.create_run(*run).await?;
            tx.record_fire(name, request.fire_time, run).await?;
            tx.event(EventKind::ScheduleFired, Some(run), data(Some(run)))
                .await?;
            Ok(fire(FireOutcome::Fired, Some(run)))
        }
    }
}
