//! `stepwise bench`: the built-in load generator (docs/design.md "Outside interfaces").
//!
//! The bench process enqueues runs and measures; the work is done by `--workers`
//! separate worker processes (this binary, hidden `__bench-worker`), each with
//! `--pool` consumers and an in-process no-op handler. Throughput is computed from
//! the database's own timestamps: steps divided by the time from the first claim to
//! the last committed outcome, so enqueue and process start-up are excluded.

mod fanout;
mod progress;

use super::CliError;
use crate::output::outln;
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use progress::{RateLog, Workers};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// N one-step runs (default 10^6) enqueued before any worker starts, then
    /// drained from the full backlog.
    Backlog,
    /// One run whose `for_each` step has `--items` items: the expansion's
    /// transaction timed, the items drained, the join.
    Fanout,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Noop => "noop",
            Scenario::Pipeline10 => "pipeline10",
            Scenario::Latency => "latency",
            Scenario::Backlog => "backlog",
            Scenario::Fanout => "fanout",
        }
    }
}

/// What every bench step carries besides its handler: nothing, a rate limit that
/// never binds (the cost of the keyed claim path), or a fairness key over 16
/// tenants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Keys {
    None,
    Rate,
    Fair,
}

#[derive(Args)]
pub struct BenchArgs {
    #[arg(long, value_enum, default_value = "noop")]
    pub scenario: Scenario,
    /// Runs to enqueue [default: 20000; backlog: 1000000; fanout: one run].
    #[arg(long)]
    pub runs: Option<usize>,
    /// Items of the fan-out run (`--scenario fanout`) [default: 10000].
    #[arg(long)]
    pub items: Option<usize>,
    /// Give every step a rate limit that never binds, or every run one of 16
    /// fairness keys (`noop` and `pipeline10`).
    #[arg(long, value_enum, default_value = "none")]
    pub keys: Keys,
    /// Worker processes.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// Consumers per worker process.
    #[arg(long, default_value_t = 24)]
    pub pool: usize,
    #[arg(long)]
    pub json: bool,
    /// Print the drain rate every D on stderr (and as `rate_over_time` in the JSON).
    #[arg(long, value_name = "D", value_parser = crate::cli::parse_duration)]
    pub report_every: Option<Duration>,
}

/// Runs one bench worker process until SIGTERM (`__bench-worker --pool N`).
pub async fn worker_process(store: Arc<dyn Store>, pool: usize) -> anyhow::Result<()> {
    let handled = Arc::new(AtomicU64::new(0));
    progress::report_handled(handled.clone());
    let mut handlers = Handlers::default();
    handlers.register("noop", move |_cx| {
        handled.fetch_add(1, Ordering::Relaxed);
        async { Ok(serde_json::Value::Null) }
    });
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

fn workflow(name: &str, steps: usize, keys: Keys) -> WorkflowSpec {
    let steps = (0..steps)
        .map(|i| {
            let mut s = StepSpec::handler(format!("s{i}"), "noop");
            s.queue = Some(QUEUE.into());
            if keys == Keys::Rate {
                s.rate_limit = Some(stepwise_core::RateLimitSpec {
                    key: "bench".into(),
                    limit: 1_000_000_000,
                    per_ms: 1000,
                    burst: 1_000_000_000,
                });
            }
            s
        })
        .collect();
    let mut run = RunPolicy::default();
    if keys == Keys::Fair {
        run.fairness_key = Some("tenant-{{ input.i % 16 }}".into());
    }
    WorkflowSpec {
        name: name.into(),
        defaults: StepDefaults::default(),
        run,
        steps,
    }
}

pub async fn bench(url: &str, store: Arc<dyn Store>, args: BenchArgs) -> anyhow::Result<()> {
    let fanout = args.scenario == Scenario::Fanout;
    if fanout && args.runs.is_some() {
        return Err(CliError::input(
            "--scenario fanout times one run; size it with --items",
        ));
    }
    if !fanout && args.items.is_some() {
        return Err(CliError::input("--items is for --scenario fanout"));
    }
    if args.keys != Keys::None && !matches!(args.scenario, Scenario::Noop | Scenario::Pipeline10) {
        return Err(CliError::input(
            "--keys is for --scenario noop and pipeline10",
        ));
    }
    let runs = args.runs.unwrap_or(match args.scenario {
        Scenario::Backlog => 1_000_000,
        Scenario::Fanout => 1,
        _ => 20_000,
    });
    if runs == 0 || args.workers == 0 || args.pool == 0 {
        return Err(CliError::input(
            "--runs, --workers and --pool must be at least 1",
        ));
    }
    if args.report_every.is_some_and(|d| d.is_zero()) {
        return Err(CliError::input("--report-every must be longer than 0s"));
    }
    let tag = format!("{}-{}", std::process::id(), chrono::Utc::now().timestamp());
    let mut report = json!({
        "scenario": args.scenario.name(),
        "keys": format!("{:?}", args.keys).to_lowercase(),
        "database": store.backend(),
        "workers": args.workers,
        "pool": args.pool,
    });
    let plan = Plan {
        url,
        store: &*store,
        args: &args,
        runs,
        tag: &tag,
    };
    let mut workers = None;
    let result = scenario(&plan, &mut workers, &mut report).await;
    if let Some(workers) = workers {
        if let Some(rss) = workers.peak_rss_mib() {
            report["worker_peak_rss_mib"] = json!((rss * 10.0).round() / 10.0);
        }
        workers.stop().await;
    }
    result?;
    if args.json {
        outln!("{report}");
    } else if fanout {
        fanout::print_human(&report)?;
    } else {
        outln!("{}", serde_json::to_string_pretty(&report)?);
    }
    Ok(())
}

/// What one `stepwise bench` invocation runs against.
struct Plan<'a> {
    url: &'a str,
    store: &'a dyn Store,
    args: &'a BenchArgs,
    runs: usize,
    /// Makes this invocation's workflow names unique.
    tag: &'a str,
}

