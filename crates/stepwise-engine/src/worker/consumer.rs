//! A consumer: runs the step it was given and, when that step unblocks others and
//! its pool is mostly idle, waits for the completer to hand it the next one in the
//! transaction that records the outcome. A pipeline then costs one transaction per step, and the consumer keeps
//! its permit from one step to the next, so the claimer never over-claims.

use super::{Finished, Inner};
use std::sync::Arc;
use stepwise_store::{ClaimedStep, QueueFilter};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

/// Where a consumer sits: its pool's queues and consumers, where its outcomes go, and
/// the worker's shutdown (no hand-off is asked for once it began).
pub(super) struct Seat {
    pub outcomes: mpsc::UnboundedSender<Finished>,
    pub queues: QueueFilter,
    pub slots: Arc<Semaphore>,
    /// Half the pool's consumers (at least one).
    pub half_pool: usize,
    pub shutdown: CancellationToken,
}

impl Seat {
    /// Whether to wait for a hand-off: only while at least half the pool is idle. Then
    /// the claimer has little to do, and the next step of a pipeline would otherwise
    /// wait for another transaction. Under load a consumer waiting for its completion
    /// to commit sits idle while the claimer has work for it: measured, always waiting
    /// cost a pipeline drain a quarter of its rate (BENCHMARKS.md).
    fn wants_hand_off(&self) -> bool {
        // This consumer's own permit counts as idle: it is about to be.
        !self.shutdown.is_cancelled() && self.slots.available_permits() + 1 >= self.half_pool
    }
}

/// A consumer's offer to take a step its completion unblocks; the answer carries the
/// step and the generation of the worker identity that claimed it.
pub(super) struct HandOffRequest {
    pub queues: QueueFilter,
    pub reply: oneshot::Sender<Option<(ClaimedStep, CancellationToken)>>,
}

impl Inner {
    pub(super) async fn consume(
        self: Arc<Self>,
        mut step: ClaimedStep,
        mut generation: CancellationToken,
        seat: Seat,
        permit: OwnedSemaphorePermit,
    ) {
        let mut permit = Some(permit);
        loop {
            let mut finished = self.execute(step, generation).await;
            let next = match &mut finished {
                Finished::Succeeded { step, hand_off, .. }
                    if seat.wants_hand_off() && self.unblocks_others(step).await =>
                {
                    let (reply, next) = oneshot::channel();
                    *hand_off = Some(HandOffRequest {
                        queues: seat.queues.clone(),
                        reply,
                    });
                    Some(next)
                }
                _ => None,
            };
            let Some(next) = next else {
                // Free the consumer before the outcome is written, as the claimer
                // may find work the moment it is.
                drop(permit.take());
                let _ = seat.outcomes.send(finished);
                return;
            };
            if seat.outcomes.send(finished).is_err() {
                return;
            }
            match next.await {
                Ok(Some((handed, its_generation))) => {
                    step = handed;
                    generation = its_generation;
                }
                _ => return,
            }
        }
    }

    async fn unblocks_others(&self, step: &ClaimedStep) -> bool {
        if step.compensating.is_some() {
            return false;
        }
        self.spec(&step.workflow, step.workflow_version)
            .await
            .is_ok_and(|spec| spec.has_dependents(&step.step))
    }
}
