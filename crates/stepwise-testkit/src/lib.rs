//! Test-only helpers shared by the Stepwise test suites (a dev-dependency, never
//! published).
//!
//! - [`PgDatabase`] and [`PgSchema`]: a fresh PostgreSQL database (or schema) in the
//!   server named by `STEPWISE_TEST_DATABASE_URL`, dropped when the guard is dropped,
//!   so also when the test panics. Leftovers of runs that were killed before their
//!   guards could drop are swept on the next run (see [`sweep`](PgDatabase::create)).
//! - [`SqliteDb`]: a SQLite file in a temporary directory, removed on drop.
//! - [`TempDir`]: a scratch directory, removed on drop.
//! - [`on_both_backends!`]: one `#[test]` per backend for each scenario.
//!
//! PostgreSQL is never silently skipped: an unreachable server fails the test with a
//! message saying how to point it elsewhere. Outside CI,
//! `STEPWISE_TEST_SKIP_POSTGRES=1` turns the PostgreSQL variants into no-ops; with
//! `CI` set that variable is refused, so a CI job cannot pass without a database.

mod postgres;

pub use postgres::{pg_base_url, skip_postgres, PgDatabase, PgSchema, PG_URL_VAR};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The two storage backends every storage-touching scenario runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A name no other test of this or any concurrent test process uses:
/// `PREFIX_PID_N_NANOS` (lowercase, a valid unquoted SQL identifier when `prefix`
/// is one).
pub fn unique(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!(
        "{prefix}_{}_{}_{nanos}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A scratch directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(prefix));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("create scratch directory {}: {e}", dir.display()));
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A SQLite database file in a directory of its own, removed on drop.
#[derive(Debug)]
pub struct SqliteDb {
    dir: TempDir,
    pub url: String,
}

impl SqliteDb {
    pub fn new() -> Self {
        let dir = TempDir::new("stepwise-sqlite");
        let url = sqlite_url(&dir.path().join("stepwise.db"));
        SqliteDb { dir, url }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Default for SqliteDb {
    fn default() -> Self {
        Self::new()
    }
}

/// The URL of a SQLite file (created on first connect).
pub fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}", file.display())
}

/// Turns each scenario `fn NAME(backend: Backend)` into `NAME::sqlite` and
/// `NAME::postgres` tests. Attributes written before a name (`#[ignore]`,
/// `#[should_panic]`) go on both tests. The PostgreSQL test returns at once when
/// [`skip_postgres`] says so.
///
/// ```ignore
/// use stepwise_testkit::{on_both_backends, Backend};
///
/// on_both_backends!(keys_never_overlap, #[ignore] a_slow_one);
///
/// fn keys_never_overlap(backend: Backend) { /* ... */ }
/// ```
#[macro_export]
macro_rules! on_both_backends {
    ($($(#[$attr:meta])* $scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[test]
            $(#[$attr])*
            fn sqlite() {
                super::$scenario($crate::Backend::Sqlite)
            }

            #[test]
            $(#[$attr])*
            fn postgres() {
                if $crate::skip_postgres() {
                    return;
                }
                super::$scenario($crate::Backend::Postgres)
            }
        }
    )*};
}
