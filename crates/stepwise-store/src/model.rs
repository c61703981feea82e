//! The values that cross the storage seam. No database type appears here.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use stepwise_core::{EventKind, Lease, RunId, RunStatus, StepId, StepStatus, WorkerId};

/// A registered workflow version.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WorkflowVersion {
    pub name: String,
    pub version: i32,
    /// False when the registered spec was identical to the latest version.
    pub changed: bool,
}

/// A stored workflow definition.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredWorkflow {
    pub name: String,
    pub version: i32,
    pub spec: stepwise_core::WorkflowSpec,
    pub created_at: DateTime<Utc>,
}

/// When a new run's first steps become claimable.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum StartAt {
    #[default]
    Now,
    /// After this long on the database clock.
    After(Duration),
    /// At this instant.
    At(DateTime<Utc>),
}

/// A run to create.
#[derive(Clone, Debug)]
pub struct NewRun {
    pub workflow: String,
    pub input: Value,
    pub idempotency_key: Option<String>,
    pub concurrency_key: Option<String>,
    pub priority: i32,
    pub start: StartAt,
}

impl NewRun {
    /// A run of `workflow` with `input` and no options.
    pub fn new(workflow: impl Into<String>, input: Value) -> Self {
        Self {
            workflow: workflow.into(),
            input,
            idempotency_key: None,
            concurrency_key: None,
            priority: 0,
            start: StartAt::Now,
        }
    }

    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    pub fn start(mut self, start: StartAt) -> Self {
        self.start = start;
        self
    }
}

/// Runs created in one transaction, optionally as one sealed group.
#[derive(Clone, Debug, Default)]
pub struct RunBatch {
    pub group: Option<String>,
    pub runs: Vec<NewRun>,
}

/// The answer for one run of a batch, in the batch's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CreatedRun {
    pub id: RunId,
    /// False when the idempotency key was used before and `id` is the existing run.
    pub created: bool,
}

/// Ask for up to `limit` steps from `queues`, tried in the order given.
#[derive(Clone, Debug)]
pub struct ClaimRequest {
    pub worker: WorkerId,
    pub queues: Vec<String>,
    pub limit: u32,
}

/// A step handed to a worker under a fresh lease.
#[derive(Clone, Debug)]
pub struct ClaimedStep {
    pub lease: Lease,
    pub run_id: RunId,
    pub workflow: String,
    pub workflow_version: i32,
    pub step: String,
    pub queue: String,
    /// 1-based number of this attempt.
    pub attempt: u32,
    pub max_attempts: u32,
    pub input: Value,
    /// The claiming worker's lease expiry (database clock); heartbeats extend it.
    pub lease_expires_at: DateTime<Utc>,
    /// The outputs of the steps this one depends on, by step name.
    pub dependency_outputs: serde_json::Map<String, Value>,
    /// Set when this step is a compensation: what it undoes.
    pub compensating: Option<Compensating>,
}

/// The prefix of a compensation step's name: `compensate:store` undoes `store`. A
/// colon is not allowed in step names, so it cannot clash with a workflow's step.
pub const COMPENSATION_PREFIX: &str = "compensate:";

/// What a compensation undoes (docs/design.md "A step, from claim to outcome": the `compensating` part
/// of the context).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Compensating {
    /// The forward step being undone.
    pub step: String,
    /// That step's output.
    pub output: Value,
    /// Why the run is being undone (the failure, cancellation or deadline).
    pub error: Option<String>,
}

/// A successful attempt to record.
#[derive(Clone, Debug)]
pub struct StepSuccess {
    pub lease: Lease,
    pub output: Value,
    /// The attempt's captured output (already truncated by the executor).
    pub log: Option<String>,
}

/// A failed attempt to record.
#[derive(Clone, Debug)]
pub struct StepFailure {
    pub lease: Lease,
    pub error: String,
    /// The attempt's captured output (already truncated by the executor).
    pub log: Option<String>,
    /// False for errors that must not be retried (exit 64, HTTP 4xx, permanent).
    pub retryable: bool,
}

/// What a batch of lease-gated writes did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BatchReport {
    /// Steps whose outcome was recorded.
    pub accepted: Vec<StepId>,
    /// Writes refused because their lease was no longer current (fencing).
    pub refused: Vec<Lease>,
    /// Runs that reached a terminal state in this transaction.
    pub finished_runs: Vec<(RunId, RunStatus)>,
}

/// What recording a failed attempt did.
#[derive(Clone, Debug, PartialEq)]
pub enum FailOutcome {
    /// Another attempt is due at `run_after` (database clock).
    Retrying {
        attempt: u32,
        run_after: DateTime<Utc>,
    },
    /// Attempts are exhausted (or the error was permanent): the step failed.
    Failed,
    /// The lease was no longer current; nothing changed.
    Refused,
    /// The run was cancelled or timed out while the attempt ran (its lease was
    /// revoked): the failure is not recorded as such and the step is cancelled.
    Stopped,
}

/// Cancel a run (`stepwise runs cancel`).
#[derive(Clone, Debug)]
pub struct CancelRequest {
    pub run: RunId,
    /// Undo the completed steps (the default); false for `--no-compensate`, which
    /// also stops a compensation in progress.
    pub compensate: bool,
}

