//! Store calls abandoned part-way (a caller's timeout, a client that hung up) leave
//! the database as usable as before: the worker's heartbeat runs under a timeout,
//! and the HTTP server drops a handler's future when its client goes away.

use crate::harness::Harness;
use crate::support::*;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use stepwise_store::Heartbeat;

/// Polls `inner` until it finishes or has answered `Pending` `polls` times, then
/// drops it: a cancellation at a chosen await point rather than at a chosen time.
struct CancelAfter<F> {
    inner: Pin<Box<F>>,
    polls: usize,
}

impl<F: Future> Future for CancelAfter<F> {
    type Output = Option<F::Output>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.inner.as_mut().poll(cx) {
            Poll::Ready(out) => Poll::Ready(Some(out)),
            Poll::Pending if self.polls == 0 => Poll::Ready(None),
            Poll::Pending => {
                self.polls -= 1;
                Poll::Pending
            }
        }
    }
}

/// A SQLite write transaction begun (`BEGIN IMMEDIATE` acknowledged) but dropped
/// before the store held it used to stay open on the pooled connection: every later
/// write of that handle failed ("begin_with at non-zero transaction depth") and the
/// write lock it kept stopped every other process; workers under load wedged.
pub async fn a_write_cancelled_at_any_await_point_leaves_the_store_writable(h: Arc<Harness>) {
    let store = h.store.clone();
    let id = worker(&*store, secs(600)).await;
    // Every await point of a heartbeat, a few times over: the worker thread's timing
    // decides where each poll lands.
    for round in 0..3 {
        for polls in 0..40 {
            let call = CancelAfter {
                inner: Box::pin(store.heartbeat(id)),
                polls,
            };
            if call.await.is_some() {
                continue;
            }
            // What a cancelled call left behind is cleaned up before the next use.
            let next = tokio::time::timeout(Duration::from_secs(60), store.heartbeat(id))
                .await
                .unwrap_or_else(|_| panic!("a heartbeat after cancelling at poll {polls} hung"));
            match next {
                Ok(Heartbeat::Alive { .. }) => {}
                other => panic!(
                    "round {round}: a heartbeat after cancelling another at poll {polls}: {other:?}"
                ),
            }
        }
    }
    // And another handle, as another process, can still write.
    let other = h.connect(&h.primary).await;
    let elsewhere = tokio::time::timeout(Duration::from_secs(60), other.heartbeat(id))
        .await
        .expect("another handle's write hung");
    assert!(
        matches!(elsewhere, Ok(Heartbeat::Alive { .. })),
        "{elsewhere:?}"
    );
}
