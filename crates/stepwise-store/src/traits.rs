//! The storage seam, split by what each part owns.
//!
//! Every method is one database transaction that does all its invariant needs (state
//! change, event row, counters), so callers never compose transactions. Lease-gated
//! methods change nothing for a stale lease and say so in their answer.

use crate::model::*;
use crate::Result;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use std::time::Duration;
use stepwise_core::{Lease, RunId, ScheduleSpec, WorkerId, WorkflowSpec};

/// Workflow definitions.
#[async_trait]
pub trait WorkflowStore: Send + Sync {
    /// Validates and stores `spec`; a changed spec gets the next version, an
    /// unchanged one keeps its version (`changed = false`).
    async fn register_workflow(&self, spec: &WorkflowSpec) -> Result<WorkflowVersion>;
    /// The latest version (or the given one) of a workflow.
    async fn get_workflow(
        &self,
        name: &str,
        version: Option<i32>,
    ) -> Result<Option<StoredWorkflow>>;
    /// The latest version of every workflow.
    async fn list_workflows(&self) -> Result<Vec<StoredWorkflow>>;
    /// Every queue a registered workflow's steps use.
    async fn list_queues(&self) -> Result<Vec<QueueView>>;
}

/// Rate limits: one row per key, set by workflow files or by operators.
#[async_trait]
pub trait LimitStore: Send + Sync {
    /// Every key, by name, with its state and the steps waiting on it.
    async fn list_limits(&self) -> Result<Vec<LimitView>>;
    /// Sets a key's limit (creating the key), overriding the workflow files; it
    /// applies to the next claim.
    async fn set_limit(&self, setting: &LimitSetting) -> Result<LimitView>;
    /// Pauses a key until a time (database clock); `None` for an unknown key.
    async fn pause_limit(&self, key: &str, until: PauseUntil) -> Result<Option<LimitView>>;
    /// Ends a key's pause; `None` for an unknown key.
    async fn resume_limit(&self, key: &str) -> Result<Option<LimitView>>;
}

/// The items of `for_each` steps, which a run's view counts instead of listing.
#[async_trait]
pub trait ItemStore: Send + Sync {
    /// A page of the items of a run's `for_each` step, in index order, from index
    /// `from`; `None` when the run has no such step.
    async fn list_items(&self, request: &ItemsRequest) -> Result<Option<ItemPage>>;
}

/// Runs and groups.
#[async_trait]
pub trait RunStore: Send + Sync {
    /// Creates the batch's runs (and its group) in one transaction. A run whose
    /// (workflow, idempotency key) exists is not created again; its id is returned.
    async fn create_runs(&self, batch: RunBatch) -> Result<Vec<CreatedRun>>;
    /// A run with its steps and their attempt history.
    async fn get_run(&self, id: RunId) -> Result<Option<RunView>>;
    /// Runs, newest first (by database sequence), without their steps.
    async fn list_runs(&self, filter: RunFilter) -> Result<RunPage>;
    /// How many steps of `workflow`'s runs completed, and the span they ran in.
    async fn step_activity(&self, workflow: &str) -> Result<StepActivity>;
    /// Deletes up to `limit` terminal runs that finished more than `older_than` ago
    /// (database clock), with their steps, attempts and events; returns how many.
    async fn prune_runs(&self, older_than: Duration, limit: u32) -> Result<u64>;
    /// A group with its counts per run status.
    async fn get_group(&self, name: &str) -> Result<Option<GroupView>>;
    /// The names of the newest `limit` groups, newest first (by database sequence).
    async fn list_group_names(&self, limit: u32) -> Result<Vec<String>>;
    /// The captured logs of a step's finished attempts, oldest first (only `attempt`
    /// when given).
    async fn attempt_logs(
        &self,
        run: RunId,
        step: &str,
        attempt: Option<u32>,
    ) -> Result<Vec<AttemptLog>>;
}

