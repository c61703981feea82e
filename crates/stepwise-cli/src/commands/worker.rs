//! `stepwise worker` and `stepwise workers`.

use crate::cli::{WorkerArgs, WorkerCommandArgs};
use crate::output::outln;
use std::sync::Arc;
use stepwise_engine::{ExecOptions, Worker, WorkerOptions};
use stepwise_store::Store;
use tokio_util::sync::CancellationToken;

/// `host:pid`, as `stepwise workers` shows it.
pub fn worker_name() -> String {
    let host = hostname().unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// This machine's name (`/etc/hostname`, else `HOSTNAME`), if it has one.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

/// Cancels the returned token on SIGTERM or SIGINT (graceful shutdown); a second
/// signal exits at once.
pub fn shutdown_on_signals() -> anyhow::Result<CancellationToken> {
    use tokio::signal::unix::{signal, SignalKind};
    let token = CancellationToken::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let t = token.clone();
    tokio::spawn(async move {
        for n in 0.. {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            if n > 0 {
                eprintln!("stepwise: second signal, exiting now");
                std::process::exit(130);
            }
            eprintln!("stepwise: shutting down (running steps finish or are handed back)");
            t.cancel();
        }
    });
    Ok(token)
}

pub fn options(args: &WorkerArgs) -> anyhow::Result<WorkerOptions> {
    Ok(WorkerOptions {
        name: worker_name(),
        pools: args.pools.clone(),
        lease: args.lease,
        shutdown_timeout: args.shutdown_timeout,
        retention: args.retention,
        public_url: args.public_url.clone(),
        exec: ExecOptions {
            supervisor: std::env::current_exe()?,
            ..ExecOptions::default()
        },
        ..WorkerOptions::default()
    })
}

/// The worker's stores: its work and, on connections of their own so a busy pool
/// cannot starve them, its heartbeats. Their sessions are bounded by the lease (a
/// transaction of this worker that goes silent ends well within it) and named
/// `stepwise worker host:pid` in `pg_stat_activity`.
pub async fn stores(
    url: &str,
    args: &WorkerArgs,
) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn Store>)> {
    let session = stepwise_store::SessionOptions {
        lease: Some(args.lease),
        application_name: Some(format!("stepwise worker {}", worker_name())),
    };
    let work = stepwise_store::connect_with(url, &session).await?;
    let heartbeats = stepwise_store::connect_with(url, &session).await?;
    Ok((work, heartbeats))
}

/// `stepwise worker`; `store` (opened by the caller) has checked the schema.
pub async fn worker(
    url: &str,
    store: Arc<dyn Store>,
    command: &WorkerCommandArgs,
) -> anyhow::Result<()> {
    let args = &command.worker;
    if args.lease < std::time::Duration::from_secs(1) {
        return Err(super::CliError::input("--lease must be at least 1s"));
    }
    drop(store);
    let (store, heartbeat_store) = stores(url, args).await?;
    let shutdown = shutdown_on_signals()?;
    if let Some(listen) = command.metrics_listen {
        serve_metrics(listen, shutdown.clone()).await?;
    }
    eprintln!(
        "stepwise worker {} serving {}",
        worker_name(),
        args.pools
            .iter()
            .map(|p| format!("{}={}", p.queue, p.consumers))
            .collect::<Vec<_>>()
            .join(" ")
    );
    Worker::new(store, options(args)?)
        .heartbeat_store(heartbeat_store)
        .run(shutdown)
        .await?;
    Ok(())
}

/// Serves this process's metrics on `listen` until `shutdown`.
async fn serve_metrics(
    listen: std::net::SocketAddr,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let handle = stepwise_server::install_metrics()
        .ok_or_else(|| anyhow::anyhow!("a metrics recorder is installed already"))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|e| super::CliError::input(format!("cannot listen on {listen}: {e}")))?;
    eprintln!("metrics on http://{}/metrics", listener.local_addr()?);
    let app = stepwise_server::process_metrics_router(handle);
    tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}

pub async fn workers(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let workers = store.list_workers().await?;
    if json {
        outln!("{}", serde_json::to_string(&workers)?);
        return Ok(());
    }
    outln!(
        "{:<36}  {:<24}  {:<7}  {:>7}  {:<19}  POOLS",
        "ID",
        "NAME",
        "STATUS",
        "RUNNING",
        "LAST HEARTBEAT"
    );
    for w in workers {
        outln!(
            "{:<36}  {:<24}  {:<7}  {:>7}  {:<19}  {}",
            w.id,
            w.name,
            w.status,
            w.running_steps,
            w.heartbeat_at.format("%Y-%m-%d %H:%M:%S"),
            w.queues.join(" ")
        );
    }
    Ok(())
}
