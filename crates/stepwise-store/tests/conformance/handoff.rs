//! The pipeline hand-off: the transaction that completes a step claims the step it
//! unblocks for the same worker, fenced like any claim.

use crate::support::*;
use std::sync::Arc;
use stepwise_core::{EventKind, Lease, LeaseToken, StepStatus};
use stepwise_store::*;
use uuid::Uuid;

fn slot(after: Lease) -> HandOffSlot {
    HandOffSlot {
        after,
        queues: QueueFilter::AllBut(vec![]),
    }
}

async fn complete_handing_off(
    store: &dyn Store,
    claimed: &[ClaimedStep],
    handoff: &HandOff,
) -> Completion {
    let outcomes: Vec<StepSuccess> = claimed.iter().map(success).collect();
    store
        .complete_and_hand_off(&outcomes, handoff)
        .await
        .expect("complete and hand off")
}

/// Invariant 1 across the hand-off: completing step k under its lease claims k+1
/// under a fresh lease, in the same transaction, with k's output; the feed says k
/// completed before k+1 started.
pub async fn completing_a_pipeline_step_hands_its_successor_to_the_same_worker(
    store: Arc<dyn Store>,
) {
    register(&*store, &workflow("relay", vec![step("a"), step("b")])).await;
    let run = start(&*store, "relay", 1).await[0];
    let me = worker(&*store, secs(600)).await;
    let a = claim(&*store, me, 1).await;
    let done = complete_handing_off(
        &*store,
        &a,
        &HandOff {
            worker: me,
            slots: vec![slot(a[0].lease)],
        },
    )
    .await;
    assert_eq!(done.report.accepted, vec![a[0].lease.step_id]);
    assert_eq!(done.handed_off.len(), 1, "b is handed off");
    let (after, b) = &done.handed_off[0];
    assert_eq!(*after, a[0].lease);
    assert_eq!(b.step, "b");
    assert_eq!(b.attempt, 1);
    assert_ne!(b.lease.token, a[0].lease.token);
    assert_eq!(
        b.dependency_outputs.get("a"),
        Some(&success(&a[0]).output),
        "b sees a's output"
    );
    assert_eq!(
        step_of(&get_run(&*store, run).await, "b").status,
        StepStatus::Running
    );
    assert!(
        claim(&*store, me, 10).await.is_empty(),
        "b is not claimable twice"
    );

    complete_all(&*store, std::slice::from_ref(b)).await;
    let events = run_events(&*store, run, EventKind::RunCompleted).await;
    let order: Vec<(EventKind, Option<&str>)> = events
        .iter()
        .filter(|e| matches!(e.kind, EventKind::StepStarted | EventKind::StepCompleted))
        .map(|e| (e.kind, e.step.as_deref()))
        .collect();
    assert_eq!(
        order,
        vec![
            (EventKind::StepStarted, Some("a")),
            (EventKind::StepCompleted, Some("a")),
            (EventKind::StepStarted, Some("b")),
            (EventKind::StepCompleted, Some("b")),
        ]
    );
}

/// Fencing: a stale lease completes nothing and takes nothing, even beside an
/// accepted completion that unblocked a step in the same batch.
pub async fn a_stale_lease_neither_completes_its_step_nor_takes_the_next(store: Arc<dyn Store>) {
    register(
        &*store,
        &workflow("fenced-relay", vec![step("a"), step("b")]),
    )
    .await;
    let runs = start(&*store, "fenced-relay", 2).await;
    let me = worker(&*store, secs(600)).await;
    let mut a = claim(&*store, me, 2).await;
    assert_eq!(a.len(), 2);
    let stale = Lease {
        step_id: a[1].lease.step_id,
        token: LeaseToken(Uuid::new_v4()),
    };
    a[1].lease = stale;
    let done = complete_handing_off(
        &*store,
        &a,
        &HandOff {
            worker: me,
            slots: vec![slot(stale), slot(a[0].lease)],
        },
    )
    .await;
    assert_eq!(done.report.refused, vec![stale]);
    assert_eq!(done.handed_off.len(), 1);
    assert_eq!(done.handed_off[0].0, a[0].lease, "only the accepted slot");
    let stale_run = if a[1].run_id == runs[0] {
        runs[0]
    } else {
        runs[1]
    };
    let view = get_run(&*store, stale_run).await;
    assert_eq!(step_of(&view, "a").status, StepStatus::Running);
    assert_eq!(step_of(&view, "b").status, StepStatus::Blocked);
}

/// A hand-off is a claim: a worker takes only steps of queues it serves, never one
/// of a paused queue, and whatever it does not take stays claimable by anyone.
pub async fn a_hand_off_respects_queues_and_pauses(store: Arc<dyn Store>) {
    let mut other = step("elsewhere");
    other.queue = Some("other".into());
    let mut paused = after("held", &["a"]);
    paused.queue = Some("held".into());
    register(&*store, &workflow("split", vec![step("a"), other, paused])).await;
    store.set_queue_paused("held", true).await.unwrap();
    let run = start(&*store, "split", 1).await[0];
    let me = worker(&*store, secs(600)).await;
    let a = claim(&*store, me, 1).await;
    let done = complete_handing_off(
        &*store,
        &a,
        &HandOff {
            worker: me,
            slots: vec![HandOffSlot {
                after: a[0].lease,
                queues: QueueFilter::Named(DEFAULT_QUEUE.into()),
            }],
        },
    )
    .await;
    assert!(done.handed_off.is_empty(), "{:?}", done.handed_off);
    let view = get_run(&*store, run).await;
    assert_eq!(step_of(&view, "elsewhere").status, StepStatus::Pending);
    assert_eq!(step_of(&view, "held").status, StepStatus::Pending);
    let got = claim_from(&*store, me, &["other"], 5).await;
    assert_eq!(got.len(), 1, "the step not handed off is claimable");
    assert_eq!(got[0].step, "elsewhere");
}

/// Invariant 5 across the hand-off: a join is handed off only by the completion of
/// its last dependency.
pub async fn a_join_is_handed_off_only_by_its_last_dependency(store: Arc<dyn Store>) {
    register(
        &*store,
        &workflow(
            "join-relay",
            vec![root("a"), root("b"), after("c", &["a", "b"])],
        ),
    )
    .await;
    let run = start(&*store, "join-relay", 1).await[0];
    let me = worker(&*store, secs(600)).await;
    let roots = claim(&*store, me, 2).await;
    assert_eq!(roots.len(), 2);
    let offer = |c: &ClaimedStep| HandOff {
        worker: me,
        slots: vec![slot(c.lease)],
    };
    let first = complete_handing_off(&*store, &roots[..1], &offer(&roots[0])).await;
    assert!(
        first.handed_off.is_empty(),
        "c still waits for its other dependency"
    );
    assert_eq!(
        step_of(&get_run(&*store, run).await, "c").status,
        StepStatus::Blocked
    );
    let last = complete_handing_off(&*store, &roots[1..], &offer(&roots[1])).await;
    assert_eq!(last.handed_off.len(), 1);
    assert_eq!(last.handed_off[0].1.step, "c");
}