/// The hot path: claiming steps and recording their outcomes.
#[async_trait]
pub trait StepStore: Send + Sync {
    /// Claims up to `limit` claimable steps: highest priority first, then oldest by
    /// database sequence, each under a fresh lease. Steps whose backoff has passed are
    /// made claimable first. A worker that is not alive claims nothing.
    async fn claim_steps(&self, request: &ClaimRequest) -> Result<Vec<ClaimedStep>>;
    /// Records successful attempts; unblocks dependents whose last dependency this
    /// was, finishes runs and groups whose last member this was.
    async fn complete_steps(&self, outcomes: &[StepSuccess]) -> Result<BatchReport>;
    /// [`StepStore::complete_steps`], and in the same transaction claims for
    /// `handoff.worker`, under fresh leases, steps these completions made claimable:
    /// at most one per offered slot, chosen by [`crate::model::assign_hand_offs`].
    /// A pipeline step then costs one transaction.
    async fn complete_and_hand_off(
        &self,
        outcomes: &[StepSuccess],
        handoff: &HandOff,
    ) -> Result<Completion>;
    /// Records one failed attempt: a retry after backoff, or the step fails and its
    /// run stops claiming and fails once nothing of it is running.
    async fn fail_step(&self, failure: &StepFailure) -> Result<FailOutcome>;
    /// Hands running steps back to `pending` without counting the attempt
    /// (graceful shutdown).
    async fn release_steps(&self, leases: &[Lease]) -> Result<BatchReport>;
    /// A counter that moves when another process may have made work claimable
    /// (PostgreSQL: LISTEN/NOTIFY on enqueue, release and reap; SQLite: the file's
    /// `data_version` changed). A hint to stop sleeping, never a promise: claimers
    /// still poll.
    async fn work_signal(&self) -> Result<tokio::sync::watch::Receiver<u64>>;
}

/// Steps that wait without a worker: sleeps, signals and callbacks (docs/design.md
/// "Steps that wait"). A waiting step holds no lease and is not claimable; it wakes in
/// the transaction of the signal or callback that ends its wait, or when any process's
/// waker finds its time passed (database clock).
#[async_trait]
pub trait WaitStore: Send + Sync {
    /// Lets go of a running step that now waits (fenced by its lease). Whatever
    /// already ends the wait (a due time, a signal in the mailbox, a callback that
    /// came while the action ran) ends it in this same transaction.
    async fn park_step(&self, request: &ParkRequest) -> Result<ParkOutcome>;
    /// A fresh callback token for a running attempt (fenced by its lease; `None` when
    /// the lease is not current). Only its hash is stored; a newer attempt's token
    /// replaces it, so an old attempt's token is refused.
    async fn issue_callback(&self, lease: Lease) -> Result<Option<String>>;
    /// Ends the attempt whose callback token this is, if that attempt is current.
    async fn complete_callback(&self, request: &CallbackRequest) -> Result<CallbackOutcome>;
    /// Stores a signal in a run's mailbox; a step of that run waiting for a signal of
    /// that name consumes the oldest unconsumed one in the same transaction.
    async fn send_signal(&self, request: &SignalRequest) -> Result<SignalOutcome>;
    /// Ends up to `limit` waits whose time passed: sleeps complete, signal waits fail
    /// for good, awaited callbacks fail their attempt (retried as usual). Each wait
    /// ends once, however many processes call this at once.
    async fn wake_steps(&self, limit: u32) -> Result<WakeReport>;
    /// Waiting steps now, per kind (`sleep`, `signal`, `callback`).
    async fn waiting_counts(&self) -> Result<Vec<(String, u64)>>;
}

/// Schedules: stored per workflow by `apply`, fired by every worker and server
/// process with no leader (docs/design.md "Schedules"). Each fire time creates at
/// most one run (idempotency key `schedule:NAME:FIRE_TIME`), whatever the number of
/// processes; time is the database clock.
#[async_trait]
pub trait ScheduleStore: Send + Sync {
    /// Makes the stored schedules of `workflow` exactly `schedules`: new ones and
    /// changed ones are due at their next fire time after now, unchanged ones keep
    /// their state (paused included), the others are removed. A name that another
    /// workflow's schedule has is refused (`InvalidInput`).
    async fn sync_schedules(
        &self,
        workflow: &str,
        schedules: &[ScheduleSpec],
    ) -> Result<ScheduleSync>;
    /// Fires up to `limit` due schedules: the fire times their catch-up policy keeps,
    /// oldest first, then each is due at its next fire time after now. A schedule is
    /// fired by one process at a time; the others pass it over.
    async fn fire_schedules(&self, limit: u32) -> Result<Vec<ScheduleFire>>;
    /// Every schedule, by name.
    async fn list_schedules(&self) -> Result<Vec<ScheduleView>>;
    /// Pauses or resumes a schedule (`None`: no such schedule). Fire times missed
    /// while paused follow its catch-up policy when it resumes.
    async fn set_schedule_paused(&self, name: &str, paused: bool) -> Result<Option<ScheduleView>>;
    /// One extra run now, for the fire time "now", whatever `overlap` says; it becomes
    /// the schedule's last fire (`None`: no such schedule).
    async fn trigger_schedule(&self, name: &str) -> Result<Option<ScheduleFire>>;
    /// A run for every fire time in `from..=to` (at most [`MAX_BACKFILL`]); fire
    /// times that already fired keep their run (`Existing`). `None`: no such schedule.
    async fn backfill_schedule(&self, backfill: &Backfill) -> Result<Option<Vec<ScheduleFire>>>;
}

