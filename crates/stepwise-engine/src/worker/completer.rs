//! The completer: records outcomes in batches, whatever is waiting, so batches grow
//! under load and a lone outcome is written at once when idle.

use super::consumer::HandOffRequest;
use super::{Finished, Inner};
use crate::bus::Lifecycle;
use crate::metrics as m;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use stepwise_core::Lease;
use stepwise_store::{
    ClaimedStep, Completion, HandOff, HandOffSlot, StepFailure, StepSuccess, StoreError,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

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
        let mut waiting = Vec::new();
        let mut abandoned = Vec::new();
        for finished in batch {
            match finished {
                Finished::Succeeded {
                    step,
                    output,
                    log,
                    hand_off,
                } => {
                    successes.push(StepSuccess {
                        lease: step.lease,
                        output: output.clone(),
                        log,
                    });
                    if let Some(request) = hand_off {
                        waiting.push((step.lease, request));
                    }
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
                Finished::Parked { step, wait } => self.park(step, wait).await,
                Finished::Abandoned { step } => abandoned.push(step),
            }
        }
        if !successes.is_empty() {
            let mut handed_off = self.complete(&successes, succeeded, &waiting).await;
            for (lease, request) in waiting {
                let next = handed_off.remove(&lease);
                let _ = request.reply.send(next);
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

    /// Records a batch of successes and, when consumers wait for a hand-off, claims
    /// for them in the same transaction the steps these completions unblock.
    async fn complete(
        &self,
        successes: &[StepSuccess],
        succeeded: Vec<(ClaimedStep, Value)>,
        waiting: &[(Lease, HandOffRequest)],
    ) -> HashMap<Lease, (ClaimedStep, CancellationToken)> {
        let (worker, generation) = {
            let identity = self.identity();
            (identity.id, identity.generation.clone())
        };
        let slots: Vec<HandOffSlot> = if self.validity.is_valid() {
            waiting
                .iter()
                .map(|(after, request)| HandOffSlot {
                    after: *after,
                    queues: request.queues.clone(),
                })
                .collect()
        } else {
            vec![]
        };
        let written = if slots.is_empty() {
            retry_store(|| self.store.complete_steps(successes))
                .await
                .map(|report| Completion {
                    report,
                    handed_off: vec![],
                })
        } else {
            let handoff = HandOff { worker, slots };
            retry_store(|| self.store.complete_and_hand_off(successes, &handoff)).await
        };
        let completion = match written {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "cannot record completed steps; their leases will expire and they will run again");
                return HashMap::new();
            }
        };
        let refused: HashSet<Lease> = completion.report.refused.iter().copied().collect();
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
        for (run_id, status) in completion.report.finished_runs {
            self.bus.publish(Lifecycle::RunFinished { run_id, status });
        }
        let handed = completion.handed_off.len() as u64;
        metrics::counter!(m::STEPS_CLAIMED).increment(handed);
        metrics::counter!(m::STEPS_HANDED_OFF).increment(handed);
        completion
            .handed_off
            .into_iter()
            .map(|(after, step)| (after, (step, generation.clone())))
            .collect()
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
            retry_after: None,
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

    pub(super) fn lease_lost(&self, step: &ClaimedStep) {
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
pub(super) async fn retry_store<T, F, Fut>(mut op: F) -> Result<T, StoreError>
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
