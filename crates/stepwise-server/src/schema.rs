//! The bodies the API answers with that are not store values themselves: list
//! pages and small acknowledgements. Handlers build these (not ad-hoc JSON), so the
//! OpenAPI document describes exactly what is sent.

use chrono::{DateTime, Utc};
use serde::Serialize;
use stepwise_core::{RunId, RunStatus};
use stepwise_store::explain::RunExplanation;
use stepwise_store::{
    AttemptLog, ConcurrencyKeyView, Event, GroupView, LockView, QueueStats, RunView, ScheduleFire,
    ScheduleSync, ScheduleView, SignalDelivery, StoredWorkflow, WorkerView,
};
use utoipa::ToSchema;

/// Every error: a status, and this body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, snake_case: `not_found`, `invalid_input`, `lock_held`, ...
    pub code: String,
    /// A sentence for people naming what is wrong.
    pub message: String,
}

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    /// The database's clock, which decides every lease, backoff and deadline.
    pub database_time: DateTime<Utc>,
}

/// One page of runs, newest first, without their steps.
#[derive(Serialize, ToSchema)]
pub struct RunPage {
    pub runs: Vec<RunView>,
    /// Pass back as `cursor` for the next page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Cancelled {
    pub id: RunId,
    /// The run's status right after the request: `cancelled`; or, when completed
    /// steps are to be undone, `running` while its running steps stop and then
    /// `compensating`.
    pub status: RunStatus,
    /// How many running steps are being stopped.
    pub stopping_steps: u32,
}

#[derive(Serialize, ToSchema)]
pub struct Retried {
    pub id: RunId,
    pub status: RunStatus,
    /// The steps reset to run again, in workflow order.
    pub steps: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Logs {
    /// One entry per attempt (or only the one asked for), oldest first.
    pub logs: Vec<AttemptLog>,
}

#[derive(Serialize, ToSchema)]
pub struct Workflows {
    /// The latest version of each workflow.
    pub workflows: Vec<StoredWorkflow>,
}

/// A registered workflow file: its version and what changed in its schedules.
#[derive(Serialize, ToSchema)]
pub struct AppliedWorkflow {
    pub name: String,
    pub version: i32,
    /// False when the registered spec was identical to the latest version.
    pub changed: bool,
    pub schedules: SyncedSchedules,
}

/// What applying a workflow file did to its schedules, by name.
#[derive(Serialize, ToSchema)]
pub struct SyncedSchedules {
    pub created: Vec<String>,
    /// Their spec changed: due again from their next fire time.
    pub updated: Vec<String>,
    pub unchanged: Vec<String>,
    /// No longer in the file: they fire no more.
    pub removed: Vec<String>,
}

impl From<ScheduleSync> for SyncedSchedules {
    fn from(s: ScheduleSync) -> Self {
        Self {
            created: s.created,
            updated: s.updated,
            unchanged: s.unchanged,
            removed: s.removed,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Schedules {
    /// By name.
    pub schedules: Vec<ScheduleView>,
}

#[derive(Serialize, ToSchema)]
pub struct Backfilled {
    /// Every fire time in the span, oldest first.
    pub fires: Vec<ScheduleFire>,
}

#[derive(Serialize, ToSchema)]
pub struct Groups {
    /// Newest first.
    pub groups: Vec<GroupView>,
}

#[derive(Serialize, ToSchema)]
pub struct CreatedGroup {
    pub group: GroupView,
    /// The runs created, in the order they were sent.
    pub runs: Vec<RunId>,
}

#[derive(Serialize, ToSchema)]
pub struct Queues {
    pub queues: Vec<QueueStats>,
    pub concurrency_keys: Vec<ConcurrencyKeyView>,
}

#[derive(Serialize, ToSchema)]
pub struct Workers {
    pub workers: Vec<WorkerView>,
}

#[derive(Serialize, ToSchema)]
pub struct Locks {
    pub locks: Vec<LockView>,
}

#[derive(Serialize, ToSchema)]
pub struct AcquiredLock {
    pub key: String,
    /// Release with `DELETE /v1/locks/{key}?token=`.
    pub token: uuid::Uuid,
    /// On the database clock; the lock is free after this unless released sooner.
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct ReleasedLock {
    pub key: String,
    /// Always true: a lock that was not released is an error.
    pub released: bool,
}

#[derive(Serialize, ToSchema)]
pub struct ForceReleased {
    pub key: String,
    /// The lock as it was when it was taken away.
    pub released: LockView,
}

/// One page of lifecycle events, oldest first.
#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<Event>,
    /// Pass back as `after` for the events that follow (the same cursor when there
    /// were none).
    pub next: Option<String>,
}

/// `explain` for a run: a store value, named here so the document can refer to it.
pub type Explanation = RunExplanation;

/// A signal in a run's mailbox.
#[derive(Serialize, ToSchema)]
pub struct Signalled {
    /// `delivered`, or `duplicate` when a signal with this id was delivered before
    /// (this is that first delivery).
    pub outcome: String,
    pub run_id: RunId,
    pub name: String,
    /// The sender's id, if one was given.
    pub id: Option<String>,
    /// The mailbox's order.
    pub seq: i64,
    /// The waiting step that took it, if one has.
    pub consumed_by: Option<String>,
    /// Whether the run was created for it (`start`).
    pub run_created: bool,
}

impl Signalled {
    pub fn new(delivery: SignalDelivery, duplicate: bool) -> Self {
        Self {
            outcome: if duplicate { "duplicate" } else { "delivered" }.into(),
            run_id: delivery.run_id,
            name: delivery.name,
            id: delivery.id,
            seq: delivery.seq,
            consumed_by: delivery.consumed_by,
            run_created: delivery.run_created,
        }
    }
}

/// How a callback ended its attempt.
#[derive(Serialize, ToSchema)]
pub struct CallbackDone {
    /// `completed` (the step has the output), `retrying` (the attempt failed;
    /// another starts at `run_after`) or `failed` (the step failed for good).
    pub outcome: String,
    pub run_id: RunId,
    pub step: String,
    /// When the next attempt starts (`retrying`), on the database clock.
    pub run_after: Option<DateTime<Utc>>,
}

impl CallbackDone {
    pub fn new(outcome: &str, run_id: RunId, step: String) -> Self {
        Self {
            outcome: outcome.into(),
            run_id,
            step,
            run_after: None,
        }
    }
}