/// Ending runs early and reopening them (docs/design.md "How a run ends early").
#[async_trait]
pub trait ControlStore: Send + Sync {
    /// Cancels a run: unstarted steps become `cancelled`, running steps have their
    /// leases revoked (their workers learn it through [`ControlStore::revoked_leases`]
    /// and stop them), and compensation starts once nothing of the run runs.
    async fn cancel_run(&self, request: &CancelRequest) -> Result<CancelOutcome>;
    /// Reopens a `failed`, `cancelled`, `timed_out` or `compensation_failed` run with
    /// a fresh attempt budget for the reset steps; completed upstream outputs and
    /// every old attempt are kept.
    async fn retry_run(&self, request: &RetryRequest) -> Result<RetryOutcome>;
    /// Times out up to `limit` runs whose deadline passed (database clock), like a
    /// cancel. Each deadline fires in exactly one transaction, however many workers
    /// call this at once; returns the runs this call timed out.
    async fn expire_runs(&self, limit: u32) -> Result<Vec<RunId>>;
    /// The leases of `worker`'s running steps that were revoked: the worker must stop
    /// those attempts and report them (any outcome write confirms the stop).
    async fn revoked_leases(&self, worker: WorkerId) -> Result<Vec<Lease>>;
    /// A counter that moves when a lease may have been revoked (PostgreSQL: NOTIFY
    /// on cancel and deadline). `None` when the backend has no such signal and
    /// workers poll [`ControlStore::revoked_leases`] instead.
    async fn revocation_signal(&self) -> Result<Option<tokio::sync::watch::Receiver<u64>>> {
        Ok(None)
    }
}

/// Flow control: concurrency keys, paused queues and resource locks.
#[async_trait]
pub trait FlowStore: Send + Sync {
    /// Every queue a workflow uses, with its depth.
    async fn queue_stats(&self) -> Result<Vec<QueueStats>>;
    /// Pauses or resumes a queue: a paused queue's steps are not claimed (running
    /// ones finish). Returns false for an unknown queue.
    async fn set_queue_paused(&self, queue: &str, paused: bool) -> Result<bool>;
    /// Every concurrency key with its limit, holders and waiters counted.
    async fn concurrency_keys(&self) -> Result<Vec<ConcurrencyKeyView>>;
    /// One key's line (`None` for a key no run ever had).
    async fn key_line(&self, key: &str) -> Result<Option<KeyLine>>;
    /// Sets a key's limit (creating the key if needed); raising it admits waiting
    /// runs in the same transaction.
    async fn set_key_limit(&self, key: &str, limit: u32) -> Result<ConcurrencyKeyView>;
    /// Takes a free (or expired) lock; a held one is refused, naming its holder.
    async fn acquire_lock(&self, request: &LockRequest) -> Result<LockOutcome>;
    /// Gives a lock back; only its token does.
    async fn release_lock(&self, name: &str, token: uuid::Uuid) -> Result<ReleaseOutcome>;
    /// Takes a lock away from whoever holds it, leaving a `lock.force_released`
    /// event with the reason; returns the holder it had.
    async fn force_release_lock(&self, name: &str, reason: &str) -> Result<Option<LockView>>;
    /// Locks held now (expired ones are not listed).
    async fn list_locks(&self) -> Result<Vec<LockView>>;
}

