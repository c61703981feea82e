//! Row mappings of the PostgreSQL read side: workflows, runs and their steps.

use crate::model::*;
use crate::{Result, StoreError};
use serde_json::Value;
use sqlx::postgres::PgRow;
use sqlx::Row;
use stepwise_core::{RunId, RunStatus, StepId, StepStatus, WorkerId};
use uuid::Uuid;

/// A row of `latest_workflow.sql` or `list_workflows.sql`.
pub(super) fn workflow_from_row(row: &PgRow) -> Result<StoredWorkflow> {
    let spec: Value = row.try_get("spec")?;
    Ok(StoredWorkflow {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        spec: serde_json::from_value(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: row.try_get("created_at")?,
    })
}

/// A row of `get_run.sql` or `list_runs.sql`: the run's sequence (the list cursor) and
/// the run without its steps.
pub(super) fn run_from_row(row: &PgRow) -> Result<(i64, RunView)> {
    let status: String = row.try_get("status")?;
    let total: i32 = row.try_get("steps_total")?;
    let open: i32 = row.try_get("steps_open")?;
    Ok((
        row.try_get("seq")?,
        RunView {
            id: RunId(row.try_get("id")?),
            workflow: row.try_get("workflow")?,
            workflow_version: row.try_get("workflow_version")?,
            status: RunStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?,
            input: row.try_get("input")?,
            idempotency_key: row.try_get("idempotency_key")?,
            concurrency_key: row.try_get("concurrency_key")?,
            group: row.try_get("group_name")?,
            priority: row.try_get("priority")?,
            error: row.try_get("error")?,
            stop_reason: crate::StopReason::from_halt(row.try_get("halt")?)?,
            parent_run: row.try_get::<Option<Uuid>, _>("parent_run")?.map(RunId),
            parent_step: row.try_get("parent_step")?,
            schedule: row.try_get("schedule")?,
            scheduled_for: row.try_get("scheduled_for")?,
            created_at: row.try_get("created_at")?,
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            progress: Progress {
                done: i64::from(total - open),
                total: i64::from(total),
            },
            steps: vec![],
        },
    ))
}

/// A row of `run_attempts.sql`: the step it belongs to and the attempt.
pub(super) fn attempt_from_row(row: &PgRow) -> Result<(Uuid, AttemptView)> {
    Ok((
        row.try_get("step_id")?,
        AttemptView {
            number: row.try_get::<i32, _>("number")?.max(0) as u32,
            worker_id: row.try_get::<Option<Uuid>, _>("worker_id")?.map(WorkerId),
            started_at: row.try_get("started_at")?,
            finished_at: row.try_get("finished_at")?,
            outcome: row.try_get("outcome")?,
            error: row.try_get("error")?,
        },
    ))
}

/// A row of `run_steps.sql`: the step as shown, without its history or `after` (both
/// filled in from other rows), and the steps that depend on it.
pub(super) struct RunStepRow {
    pub step: StepView,
    pub dependents: Vec<StepId>,
}

impl RunStepRow {
    pub(super) fn from_row(row: &PgRow) -> Result<Self> {
        let status: String = row.try_get("status")?;
        let dependents: Vec<Uuid> = row.try_get("dependents")?;
        Ok(Self {
            step: StepView {
                id: StepId(row.try_get("id")?),
                name: row.try_get("name")?,
                compensates: row.try_get("compensates")?,
                after: Vec::new(),
                resource: row.try_get("resource")?,
                queue: row.try_get("queue")?,
                status: StepStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("step status {status:?}")))?
                    .public(),
                attempts: row.try_get::<i32, _>("attempt")?.max(0) as u32,
                max_attempts: row.try_get::<i32, _>("max_attempts")?.max(0) as u32,
                run_after: row.try_get("run_after")?,
                worker_id: row.try_get::<Option<Uuid>, _>("worker_id")?.map(WorkerId),
                started_at: row.try_get("started_at")?,
                finished_at: row.try_get("finished_at")?,
                output: row.try_get("output")?,
                error: row.try_get("error")?,
                waiting: waiting_view(row)?,
                history: Vec::new(),
                rate_key: row.try_get("rate_key")?,
                items: None,
            },
            dependents: dependents.into_iter().map(StepId).collect(),
        })
    }
}

/// What a waiting step waits for (`wait_kind` is set only while it waits).
fn waiting_view(row: &PgRow) -> Result<Option<crate::model::WaitingView>> {
    let Some(kind) = row.try_get::<Option<String>, _>("wait_kind")? else {
        return Ok(None);
    };
    let callback = kind == "callback";
    // A child-run step keeps its child's id where a signal step keeps its signal.
    let (signal, child) = if kind == crate::waiting::CHILD {
        let id: Option<String> = row.try_get("wait_signal")?;
        (
            None,
            id.and_then(|id| uuid::Uuid::parse_str(&id).ok())
                .map(stepwise_core::RunId),
        )
    } else {
        (row.try_get("wait_signal")?, None)
    };
    Ok(Some(crate::model::WaitingView {
        kind,
        signal,
        child,
        until: row.try_get("wait_until")?,
        attempt: callback
            .then(|| row.try_get::<i32, _>("attempt").map(|a| a.max(0) as u32))
            .transpose()?,
    }))
}
