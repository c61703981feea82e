//! Pipeline hand-off: the transaction that completes a step may claim, for the same
//! worker, the steps that completion made claimable, so a pipeline step costs one
//! transaction instead of a completion and a claim.
//!
//! The worker offers one slot per consumer that an accepted completion frees. Which
//! ready step goes to which slot is decided here, once for both backends; each
//! backend only finds the steps its completions made claimable and claims the chosen
//! ones under fresh leases, with the same checks as any claim (the worker is alive,
//! the queue is not paused, the step is still pending).

use super::ClaimedStep;
use std::collections::HashSet;
use stepwise_core::{Lease, StepId, WorkerId};

/// Which queues a consumer serves: one named queue, or every queue but those that
/// other pools of its worker name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum QueueFilter {
    Named(String),
    AllBut(Vec<String>),
}

impl QueueFilter {
    pub fn admits(&self, queue: &str) -> bool {
        match self {
            QueueFilter::Named(name) => name == queue,
            QueueFilter::AllBut(others) => !others.iter().any(|o| o == queue),
        }
    }
}

/// A consumer that the completion of `after` frees, offered for a hand-off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandOffSlot {
    pub after: Lease,
    pub queues: QueueFilter,
}

/// Free consumers offered with a batch of completions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandOff {
    pub worker: WorkerId,
    pub slots: Vec<HandOffSlot>,
}

/// A step that a completion in the batch made claimable, as the backend found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadyStep {
    pub id: StepId,
    pub queue: String,
    /// The step needs a resource lock or its rate limit key's admission: it goes
    /// through the claim path that takes it, never handed off.
    pub needs_lock: bool,
}

/// What a batch of completions did, and the steps handed to the offered slots (each
/// keyed by the slot's `after` lease).
#[derive(Clone, Debug, Default)]
pub struct Completion {
    pub report: super::BatchReport,
    pub handed_off: Vec<(Lease, ClaimedStep)>,
}

/// Chooses which ready steps to hand to which slots: only slots whose completion was
/// accepted (a refused, stale lease takes nothing), only steps their queues admit,
/// never a step that needs a resource lock, each step and slot at most once, in the
/// order the steps became ready.
pub fn assign_hand_offs(
    ready: &[ReadyStep],
    slots: &[HandOffSlot],
    accepted: &HashSet<StepId>,
) -> Vec<(Lease, StepId)> {
    let mut free: Vec<&HandOffSlot> = slots
        .iter()
        .filter(|s| accepted.contains(&s.after.step_id))
        .collect();
    let mut chosen = Vec::new();
    for step in ready.iter().filter(|r| !r.needs_lock) {
        if let Some(i) = free.iter().position(|s| s.queues.admits(&step.queue)) {
            chosen.push((free.remove(i).after, step.id));
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use stepwise_core::LeaseToken;
    use uuid::Uuid;

    fn lease() -> Lease {
        Lease {
            step_id: StepId(Uuid::new_v4()),
            token: LeaseToken(Uuid::new_v4()),
        }
    }

    fn ready(queue: &str, needs_lock: bool) -> ReadyStep {
        ReadyStep {
            id: StepId(Uuid::new_v4()),
            queue: queue.into(),
            needs_lock,
        }
    }

    fn slot(after: Lease, queues: QueueFilter) -> HandOffSlot {
        HandOffSlot { after, queues }
    }

    #[test]
    fn a_refused_completion_takes_no_step() {
        let (ok, stale) = (lease(), lease());
        let slots = [
            slot(stale, QueueFilter::AllBut(vec![])),
            slot(ok, QueueFilter::AllBut(vec![])),
        ];
        let steps = [ready("default", false), ready("default", false)];
        let accepted = HashSet::from([ok.step_id]);
        let chosen = assign_hand_offs(&steps, &slots, &accepted);
        assert_eq!(chosen, vec![(ok, steps[0].id)]);
    }

    #[test]
    fn each_slot_takes_only_steps_of_its_queues() {
        let (a, b) = (lease(), lease());
        let slots = [
            slot(a, QueueFilter::Named("gpu".into())),
            slot(b, QueueFilter::AllBut(vec!["gpu".into()])),
        ];
        let steps = [
            ready("gpu", false),
            ready("gpu", false),
            ready("cpu", false),
        ];
        let accepted = HashSet::from([a.step_id, b.step_id]);
        let chosen = assign_hand_offs(&steps, &slots, &accepted);
        assert_eq!(chosen, vec![(a, steps[0].id), (b, steps[2].id)]);
    }

    #[test]
    fn a_step_that_needs_a_lock_is_never_handed_off() {
        let a = lease();
        let steps = [ready("default", true)];
        let chosen = assign_hand_offs(
            &steps,
            &[slot(a, QueueFilter::AllBut(vec![]))],
            &HashSet::from([a.step_id]),
        );
        assert!(chosen.is_empty());
    }
}
