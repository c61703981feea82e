//! Stopping attempts whose lease was revoked (run cancelled or timed out), and the
//! deadline checker that revokes them.
//!
//! The store marks revoked steps; each worker asks for its own at once when the
//! database signals a revocation (PostgreSQL NOTIFY) and every half second
//! otherwise, so a cancelled step's child is killed well within two seconds of the
//! cancel. Asking is skipped while the worker runs nothing.

use super::{lock, Inner};
use crate::metrics as m;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stepwise_core::Lease;
use tokio_util::sync::CancellationToken;

/// How often a worker with running attempts asks for revoked leases without a signal.
const REVOCATION_POLL: Duration = Duration::from_millis(500);
/// How often a worker looks for runs past their deadline.
const DEADLINE_POLL: Duration = Duration::from_secs(1);

struct Running {
    stop: CancellationToken,
    revoked: Arc<AtomicBool>,
}

/// The attempts this worker is running, by lease.
#[derive(Default)]
pub(super) struct Attempts {
    running: Mutex<HashMap<Lease, Running>>,
}

impl Attempts {
    /// Starts tracking an attempt; the flag turns true if its lease gets revoked
    /// (and `stop` is cancelled then).
    pub(super) fn track(&self, lease: Lease, stop: CancellationToken) -> Arc<AtomicBool> {
        let revoked = Arc::new(AtomicBool::new(false));
        lock(&self.running).insert(
            lease,
            Running {
                stop,
                revoked: revoked.clone(),
            },
        );
        revoked
    }

    pub(super) fn untrack(&self, lease: &Lease) {
        lock(&self.running).remove(lease);
    }

    fn is_empty(&self) -> bool {
        lock(&self.running).is_empty()
    }

    /// Stops the attempts under `leases`; returns how many were running here.
    fn revoke(&self, leases: &[Lease]) -> usize {
        let running = lock(&self.running);
        let mut stopped = 0;
        for lease in leases {
            if let Some(attempt) = running.get(lease) {
                if !attempt.revoked.swap(true, Ordering::SeqCst) {
                    attempt.stop.cancel();
                    stopped += 1;
                }
            }
        }
        stopped
    }
}

impl Inner {
    pub(super) async fn revocation_loop(self: Arc<Self>, stop: CancellationToken) {
        let mut signal = match self.store.revocation_signal().await {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "no revocation signal from the database; polling only");
                None
            }
        };
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REVOCATION_POLL) => {}
                changed = async { signal.as_mut().expect("guarded").changed().await }, if signal.is_some() => {
                    if changed.is_err() {
                        signal = None;
                    }
                }
                _ = stop.cancelled() => return,
            }
            if self.attempts.is_empty() {
                continue;
            }
            let worker = self.identity().id;
            match self.store.revoked_leases(worker).await {
                Ok(leases) if !leases.is_empty() => {
                    let stopped = self.attempts.revoke(&leases);
                    if stopped > 0 {
                        metrics::counter!(m::STEPS_REVOKED).increment(stopped as u64);
                        tracing::info!(
                            steps = stopped,
                            "stopping attempts of cancelled or timed-out runs"
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read revoked leases"),
            }
        }
    }

    /// Times out runs past their deadline. Any worker may; the store makes each
    /// deadline fire once.
    pub(super) async fn deadline_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(DEADLINE_POLL) => {}
                _ = stop.cancelled() => return,
            }
            match self.store.expire_runs(100).await {
                Ok(runs) if !runs.is_empty() => {
                    metrics::counter!(m::RUNS_TIMED_OUT).increment(runs.len() as u64);
                    tracing::info!(runs = runs.len(), "runs passed their deadline");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "deadline check failed"),
            }
        }
    }
}
