//! Executors: how one attempt of a step runs, whatever its kind.
//!
//! An executor gets the step's context and a cancellation token and returns an
//! [`AttemptResult`]; it never touches the store. Timeouts are applied around it by
//! the worker, through the same token, so every kind stops the same way.

pub mod backpressure;
pub mod exec;
pub mod handler;
pub mod http;

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// What an attempt runs with.
#[derive(Clone, Debug)]
pub struct AttemptInput {
    /// `{"run_id", "workflow", "step", "attempt", "input", "steps"}`.
    pub context: Value,
    /// `STEPWISE_*` variables and the step's `env`.
    pub env: BTreeMap<String, String>,
    pub cwd: Option<PathBuf>,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq)]
pub struct AttemptResult {
    pub outcome: Result<Value, AttemptError>,
    /// Captured output (exec: stdout and stderr), already truncated.
    pub log: Option<String>,
}

impl AttemptResult {
    /// Removes every value `secrets` expanded from what the attempt reports, so it
    /// never reaches the store (output, log, error).
    pub fn redact(&mut self, secrets: &stepwise_core::secrets::Secrets) {
        if secrets.is_empty() {
            return;
        }
        match &mut self.outcome {
            Ok(output) => secrets.redact_json(output),
            Err(e) => e.message = secrets.redact(&e.message),
        }
        if let Some(log) = &mut self.log {
            *log = secrets.redact(log);
        }
    }
}

/// The worker's own environment, where `${NAME}` is looked up.
pub fn worker_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// A failed attempt.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct AttemptError {
    pub message: String,
    /// False when retrying cannot help (exit 64, HTTP 4xx, a permanent handler error).
    pub retryable: bool,
    /// Back-pressure: the service asked to be called again after this long (exit 75
    /// with `retry_after`, HTTP 429/503 with `Retry-After`). The retry waits that
    /// long instead of the backoff, and the step's rate limit key pauses as long.
    pub retry_after: Option<Duration>,
}

impl AttemptError {
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }

    /// A retryable error whose service said when to come back (a handler can
    /// return one too); the delay is bounded by [`backpressure::MAX_RETRY_AFTER`].
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            retry_after: Some(delay.min(backpressure::MAX_RETRY_AFTER)),
        }
    }
}

/// Why the worker stopped an attempt before it ended on its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The per-attempt timeout passed.
    TimedOut(Duration),
    /// The worker is shutting down or lost its lease: the step goes back, unjudged.
    Abandoned,
}

/// Limits an `exec` attempt works within.
#[derive(Clone, Debug)]
pub struct ExecOptions {
    /// The program that runs `__supervise` (the `stepwise` binary, or an embedding
    /// program that calls [`crate::supervisor::supervise`]).
    pub supervisor: PathBuf,
    /// Bytes of stdout + stderr kept as the attempt's log.
    pub log_limit: usize,
    /// Bytes of stdout kept for the step's output.
    pub output_limit: usize,
    /// Whether the worker may still act on its lease: supervisors are beaten only
    /// while it holds, and kill their children soon after it lapses.
    pub validity: std::sync::Arc<crate::lease::LeaseValidity>,
}

impl Default for ExecOptions {
    fn default() -> Self {
        Self {
            supervisor: std::env::current_exe().unwrap_or_else(|_| "stepwise".into()),
            log_limit: 64 * 1024,
            output_limit: 1024 * 1024,
            validity: std::sync::Arc::new(crate::lease::LeaseValidity::forever()),
        }
    }
}
