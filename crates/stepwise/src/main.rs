//! The `stepwise` command line. It talks to the database directly, like River's CLI.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "stepwise",
    version,
    about = "Durable workflows on the database you already run"
)]
struct Cli {
    /// `sqlite://PATH` (created on first use) or `postgres://...`.
    #[arg(
        long,
        global = true,
        env = "STEPWISE_DATABASE_URL",
        default_value = "sqlite://stepwise.db"
    )]
    database_url: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create or upgrade the schema (under a lock, safe to run from several places).
    Migrate,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(exit_code(&e))
        }
    }
}

/// DESIGN.md's exit codes: 2 bad input, 3 conflict, 4 not found, 1 anything else.
fn exit_code(error: &anyhow::Error) -> u8 {
    use stepwise_store::StoreError::*;
    match error.downcast_ref::<stepwise_store::StoreError>() {
        Some(UnsupportedUrl(_) | InvalidInput(_) | InvalidSpec(_) | InvalidCursor(_)) => 2,
        Some(GroupExists(_)) => 3,
        Some(UnknownWorkflow(_)) => 4,
        _ => 1,
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let store = stepwise_store::connect(&cli.database_url)
        .await
        .with_context(|| format!("cannot open {}", cli.database_url))?;
    match cli.command {
        Command::Migrate => {
            let version = store.migrate().await?;
            eprintln!("schema at version {version} ({})", store.backend());
        }
    }
    Ok(())
}
