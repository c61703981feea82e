//! Fresh PostgreSQL databases and schemas for tests, dropped by their guards.
//!
//! Every statement runs on a thread of its own with its own small runtime, so the
//! guards can be created and dropped from synchronous tests and from inside a tokio
//! runtime alike (an async `Drop` does not exist, and blocking on the caller's
//! runtime from inside it would panic).

use crate::unique;
use sqlx::{Connection, PgConnection};
use std::sync::OnceLock;
use std::time::Duration;

/// The variable naming the PostgreSQL server (and database) tests may use.
pub const PG_URL_VAR: &str = "STEPWISE_TEST_DATABASE_URL";
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const SKIP_VAR: &str = "STEPWISE_TEST_SKIP_POSTGRES";
/// Names of everything this kit creates start with this, then the creating
/// process's id (which is how the sweep tells leftovers from live databases).
const PREFIX: &str = "swt";
/// A drop waits for locks a failed test's leftover connections may still hold,
/// but not forever (the sweep of a later run takes what is left).
const LOCK_PATIENCE: &str = "SET lock_timeout = '60s'";
/// A loaded machine answers slowly; an absent server fails fast anyway.
const CONNECT_PATIENCE: Duration = Duration::from_secs(30);

/// `STEPWISE_TEST_DATABASE_URL`, or the local default.
pub fn pg_base_url() -> String {
    std::env::var(PG_URL_VAR).unwrap_or_else(|_| DEFAULT_PG_URL.to_string())
}

fn ci() -> bool {
    std::env::var_os("CI").is_some_and(|v| !v.is_empty())
}

/// Whether the PostgreSQL variant of a test should return without running:
/// only when `STEPWISE_TEST_SKIP_POSTGRES` is set and `CI` is not. Under CI a
/// missing database is a failure, never a skip.
pub fn skip_postgres() -> bool {
    let asked = std::env::var_os(SKIP_VAR).is_some_and(|v| !v.is_empty() && v != "0");
    if asked && ci() {
        panic!("{SKIP_VAR} is set but so is CI: in CI the PostgreSQL tests always run");
    }
    if asked {
        eprintln!("PostgreSQL test skipped ({SKIP_VAR} is set)");
    }
    asked
}

/// A fresh PostgreSQL database, dropped (`WITH (FORCE)`, ending any connection a
/// test's worker process left) when this is dropped.
#[derive(Debug)]
pub struct PgDatabase {
    pub name: String,
    /// Connects to this database.
    pub url: String,
    base: String,
}

impl PgDatabase {
    /// Creates the database, first sweeping leftovers of dead test processes.
    pub fn create() -> Self {
        let base = pg_base_url();
        sweep_once(&base);
        let name = unique(PREFIX);
        admin(&base, &[format!("CREATE DATABASE {name}")])
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        PgDatabase {
            url: with_database(&base, &name),
            name,
            base,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let drop = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        if let Err(e) = admin(&self.base, &[LOCK_PATIENCE.into(), drop]) {
            eprintln!("could not drop test database {}: {e}", self.name);
        }
    }
}

/// A fresh schema in the database of `STEPWISE_TEST_DATABASE_URL` (cheaper than a
/// database), dropped with everything in it when this is dropped.
#[derive(Debug)]
pub struct PgSchema {
    pub name: String,
    /// The database holding the schema (connect with `search_path` set to `name`).
    pub url: String,
}

impl PgSchema {
    pub fn create() -> Self {
        let url = pg_base_url();
        sweep_once(&url);
        let name = unique(PREFIX);
        admin(&url, &[format!("CREATE SCHEMA {name}")])
            .unwrap_or_else(|e| panic!("CREATE SCHEMA {name}: {e}"));
        PgSchema { name, url }
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        let drop = format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name);
        if let Err(e) = admin(&self.url, &[LOCK_PATIENCE.into(), drop]) {
            eprintln!("could not drop test schema {}: {e}", self.name);
        }
    }
}

/// `base` with its database replaced by `name` (user, host and parameters kept).
fn with_database(base: &str, name: &str) -> String {
    let (url, query) = match base.split_once('?') {
        Some((url, query)) => (url, Some(query)),
        None => (base, None),
    };
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    match query {
        Some(q) => format!("{scheme}://{authority}/{name}?{q}"),
        None => format!("{scheme}://{authority}/{name}"),
    }
}

