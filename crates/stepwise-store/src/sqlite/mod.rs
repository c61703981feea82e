//! The SQLite backend: embedded, one machine, the default.
//!
//! One writer at a time is SQLite's rule, so every write runs on a single pooled
//! connection, begun `BEGIN IMMEDIATE` (the write lock is taken up front, so two
//! processes never deadlock upgrading a read lock, and a dropped future rolls the
//! transaction back through the driver, or the connection is discarded: see
//! [`no_open_transaction`]). Reads use a separate pool and WAL lets them
//! run beside the writer. Because transactions are serialized, per-row statements
//! inside one transaction are cheap and the counters need no row locks.

mod children;
mod claims;
mod control;
mod events;
mod fan_out;
mod flow;
mod limits;
mod locks;
mod rows;
mod runs;
mod schedules;
mod settle;
mod steps;
mod tokens;
mod waits;
mod workers;

use crate::{ClockStore, Result, SchemaStore, StoreError, SCHEMA_VERSION};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, Sqlite, SqlitePool, Transaction};
use std::str::FromStr;
use std::time::Duration;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("migrations/0001_init.sql")),
    (2, include_str!("migrations/0002_early_end.sql")),
    (3, include_str!("migrations/0003_flow_control.sql")),
    (4, include_str!("migrations/0004_tokens.sql")),
    (5, include_str!("migrations/0005_lean_hot_path.sql")),
    (6, include_str!("migrations/0006_waiting_steps.sql")),
    (7, include_str!("migrations/0007_schedules.sql")),
    (8, include_str!("migrations/0008_fan_out.sql")),
    (9, include_str!("migrations/0009_rate_limits.sql")),
];

/// Stepwise on SQLite.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `url`, e.g. `sqlite://stepwise.db`.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::open(SqliteConnectOptions::from_str(url)?.create_if_missing(true)).await
    }

    async fn open(options: SqliteConnectOptions) -> Result<Self> {
        let options = options
            // Statement logs carry SQL text, which is never shown to a user.
            .disable_statement_logging()
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .before_acquire(|conn, _| Box::pin(async move { Ok(no_open_transaction(conn)) }))
            .connect_with(options.clone())
            .await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(60))
            .before_acquire(|conn, _| Box::pin(async move { Ok(no_open_transaction(conn)) }))
            .connect_with(options)
            .await?;
        Ok(Self { writer, reader })
    }

    /// A write transaction holding the database's write lock from its first statement.
    async fn write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }
}

/// Whether a pooled connection may be handed out: not if a transaction is still
/// open on it. sqlx's `begin_with` awaits twice (the `BEGIN IMMEDIATE`, then a
/// check that it took); a future dropped between the two leaves the transaction
/// begun with no `Transaction` to roll it back. Such a connection would refuse every
/// later `begin_with` and keep the database's write lock, wedging every process;
/// the pool closes it instead (closing rolls the transaction back). Rollbacks of
/// dropped `Transaction`s are flushed when a connection is released, before this.
fn no_open_transaction(conn: &sqlx::SqliteConnection) -> bool {
    let depth = <<Sqlite as sqlx::Database>::TransactionManager as sqlx::TransactionManager>::get_transaction_depth(conn);
    if depth > 0 {
        tracing::warn!("closing a SQLite connection left inside a transaction by a cancelled call");
    }
    depth == 0
}

/// Milliseconds since the epoch, as stored, to a timestamp.
pub(crate) fn time(ms: i64) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms).ok_or_else(|| StoreError::Corrupt(format!("time {ms}")))
}

pub(crate) fn opt_time(ms: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    ms.map(time).transpose()
}

#[async_trait]
impl SchemaStore for SqliteStore {
    async fn migrate(&self) -> Result<i64> {
        let mut tx = self.write().await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS stepwise_schema (
                version INTEGER PRIMARY KEY,
                applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)",
        )
        .execute(&mut *tx)
        .await?;
        let current: i64 =
            sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM stepwise_schema")
                .fetch_one(&mut *tx)
                .await?;
        if current > SCHEMA_VERSION {
            return Err(StoreError::SchemaMismatch {
                database: current,
                expected: SCHEMA_VERSION,
            });
        }
        for &(version, sql) in MIGRATIONS {
            if version <= current {
                continue;
            }
            sqlx::Executor::execute(&mut *tx, sql).await?;
            sqlx::query("INSERT INTO stepwise_schema (version) VALUES (?1)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(SCHEMA_VERSION)
    }

    async fn check_schema(&self) -> Result<()> {
        let exists: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'stepwise_schema'",
        )
        .fetch_one(&self.reader)
        .await?;
        let database: i64 = if exists == 0 {
            0
        } else {
            sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM stepwise_schema")
                .fetch_one(&self.reader)
                .await?
        };
        if database == SCHEMA_VERSION {
            Ok(())
        } else {
            Err(StoreError::SchemaMismatch {
                database,
                expected: SCHEMA_VERSION,
            })
        }
    }

    fn backend(&self) -> &'static str {
        "sqlite"
    }
}

#[async_trait]
impl ClockStore for SqliteStore {
    async fn now(&self) -> Result<DateTime<Utc>> {
        let ms: i64 = sqlx::query_scalar(include_str!("sql/now.sql"))
            .fetch_one(&self.reader)
            .await?;
        time(ms)
    }

    async fn advance_clock(&self, by: Duration) -> Result<()> {
        let mut tx = self.write().await?;
        sqlx::query(include_str!("sql/advance_clock.sql"))
            .bind(crate::transient::millis(by))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }
}
