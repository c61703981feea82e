//! The `stepwise` command line. It talks to the database directly, like River's CLI.

mod cli;
mod commands;
mod output;

use clap::Parser;
use cli::{
    Cli, Command, GroupsCommand, LimitsCommand, LocksCommand, QueuesCommand, RunsCommand,
    SchedulesCommand, TokensCommand,
};
use commands::CliError;
use std::process::ExitCode;
use stepwise_engine::supervisor::{supervise, SUPERVISE_COMMAND};

fn main() -> ExitCode {
    // A worker runs each `exec` child under this same binary as its supervisor; it
    // needs no async runtime and must start fast.
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some(SUPERVISE_COMMAND) {
        return ExitCode::from(supervise(&args[2..]).clamp(0, 255) as u8);
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("STEPWISE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        // Colour codes are noise in a log file or a journal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if output::is_closed(&e) => ExitCode::from(output::CLOSED_EXIT_CODE),
        Err(e) => {
            eprintln!("error: {}", message(&e));
            ExitCode::from(exit_code(&e))
        }
    }
}

/// The error and its causes, each said once: some causes (sqlx's) repeat their
/// source's text in their own, which `{:#}` would print two or three times.
fn message(error: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in error.chain() {
        let part = cause.to_string();
        if text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// The exit codes (docs/design.md "Outside interfaces"): 2 bad input, 3 conflict, 4 not found, 1 anything else.
fn exit_code(error: &anyhow::Error) -> u8 {
    use stepwise_store::StoreError::*;
    if let Some(e) = error.downcast_ref::<CliError>() {
        return e.code;
    }
    match error.downcast_ref::<stepwise_store::StoreError>() {
        Some(UnsupportedUrl(_) | InvalidInput(_) | InvalidSpec(_) | InvalidCursor(_)) => 2,
        Some(GroupExists(_)) => 3,
        Some(UnknownWorkflow(_)) => 4,
        _ => 1,
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let url = cli.database_url;
    if let Command::Migrate = cli.command {
        let store = stepwise_store::connect(&url).await?;
        let version = store.migrate().await?;
        eprintln!("schema at version {version} ({})", store.backend());
        return Ok(());
    }
    let schema = match &cli.command {
        Command::Dev { .. } | Command::Bench(_) => commands::Schema::Create,
        Command::Run(args) if args.local => commands::Schema::Create,
        _ => commands::Schema::Require,
    };
    let store = commands::open(&url, schema).await?;
    match cli.command {
        Command::Migrate => unreachable!("handled above"),
        Command::Apply { files } => commands::apply::apply(&*store, &files).await,
        Command::Run(args) => commands::run::run(store, &args).await,
        Command::Runs { command } => match command {
            RunsCommand::List {
                status,
                workflow,
                group,
                parent,
                limit,
                json,
            } => {
                let filter = stepwise_store::RunFilter {
                    status: status
                        .as_deref()
                        .map(commands::runs::parse_status)
                        .transpose()?,
                    workflow,
                    group,
                    parent: parent.as_deref().map(commands::parse_run_id).transpose()?,
                    limit,
                    cursor: None,
                };
                commands::runs::list(&*store, filter, json).await
            }
            RunsCommand::Show { id, items, json } => {
                let args = commands::show::ShowArgs {
                    id: &id,
                    items,
                    json,
                };
                commands::show::show(&*store, args).await
            }
            RunsCommand::Cancel {
                id,
                no_compensate,
                json,
            } => commands::control::cancel(&*store, &id, !no_compensate, json).await,
            RunsCommand::Retry { id, from, json } => {
                commands::control::retry(&*store, &id, from, json).await
            }
            RunsCommand::Explain { id, json } => commands::runs::explain(&*store, &id, json).await,
        },
        Command::Queues { command, json } => match command {
            None => commands::flow::queues(&*store, json).await,
            Some(QueuesCommand::SetLimit { key, limit, json }) => {
                commands::flow::set_limit(&*store, &key, &limit, json).await
            }
            Some(QueuesCommand::Pause { queue }) => {
                commands::flow::set_paused(&*store, &queue, true).await
            }
            Some(QueuesCommand::Resume { queue }) => {
                commands::flow::set_paused(&*store, &queue, false).await
            }
        },
        Command::Schedules { command, json } => {
            use commands::schedules;
            match command {
                None => schedules::list(&*store, json).await,
                Some(SchedulesCommand::List { json }) => schedules::list(&*store, json).await,
                Some(SchedulesCommand::Pause { name, json }) => {
                    schedules::set_paused(&*store, &name, true, json).await
                }
                Some(SchedulesCommand::Resume { name, json }) => {
                    schedules::set_paused(&*store, &name, false, json).await
                }
                Some(SchedulesCommand::Trigger { name, json }) => {
                    schedules::trigger(&*store, &name, json).await
                }
                Some(SchedulesCommand::Backfill {
                    name,
                    from,
                    to,
                    json,
                }) => {
                    let args = schedules::BackfillArgs {
                        name: &name,
                        from: &from,
                        to: &to,
                        json,
                    };
                    schedules::backfill(&*store, args).await
                }
            }
        }
        Command::Limits { command, json } => {
            use commands::limits;
            match command {
                None => limits::list(&*store, json).await,
                Some(LimitsCommand::List { json }) => limits::list(&*store, json).await,
                Some(LimitsCommand::Set {
                    key,
                    limit,
                    per,
                    burst,
                    json,
                }) => {
                    let args = limits::SetArgs {
                        key: &key,
                        limit: &limit,
                        per,
                        burst: burst.as_deref(),
                        json,
                    };
                    limits::set(&*store, args).await
                }
                Some(LimitsCommand::Pause {
                    key,
                    until,
                    for_,
                    json,
                }) => {
                    let args = limits::PauseArgs {
                        key: &key,
                        until: until.as_deref(),
                        for_,
                        json,
                    };
                    limits::pause(&*store, args).await
                }
                Some(LimitsCommand::Resume { key, json }) => {
                    limits::resume(&*store, &key, json).await
                }
            }
        }
        Command::Locks { command } => match command {
            LocksCommand::List { json } => commands::flow::list_locks(&*store, json).await,
            LocksCommand::Acquire { key, ttl, json } => {
                commands::flow::acquire(&*store, &key, ttl, json).await
            }
            LocksCommand::Release { key, token } => {
                commands::flow::release(&*store, &key, &token).await
            }
            LocksCommand::ForceRelease { key, reason } => {
                commands::flow::force_release(&*store, &key, &reason).await
            }
        },
        Command::Groups { command } => match command {
            GroupsCommand::Show { name, json } => {
                commands::control::show_group(&*store, &name, json).await
            }
        },
        Command::Logs { run, step, attempt } => {
            commands::runs::logs(&*store, &run, &step, attempt).await
        }
        Command::Events {
            follow,
            run,
            after,
            json,
        } => {
            let args = commands::events::EventsArgs {
                follow,
                run,
                after,
                json,
            };
            commands::events::events(&*store, args).await
        }
        Command::Signal(args) => commands::waits::signal(&*store, &args).await,
        Command::Complete(args) => commands::waits::complete(&*store, &args).await,
        Command::Worker(args) => commands::worker::worker(&url, store, &args).await,
        Command::Server(args) => commands::server::server(&url, store, &args).await,
        Command::Dev {
            workflows,
            listen,
            worker,
        } => commands::server::dev(&url, store, workflows, listen, worker).await,
        Command::Tokens { command } => match command {
            TokensCommand::Create {
                scope,
                expires,
                name,
            } => commands::tokens::create(&*store, &scope, expires, name).await,
            TokensCommand::List { json } => commands::tokens::list(&*store, json).await,
            TokensCommand::Revoke { id } => commands::tokens::revoke(&*store, &id).await,
        },
        Command::Workers { json } => commands::worker::workers(&*store, json).await,
        Command::Prune { older_than } => {
            let mut total = 0;
            loop {
                let n = store.prune_runs(older_than, 5000).await?;
                total += n;
                if n == 0 {
                    break;
                }
            }
            eprintln!("pruned {total} runs");
            Ok(())
        }
        Command::Bench(args) => commands::bench::bench(&url, store, args).await,
        Command::BenchWorker { pool } => commands::bench::worker_process(store, pool).await,
    }
}
