//! Stepwise: durable workflows on the database you already run.
//!
//! The facade an embedding program uses:
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use stepwise::{Engine, HandlerContext};
//! use serde_json::json;
//!
//! stepwise::supervise_if_requested(); // first thing in main: runs `exec` children
//! let engine = Engine::connect("sqlite://app.db").await?;
//! let run = engine.start("ingest", json!({"doc": "a.pdf"})).idempotency_key("a.pdf").send().await?;
//! let worker = engine
//!     .worker()
//!     .pool("default", 8)
//!     .handler("parse", |cx: HandlerContext| async move { Ok(json!({"pages": 3})) })
//!     .build()
//!     .await?;
//! let shutdown = stepwise::CancellationToken::new();
//! worker.run(shutdown).await?;
//! # Ok(()) }
//! ```
//!
//! On PostgreSQL, [`Start::send_in`] enqueues inside the caller's own transaction, so
//! a run exists if and only if the caller's business change commits.
//!
//! The layers underneath are re-exported: [`core`] (vocabulary, specs),
//! [`store`] (the storage seam) and [`engine`] (the worker runtime), and with the
//! `server` feature `server` (the HTTP API and dashboard as an axum router).
//!
//! The `stepwise` command lives in its own crate, `stepwise-cli`, so a program that
//! embeds the engine compiles neither clap, the progress bars, nor (without the
//! `server` feature) axum.

pub use stepwise_core as core;
pub use stepwise_engine as engine;
/// The HTTP API and dashboard (feature `server`).
#[cfg(feature = "server")]
pub use stepwise_server as server;
pub use stepwise_store as store;

pub use stepwise_engine::{HandlerContext, HandlerError, Lifecycle, Worker};
pub use tokio_util::sync::CancellationToken;

use serde_json::Value;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use stepwise_core::{RunId, WorkflowSpec};
use stepwise_engine::{ExecOptions, Handlers, PoolSpec, WorkerOptions};
use stepwise_store::{
    CallbackOutcome, CallbackRequest, CallbackResult, CancelOutcome, CancelRequest, NewRun,
    RetryOutcome, RetryRequest, RunBatch, SignalOutcome, SignalRequest, SignalTarget, StartAt,
    Store, StoreError, WorkflowVersion,
};

/// Runs the `exec` supervisor and exits when this process was started as one
/// (`PROGRAM __supervise ...`); returns at once otherwise. Call it first in `main`
/// of a program whose worker runs `exec` steps.
pub fn supervise_if_requested() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(stepwise_engine::supervisor::SUPERVISE_COMMAND) {
        std::process::exit(stepwise_engine::supervisor::supervise(&args[2..]));
    }
}

/// A connection to a Stepwise database.
#[derive(Clone)]
pub struct Engine {
    store: Arc<dyn Store>,
    url: String,
}

impl Engine {
    /// Connects to `sqlite://PATH` or `postgres://...`. An empty database gets the
    /// schema; a schema of another version is refused.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let store = stepwise_store::connect(url).await?;
        match store.check_schema().await {
            Ok(()) => {}
            Err(StoreError::SchemaMismatch { database: 0, .. }) => {
                store.migrate().await?;
            }
            Err(e) => return Err(e),
        }
        Ok(Self {
            store,
            url: url.to_string(),
        })
    }

    /// The storage seam, for everything the facade does not wrap.
    pub fn store(&self) -> Arc<dyn Store> {
        self.store.clone()
    }

    /// Registers (or updates) a workflow definition.
    pub async fn register(&self, spec: &WorkflowSpec) -> Result<WorkflowVersion, StoreError> {
        self.store.register_workflow(spec).await
    }

    /// Starts a run of `workflow` with `input`; set options, then `.send().await`.
    pub fn start(&self, workflow: impl Into<String>, input: Value) -> Start<'_> {
        Start {
            engine: self,
            run: NewRun::new(workflow, input),
        }
    }

    /// Cancels a run: unstarted steps are cancelled, running ones stopped by their
    /// workers, and completed steps compensated unless `compensate` is false.
    pub async fn cancel(&self, run: RunId, compensate: bool) -> Result<CancelOutcome, StoreError> {
        self.store
            .cancel_run(&CancelRequest { run, compensate })
            .await
    }

    /// Reopens a failed, cancelled, timed-out or compensation_failed run, from
    /// `from` and everything downstream of it (and every step that did not complete).
    pub async fn retry(&self, run: RunId, from: Option<&str>) -> Result<RetryOutcome, StoreError> {
        self.store
            .retry_run(&RetryRequest {
                run,
                from: from.map(str::to_string),
            })
            .await
    }

    /// Sends `name` with `data` to a run's mailbox: a `wait` step of the run takes
    /// the oldest unconsumed signal of its name (see [`stepwise_store::SignalTarget`]
    /// to address a run by workflow and idempotency key instead).
    pub async fn signal(
        &self,
        run: RunId,
        name: impl Into<String>,
        data: Value,
    ) -> Result<SignalOutcome, StoreError> {
        self.store
            .send_signal(&SignalRequest {
                target: SignalTarget::Run(run),
                name: name.into(),
                data,
                id: None,
            })
            .await
    }

    /// Ends the attempt whose callback token this is (`STEPWISE_CALLBACK_TOKEN`);
    /// a token of an attempt that is no longer current is refused.
    pub async fn complete_callback(
        &self,
        token: impl Into<String>,
        result: CallbackResult,
    ) -> Result<CallbackOutcome, StoreError> {
        self.store
            .complete_callback(&CallbackRequest {
                token: token.into(),
                result,
            })
            .await
    }

    /// A worker with handlers and pools.
    pub fn worker(&self) -> WorkerBuilder {
        WorkerBuilder {
            engine: self.clone(),
            options: WorkerOptions {
                pools: vec![],
                ..WorkerOptions::default()
            },
            handlers: Handlers::default(),
        }
    }
}

