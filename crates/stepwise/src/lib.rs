//! Stepwise: durable workflows on the database you already run.
//!
//! This facade re-exports the layers an embedding program uses. Today that is the
//! domain vocabulary ([`core`]) and the storage seam ([`store`]); the worker runtime
//! and the `Engine` API arrive with the runtime issue.

pub use stepwise_core as core;
pub use stepwise_store as store;
