//! One module per command family. Commands print results on stdout and everything
//! else (progress, notes) on stderr, and fail with a [`CliError`] carrying the exit
//! code docs/design.md "Outside interfaces" gives the situation.

pub mod apply;
pub mod bench;
pub mod control;
pub mod events;
pub mod flow;
pub mod run;
pub mod runs;
pub mod server;
pub mod tokens;
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

/// Opens the store and checks its schema. A database with no Stepwise schema at all
/// (a new SQLite file, an empty PostgreSQL database) is migrated, so the first
/// command on a fresh machine works; a schema of another version is refused.
pub async fn open(url: &str) -> anyhow::Result<Arc<dyn Store>> {
    Ok(stepwise::Engine::connect(url).await?.store())
}

pub fn parse_run_id(s: &str) -> anyhow::Result<RunId> {
    s.parse()
        .map_err(|_| CliError::input(format!("{s:?} is not a run id")))
}
