//! Steps that wait without a worker (docs/design.md "Steps that wait"): what a worker
//! asks when it lets go of a step that sleeps, waits for a signal or awaits its
//! callback, and what signals and callbacks answer.

use super::NewRun;
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;
use stepwise_core::{Lease, RunId, RunStatus, StepId};

/// What a running step waits for once its worker lets go of it.
#[derive(Clone, Debug, PartialEq)]
pub enum WaitFor {
    /// Completes (output `null`) when the time comes, by the database clock.
    Sleep(SleepUntil),
    /// Completes with the data of the oldest unconsumed signal of this name sent to
    /// the run; fails for good when `timeout` (counted from now) passes first.
    Signal {
        name: String,
        timeout: Option<Duration>,
    },
    /// Ends when this attempt's callback token is used; `timeout` is the attempt's,
    /// counted from when the attempt started, and its expiry is a retryable error.
    Callback { timeout: Option<Duration> },
    /// Starts (or finds again) the step's child run and ends with its outcome: the
    /// outputs of its last steps, or a failure naming it.
    Child(ChildRun),
}

/// The child run a `run = { workflow, input? }` step starts (its input rendered).
#[derive(Clone, Debug, PartialEq)]
pub struct ChildRun {
    pub workflow: String,
    pub input: Value,
}

/// When a sleep ends.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SleepUntil {
    /// This long after the database's now.
    After(Duration),
    /// At this time (already past: the step completes at once).
    At(DateTime<Utc>),
}

/// Park a running step: its lease ends and it waits in the `waiting` state.
#[derive(Clone, Debug)]
pub struct ParkRequest {
    pub lease: Lease,
    pub wait: WaitFor,
}

/// What parking did.
#[derive(Clone, Debug, PartialEq)]
pub enum ParkOutcome {
    /// The step waits, holding no lease, until `until` at the latest (`None`: no
    /// time limit).
    Waiting { until: Option<DateTime<Utc>> },
    /// Nothing to wait for: a sleep already due, a signal already in the mailbox, or
    /// a callback whose attempt's timeout already passed (then the attempt failed and
    /// is retried or the step failed). Settled in this transaction.
    Completed,
    /// The lease was no longer current; nothing changed. Also the answer when the
    /// callback came while the action still ran: it ended the attempt then.
    Refused,
    /// The run was cancelled or timed out meanwhile: the step is cancelled.
    Stopped,
}

/// Which run a signal goes to.
// One per signal sent, never held in bulk: the size of a `NewRun` inline is fine.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum SignalTarget {
    Run(RunId),
    /// The run of `workflow` with this idempotency key. With `start`, a missing run
    /// is created (in the same transaction as the signal) from this request; its
    /// `workflow` and `idempotency_key` must be those of the target.
    Key {
        workflow: String,
        idempotency_key: String,
        start: Option<NewRun>,
    },
}

/// `stepwise signal`, `POST /v1/runs/{id}/signals/{name}`, `POST /v1/signals`.
#[derive(Clone, Debug)]
pub struct SignalRequest {
    pub target: SignalTarget,
    pub name: String,
    pub data: Value,
    /// A sender's id: a second signal with the same id to the same run is not
    /// stored again (the first delivery is answered).
    pub id: Option<String>,
}

/// What sending a signal did.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SignalOutcome {
    /// Stored in the run's mailbox (and consumed at once when `consumed_by` names
    /// the waiting step that took it).
    Delivered(SignalDelivery),
    /// A signal with this id was delivered before: this is that delivery.
    Duplicate(SignalDelivery),
    /// No such run (with `SignalTarget::Key` and no `start`: no run has that key).
    UnknownRun,
    /// The run is terminal: nothing will ever consume the signal.
    RunFinished { run_id: RunId, status: RunStatus },
}

/// A signal in a run's mailbox.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SignalDelivery {
    pub run_id: RunId,
    pub name: String,
    pub id: Option<String>,
    /// The mailbox's order (a database sequence).
    pub seq: i64,
    /// The step that consumed it, if one has.
    pub consumed_by: Option<String>,
    /// Whether the run was created by this request (`start`).
    pub run_created: bool,
}

/// How a callback ends its attempt.
#[derive(Clone, Debug)]
pub enum CallbackResult {
    Output(Value),
    Error { message: String, permanent: bool },
}

/// `stepwise complete TOKEN`, `POST /v1/callbacks/{token}`.
#[derive(Clone, Debug)]
pub struct CallbackRequest {
    /// The secret as handed to the action; only its hash is stored.
    pub token: String,
    pub result: CallbackResult,
}

/// What a callback did.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CallbackOutcome {
    /// The step completed with the output.
    Completed { run_id: RunId, step: String },
    /// The attempt failed: another one is due at `run_after`.
    Retrying {
        run_id: RunId,
        step: String,
        run_after: DateTime<Utc>,
    },
    /// The attempt failed and the step failed for good.
    Failed { run_id: RunId, step: String },
    /// The token is unknown, or its attempt is no longer current (a newer attempt
    /// runs, the step ended, the run stopped): nothing changed (fencing).
    Refused,
}

/// What one pass of the waker did (`wake_steps`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WakeReport {
    /// Sleeps that ended: the steps completed.
    pub slept: Vec<StepId>,
    /// Waits for a signal that timed out: the steps failed.
    pub timed_out: Vec<StepId>,
    /// Callbacks that did not come within the attempt's timeout: attempt errors.
    pub callbacks_expired: Vec<StepId>,
}

impl WakeReport {
    pub fn is_empty(&self) -> bool {
        self.slept.is_empty() && self.timed_out.is_empty() && self.callbacks_expired.is_empty()
    }
}

/// Why a waiting step waits, as the read side shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WaitingView {
    /// `sleep`, `signal`, `callback` or `child`.
    pub kind: String,
    /// The signal's name (kind `signal`).
    pub signal: Option<String>,
    /// When the sleep ends, the wait times out or the callback's attempt expires.
    pub until: Option<DateTime<Utc>>,
    /// The attempt whose callback is awaited (kind `callback`).
    pub attempt: Option<u32>,
    /// The child run awaited (kind `child`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub child: Option<RunId>,
}

/// The error a wait's timeout fails its step with.
pub fn signal_timeout_error(signal: &str) -> String {
    format!("timed out waiting for signal {signal}")
}

/// The error an expired callback fails its attempt with.
pub const CALLBACK_TIMEOUT_ERROR: &str = "timed out waiting for the callback";
