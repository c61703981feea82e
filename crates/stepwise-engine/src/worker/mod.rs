//! The worker: pools of consumers fed by one claimer each, a completer that records
//! outcomes in batches, a heartbeat, a reaper, and graceful shutdown.
//!
//! ```text
//!  claimer (per pool) ──claim n──▶ consumers (tasks, ≤ pool size) ──outcome──▶ completer
//!        ▲                                                                  │
//!        └──────────────── wake: new work may be claimable ◀────────────────┘
//! ```
//! One claimer per pool asks for as many steps as it has idle consumers, so
//! consumers never race each other for rows. The completer drains whatever outcomes
//! are waiting into one `complete_steps` call: batches grow under load and a lone
//! outcome is written at once when idle.
//!
//! The worker's lease lives in its worker row; a heartbeat extends it. When a
//! heartbeat finds the worker was reaped, every running attempt is stopped (its
//! children killed) and the worker registers again under a new id: the old id's
//! leases are void and its late writes are refused by the store.

mod attempt;
mod completer;
mod consumer;
mod pacing;
mod revocation;
mod upkeep;
mod waits;

pub use attempt::{attempt_input, idempotency_key};
pub use waits::{callback_url, CALLBACK_TOKEN_ENV};

use crate::bus::Bus;
use crate::executor::handler::Handlers;
use crate::executor::ExecOptions;
use crate::lease::LeaseValidity;
use crate::metrics as m;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use stepwise_core::{WorkerId, WorkflowSpec};
use stepwise_store::{
    ClaimRequest, ClaimedStep, QueueFilter, Store, StoreError, WorkerRegistration,
};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long a busy claimer waits for more consumers to free up before claiming.
const CLAIM_LINGER: Duration = Duration::from_millis(2);

/// The pool that serves every queue no other pool names.
pub const ANY_QUEUE: &str = "*";

/// Consumers serving one queue (or [`ANY_QUEUE`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolSpec {
    pub queue: String,
    pub consumers: usize,
}

impl std::str::FromStr for PoolSpec {
    type Err = String;

    /// `QUEUE=N`, e.g. `parse=4` or `*=8`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (queue, n) = s
            .split_once('=')
            .ok_or_else(|| format!("pool {s:?} must look like QUEUE=N, e.g. parse=4 or '*=8'"))?;
        let consumers: usize = n
            .parse()
            .map_err(|_| format!("pool {s:?}: {n:?} is not a number of consumers"))?;
        if consumers == 0 || consumers > 10_000 {
            return Err(format!("pool {s:?}: consumers must be between 1 and 10000"));
        }
        if queue != ANY_QUEUE && !stepwise_core::spec::valid_name(queue) {
            return Err(format!("pool {s:?}: {queue:?} is not a valid queue name"));
        }
        Ok(Self {
            queue: queue.to_string(),
            consumers,
        })
    }
}

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Shown by `stepwise workers`, e.g. `host:pid`.
    pub name: String,
    pub pools: Vec<PoolSpec>,
    pub lease: Duration,
    /// How long graceful shutdown waits for running attempts before it stops them
    /// and hands their steps back.
    pub shutdown_timeout: Duration,
    /// How often an idle claimer looks for work another process created.
    pub poll_interval: Duration,
    /// Prune terminal runs older than this (none when `None`).
    pub retention: Option<Duration>,
    pub exec: ExecOptions,
    /// The server's URL as callers outside reach it (`--public-url`): a
    /// `complete = "callback"` step's context then has `callback.url`.
    pub public_url: Option<String>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            name: format!("worker:{}", std::process::id()),
            pools: vec![PoolSpec {
                queue: ANY_QUEUE.into(),
                consumers: 8,
            }],
            lease: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(30),
            poll_interval: Duration::from_millis(200),
            retention: None,
            exec: ExecOptions::default(),
            public_url: None,
        }
    }
}

