//! The worker's upkeep: heartbeats (and what to do when reaped or cut off), the
//! reaper, and the retention pruner.

use super::{register, Identity, Inner};
use crate::metrics as m;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stepwise_store::Heartbeat;
use tokio_util::sync::CancellationToken;

/// How often a worker vacuums the claim tables (PostgreSQL; a no-op on SQLite).
const VACUUM_EVERY: Duration = Duration::from_secs(5);

impl Inner {
    pub(super) async fn heartbeat_loop(self: Arc<Self>, stop: CancellationToken) {
        let every = self.options.lease / 3;
        let mut lapsed = false;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            let id = self.identity().id;
            let sent = Instant::now();
            // A database that does not answer must not hold the worker past its lease.
            match tokio::time::timeout(every, self.heartbeat_store.heartbeat(id)).await {
                Ok(Ok(Heartbeat::Alive { .. })) => {
                    self.validity.renewed(sent);
                    lapsed = false;
                }
                Ok(Ok(Heartbeat::Reaped)) => {
                    tracing::warn!(worker = %id, "this worker was reaped: stopping its attempts and registering again");
                    self.identity().generation.cancel();
                    let sent = Instant::now();
                    match register(&*self.heartbeat_store, &self.options).await {
                        Ok(new_id) => {
                            self.validity.renewed(sent);
                            lapsed = false;
                            *self.identity() = Identity {
                                id: new_id,
                                generation: CancellationToken::new(),
                            };
                        }
                        Err(e) => tracing::error!(error = %e, "cannot register again"),
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "heartbeat failed"),
                Err(_) => tracing::warn!("heartbeat timed out"),
            }
            if !lapsed && !self.validity.is_valid() {
                // Another worker may take our steps soon: stop them now (exec
                // children are already being killed by their supervisors).
                lapsed = true;
                tracing::error!("the lease lapsed without a heartbeat: stopping running attempts");
                let mut identity = self.identity();
                identity.generation.cancel();
                identity.generation = CancellationToken::new();
            }
        }
    }

    pub(super) async fn retention_loop(self: Arc<Self>, age: Duration, stop: CancellationToken) {
        loop {
            loop {
                match self.store.prune_runs(age, 1000).await {
                    Ok(0) => break,
                    Ok(n) => tracing::info!(runs = n, "pruned terminal runs past retention"),
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning failed");
                        break;
                    }
                }
                if stop.is_cancelled() {
                    return;
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs(300)) => {}
                _ = stop.cancelled() => return,
            }
        }
    }

    /// Keeps the claim tables free of dead rows between autovacuum's visits.
    pub(super) async fn vacuum_loop(self: Arc<Self>, stop: CancellationToken) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(VACUUM_EVERY) => {}
                _ = stop.cancelled() => return,
            }
            if let Err(e) = self.store.vacuum_claim_tables().await {
                tracing::debug!(error = %e, "vacuum of the claim tables failed");
            }
        }
    }

    pub(super) async fn reaper_loop(self: Arc<Self>, stop: CancellationToken) {
        let every = self.options.lease / 2;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = stop.cancelled() => return,
            }
            let id = self.identity().id;
            match self.store.reap(id).await {
                Ok(report) => {
                    if !report.steps_skipped.is_empty() {
                        metrics::counter!(m::REAPER_SKIPPED)
                            .increment(report.steps_skipped.len() as u64);
                        tracing::info!(
                            steps = report.steps_skipped.len(),
                            "reaper skipped steps another session holds; a later pass takes them"
                        );
                    }
                    if !report.workers.is_empty() {
                        metrics::counter!(m::WORKERS_REAPED).increment(report.workers.len() as u64);
                        tracing::warn!(
                            workers = report.workers.len(),
                            retried = report.steps_retried.len(),
                            "reaped silent workers"
                        );
                        self.wake.send_modify(|n| *n = n.wrapping_add(1));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "reaper pass failed"),
            }
        }
    }
}
