//! The HTTP API, event stream, metrics and dashboard of Stepwise.
//!
//! Not built yet: see the HTTP API issue. Kept in the workspace so the crate graph
//! of DESIGN.md exists from the start.
