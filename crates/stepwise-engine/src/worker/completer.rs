//! The completer: records outcomes in batches, whatever is waiting, so batches grow
//! under load and a lone outcome is written at once when idle.

use super::{Finished, Inner};
use crate::bus::Lifecycle;
use crate::metrics as m;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use stepwise_core::Lease;
use stepwise_store::{ClaimedStep, StepFailure, StepSuccess, StoreError};
use tokio::sync::mpsc;

impl Inner {
    pub(super) async fn completer_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Finished>) {
        let mut batch = Vec::new();
        while let Some(first) = rx.recv().await {
            batch.push(first);
            while batch.len() < 500 {
                match rx.try_recv() {
                    Ok(f) => batch.push(f),
                    Err(_) => break,
                }
            }
            self.record(std::mem::take(&mut batch)).await;
            self.wake.send_modify(|n| *n = n.wrapping_add(1));
        }
    }

    async fn record(&self, batch: Vec<Finished>) {
        let mut successes = Vec::new();
        let mut succeeded = Vec::new();
        let mut abandoned = Vec::new();
        for finished in batch {
            match finished {
                Finished::Succeeded { step, output, log } => {
                    successes.push(StepSuccess {
                        lease: step.lease,
                        output: output.clone(),
                        log,
                    });
                    succeeded.push((step, output));
                }
                Finished::Failed {
                    step,
                    error,
                    retryable,
                    log,
                } => {
                    self.record_failure(step, error, retryable, log).await;
                }
                Finished::Abandoned { step } => abandoned.push(step),
            }
        }
        if !successes.is_empty() {
            match retry_store(|| self.store.complete_steps(&successes)).await {
                Ok(report) => {
                    let refused: HashSet<Lease> = report.refused.iter().copied().collect();
                    for (step, output) in succeeded {
                        if refused.contains(&step.lease) {
                            self.lease_lost(&step);
                        } else {
                            metrics::counter!(m::STEPS_COMPLETED).increment(1);
                            self.bus.publish(Lifecycle::StepCompleted {
                                run_id: step.run_id,
                                step: step.step,
                                attempt: step.attempt,
                                output,
                            });
                        }
                    }
                    for (run_id, status) in report.finished_runs {
                        self.bus.publish(Lifecycle::RunFinished { run_id, status });
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot record completed steps; their leases will expire and they will run again")
                }
            }
        }
        if !abandoned.is_empty() {
            let leases: Vec<Lease> = abandoned.iter().map(|s| s.lease).collect();
            match retry_store(|| self.store.release_steps(&leases)).await {
                Ok(report) => {
                    metrics::counter!(m::STEPS_RELEASED).increment(report.accepted.len() as u64);
                    let refused: HashSet<Lease> = report.refused.iter().copied().collect();
                    for step in abandoned {
                        if refused.contains(&step.lease) {
                            self.lease_lost(&step);
                        } else {
                            self.bus.publish(Lifecycle::StepReleased {
                                run_id: step.run_id,
                                step: step.step,
                            });
                        }
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot release steps; their leases will expire")
                }
            }
        }
    }

    async fn record_failure(
        &self,
        step: ClaimedStep,
        error: String,
        retryable: bool,
        log: Option<String>,
    ) {
        metrics::counter!(m::STEP_ERRORS).increment(1);
        let failure = StepFailure {
            lease: step.lease,
            error: error.clone(),
            retryable,
            log,
        };
        match retry_store(|| self.store.fail_step(&failure)).await {
            Ok(stepwise_store::FailOutcome::Refused) => self.lease_lost(&step),
            Ok(stepwise_store::FailOutcome::Stopped) => {
                self.bus.publish(Lifecycle::StepCancelled {
                    run_id: step.run_id,
                    step: step.step,
                })
            }
            Ok(outcome) => {
                let final_attempt = outcome == stepwise_store::FailOutcome::Failed;
                if final_attempt {
                    metrics::counter!(m::STEPS_FAILED).increment(1);
                }
                self.bus.publish(Lifecycle::StepFailed {
                    run_id: step.run_id,
                    step: step.step,
                    attempt: step.attempt,
                    error,
                    final_attempt,
                });
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot record a failed attempt; its lease will expire")
            }
        }
    }

    fn lease_lost(&self, step: &ClaimedStep) {
        metrics::counter!(m::LEASES_LOST).increment(1);
        tracing::warn!(run = %step.run_id, step = %step.step, "outcome refused: the lease was no longer ours");
        self.bus.publish(Lifecycle::LeaseLost {
            run_id: step.run_id,
            step: step.step.clone(),
        });
    }
}

/// Retries a store call a few times (the database may be restarting) before giving
/// up; an outcome that is never recorded is not lost: its lease expires and the step
/// runs again.
async fn retry_store<T, F, Fut>(mut op: F) -> Result<T, StoreError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StoreError>>,
{
    let mut delay = Duration::from_millis(100);
    for _ in 0..5 {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => {
                tracing::warn!(error = %e, "store call failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    op().await
}
