//! `stepwise server`: the HTTP API, with an in-process worker unless `--no-worker`.

use crate::cli::ServerArgs;
use std::sync::Arc;
use stepwise_engine::Worker;
use stepwise_store::Store;

/// `stepwise dev`: migrate, apply a directory's workflows, serve with a worker.
pub async fn dev(
    url: &str,
    store: Arc<dyn Store>,
    workflows: Option<std::path::PathBuf>,
    listen: std::net::SocketAddr,
    worker: crate::cli::WorkerArgs,
) -> anyhow::Result<()> {
    store.migrate().await?;
    if let Some(dir) = workflows {
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| super::CliError::input(format!("cannot read {}: {e}", dir.display())))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        super::apply::apply(&*store, &files).await?;
    }
    let args = ServerArgs {
        listen,
        no_worker: false,
        // A development server on this machine's loopback needs no token; anywhere
        // else it needs one, as `stepwise server` does.
        insecure_no_auth: listen.ip().is_loopback(),
        body_limit: stepwise_server::DEFAULT_BODY_LIMIT,
        worker,
    };
    server(url, store, &args).await
}

pub async fn server(url: &str, store: Arc<dyn Store>, args: &ServerArgs) -> anyhow::Result<()> {
    // Deny by default: a server nobody could call is a mistake, and one anybody
    // could call must be asked for.
    if !args.insecure_no_auth && !super::tokens::any_live(&*store).await? {
        return Err(super::CliError::input(
            "no live API token: create one with `stepwise tokens create --scope admin`, \
             or start with --insecure-no-auth where every client is trusted",
        ));
    }
    if args.body_limit == 0 {
        return Err(super::CliError::input(
            "--body-limit must be at least 1 byte",
        ));
    }
    let shutdown = super::worker::shutdown_on_signals()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| super::CliError::input(format!("cannot listen on {}: {e}", args.listen)))?;
    let address = listener.local_addr()?;
    eprintln!(
        "stepwise server on http://{address} ({}){}; dashboard at http://{address}/",
        if args.insecure_no_auth {
            "no auth"
        } else {
            "bearer tokens"
        },
        if args.no_worker { ", no worker" } else { "" },
    );
    // Before the worker starts: it describes its metrics to the recorder there is.
    let metrics = stepwise_server::install_metrics();
    // Every process fires due schedules (no leader); a worker does it in its upkeep.
    let firer = args.no_worker.then(|| {
        tokio::spawn(stepwise_engine::schedules::fire_loop(
            store.clone(),
            shutdown.clone(),
            || {},
        ))
    });
    let worker = if args.no_worker {
        None
    } else {
        let (work, heartbeat_store) = super::worker::stores(url, &args.worker).await?;
        let worker = Worker::new(work, super::worker::options(&args.worker)?)
            .heartbeat_store(heartbeat_store);
        Some(tokio::spawn(worker.run(shutdown.clone())))
    };
    let options = stepwise_server::ServerOptions {
        body_limit: args.body_limit,
        metrics,
        auth: if args.insecure_no_auth {
            stepwise_server::AuthMode::Open
        } else {
            stepwise_server::AuthMode::Tokens
        },
    };
    let app = stepwise_server::router(store, options);
    let stop = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await?;
    if let Some(worker) = worker {
        worker.await??;
    }
    if let Some(firer) = firer {
        firer.await?;
    }
    Ok(())
}