/// Why a worker stopped other than being asked to.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("invalid worker options: {0}")]
    Options(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A worker process's runtime. Build it, then [`Worker::run`] until shutdown.
pub struct Worker {
    store: Arc<dyn Store>,
    heartbeat_store: Arc<dyn Store>,
    handlers: Handlers,
    options: WorkerOptions,
    bus: Bus,
}

impl Worker {
    pub fn new(store: Arc<dyn Store>, options: WorkerOptions) -> Self {
        Self {
            heartbeat_store: store.clone(),
            store,
            handlers: Handlers::default(),
            options,
            bus: Bus::default(),
        }
    }

    /// A separate store handle (its own connections) for heartbeats, so a busy pool
    /// cannot starve them.
    pub fn heartbeat_store(mut self, store: Arc<dyn Store>) -> Self {
        self.heartbeat_store = store;
        self
    }

    pub fn handlers(mut self, handlers: Handlers) -> Self {
        self.handlers = handlers;
        self
    }

    /// The lifecycle bus this worker publishes on.
    pub fn bus(&self) -> Bus {
        self.bus.clone()
    }

    /// Runs until `shutdown` is cancelled, then stops claiming, waits up to the
    /// shutdown timeout for running attempts, stops the rest, hands their steps back
    /// and deregisters.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), WorkerError> {
        if self.options.pools.is_empty() {
            return Err(WorkerError::Options("no pools".into()));
        }
        if self.options.lease < Duration::from_secs(1) {
            return Err(WorkerError::Options("the lease must be at least 1s".into()));
        }
        crate::metrics::describe();
        let sent = Instant::now();
        let lease = self.register().await?;
        let validity = Arc::new(LeaseValidity::new(self.options.lease, sent));
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            store: self.store,
            heartbeat_store: self.heartbeat_store,
            handlers: self.handlers,
            http: crate::executor::http::Clients::new(),
            bus: self.bus,
            options: self.options,
            identity: Mutex::new(Identity {
                id: lease,
                generation: CancellationToken::new(),
            }),
            wake: watch::channel(0).0,
            validity,
            specs: Mutex::new(HashMap::new()),
            rate_limited: AtomicBool::new(false),
            attempts: revocation::Attempts::default(),
        });
        // Wake-ups from other processes; polling covers a lost or missing signal.
        let signal = match inner.store.work_signal().await {
            Ok(rx) => Some(rx),
            Err(e) => {
                tracing::warn!(error = %e, "no wake-up signal from the database; polling only");
                None
            }
        };
        let background = CancellationToken::new();
        let heartbeat = tokio::spawn(inner.clone().heartbeat_loop(background.clone()));
        let reaper = tokio::spawn(inner.clone().reaper_loop(background.clone()));
        let revoker = tokio::spawn(inner.clone().revocation_loop(background.clone()));
        let vacuum = tokio::spawn(inner.clone().vacuum_loop(background.clone()));
        let deadlines = tokio::spawn(inner.clone().deadline_loop(background.clone()));
        let waker = tokio::spawn(inner.clone().wake_loop(background.clone()));
        let firer = {
            let wake = inner.wake.clone();
            tokio::spawn(crate::schedules::fire_loop(
                inner.store.clone(),
                background.clone(),
                move || wake.send_modify(|n| *n = n.wrapping_add(1)),
            ))
        };
        let pruner = inner
            .options
            .retention
            .map(|age| tokio::spawn(inner.clone().retention_loop(age, background.clone())));
        let completer = tokio::spawn(inner.clone().completer_loop(outcomes_rx));

        let tracker = TaskTracker::new();
        let named: HashSet<String> = inner
            .options
            .pools
            .iter()
            .filter(|p| p.queue != ANY_QUEUE)
            .map(|p| p.queue.clone())
            .collect();
        let mut claimers = Vec::new();
        for pool in inner.options.pools.clone() {
            let claimer = Claimer {
                pool,
                named: named.clone(),
                tracker: tracker.clone(),
                shutdown: shutdown.clone(),
                outcomes: outcomes_tx.clone(),
                signal: signal.clone(),
            };
            claimers.push(tokio::spawn(inner.clone().claimer_loop(claimer)));
        }
        // The consumers hold the only senders: the completer ends after the last one.
        drop(outcomes_tx);
        shutdown.cancelled().await;
        for c in claimers {
            let _ = c.await;
        }
        tracker.close();
        let grace = inner.options.shutdown_timeout;
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(
                "shutdown timeout passed: stopping running attempts and releasing their steps"
            );
            inner.identity().generation.cancel();
            tracker.wait().await;
        }
        let _ = completer.await;
        background.cancel();
        let _ = heartbeat.await;
        let _ = reaper.await;
        let _ = revoker.await;
        let _ = vacuum.await;
        let _ = deadlines.await;
        let _ = waker.await;
        let _ = firer.await;
        if let Some(pruner) = pruner {
            let _ = pruner.await;
        }
        let id = inner.identity().id;
        inner.store.deregister_worker(id).await?;
        Ok(())
    }

    async fn register(&self) -> Result<WorkerId, StoreError> {
        register(&*self.store, &self.options).await
    }
}

