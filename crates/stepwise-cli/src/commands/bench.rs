//! `stepwise bench`: the built-in load generator (docs/design.md "Outside interfaces").
//!
//! The bench process enqueues runs and measures; the work is done by `--workers`
//! separate worker processes (this binary, hidden `__bench-worker`), each with
//! `--pool` consumers and an in-process no-op handler. Throughput is computed from
//! the database's own timestamps: steps divided by the time from the first claim to
//! the last committed outcome, so enqueue and process start-up are excluded.

use super::CliError;
use crate::output::outln;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};
use stepwise_core::spec::{RunPolicy, StepDefaults};
use stepwise_core::{StepSpec, WorkflowSpec};
use stepwise_engine::{Handlers, PoolSpec, Worker};
use stepwise_store::{NewRun, RunBatch, Store};

/// The queue bench steps go to, so a bench never runs anyone else's steps.
const QUEUE: &str = "stepwise-bench";

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// N one-step runs enqueued in bulk, then drained.
    Noop,
    /// N 10-step pipelines drained, then single pipelines timed on an idle system.
    Pipeline10,
    /// Runs started one at a time on an idle system: enqueue to handler start.
    Latency,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "noop")]
    pub scenario: Scenario,
    #[arg(long, default_value_t = 20_000)]
    pub runs: usize,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Consumers per worker process.
    #[arg(long, default_value_t = 24)]
    pub pool: usize,
    #[arg(long)]
    pub json: bool,
}

