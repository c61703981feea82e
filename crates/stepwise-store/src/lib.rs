//! Storage for Stepwise: one coarse seam, two hand-written backends.
//!
//! The seam ([`Store`], split per concern into [`WorkflowStore`], [`RunStore`],
//! [`StepStore`], [`WorkerStore`], [`EventStore`], [`ClockStore`] and
//! [`SchemaStore`]) is made of domain operations, each one transaction that does
//! everything its invariant needs: the state change, its event row and the counters
//! that joins depend on. Callers never hold a transaction across the seam, and no
//! database type crosses it.
//!
//! Design rules every backend follows (docs/design.md "Invariants"):
//!
//! - **Fencing.** A claim writes a fresh random [`stepwise_core::LeaseToken`]; every
//!   outcome names `(step id, token)` and only applies while the step is `running`
//!   under that token. Refused writes are reported, never silently dropped.
//! - **The database decides time.** Lease expiry, backoff and delays are computed in
//!   SQL from the database clock (`stepwise_now()` on PostgreSQL, the `db_clock` view
//!   on SQLite), which includes an offset that tests move with
//!   [`ClockStore::advance_clock`] instead of sleeping.
//! - **Joins are counted.** A step's remaining dependencies, a run's open steps and
//!   a group's remaining runs are counters decremented in the completing transaction,
//!   never a re-read of siblings, so two racing completions cannot both miss the join.
//! - **Order is a sequence.** "Oldest first" is a `bigserial`/rowid, never a time.
//! - **Events commit with their change**, and the PostgreSQL reader only serves
//!   events below the oldest running transaction, so a late commit is never skipped.
//!
//! SQL lives in `.sql` files under each backend's `sql/` directory, with the same
//! file names in both, and each backend carries its own `migrations/`.

mod error;
pub mod explain;
mod failure;
mod fan_out;
mod limits;
pub mod model;
mod plan;
pub mod postgres;
mod retry_plan;
mod rules;
mod sanitize;
mod schedules;
pub mod sqlite;
mod stop;
mod token;
mod traits;
mod transient;
mod waiting;

pub use error::{Result, StoreError};
pub use model::*;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
/// For [`PgStore::create_runs_in`]: the caller's transaction.
pub use sqlx::PgConnection;
pub use stop::StopReason;
pub use traits::*;

use std::sync::Arc;

/// The schema version this build reads and writes.
pub const SCHEMA_VERSION: i64 = 9;

/// Opens the store named by `url` (`sqlite://PATH` or `postgres://...`) without
/// checking its schema version; call [`SchemaStore::migrate`] or
/// [`SchemaStore::check_schema`] next.
pub async fn connect(url: &str) -> Result<Arc<dyn Store>> {
    connect_with(url, &SessionOptions::default()).await
}

/// How the sessions of one process are set up (PostgreSQL; SQLite has no sessions
/// to tune). A worker passes its lease, so that the database gives up on a session
/// of it that goes silent inside a transaction well within that lease.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionOptions {
    /// The lease of the worker this process runs, if it runs one. Without it the
    /// sessions get the bounds of the default lease (30 s) and no statement timeout.
    pub lease: Option<std::time::Duration>,
    /// Shown as `application_name` in `pg_stat_activity` (default `stepwise`).
    pub application_name: Option<String>,
}

/// [`connect`], with the sessions set up for `session`.
pub async fn connect_with(url: &str, session: &SessionOptions) -> Result<Arc<dyn Store>> {
    if url.starts_with("sqlite:") {
        Ok(Arc::new(SqliteStore::connect(url).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PgStore::connect_for(url, session).await?))
    } else {
        Err(StoreError::UnsupportedUrl(url.to_string()))
    }
}

/// How long the first connection to PostgreSQL may take before the database counts
/// as unreachable.
pub const CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// The leases among `asked` that are not in `accepted`: the refused writes. Whole
/// leases are compared, so an old lease of a step is refused even when the same
/// batch also holds the step's current lease.
pub(crate) fn refused(
    asked: impl Iterator<Item = stepwise_core::Lease>,
    accepted: &std::collections::HashSet<stepwise_core::Lease>,
) -> Vec<stepwise_core::Lease> {
    let mut seen = std::collections::HashSet::new();
    asked
        .filter(|l| !accepted.contains(l) && seen.insert(*l))
        .collect()
}

/// The outcomes of a batch with repeated leases dropped (the first one wins), so a
/// lease is recorded at most once.
pub(crate) fn first_per_lease<T>(
    items: &[T],
    lease: impl Fn(&T) -> stepwise_core::Lease,
) -> Vec<&T> {
    let mut seen = std::collections::HashSet::new();
    items.iter().filter(|i| seen.insert(lease(i))).collect()
}
