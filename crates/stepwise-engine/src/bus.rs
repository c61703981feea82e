//! The lifecycle bus: an embedding program sees what its worker does.
//!
//! Publishing never waits: the bus is a bounded broadcast channel, a subscriber that
//! falls behind loses the oldest notices (and is told how many), and subscribers run
//! on tasks of their own, so a slow or panicking subscriber can neither block nor
//! fail a step. The bus reports what this process committed; the durable record of
//! everything, from every process, is the event table.

use serde_json::Value;
use stepwise_core::{RunId, RunStatus};
use tokio::sync::broadcast;

/// Something this worker did, after it was committed.
#[derive(Clone, Debug, PartialEq)]
pub enum Lifecycle {
    StepStarted {
        run_id: RunId,
        step: String,
        attempt: u32,
    },
    StepCompleted {
        run_id: RunId,
        step: String,
        attempt: u32,
        output: Value,
    },
    StepFailed {
        run_id: RunId,
        step: String,
        attempt: u32,
        error: String,
        final_attempt: bool,
    },
    StepReleased {
        run_id: RunId,
        step: String,
    },
    /// The step waits without a worker: `kind` is `sleep`, `signal` or `callback`,
    /// `until` when the sleep ends or the wait times out (database clock).
    StepWaiting {
        run_id: RunId,
        step: String,
        kind: &'static str,
        until: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The step was stopped because its run was cancelled or timed out.
    StepCancelled {
        run_id: RunId,
        step: String,
    },
    RunFinished {
        run_id: RunId,
        status: RunStatus,
    },
    /// A write was refused because the step's lease was no longer this worker's.
    LeaseLost {
        run_id: RunId,
        step: String,
    },
}

/// A handle to publish on and subscribe to the bus.
#[derive(Clone, Debug)]
pub struct Bus {
    tx: broadcast::Sender<Lifecycle>,
}

impl Default for Bus {
    fn default() -> Self {
        Self::new(1024)
    }
}

impl Bus {
    /// A bus keeping up to `capacity` notices for each subscriber that lags.
    pub fn new(capacity: usize) -> Self {
        Self {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    /// A raw receiver, for callers that run their own loop.
    pub fn subscribe(&self) -> broadcast::Receiver<Lifecycle> {
        self.tx.subscribe()
    }

    /// Calls `f` for every notice on a task of its own until the bus is dropped.
    pub fn on<F>(&self, mut f: F) -> tokio::task::JoinHandle<()>
    where
        F: FnMut(Lifecycle) + Send + 'static,
    {
        let mut rx = self.subscribe();
        tokio::spawn(async move {
            loop {
                match rx.recv().await {
                    Ok(notice) => f(notice),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(missed = n, "a lifecycle subscriber fell behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        })
    }

    pub(crate) fn publish(&self, notice: Lifecycle) {
        // No subscriber is not an error, and sending never blocks.
        let _ = self.tx.send(notice);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    fn notice(step: &str) -> Lifecycle {
        Lifecycle::StepReleased {
            run_id: RunId::new(),
            step: step.into(),
        }
    }

    #[tokio::test]
    async fn a_panicking_subscriber_does_not_stop_publishing_or_others() {
        let bus = Bus::new(16);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let bad = bus.on(|_| panic!("subscriber bug"));
        let good = {
            let seen = seen.clone();
            bus.on(move |n| seen.lock().unwrap().push(n))
        };
        bus.publish(notice("a"));
        bus.publish(notice("b"));
        assert!(
            bad.await.is_err(),
            "the bad subscriber's task panicked alone"
        );
        drop(bus);
        good.await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn publishing_without_subscribers_or_with_a_stuck_one_never_blocks() {
        let bus = Bus::new(4);
        bus.publish(notice("nobody listens"));
        let _stuck = bus.subscribe();
        for i in 0..100 {
            bus.publish(notice(&i.to_string()));
        }
    }
}