/// A run about to be started.
pub struct Start<'a> {
    engine: &'a Engine,
    run: NewRun,
}

impl Start<'_> {
    /// A second start with the same key returns the first run.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.run.idempotency_key = Some(key.into());
        self
    }

    pub fn concurrency_key(mut self, key: impl Into<String>) -> Self {
        self.run.concurrency_key = Some(key.into());
        self
    }

    pub fn priority(mut self, priority: i32) -> Self {
        self.run.priority = priority;
        self
    }

    /// Claimable only after `delay` on the database clock.
    pub fn delay(mut self, delay: Duration) -> Self {
        self.run.start = StartAt::After(delay);
        self
    }

    /// Creates the run (committed before this returns).
    pub async fn send(self) -> Result<RunId, StoreError> {
        let created = self
            .engine
            .store
            .create_runs(RunBatch {
                group: None,
                runs: vec![self.run],
            })
            .await?;
        first(created)
    }

    /// Creates the run inside the caller's PostgreSQL transaction: it exists if and
    /// only if the caller commits. (PostgreSQL only; the engine's own URL is not used.)
    pub async fn send_in(
        self,
        conn: &mut stepwise_store::PgConnection,
    ) -> Result<RunId, StoreError> {
        let created = stepwise_store::PgStore::create_runs_in(
            conn,
            &RunBatch {
                group: None,
                runs: vec![self.run],
            },
        )
        .await?;
        first(created)
    }
}

fn first(created: Vec<stepwise_store::CreatedRun>) -> Result<RunId, StoreError> {
    created
        .first()
        .map(|c| c.id)
        .ok_or_else(|| StoreError::Corrupt("no run created".into()))
}

/// Builds a [`Worker`].
pub struct WorkerBuilder {
    engine: Engine,
    options: WorkerOptions,
    handlers: Handlers,
}

impl WorkerBuilder {
    /// `consumers` consumers for `queue` (`"*"`: every queue no other pool names).
    pub fn pool(mut self, queue: impl Into<String>, consumers: usize) -> Self {
        self.options.pools.push(PoolSpec {
            queue: queue.into(),
            consumers,
        });
        self
    }

    /// Registers the handler run by steps with `handler = "name"`.
    pub fn handler<F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        F: Fn(HandlerContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Value, HandlerError>> + Send + 'static,
    {
        self.handlers.register(name, f);
        self
    }

    pub fn lease(mut self, lease: Duration) -> Self {
        self.options.lease = lease;
        self
    }

    pub fn shutdown_timeout(mut self, timeout: Duration) -> Self {
        self.options.shutdown_timeout = timeout;
        self
    }

    /// The API server's URL as outside callers reach it: a `complete = "callback"`
    /// step's context then has `callback.url`.
    pub fn public_url(mut self, url: impl Into<String>) -> Self {
        self.options.public_url = Some(url.into());
        self
    }

    /// The program `exec` steps run under (default: this executable, which must call
    /// [`supervise_if_requested`] first in `main`).
    pub fn exec_options(mut self, exec: ExecOptions) -> Self {
        self.options.exec = exec;
        self
    }

    /// Opens the worker's connections (work and heartbeats) and builds it; run it with
    /// [`Worker::run`].
    pub async fn build(mut self) -> Result<Worker, StoreError> {
        if self.options.pools.is_empty() {
            self.options.pools.push(PoolSpec {
                queue: stepwise_engine::ANY_QUEUE.into(),
                consumers: 8,
            });
        }
        // The worker's own connections, their sessions bounded by its lease (a
        // transaction of it that goes silent ends well within the lease), one pool
        // for its work and one for heartbeats, which a busy pool must not starve.
        let session = stepwise_store::SessionOptions {
            lease: Some(self.options.lease),
            application_name: Some(format!("stepwise worker {}", self.options.name)),
        };
        let work = stepwise_store::connect_with(&self.engine.url, &session).await?;
        let heartbeats = stepwise_store::connect_with(&self.engine.url, &session).await?;
        Ok(Worker::new(work, self.options)
            .heartbeat_store(heartbeats)
            .handlers(self.handlers))
    }
}
