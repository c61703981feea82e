//! Row types shared by several SQLite queries, read by column name.

use super::opt_time;
use crate::model::{StepView, WaitingView};
use crate::{Result, StoreError};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;
use stepwise_core::{Lease, LeaseToken, StepId, StepStatus, WorkerId};
use uuid::Uuid;

/// A running step's lease: the `id, lease_token` columns of a `step` row.
pub(super) fn lease_from_row(row: &SqliteRow) -> Result<Lease> {
    Ok(Lease {
        step_id: StepId(row.try_get("id")?),
        token: LeaseToken(row.try_get("lease_token")?),
    })
}

/// A row of `run_steps.sql` or `list_items.sql`: the step, and its dependents.
pub(super) fn step_view(s: &SqliteRow) -> Result<(StepView, Vec<StepId>)> {
    let status: String = s.try_get("status")?;
    let children: String = s.try_get("dependents")?;
    let view = StepView {
        id: StepId(s.try_get("id")?),
        name: s.try_get("name")?,
        compensates: s.try_get("compensates")?,
        after: Vec::new(),
        resource: s.try_get("resource")?,
        queue: s.try_get("queue")?,
        status: StepStatus::parse(&status)
            .ok_or_else(|| StoreError::Corrupt(format!("step status {status:?}")))?
            .public(),
        attempts: s.try_get::<i64, _>("attempt")?.max(0) as u32,
        max_attempts: s.try_get::<i64, _>("max_attempts")?.max(0) as u32,
        run_after: opt_time(s.try_get("run_after")?)?,
        worker_id: s.try_get::<Option<Uuid>, _>("worker_id")?.map(WorkerId),
        started_at: opt_time(s.try_get("started_at")?)?,
        finished_at: opt_time(s.try_get("finished_at")?)?,
        output: s.try_get("output")?,
        error: s.try_get("error")?,
        waiting: waiting_view(s)?,
        history: Vec::new(),
        rate_key: s.try_get("rate_key")?,
        items: None,
    };
    Ok((view, super::fan_out::parse_dependents(&children)?))
}

/// What a waiting step waits for (`wait_kind` is set only while it waits).
fn waiting_view(row: &SqliteRow) -> Result<Option<WaitingView>> {
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
    Ok(Some(WaitingView {
        kind,
        signal,
        child,
        until: opt_time(row.try_get("wait_until")?)?,
        attempt: callback
            .then(|| row.try_get::<i64, _>("attempt").map(|a| a.max(0) as u32))
            .transpose()?,
    }))
}