/// Drops, once per process, what test processes that no longer exist left behind:
/// a process killed mid-test (SIGKILL, a CI timeout) never runs its guards' `Drop`.
/// The creator's pid is in every name; a name whose pid is alive is left alone.
/// Only where `/proc` shows processes (Linux); elsewhere nothing is swept.
fn sweep_once(base: &str) {
    static SWEPT: OnceLock<()> = OnceLock::new();
    SWEPT.get_or_init(|| {
        if !std::path::Path::new("/proc/self").exists() {
            return;
        }
        let list = |sql: &str| query_names(base, sql).unwrap_or_default();
        let databases = list(
            // `sw_it_PID_...`: databases of the CLI tests before this kit.
            r"SELECT datname FROM pg_database WHERE datname LIKE 'swt\_%' OR datname LIKE 'sw\_it\_%'",
        );
        let schemas = list(r"SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'swt\_%'");
        let mut drops = Vec::new();
        for name in databases.iter().filter(|n| orphaned(n)) {
            drops.push(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
        for name in schemas.iter().filter(|n| orphaned(n)) {
            drops.push(format!("DROP SCHEMA IF EXISTS {name} CASCADE"));
        }
        for drop in drops {
            // Another process may be sweeping the same leftover: errors are fine.
            let _ = admin(base, &[drop]);
        }
    });
}

/// Whether the process whose id follows the prefix in `name` is gone.
fn orphaned(name: &str) -> bool {
    let pid = name
        .strip_prefix("swt_")
        .or_else(|| name.strip_prefix("sw_it_"))
        .and_then(|rest| rest.split('_').next())
        .and_then(|pid| pid.parse::<u32>().ok());
    match pid {
        Some(pid) => !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        None => false,
    }
}

/// Runs `statements` on a connection of their own to `url`.
fn admin(url: &str, statements: &[String]) -> Result<(), String> {
    let url = url.to_string();
    let statements = statements.to_vec();
    on_own_runtime(async move {
        let mut conn = connect(&url).await?;
        for sql in &statements {
            sqlx::query(sql)
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        let _ = conn.close().await;
        Ok(())
    })
}

fn query_names(url: &str, sql: &str) -> Result<Vec<String>, String> {
    let url = url.to_string();
    let sql = sql.to_string();
    on_own_runtime(async move {
        let mut conn = connect(&url).await?;
        let names = sqlx::query_scalar::<_, String>(&sql)
            .fetch_all(&mut conn)
            .await
            .map_err(|e| e.to_string());
        let _ = conn.close().await;
        names
    })
}

fn on_own_runtime<T: Send + 'static>(
    work: impl std::future::Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?
            .block_on(work)
    })
    .join()
    .unwrap_or_else(|_| Err("the database thread panicked".into()))
}

/// Connects or explains how to provide a database; never a silent skip.
async fn connect(url: &str) -> Result<PgConnection, String> {
    let error = match tokio::time::timeout(CONNECT_PATIENCE, PgConnection::connect(url)).await {
        Ok(Ok(conn)) => return Ok(conn),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {CONNECT_PATIENCE:?}"),
    };
    let shown = redact(url);
    let how = format!(
        "set {PG_URL_VAR}=postgres://USER:PASSWORD@HOST:PORT/DB (the role needs CREATEDB and \
         CREATE on that database)"
    );
    Err(if ci() {
        format!(
            "PostgreSQL is unreachable at {shown} ({error}). CI is set, so a missing database \
             is a failure: provide one and {how}."
        )
    } else {
        format!(
            "PostgreSQL is unreachable at {shown} ({error}). The PostgreSQL tests need a \
             database: {how}, or set {SKIP_VAR}=1 to skip them on this machine."
        )
    })
}

/// The URL without its password.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_url_keeps_user_host_and_parameters() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "x"),
            "postgres://u:p@h:5432/x?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "x"), "postgres://h/x");
    }

    #[test]
    fn only_names_of_dead_processes_are_orphaned() {
        let alive = format!("swt_{}_0_1", std::process::id());
        assert!(!orphaned(&alive));
        assert!(orphaned(&format!("swt_{}_0_1", u32::MAX)));
        assert!(!orphaned("postgres"));
        assert!(!orphaned("swt_notapid"));
    }

    #[test]
    fn a_dropped_guard_drops_its_database_even_after_a_panic() {
        if skip_postgres() {
            return;
        }
        let name = std::panic::catch_unwind(|| {
            let db = PgDatabase::create();
            let name = db.name.clone();
            std::panic::panic_any(name);
        })
        .unwrap_err()
        .downcast::<String>()
        .unwrap();
        let left = query_names(
            &pg_base_url(),
            &format!("SELECT datname FROM pg_database WHERE datname = '{name}'"),
        )
        .unwrap();
        assert!(left.is_empty(), "{name} is still there");
    }
}
