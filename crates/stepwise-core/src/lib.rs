//! The vocabulary of Stepwise, free of I/O.
//!
//! Everything here is plain data and pure functions so that the storage backends,
//! the engine and the server agree on one meaning of each word:
//!
//! - [`ids`]: typed identifiers (UUIDv7 for runs and steps, so they sort roughly by
//!   creation, and a random [`LeaseToken`] per claim, so fencing cannot be guessed).
//! - [`state`]: run and step states and the table of allowed transitions. Backends
//!   never invent a transition; tests check the table.
//! - [`retry`]: the retry budget and exponential backoff. The *delay* is decided here,
//!   the *instant* is always computed by the database clock (`now() + delay`).
//! - [`spec`]: a workflow definition as data, with validation (duplicate names,
//!   unknown or cyclic dependencies, actions, templates) and the plan a run is built
//!   from.
//! - [`file`](mod@file): workflow files (TOML) parsed into a [`WorkflowSpec`], with errors that
//!   name the file, line, column and field at fault.
//! - [`template`]: the `{{ input.x }}` templates of concurrency keys and resource
//!   locks, and the step-context templates of `http` headers and bodies, checked
//!   when a workflow is applied and rendered strictly.
//! - [`secrets`]: `${NAME}` references to a worker's environment, expanded when an
//!   attempt starts and redacted from whatever the attempt reports.
//! - [`event`]: the lifecycle event kinds written to the transactional outbox.

pub mod event;
pub mod file;
pub mod ids;
pub mod retry;
pub mod schedule;
pub mod secrets;
pub mod spec;
pub mod state;
pub mod template;

pub use event::EventKind;
pub use file::{parse_workflow_file, WorkflowFile, WorkflowFileError};
pub use ids::{Lease, LeaseToken, RunId, StepId, WorkerId};
pub use retry::{Backoff, FailureDecision, RetryPolicy};
pub use schedule::{Catchup, Overlap, Recurrence, ScheduleSpec};
pub use spec::{
    CompleteBy, ConcurrencySpec, ForEach, HttpAction, ItemFailure, RateLimitSpec, RunAction,
    RunPolicy, SpecError, StepAction, StepDefaults, StepSpec, WaitAction, WorkflowSpec,
};
pub use state::{RunStatus, StepStatus};
pub use template::{Template, TemplateError};