async fn register(store: &dyn Store, options: &WorkerOptions) -> Result<WorkerId, StoreError> {
    let lease = store
        .register_worker(&WorkerRegistration {
            name: options.name.clone(),
            queues: options.pools.iter().map(|p| p.queue.clone()).collect(),
            lease: options.lease,
        })
        .await?;
    tracing::info!(worker = %lease.id, "worker registered");
    Ok(lease.id)
}

struct Identity {
    id: WorkerId,
    /// Cancelled when this identity's leases are void (reaped, or shutdown ran out):
    /// every attempt started under it stops.
    generation: CancellationToken,
}

/// How one attempt ended, as the completer records it.
enum Finished {
    Succeeded {
        step: ClaimedStep,
        output: Value,
        log: Option<String>,
        /// Set when the consumer waits to be handed the step this one unblocks.
        hand_off: Option<consumer::HandOffRequest>,
    },
    Failed {
        step: ClaimedStep,
        error: crate::executor::AttemptError,
        log: Option<String>,
    },
    /// The step waits (a sleep, a signal, its callback) holding no worker: the
    /// completer parks it.
    Parked {
        step: ClaimedStep,
        wait: stepwise_store::WaitFor,
    },
    /// Stopped without a verdict (shutdown, lost lease): the step goes back.
    Abandoned { step: ClaimedStep },
}

struct Inner {
    store: Arc<dyn Store>,
    heartbeat_store: Arc<dyn Store>,
    handlers: Handlers,
    http: crate::executor::http::Clients,
    bus: Bus,
    options: WorkerOptions,
    identity: Mutex<Identity>,
    /// Bumped whenever new work may be claimable; each claimer sees every bump made
    /// since it last looked, even one made while it was busy claiming.
    wake: watch::Sender<u64>,
    /// How long this worker may still act on its lease (see [`crate::lease`]).
    validity: Arc<LeaseValidity>,
    specs: Mutex<HashMap<(String, i32), Arc<WorkflowSpec>>>,
    /// Whether a cached workflow has a rate-limited step: until one does, claims
    /// are not paced (see [`pacing`]) and cost nothing for it.
    rate_limited: AtomicBool,
    attempts: revocation::Attempts,
}

/// What one pool's claimer works with.
struct Claimer {
    pool: PoolSpec,
    /// Queues that other pools name, which a `*` pool leaves to them.
    named: HashSet<String>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    outcomes: mpsc::UnboundedSender<Finished>,
    signal: Option<watch::Receiver<u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Inner {
    fn identity(&self) -> std::sync::MutexGuard<'_, Identity> {
        lock(&self.identity)
    }

