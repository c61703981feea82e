//! The PostgreSQL backend: many worker processes on many machines.
//!
//! Claims use `FOR UPDATE SKIP LOCKED` in a CTE, one query per queue, against a
//! partial index that holds only claimable rows. Outcomes are written set-based
//! (`unnest` arrays), so a batch of n completions costs a handful of statements, not
//! n transactions. Transactions run at READ COMMITTED; joins are counters updated
//! under row locks, which READ COMMITTED re-checks on the newest row version, so
//! racing completions serialize on the counter instead of missing each other.

mod children;
mod control;
mod events;
mod fan_out;
mod flow;
mod limits;
mod rows;
mod run_rows;
mod runs;
mod schedules;
mod session;
mod settle;
mod steps;
mod tokens;
mod waits;
mod workers;

use crate::{ClockStore, Result, SchemaStore, SessionOptions, StoreError, SCHEMA_VERSION};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use session::SessionSettings;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};
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

/// Stepwise on PostgreSQL.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to `url` and uses its default schema (`public`).
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_for(url, &SessionOptions::default()).await
    }

    /// Connects to `url`, its sessions set up for `session` (a worker's lease).
    pub async fn connect_for(url: &str, session: &SessionOptions) -> Result<Self> {
        let options = SessionSettings::new(session).apply(PgConnectOptions::from_str(url)?);
        Self::connect_with(options).await
    }

    /// Connects to `url` with every object in `schema`, which must exist. Tests use
    /// one schema each; so can several Stepwise installations in one database.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self> {
        Self::connect_in_schema_for(url, schema, &SessionOptions::default()).await
    }

    /// [`PgStore::connect_in_schema`], its sessions set up for `session`.
    pub async fn connect_in_schema_for(
        url: &str,
        schema: &str,
        session: &SessionOptions,
    ) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?.options([("search_path", schema)]);
        Self::connect_with(SessionSettings::new(session).apply(options)).await
    }

    async fn connect_with(options: PgConnectOptions) -> Result<Self> {
        // Statement logs carry SQL text, which is never shown to a user (sqlx warns
        // with it for every statement slower than a second).
        let options = options.disable_statement_logging();
        // The pool retries a refused connection until its acquire timeout and then
        // says only that it timed out; one connection of our own first fails at
        // once with the cause (refused, unknown database, authentication).
        let first = tokio::time::timeout(crate::CONNECT_TIMEOUT, options.connect())
            .await
            .map_err(|_| crate::error::unreachable(crate::CONNECT_TIMEOUT))??;
        first.close().await?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(Duration::from_secs(30))
            .connect_lazy_with(options);
        Ok(Self { pool })
    }

    /// The pool, for the PostgreSQL-only extras (transactional enqueue, LISTEN).
    /// Its sessions carry the engine's settings: a transaction left idle longer than
    /// `idle_in_transaction_session_timeout` is ended by the server.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

#[async_trait]
impl SchemaStore for PgStore {
    async fn migrate(&self) -> Result<i64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.stepwise.migrate'))",
        )
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS stepwise_schema (
                version bigint PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now())",
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
            sqlx::query("INSERT INTO stepwise_schema (version) VALUES ($1)")
                .bind(version)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(SCHEMA_VERSION)
    }

    async fn check_schema(&self) -> Result<()> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT CASE WHEN to_regclass('stepwise_schema') IS NULL THEN 0::bigint END",
        )
        .fetch_one(&self.pool)
        .await?;
        let database = match found {
            Some(zero) => zero,
            None => {
                sqlx::query_scalar("SELECT coalesce(max(version), 0) FROM stepwise_schema")
                    .fetch_one(&self.pool)
                    .await?
            }
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
        "postgres"
    }
}

#[async_trait]
impl ClockStore for PgStore {
    async fn now(&self) -> Result<DateTime<Utc>> {
        Ok(sqlx::query_scalar(include_str!("sql/now.sql"))
            .fetch_one(&self.pool)
            .await?)
    }

    async fn advance_clock(&self, by: Duration) -> Result<()> {
        sqlx::query(include_str!("sql/advance_clock.sql"))
            .bind(crate::transient::millis(by))
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// LISTENs on `channel` on a connection of its own; the counter moves on every
/// notification. A hint to stop sleeping, never a promise: callers still poll.
async fn listen(pool: &PgPool, channel: &str) -> Result<tokio::sync::watch::Receiver<u64>> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener.listen(channel).await?;
    let (tx, rx) = tokio::sync::watch::channel(0u64);
    tokio::spawn(async move {
        loop {
            // recv() reconnects by itself after a lost connection.
            match listener.recv().await {
                Ok(_) => {
                    if tx.is_closed() {
                        return;
                    }
                    tx.send_modify(|n| *n = n.wrapping_add(1));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection failed; polling only");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    if tx.is_closed() {
                        return;
                    }
                }
            }
        }
    });
    Ok(rx)
}
