//! What the read side shows: workers, runs with their steps and attempts, groups,
//! events, queues and concurrency keys.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use stepwise_core::{EventKind, RunId, RunStatus, StepId, StepStatus, WorkerId};

/// A worker as shown by `stepwise workers`.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkerView {
    pub id: WorkerId,
    pub name: String,
    pub queues: Vec<String>,
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub heartbeat_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub running_steps: i64,
}

/// Steps done out of steps in all.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Progress {
    pub done: i64,
    pub total: i64,
}

/// A run with its steps and their attempts.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunView {
    pub id: RunId,
    pub workflow: String,
    pub workflow_version: i32,
    pub status: RunStatus,
    pub input: Value,
    pub idempotency_key: Option<String>,
    pub concurrency_key: Option<String>,
    pub group: Option<String>,
    pub priority: i32,
    pub error: Option<String>,
    /// Why the run stopped early (`failed`, `timed_out`, `cancelled`), also while it
    /// compensates and after: `compensated` and `compensation_failed` do not say.
    /// Absent while nothing stopped it.
    pub stop_reason: Option<crate::StopReason>,
    /// For a child run: the run and step (`STEP` or `STEP[i]`) that started it.
    pub parent_run: Option<RunId>,
    pub parent_step: Option<String>,
    /// The schedule that started it, and the fire time it ran for.
    pub schedule: Option<String>,
    pub scheduled_for: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub progress: Progress,
    /// In workflow order. Empty in list pages.
    pub steps: Vec<StepView>,
}

/// One step of a run.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepView {
    pub id: StepId,
    pub name: String,
    /// For a compensation step: the forward step it undoes.
    pub compensates: Option<String>,
    /// The steps it runs after, by name (its edges in the run's graph; a
    /// compensation runs after the one undone after it).
    pub after: Vec<String>,
    /// The resource lock the step holds while it runs (its template rendered).
    pub resource: Option<String>,
    pub queue: String,
    /// As people see it: `scheduled` is shown as `pending` with `run_after`.
    pub status: StepStatus,
    /// Attempts started so far (a released attempt is not counted).
    pub attempts: u32,
    pub max_attempts: u32,
    pub run_after: Option<DateTime<Utc>>,
    pub worker_id: Option<WorkerId>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub output: Option<Value>,
    pub error: Option<String>,
    /// What a `waiting` step waits for, and until when.
    pub waiting: Option<super::WaitingView>,
    /// Finished attempts, oldest first; the running attempt is the step itself.
    pub history: Vec<AttemptView>,
    /// The rate limit key its starts are admitted under (rendered).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_key: Option<String>,
    /// For an expanded `for_each` step: its items by status (the items themselves
    /// are paged by [`crate::ItemStore::list_items`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub items: Option<ItemCounts>,
}

/// How many items of an expanded step are in each state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemCounts {
    pub total: u32,
    /// Not started yet (including those waiting for a place under `max_parallel`).
    pub pending: u32,
    pub running: u32,
    pub waiting: u32,
    pub completed: u32,
    pub failed: u32,
    /// Skipped or cancelled with their run.
    pub stopped: u32,
}

impl ItemCounts {
    /// Counts one item in `status` (as stored).
    pub fn add(&mut self, status: StepStatus, n: u32) {
        self.total += n;
        match status {
            StepStatus::Blocked | StepStatus::Pending | StepStatus::Scheduled => self.pending += n,
            StepStatus::Running => self.running += n,
            StepStatus::Waiting => self.waiting += n,
            StepStatus::Completed => self.completed += n,
            StepStatus::Failed => self.failed += n,
            _ => self.stopped += n,
        }
    }

    /// Items that reached a terminal state.
    pub fn done(&self) -> u32 {
        self.completed + self.failed + self.stopped
    }
}

/// Which items [`crate::ItemStore::list_items`] lists.
#[derive(Clone, Debug)]
pub struct ItemsRequest {
    pub run: RunId,
    /// The `for_each` step's name.
    pub step: String,
    /// The first index listed.
    pub from: u32,
    pub limit: u32,
}

/// A page of items.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ItemPage {
    pub counts: ItemCounts,
    /// In index order; each named `STEP[i]`.
    pub items: Vec<StepView>,
    /// The `from` of the next page, when there is one.
    pub next: Option<u32>,
}

/// Fills each step's `after` from every step's dependents (how the graph is
/// stored), keeping workflow order.
pub(crate) fn link_steps(steps: &mut [StepView], dependents: &[Vec<StepId>]) {
    let names: std::collections::HashMap<StepId, usize> =
        steps.iter().enumerate().map(|(i, s)| (s.id, i)).collect();
    for (from, children) in dependents.iter().enumerate() {
        let name = steps[from].name.clone();
        for child in children {
            if let Some(&i) = names.get(child) {
                steps[i].after.push(name.clone());
            }
        }
    }
}

