//! One module per command family. Commands print results on stdout and everything
//! else (progress, notes) on stderr, and fail with a [`CliError`] carrying the exit
//! code docs/design.md "Outside interfaces" gives the situation.

pub mod apply;
pub mod bench;
pub mod control;
pub mod events;
pub mod flow;
pub mod limits;
pub mod run;
pub mod runs;
pub mod schedules;
pub mod server;
pub mod show;
pub mod tokens;
pub mod waits;
pub mod worker;

use std::sync::Arc;
use stepwise_core::RunId;
use stepwise_store::Store;

/// An error with the exit code it should end the process with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

impl CliError {
    /// Bad usage or input: exit 2.
    pub fn input(message: impl Into<String>) -> anyhow::Error {
        CliError {
            code: 2,
            message: message.into(),
        }
        .into()
    }

    /// Not found: exit 4.
    pub fn not_found(message: impl Into<String>) -> anyhow::Error {
        CliError {
            code: 4,
            message: message.into(),
        }
        .into()
    }

    /// A conflict with the current state (lock held, run already ended): exit 3.
    pub fn conflict(message: impl Into<String>) -> anyhow::Error {
        CliError {
            code: 3,
            message: message.into(),
        }
        .into()
    }

    /// The run or operation failed: exit 1.
    pub fn failed(message: impl Into<String>) -> anyhow::Error {
        CliError {
            code: 1,
            message: message.into(),
        }
        .into()
    }
}

/// Whether a command may set up the database it is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Schema {
    /// `migrate`, `dev`, `run --local`, `bench` (and every command on SQLite): an
    /// empty database (or a SQLite file that does not exist yet) gets the schema.
    Create,
    /// Every other command on PostgreSQL: a database without the schema is an
    /// error, so a mistyped URL is noticed rather than silently given a schema.
    Require,
}

/// Opens the store and checks its schema; a schema of another version is refused.
pub async fn open(url: &str, schema: Schema) -> anyhow::Result<Arc<dyn Store>> {
    use stepwise_store::StoreError::SchemaMismatch;
    // SQLite is created on first use by any command (the default `stepwise.db` is
    // where a new user starts); only a PostgreSQL server, shared and reached by URL,
    // is never given a schema by a command that did not ask for one.
    let schema = if url.starts_with("sqlite:") {
        Schema::Create
    } else {
        schema
    };
    let store = stepwise_store::connect(url).await?;
    match store.check_schema().await {
        Ok(()) => {}
        Err(SchemaMismatch { database: 0, .. }) if schema == Schema::Create => {
            store.migrate().await?;
        }
        Err(SchemaMismatch { database: 0, .. }) => return Err(no_schema(url)),
        Err(e) => return Err(e.into()),
    }
    Ok(store)
}

fn no_schema(url: &str) -> anyhow::Error {
    // A PostgreSQL URL may hold a password; a SQLite one is only a path.
    let database = if url.starts_with("sqlite:") {
        url
    } else {
        "the database"
    };
    CliError::failed(format!(
        "{database} has no Stepwise schema: run `stepwise migrate` (with the same \
         --database-url) to create it"
    ))
}

pub fn parse_run_id(s: &str) -> anyhow::Result<RunId> {
    s.parse()
        .map_err(|_| CliError::input(format!("{s:?} is not a run id")))
}