/// Runs one scenario; the workers it starts are left in `workers` for the caller to
/// measure and stop, whatever the outcome.
async fn scenario(
    plan: &Plan<'_>,
    workers: &mut Option<Workers>,
    report: &mut serde_json::Value,
) -> anyhow::Result<()> {
    let Plan {
        url,
        store,
        args,
        runs,
        tag,
    } = *plan;
    let name = format!("bench-{tag}");
    match args.scenario {
        Scenario::Noop | Scenario::Pipeline10 => {
            let steps = if args.scenario == Scenario::Noop {
                1
            } else {
                10
            };
            let w = workers.insert(Workers::start(url, args.workers, args.pool)?);
            store
                .register_workflow(&workflow(&name, steps, args.keys))
                .await?;
            // The workers drain while the runs are enqueued: the rate is logged from
            // their start.
            let mut log = RateLog::new(args.report_every);
            enqueue(store, &name, runs, Some((&*w, &mut log)), report).await?;
            report["runs"] = json!(runs);
            watch_drain(store, w, &name, runs * steps, log, report).await?;
            if steps == 10 {
                let single = format!("bench-single-{tag}");
                per_step_overhead(store, &single, report).await?;
            }
        }
        Scenario::Backlog => {
            store
                .register_workflow(&workflow(&name, 1, Keys::None))
                .await?;
            enqueue(store, &name, runs, None, report).await?;
            report["runs"] = json!(runs);
            let w = workers.insert(Workers::start(url, args.workers, args.pool)?);
            let log = RateLog::new(args.report_every);
            watch_drain(store, w, &name, runs, log, report).await?;
        }
        Scenario::Latency => {
            *workers = Some(Workers::start(url, args.workers, args.pool)?);
            latency(store, &format!("bench-latency-{tag}"), runs, report).await?;
        }
        Scenario::Fanout => fanout::fanout(plan, workers, report).await?,
    }
    Ok(())
}

/// Enqueues `runs` runs of `name` in batches of 1,000, logging the drain rate of
/// `draining` workers between batches.
async fn enqueue(
    store: &dyn Store,
    name: &str,
    runs: usize,
    mut draining: Option<(&Workers, &mut RateLog)>,
    report: &mut serde_json::Value,
) -> anyhow::Result<()> {
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
        if let Some((workers, log)) = draining.as_mut() {
            if let Some(line) = log.tick(workers.handled()) {
                print_rate(&bar, line);
            }
        }
    }
    bar.finish_and_clear();
    report["enqueue_per_s"] = json!((runs as f64 / started.elapsed().as_secs_f64()).round());
    Ok(())
}

/// Waits until all `total` steps of `name` completed; `steps_per_s` is computed from the
/// database's timestamps (first claim to last committed outcome).
async fn watch_drain(
    store: &dyn Store,
    workers: &mut Workers,
    name: &str,
    total: usize,
    mut log: RateLog,
    report: &mut serde_json::Value,
) -> anyhow::Result<()> {
    let total = total as u64;
    let bar = progress(total, "steps");
    // The database confirms the end, and is asked before it only when the workers'
    // count stalls (a worker that died is not counted): the question is a scan of the
    // workflow's steps, which at a 10^6-run backlog costs seconds of database time
    // and would weigh on the drain it measures.
    let mut progressed = (0u64, Instant::now());
    let mut checked = Instant::now();
    let activity = loop {
        let handled = workers.handled();
        bar.set_position(handled.min(total));
        if let Some(line) = log.tick(handled) {
            print_rate(&bar, line);
        }
        if handled != progressed.0 {
            progressed = (handled, Instant::now());
        }
        let stalled = progressed.1.elapsed() > Duration::from_secs(5);
        if handled >= total || stalled {
            progressed.1 = Instant::now();
            let a = store.step_activity(name).await?;
            if a.completed as u64 >= total {
                break a;
            }
        }
        if checked.elapsed() > Duration::from_secs(1) {
            checked = Instant::now();
            workers.check_alive()?;
        }
        tokio::time::sleep(progress::TICK).await;
    };
    bar.finish_and_clear();
    let span = match (activity.first_started, activity.last_finished) {
        (Some(a), Some(b)) => (b - a).num_microseconds().unwrap_or(1).max(1) as f64 / 1e6,
        _ => f64::NAN,
    };
    report["steps"] = json!(total);
    report["steps_per_s"] = json!((total as f64 / span).round());
    report["drain_seconds"] = json!((span * 100.0).round() / 100.0);
    log.finish(total, report);
    Ok(())
}

/// Median duration of single 10-step pipelines on an idle system, per step.
async fn per_step_overhead(
    store: &dyn Store,
    name: &str,
    report: &mut serde_json::Value,
) -> anyhow::Result<()> {
    store
        .register_workflow(&workflow(name, 10, Keys::None))
        .await?;
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
    store
        .register_workflow(&workflow(name, 1, Keys::None))
        .await?;
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

/// One `--report-every` line on stderr, above the progress bar if one is drawn.
fn print_rate(bar: &ProgressBar, line: String) {
    if bar.is_hidden() {
        eprintln!("{line}");
    } else {
        bar.println(line);
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
