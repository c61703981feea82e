//! The values that cross the storage seam. No database type appears here.
//!
//! Split by what a value is for: what callers ask the store to do and what it
//! answers (here), what the read side shows (`views`), and resource locks and API
//! tokens (`access`).

mod access;
mod handoff;
mod schedule;
mod views;
mod wait;

pub use access::*;
pub use handoff::*;
pub use schedule::*;
pub use views::*;
pub use wait::*;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use stepwise_core::{Lease, RunId, RunStatus, StepId, WorkerId};

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
#[derive(Clone, Debug, PartialEq)]
pub struct NewRun {
    pub workflow: String,
    pub input: Value,
    pub idempotency_key: Option<String>,
    pub concurrency_key: Option<String>,
    pub priority: i32,
    pub start: StartAt,
    /// For a child run: the run and step that start it.
    pub parent: Option<ParentRef>,
}

/// The run and step (`STEP` or `STEP[i]`) a child run belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParentRef {
    pub run: RunId,
    pub step: String,
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
            parent: None,
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
    /// Set when this step is an item of a `for_each` step (`STEP[i]`).
    pub item: Option<StepItem>,
}

/// The element of a `for_each` array an item step runs for: `item` and
/// `item_index` in its context.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StepItem {
    pub index: u32,
    pub value: Value,
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
    /// Back-pressure: the service asked to be called again after this long (exit 75
    /// with `retry_after`, HTTP 429/503 with `Retry-After`). The retry waits that
    /// long, and the step's rate limit key, if any, is paused until then.
    pub retry_after: Option<std::time::Duration>,
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
