//! Schedules (docs/design.md "Schedules"): what `apply` stores, what firing did, and
//! what the read side shows.

use chrono::{DateTime, Utc};
use serde::Serialize;
use stepwise_core::{RunId, RunStatus, ScheduleSpec};

/// What `sync_schedules` changed.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ScheduleSync {
    pub created: Vec<String>,
    /// Their spec changed: due again from their next fire time after now.
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// No longer in the file: they fire no more.
    pub removed: Vec<String>,
}

/// How one fire time ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FireOutcome {
    /// A run was created for it.
    Fired,
    /// `overlap = "skip"` and the previous run was not terminal.
    Skipped,
    /// It had fired before (a backfill or trigger of a time already fired): that run.
    Existing,
}

/// One fire time of a schedule.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleFire {
    pub schedule: String,
    pub fire_time: DateTime<Utc>,
    pub outcome: FireOutcome,
    pub run_id: Option<RunId>,
    /// How late it fired (database clock): now minus the fire time, in seconds.
    pub lag_seconds: f64,
}

/// A schedule as the read side shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduleView {
    pub spec: ScheduleSpec,
    pub paused: bool,
    /// The next fire time not yet fired.
    pub next_fire_at: Option<DateTime<Utc>>,
    pub last_fire_at: Option<DateTime<Utc>>,
    /// The newest runs it started, newest first.
    pub recent_runs: Vec<ScheduledRun>,
}

/// A run a schedule started.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScheduledRun {
    pub run_id: RunId,
    pub scheduled_for: DateTime<Utc>,
    pub status: RunStatus,
}

/// `schedules backfill NAME --from T --to T`.
#[derive(Clone, Debug)]
pub struct Backfill {
    pub schedule: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// The most fire times one backfill creates.
pub const MAX_BACKFILL: usize = 1000;
