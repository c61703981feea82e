//! A guided look at the engine core on the embedded database: registers a small
//! document pipeline (a DAG), starts a few runs, and plays the worker by hand
//! (claim, complete, fail once) while printing the event stream the engine writes.
//!
//! `cargo run -p stepwise --example tour [-- DATABASE_URL]`

use serde_json::json;
use std::time::Duration;
use stepwise_core::spec::{RunPolicy, StepDefaults};
use stepwise_core::{Backoff, StepSpec, WorkflowSpec};
use stepwise_store::{
    ClaimRequest, EventQuery, NewRun, RunBatch, StepFailure, StepSuccess, WorkerRegistration,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite://stepwise-tour.db".into());
    let store = stepwise_store::connect(&url).await?;
    store.migrate().await?;

    let step = |name: &str, after: &[&str]| {
        let mut s = StepSpec::handler(name, name);
        s.after = Some(after.iter().map(|a| a.to_string()).collect());
        s
    };
    let spec = WorkflowSpec {
        name: "ingest-document".into(),
        defaults: StepDefaults {
            max_attempts: 3,
            backoff: Backoff {
                initial: Duration::from_millis(200),
                factor: 2.0,
                max: Duration::from_secs(5),
            },
            timeout_ms: None,
        },
        run: RunPolicy::default(),
        steps: vec![
            step("fetch", &[]),
            step("extract-text", &["fetch"]),
            step("thumbnail", &["fetch"]),
            step("index", &["extract-text", "thumbnail"]),
        ],
    };
    let version = store.register_workflow(&spec).await?;
    println!("registered {} v{}", version.name, version.version);

    let docs = ["report.pdf", "invoice.pdf", "slides.pdf"];
    let runs = store
        .create_runs(RunBatch {
            group: None,
            runs: docs
                .iter()
                .map(|d| NewRun::new("ingest-document", json!({ "document": d })))
                .collect(),
        })
        .await?;
    for r in &runs {
        println!("started run {}", r.id);
    }

    let worker = store
        .register_worker(&WorkerRegistration {
            name: format!("tour:{}", std::process::id()),
            queues: vec!["default".into()],
            lease: Duration::from_secs(30),
        })
        .await?;
    let mut failed_once = false;
    let mut cursor = None;
    loop {
        let claimed = store
            .claim_steps(&ClaimRequest {
                worker: worker.id,
                queues: vec!["default".into()],
                limit: 8,
            })
            .await?;
        let mut done = Vec::new();
        for step in claimed {
            // One flaky attempt, to show a retry with backoff decided by the database.
            if step.step == "thumbnail" && !failed_once {
                failed_once = true;
                store
                    .fail_step(&StepFailure {
                        lease: step.lease,
                        error: "converter crashed".into(),
                        retryable: true,
                        log: None,
                        retry_after: None,
                    })
                    .await?;
                continue;
            }
            done.push(StepSuccess {
                lease: step.lease,
                output: json!({ "step": step.step, "input": step.input }),
                log: None,
            });
        }
        store.complete_steps(&done).await?;
        let events = store
            .read_events(&EventQuery {
                after: cursor.clone(),
                ..EventQuery::default()
            })
            .await?;
        for e in &events {
            let run = e.run_id.map(|r| r.to_string()).unwrap_or_default();
            let short = run.get(run.len().saturating_sub(8)..).unwrap_or("");
            println!(
                "{:<16} run …{short} {}",
                e.kind.as_str(),
                e.step.clone().unwrap_or_default()
            );
        }
        if let Some(last) = events.last() {
            cursor = Some(last.cursor.clone());
        }
        let mut all_done = true;
        for r in &runs {
            let run = store.get_run(r.id).await?.expect("run exists");
            all_done &= run.status.is_terminal();
        }
        if all_done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for r in &runs {
        let run = store.get_run(r.id).await?.expect("run exists");
        println!(
            "run {} {} ({}/{} steps)",
            run.id, run.status, run.progress.done, run.progress.total
        );
    }
    store.deregister_worker(worker.id).await?;
    Ok(())
}