/// What cancelling did.
#[derive(Clone, Debug, PartialEq)]
pub enum CancelOutcome {
    NotFound,
    /// Unstarted steps were cancelled and running ones had their leases revoked;
    /// `status` is the run's status after the transaction (still `running` while
    /// revoked steps wind down).
    Cancelled {
        status: RunStatus,
        revoked: u32,
    },
    /// The run had already ended; nothing changed.
    AlreadyEnded(RunStatus),
    /// The run is compensating and the caller did not give up compensation.
    Compensating,
}

/// Reopen a run that ended badly (`stepwise runs retry`).
#[derive(Clone, Debug)]
pub struct RetryRequest {
    pub run: RunId,
    /// Reset this step and everything downstream of it (besides every step that
    /// did not complete). Not allowed for a `compensation_failed` run, whose retry
    /// resumes its compensation.
    pub from: Option<String>,
}

/// What retrying did.
#[derive(Clone, Debug, PartialEq)]
pub enum RetryOutcome {
    NotFound,
    /// The run is `running` (or `compensating`) again; `steps` were reset, in
    /// workflow order.
    Retried {
        status: RunStatus,
        steps: Vec<String>,
    },
    /// Only `failed`, `cancelled`, `timed_out` and `compensation_failed` runs can be
    /// retried.
    NotRetryable(RunStatus),
}

/// A worker announcing itself.
#[derive(Clone, Debug)]
pub struct WorkerRegistration {
    /// Human-readable, e.g. `host:pid`.
    pub name: String,
    pub queues: Vec<String>,
    /// How long a heartbeat keeps the worker (and its steps' leases) alive.
    pub lease: Duration,
}

/// A registered worker's identity and lease.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkerLease {
    pub id: WorkerId,
    pub expires_at: DateTime<Utc>,
}

/// The answer to a heartbeat.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Heartbeat {
    Alive {
        expires_at: DateTime<Utc>,
    },
    /// The worker was reaped (or deregistered): its leases are void; it must kill
    /// its children and register again under a new id.
    Reaped,
}

/// What a reaper pass did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReapReport {
    pub workers: Vec<WorkerId>,
    /// Steps put back to `pending` for another attempt.
    pub steps_retried: Vec<StepId>,
    /// Steps whose last attempt was the reaped one.
    pub steps_failed: Vec<StepId>,
    /// Orphaned (or overdue revoked) steps left for a later pass because another
    /// session held them or a row their reaping needed: a reaper never waits on a
    /// lock (PostgreSQL; always empty on SQLite, whose writers take turns).
    pub steps_skipped: Vec<StepId>,
}

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
    /// Finished attempts, oldest first; the running attempt is the step itself.
    pub history: Vec<AttemptView>,
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

/// Who holds a resource lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum HolderKind {
    /// A running step (the holder id is the step id).
    Step,
    /// A client of the HTTP API.
    Api,
    /// `stepwise locks acquire`.
    Cli,
}

impl HolderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            HolderKind::Step => "step",
            HolderKind::Api => "api",
            HolderKind::Cli => "cli",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "step" => Some(HolderKind::Step),
            "api" => Some(HolderKind::Api),
            "cli" => Some(HolderKind::Cli),
            _ => None,
        }
    }
}

/// Take a resource lock for an operator or a client.
#[derive(Clone, Debug)]
pub struct LockRequest {
    pub key: String,
    pub ttl: Duration,
    pub holder_kind: HolderKind,
    /// Who asks, e.g. `cli:alice@host`.
    pub holder_id: String,
}

/// A resource lock as stored (the token is only shown to whoever acquired it).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LockView {
    /// The name steps give as their `resource` and clients as `/v1/locks/{key}`.
    pub key: String,
    pub holder_kind: HolderKind,
    pub holder_id: String,
    pub acquired_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// What asking for a lock did.
#[derive(Clone, Debug, PartialEq)]
pub enum LockOutcome {
    /// Taken: release it with `token`.
    Acquired { lock: LockView, token: uuid::Uuid },
    /// Someone holds it (a held lock is refused even to its holder).
    Held(LockView),
}

/// What releasing a lock did.
#[derive(Clone, Debug, PartialEq)]
pub enum ReleaseOutcome {
    Released,
    /// Nobody holds it (it may have expired and been swept).
    NotHeld,
    /// It is held under another token; nothing changed.
    WrongToken(LockView),
}

/// What an API token may do (docs/design.md "Outside interfaces": read < write < admin).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TokenScope {
    /// Every GET, `/metrics`, the OpenAPI document.
    Read,
    /// Also start, cancel and retry runs and groups.
    Write,
    /// Everything: workflows, locks, queues, tokens.
    Admin,
}

impl TokenScope {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenScope::Read => "read",
            TokenScope::Write => "write",
            TokenScope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(TokenScope::Read),
            "write" => Some(TokenScope::Write),
            "admin" => Some(TokenScope::Admin),
            _ => None,
        }
    }
}

/// A token to create.
#[derive(Clone, Debug)]
pub struct NewToken {
    /// What it is for, for people (`ci-deploys`).
    pub name: String,
    pub scope: TokenScope,
    /// Expires this long after creation (database clock); never when `None`.
    pub expires_in: Option<Duration>,
}

/// A token as stored: never its secret, only a hash of it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenView {
    pub id: uuid::Uuid,
    pub name: String,
    pub scope: TokenScope,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A new token and its secret, which is shown this once and never stored.
#[derive(Clone, Debug)]
pub struct CreatedToken {
    pub token: TokenView,
    pub secret: String,
}

/// Why a presented secret was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenRefusal {
    Unknown,
    Expired,
    Revoked,
}