    async fn claimer_loop(self: Arc<Self>, claimer: Claimer) {
        let Claimer {
            pool,
            named,
            tracker,
            shutdown,
            outcomes,
            mut signal,
        } = claimer;
        let slots = Arc::new(Semaphore::new(pool.consumers));
        let filter = if pool.queue == ANY_QUEUE {
            QueueFilter::AllBut(named.iter().cloned().collect())
        } else {
            QueueFilter::Named(pool.queue.clone())
        };
        let mut wake = self.wake.subscribe();
        let mut queues: Vec<String> = vec![];
        let mut queues_read = None::<Instant>;
        let mut busy = false;
        // Woken by news of work (rather than by the poll timer): an empty claim then
        // means another worker took that work first.
        let mut signalled = false;
        // When a rate limit key that just admitted one of ours should admit again.
        let mut pace = None::<Instant>;
        loop {
            let first = tokio::select! {
                p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
                _ = shutdown.cancelled() => return,
            };
            if busy && slots.available_permits() + 1 < pool.consumers / 2 {
                // Under load consumers free up one by one; a moment's wait turns many
                // one-step claims into one claim of several.
                tokio::time::sleep(CLAIM_LINGER).await;
            }
            let mut permits = vec![first];
            // Bumps from here on are news to the next wait.
            wake.borrow_and_update();
            if let Some(s) = signal.as_mut() {
                s.borrow_and_update();
            }
            while let Ok(p) = slots.clone().try_acquire_owned() {
                permits.push(p);
            }
            if pool.queue != ANY_QUEUE {
                queues = vec![pool.queue.clone()];
            } else if queues_read.is_none_or(|t| t.elapsed() > Duration::from_secs(5)) {
                match self.store.list_queues().await {
                    Ok(all) => {
                        queues = all
                            .into_iter()
                            .map(|q| q.name)
                            .filter(|q| !named.contains(q))
                            .collect();
                        queues_read = Some(Instant::now());
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot list queues"),
                }
            }
            let (worker, generation) = {
                let identity = self.identity();
                (identity.id, identity.generation.clone())
            };
            let claimed = if queues.is_empty() || !self.validity.is_valid() {
                Ok(vec![])
            } else {
                let started = Instant::now();
                metrics::counter!(m::CLAIMS).increment(1);
                let r = self
                    .store
                    .claim_steps(&ClaimRequest {
                        worker,
                        queues: queues.clone(),
                        limit: permits.len() as u32,
                    })
                    .await;
                metrics::histogram!(m::CLAIM_SECONDS).record(started.elapsed().as_secs_f64());
                r
            };
            let claimed = match claimed {
                Ok(c) => c,
                Err(e) => {
                    metrics::counter!(m::CLAIM_ERRORS).increment(1);
                    tracing::warn!(error = %e, "claim failed");
                    vec![]
                }
            };
            busy = !claimed.is_empty();
            if claimed.is_empty() {
                metrics::counter!(m::CLAIM_IDLE).increment(1);
                if std::mem::take(&mut signalled) {
                    metrics::counter!(m::CLAIM_LOST_RACES).increment(1);
                }
                drop(permits);
                let wait = pacing::idle_wait(&mut pace, self.options.poll_interval);
                signalled = tokio::select! {
                    _ = wake.changed() => true,
                    changed = async { signal.as_mut().expect("guarded").changed().await }, if signal.is_some() => {
                        if changed.is_err() {
                            signal = None;
                        }
                        true
                    }
                    _ = tokio::time::sleep(wait) => false,
                    _ = shutdown.cancelled() => return,
                };
                continue;
            }
            signalled = false;
            // A short claim may be a rate limit's doing (a full one never waits).
            if claimed.len() < permits.len() {
                pace = self.next_admission(&claimed).or(pace);
            }
            metrics::counter!(m::CLAIM_HITS).increment(1);
            metrics::counter!(m::STEPS_CLAIMED).increment(claimed.len() as u64);
            for (step, permit) in claimed.into_iter().zip(permits.drain(..)) {
                let seat = consumer::Seat {
                    outcomes: outcomes.clone(),
                    queues: filter.clone(),
                    slots: slots.clone(),
                    half_pool: (pool.consumers / 2).max(1),
                    shutdown: shutdown.clone(),
                };
                tracker.spawn(self.clone().consume(step, generation.clone(), seat, permit));
            }
        }
    }

    async fn spec(&self, workflow: &str, version: i32) -> Result<Arc<WorkflowSpec>, String> {
        let key = (workflow.to_string(), version);
        if let Some(spec) = lock(&self.specs).get(&key) {
            return Ok(spec.clone());
        }
        let stored = self
            .store
            .get_workflow(workflow, Some(version))
            .await
            .map_err(|e| format!("cannot read workflow {workflow} v{version}: {e}"))?
            .ok_or_else(|| format!("workflow {workflow} v{version} is not registered"))?;
        let spec = Arc::new(stored.spec);
        if spec.steps.iter().any(|s| s.rate_limit.is_some()) {
            self.rate_limited.store(true, Ordering::Relaxed);
        }
        lock(&self.specs).insert(key, spec.clone());
        Ok(spec)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_parse_and_refuse_nonsense() {
        assert_eq!(
            "parse=4".parse::<PoolSpec>().unwrap(),
            PoolSpec {
                queue: "parse".into(),
                consumers: 4
            }
        );
        assert_eq!("*=8".parse::<PoolSpec>().unwrap().queue, "*");
        for bad in ["parse", "parse=0", "parse=x", "bad name=2", "=3"] {
            assert!(bad.parse::<PoolSpec>().is_err(), "{bad}");
        }
    }
}