/// API tokens. Secrets are never stored: only their SHA-256, so a leaked database
/// does not leak working tokens.
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Creates a token; its secret is returned once.
    async fn create_token(&self, token: &NewToken) -> Result<CreatedToken>;
    /// The token a secret belongs to, if it is current (database clock).
    async fn verify_token(
        &self,
        secret: &str,
    ) -> Result<std::result::Result<TokenView, TokenRefusal>>;
    /// Every token, newest first, without secrets.
    async fn list_tokens(&self) -> Result<Vec<TokenView>>;
    /// Revokes a token; false when there is no such token.
    async fn revoke_token(&self, id: uuid::Uuid) -> Result<bool>;
}

/// Workers, heartbeats and the reaper.
#[async_trait]
pub trait WorkerStore: Send + Sync {
    async fn register_worker(&self, registration: &WorkerRegistration) -> Result<WorkerLease>;
    /// Extends the worker's lease, which covers every step it runs.
    async fn heartbeat(&self, worker: WorkerId) -> Result<Heartbeat>;
    /// Marks the worker stopped; steps it still holds are released.
    async fn deregister_worker(&self, worker: WorkerId) -> Result<BatchReport>;
    /// Declares dead every worker whose lease expired, except `caller`, and puts their
    /// running steps back (a reap counts as an attempt).
    async fn reap(&self, caller: WorkerId) -> Result<ReapReport>;
    async fn list_workers(&self) -> Result<Vec<WorkerView>>;
    /// Vacuums the tables that every claim and outcome inserts into and deletes from
    /// (PostgreSQL: the claimable set and the lease rows), so dead rows do not pile up
    /// between autovacuum's visits and slow every claim. Workers call it every few
    /// seconds; a vacuum already running elsewhere is skipped, not waited for.
    async fn vacuum_claim_tables(&self) -> Result<()> {
        Ok(())
    }
}

/// The event stream (transactional outbox).
#[async_trait]
pub trait EventStore: Send + Sync {
    /// Events after `query.after` in commit-safe order: an event that commits after a
    /// read is never behind that read's last cursor.
    async fn read_events(&self, query: &EventQuery) -> Result<Vec<Event>>;
    /// The cursor of the newest event readable now (`None` when there is none):
    /// reading after it yields only events that become readable later, so a
    /// follower can start "from now" without paging through the history.
    async fn latest_event_cursor(&self) -> Result<Option<EventCursor>> {
        Ok(self.newest_events(None, 1).await?.pop().map(|e| e.cursor))
    }
    /// The newest `limit` events readable now (of `run`, if given), oldest first:
    /// the tail of what `read_events` serves, without paging through the rest.
    async fn newest_events(&self, run: Option<RunId>, limit: u32) -> Result<Vec<Event>>;
}

/// The database clock, which decides every time, and its test seam.
#[async_trait]
pub trait ClockStore: Send + Sync {
    /// The time as the database sees it (offset included).
    async fn now(&self) -> Result<DateTime<Utc>>;
    /// Moves the database clock of this Stepwise schema forward, for every
    /// connection and process using it. For tests: lets them expire leases and
    /// backoffs without sleeping.
    async fn advance_clock(&self, by: Duration) -> Result<()>;
}

/// Schema management.
#[async_trait]
pub trait SchemaStore: Send + Sync {
    /// Creates or upgrades the schema under a lock; returns the version reached.
    async fn migrate(&self) -> Result<i64>;
    /// Fails with [`crate::StoreError::SchemaMismatch`] unless the schema is at the
    /// version this build expects.
    async fn check_schema(&self) -> Result<()>;
    /// Which backend this is (`sqlite` or `postgres`).
    fn backend(&self) -> &'static str;
}

/// Everything Stepwise stores.
pub trait Store:
    WorkflowStore
    + RunStore
    + ItemStore
    + LimitStore
    + StepStore
    + WaitStore
    + ScheduleStore
    + ControlStore
    + FlowStore
    + TokenStore
    + WorkerStore
    + EventStore
    + ClockStore
    + SchemaStore
{
}

impl<T> Store for T where
    T: WorkflowStore
        + RunStore
        + ItemStore
        + LimitStore
        + StepStore
        + WaitStore
        + ScheduleStore
        + ControlStore
        + FlowStore
        + TokenStore
        + WorkerStore
        + EventStore
        + ClockStore
        + SchemaStore
{
}
