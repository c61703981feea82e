//! The worker runtime of Stepwise (claim loops, heartbeats, reaper, executors).
//!
//! Not built yet: the engine core issue only lays down the storage layer
//! (`stepwise-store`) that this crate will drive. Kept in the workspace so the crate
//! graph of DESIGN.md exists from the start.
