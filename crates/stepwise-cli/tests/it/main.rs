//! Integration tests of the `stepwise` binary and the worker, driven from outside
//! as a user (or a crash) would: real processes, real databases.
//!
//! One test binary for the crate; each area is a module.

mod cli;
mod crash;
mod early_end;
mod escaped_children;
mod executors;
mod flow;
mod flow_cli;
mod library;
mod server;
mod support;
