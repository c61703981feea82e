//! Integration tests of the `stepwise` binary and the worker, driven from outside
//! as a user (or a crash) would: real processes, real databases.
//!
//! One test binary for the crate; each area is a module.

mod bench;
mod children;
mod cli;
mod closed_stdout;
mod crash;
mod database;
mod early_end;
mod escaped_children;
mod executors;
mod fan_out;
mod flow;
mod flow_cli;
mod https;
mod library;
mod limits;
mod logs;
mod partition;
mod run_inputs;
mod saga;
mod schedules;
mod server;
mod support;
mod wait_metrics;
mod waits;
mod worker_metrics;
