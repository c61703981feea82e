//! The worker runtime of Stepwise.
//!
//! A [`Worker`] registers itself, runs pools of consumers fed by one claimer per
//! pool, records outcomes through a batching completer, heartbeats its lease, reaps
//! silent workers, and shuts down gracefully (stop claiming, wait, stop the rest and
//! hand their steps back). Steps run through [`executor`]s: `exec` (a child process
//! under the [`supervisor`], so it never outlives its lease), `http`, and Rust
//! `handler`s. What the worker does is published on the lifecycle [`bus`] and
//! counted through the `metrics` facade ([`metrics`]).
//!
//! Every worker also fires due [`schedules`] (no leader: the store fires each fire
//! time once, whoever asks).
//!
//! The engine never decides time itself: leases, backoff and delays are the store's
//! (the database clock). It only measures how long an attempt may run (its timeout),
//! which is a local matter of stopping a child.

pub mod bus;
pub mod capture;
mod containment;
pub mod executor;
pub mod lease;
pub mod metrics;
pub mod schedules;
pub mod supervisor;
pub mod worker;

pub use bus::{Bus, Lifecycle};
pub use executor::handler::{HandlerContext, HandlerError, Handlers};
pub use executor::ExecOptions;
pub use lease::LeaseValidity;
pub use worker::{PoolSpec, Worker, WorkerError, WorkerOptions, ANY_QUEUE};