/// One finished attempt.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptView {
    pub number: u32,
    pub worker_id: Option<WorkerId>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: DateTime<Utc>,
    /// `completed`, `failed`, `released`, `reaped` or `cancelled`.
    pub outcome: String,
    pub error: Option<String>,
}

/// Filters for listing runs, newest first.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    pub status: Option<RunStatus>,
    pub workflow: Option<String>,
    pub group: Option<String>,
    /// Only the child runs of this run.
    pub parent: Option<RunId>,
    /// At most this many (all when `None`).
    pub limit: Option<u32>,
    /// Continue after the page that returned this cursor.
    pub cursor: Option<String>,
}

/// One page of runs (without their steps).
#[derive(Clone, Debug)]
pub struct RunPage {
    pub runs: Vec<RunView>,
    /// Pass back as `RunFilter::cursor` for the next page; `None` at the end.
    pub next_cursor: Option<String>,
}

/// A group and its counts.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupView {
    pub name: String,
    pub total: i64,
    pub remaining: i64,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Runs per status.
    pub counts: std::collections::BTreeMap<String, i64>,
}

/// An opaque position in the event stream. On PostgreSQL it carries the writing
/// transaction's id as well as the sequence number (docs/design.md invariant 10).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct EventCursor(pub String);

impl std::fmt::Display for EventCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One lifecycle event.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    pub cursor: EventCursor,
    pub kind: EventKind,
    pub run_id: Option<RunId>,
    pub step: Option<String>,
    pub group: Option<String>,
    pub at: DateTime<Utc>,
    pub data: Value,
}

/// Which events to read.
#[derive(Clone, Debug)]
pub struct EventQuery {
    pub after: Option<EventCursor>,
    pub run: Option<RunId>,
    pub limit: u32,
}

impl Default for EventQuery {
    fn default() -> Self {
        Self {
            after: None,
            run: None,
            limit: 1000,
        }
    }
}

/// A queue some registered workflow uses.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QueueView {
    pub name: String,
    pub paused: bool,
}

/// The captured output of one attempt.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptLog {
    pub number: u32,
    pub outcome: String,
    pub log: Option<String>,
}

/// When a workflow's steps ran: for measuring throughput from the database's own
/// timestamps (`stepwise bench`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct StepActivity {
    pub completed: i64,
    pub first_started: Option<DateTime<Utc>>,
    pub last_finished: Option<DateTime<Utc>>,
}

/// A queue's depth, as `stepwise queues` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QueueStats {
    pub name: String,
    pub paused: bool,
    /// Claimable now (backoffs and delayed starts not included).
    pub pending: i64,
    /// Waiting out a backoff or a delayed start.
    pub scheduled: i64,
    pub running: i64,
    /// When the run of the oldest claimable step was created (database clock): how
    /// long the queue's oldest work has existed.
    pub oldest_pending_since: Option<DateTime<Utc>>,
}

/// A concurrency key: its limit and who holds or waits for its slots.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConcurrencyKeyView {
    pub key: String,
    pub limit: u32,
    /// Runs holding a slot.
    pub active: i64,
    /// Runs waiting for one.
    pub waiting: i64,
    /// The limit was set by an operator (`queues set-limit`), so workflows no longer
    /// change it.
    pub limit_set: bool,
}

/// A concurrency key's line: the runs holding its slots and the runs waiting, oldest
/// first (by the sequence they joined the line with).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct KeyLine {
    pub key: String,
    pub limit: u32,
    pub holders: Vec<RunId>,
    pub waiting: Vec<RunId>,
}

/// A rate limit key as `limits list` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LimitView {
    pub key: String,
    /// Starts per `per_ms`, on average, and at most `burst` at once.
    pub limit: u32,
    pub per_ms: u64,
    pub burst: u32,
    /// Set by `limits set`: workflow files no longer change it.
    pub overridden: bool,
    pub paused_until: Option<DateTime<Utc>>,
    /// Starts admitted so far.
    pub admitted: u64,
    /// Claimable steps waiting on the key now.
    pub waiting: u64,
    /// When the key admits its next start (database clock); `None`: now.
    pub next_start: Option<DateTime<Utc>>,
}

/// `limits set KEY --limit N --per D [--burst B]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LimitSetting {
    pub key: String,
    pub limit: u32,
    pub per_ms: u64,
    pub burst: u32,
}

/// How long `limits pause` pauses a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseUntil {
    At(DateTime<Utc>),
    /// From the database's now.
    For(std::time::Duration),
}