/// Runs one bench worker process until SIGTERM (`__bench-worker --pool N`).
pub async fn worker_process(store: Arc<dyn Store>, pool: usize) -> anyhow::Result<()> {
    let mut handlers = Handlers::default();
    handlers.register("noop", |_cx| async { Ok(serde_json::Value::Null) });
    let shutdown = super::worker::shutdown_on_signals()?;
    let options = stepwise_engine::WorkerOptions {
        name: format!("bench:{}", std::process::id()),
        pools: vec![PoolSpec {
            queue: QUEUE.into(),
            consumers: pool,
        }],
        poll_interval: Duration::from_millis(50),
        shutdown_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    Worker::new(store, options)
        .handlers(handlers)
        .run(shutdown)
        .await?;
    Ok(())
}

fn workflow(name: &str, steps: usize) -> WorkflowSpec {
    let steps = (0..steps)
        .map(|i| {
            let mut s = StepSpec::handler(format!("s{i}"), "noop");
            s.queue = Some(QUEUE.into());
            s
        })
        .collect();
    WorkflowSpec {
        name: name.into(),
        defaults: StepDefaults::default(),
        run: RunPolicy::default(),
        steps,
    }
}

struct Workers {
    children: Vec<tokio::process::Child>,
}

impl Workers {
    fn start(url: &str, n: usize, pool: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut children = Vec::with_capacity(n);
        for _ in 0..n {
            children.push(
                tokio::process::Command::new(&exe)
                    .args(["__bench-worker", "--pool", &pool.to_string()])
                    .env("STEPWISE_DATABASE_URL", url)
                    .stdin(Stdio::null())
                    .kill_on_drop(true)
                    .spawn()?,
            );
        }
        Ok(Self { children })
    }

    /// Peak resident memory of the largest worker, in MiB (Linux).
    fn peak_rss_mib(&self) -> Option<f64> {
        self.children
            .iter()
            .filter_map(|c| c.id())
            .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
            .filter_map(|status| {
                let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
                let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
                Some(kb / 1024.0)
            })
            .reduce(f64::max)
    }

    async fn stop(mut self) {
        for c in &self.children {
            if let Some(pid) = c.id() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
        for c in &mut self.children {
            let _ = tokio::time::timeout(Duration::from_secs(15), c.wait()).await;
        }
    }
}

pub async fn bench(url: &str, store: Arc<dyn Store>, args: BenchArgs) -> anyhow::Result<()> {
    if args.runs == 0 || args.workers == 0 || args.pool == 0 {
        return Err(CliError::input(
            "--runs, --workers and --pool must be at least 1",
        ));
    }
    let tag = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp());
    let mut report = json!({
        "scenario": match args.scenario {
            Scenario::Noop => "noop",
            Scenario::Pipeline10 => "pipeline10",
            Scenario::Latency => "latency",
        },
        "database": store.backend(),
        "workers": args.workers,
        "pool": args.pool,
    });
    let workers = Workers::start(url, args.workers, args.pool)?;
    let result = match args.scenario {
        Scenario::Noop | Scenario::Pipeline10 => {
            let steps = if args.scenario == Scenario::Noop {
                1
            } else {
                10
            };
            let name = format!("bench-{tag}");
            drain(&*store, &name, steps, args.runs, &mut report).await?;
            if steps == 10 {
                let single = format!("bench-single-{tag}");
                per_step_overhead(&*store, &single, &mut report).await?;
            }
            Ok(())
        }
        Scenario::Latency => {
            latency(
                &*store,
                &format!("bench-latency-{tag}"),
                args.runs,
                &mut report,
            )
            .await
        }
    };
    if let Some(rss) = workers.peak_rss_mib() {
        report["worker_peak_rss_mib"] = json!((rss * 10.0).round() / 10.0);
    }
    workers.stop().await;
    result?;
    if args.json {
        outln!("{report}");
    } else {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

async fn drain(
    store: &dyn Store,
    name: &str,
    steps_per_run: usize,
    runs: usize,
    report: &mut serde_json::Value,
) -> anyhow::Result<()> {
    store
        .register_workflow(&workflow(name, steps_per_run))
        .await?;
    let bar = progress(runs as u64, "enqueue");
    let started = Instant::now();
    let mut left = runs;
    while left > 0 {
        let n = left.min(1000);
        let batch = (0..n)
            .map(|i| NewRun::new(name, json!({ "i": i })))
            .collect();
        store
            .create_runs(RunBatch {
                group: None,
                runs: batch,
            })
            .await?;
        left -= n;
        bar.inc(n as u64);
    }
    let enqueue_s = started.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let total = (runs * steps_per_run) as i64;
    let bar = progress(total as u64, "steps");
    let activity = loop {
        let a = store.step_activity(name).await?;
        bar.set_position(a.completed as u64);
        if a.completed >= total {
            break a;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    bar.finish_and_clear();
    let span = match (activity.first_started, activity.last_finished) {
        (Some(a), Some(b)) => (b - a).num_microseconds().unwrap_or(1).max(1) as f64 / 1e6,
        _ => f64::NAN,
    };
    report["runs"] = json!(runs);
    report["steps"] = json!(total);
    report["enqueue_per_s"] = json!((runs as f64 / enqueue_s).round());
    report["steps_per_s"] = json!((total as f64 / span).round());
    report["drain_seconds"] = json!((span * 100.0).round() / 100.0);
    Ok(())
}

/// Median duration of single 10-step pipelines on an idle system, per step.
async fn per_step_overhead(
    store: &dyn Store,
    name: &str,
    report: &mut serde_json::Value,
) -> anyhow::Result<()> {
    store.register_workflow(&workflow(name, 10)).await?;
    let mut per_step = Vec::new();
    for i in 0..20 {
        let id = store
            .create_runs(RunBatch {
                group: None,
                runs: vec![NewRun::new(name, json!({ "i": i }))],
            })
            .await?[0]
            .id;
        let run = wait_terminal(store, id).await?;
        if let Some(finished) = run.finished_at {
            let ms = (finished - run.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
            per_step.push(ms / 10.0);
        }
    }
    report["per_step_overhead_ms"] = json!(round2(percentile(&mut per_step, 0.5)));
    Ok(())
}

/// Pickup latency: run creation committed to its step claimed, one run at a time.
async fn latency(
    store: &dyn Store,
    name: &str,
    runs: usize,
    report: &mut serde_json::Value,
) -> anyhow::Result<()> {
    store.register_workflow(&workflow(name, 1)).await?;
    let runs = runs.min(500);
    let bar = progress(runs as u64, "runs");
    let mut pickups = Vec::with_capacity(runs);
    for i in 0..runs {
        let id = store
            .create_runs(RunBatch {
                group: None,
                runs: vec![NewRun::new(name, json!({ "i": i }))],
            })
            .await?[0]
            .id;
        let run = wait_terminal(store, id).await?;
        if let Some(started) = run.steps.first().and_then(|s| s.started_at) {
            pickups
                .push((started - run.created_at).num_microseconds().unwrap_or(0) as f64 / 1000.0);
        }
        bar.inc(1);
        // Let the workers go idle again.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bar.finish_and_clear();
    report["runs"] = json!(runs);
    report["steps"] = json!(runs);
    report["pickup_p50_ms"] = json!(round2(percentile(&mut pickups, 0.5)));
    report["pickup_p99_ms"] = json!(round2(percentile(&mut pickups, 0.99)));
    Ok(())
}

async fn wait_terminal(
    store: &dyn Store,
    id: stepwise_core::RunId,
) -> anyhow::Result<stepwise_store::RunView> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let run = store
            .get_run(id)
            .await?
            .ok_or_else(|| CliError::failed("a bench run vanished"))?;
        if run.status.is_terminal() {
            return Ok(run);
        }
        if Instant::now() > deadline {
            return Err(CliError::failed(format!(
                "bench run {id} did not finish within 60s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn percentile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(|a, b| a.total_cmp(b));
    let i = ((values.len() - 1) as f64 * q).round() as usize;
    values[i]
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(&format!(
            "{{spinner}} {what} [{{bar:30}}] {{pos}}/{{len}} {{per_sec}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}
