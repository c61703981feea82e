//! Throughput of the storage hot path: claim + complete of no-op one-step runs.
//!
//! Enqueues `--runs` one-step runs in batches, then `--tasks` concurrent consumers
//! (each a registered worker) claim up to `--batch` steps at a time and complete
//! them in one call, until the backlog is drained. No executor, no worker runtime:
//! this measures what the Store costs per step.
//!
//! `cargo run --release -p stepwise --example claim_complete -- --database-url URL`

use clap::Parser;
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stepwise_core::spec::{RunPolicy, StepDefaults};
use stepwise_core::{StepSpec, WorkflowSpec};
use stepwise_store::{ClaimRequest, NewRun, RunBatch, StepSuccess, Store, WorkerRegistration};

#[derive(Parser)]
struct Args {
    #[arg(
        long,
        env = "STEPWISE_DATABASE_URL",
        default_value = "sqlite://bench.db"
    )]
    database_url: String,
    #[arg(long, default_value_t = 20_000)]
    runs: usize,
    #[arg(long, default_value_t = 8)]
    tasks: usize,
    #[arg(long, default_value_t = 50)]
    batch: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let store: Arc<dyn Store> = stepwise_store::connect(&args.database_url).await?;
    store.migrate().await?;
    let workflow = format!("bench-noop-{}", std::process::id());
    store
        .register_workflow(&WorkflowSpec {
            name: workflow.clone(),
            defaults: StepDefaults::default(),
            run: RunPolicy::default(),
            steps: vec![StepSpec::handler("noop", "noop")],
        })
        .await?;

    let started = Instant::now();
    for chunk in (0..args.runs).collect::<Vec<_>>().chunks(1000) {
        let runs = chunk
            .iter()
            .map(|i| NewRun::new(workflow.clone(), json!({ "i": i })))
            .collect();
        store.create_runs(RunBatch { group: None, runs }).await?;
    }
    let enqueue_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let mut consumers = Vec::new();
    for t in 0..args.tasks {
        let store = store.clone();
        let batch = args.batch;
        consumers.push(tokio::spawn(async move {
            let worker = store
                .register_worker(&WorkerRegistration {
                    name: format!("bench-{t}"),
                    queues: vec!["default".into()],
                    lease: Duration::from_secs(60),
                })
                .await?;
            let request = ClaimRequest {
                worker: worker.id,
                queues: vec!["default".into()],
                limit: batch,
            };
            let mut done = 0usize;
            loop {
                let claimed = store.claim_steps(&request).await?;
                if claimed.is_empty() {
                    break;
                }
                let outcomes: Vec<StepSuccess> = claimed
                    .into_iter()
                    .map(|c| StepSuccess {
                        lease: c.lease,
                        output: json!(null),
                        log: None,
                    })
                    .collect();
                done += store.complete_steps(&outcomes).await?.accepted.len();
            }
            store.deregister_worker(worker.id).await?;
            anyhow::Ok(done)
        }));
    }
    let mut steps = 0;
    for c in consumers {
        steps += c.await??;
    }
    let drain_s = started.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({
            "database": store.backend(),
            "runs": args.runs,
            "steps": steps,
            "tasks": args.tasks,
            "batch": args.batch,
            "enqueue_per_s": (args.runs as f64 / enqueue_s).round(),
            "steps_per_s": (steps as f64 / drain_s).round(),
        })
    );
    anyhow::ensure!(steps == args.runs, "drained {steps} of {} steps", args.runs);
    Ok(())
}
