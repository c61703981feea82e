//! `stepwise bench --scenario fanout`: one run whose `for_each` step has `--items`
//! items on the no-op handler.
//!
//! Three figures. The expansion: the bench process itself claims the run's first
//! step (on a queue no worker serves) and completes it with the array; that one
//! store call is the transaction that inserts every item, and its wall time is the
//! expansion time. The drain: items divided by the time from the first item's start
//! to the last item's end (database timestamps), run by the ordinary bench workers.
//! The join: from the last item's end to the start of the step after the `for_each`
//! step, which the join's counter made claimable.

use super::progress::Workers;
use super::{progress, Plan, QUEUE};
use crate::commands::CliError;
use crate::output::outln;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use stepwise_core::spec::{RunPolicy, StepDefaults};
use stepwise_core::{ForEach, RunId, StepSpec, WorkflowSpec};
use stepwise_store::{
    ClaimRequest, ItemsRequest, NewRun, RunBatch, RunView, StepSuccess, Store, WorkerRegistration,
};

/// The queue of the step that makes the items: only the bench process claims it.
const PLAN_QUEUE: &str = "stepwise-bench-plan";
/// The default `--items`: the default `max_items`.
pub(super) const DEFAULT_ITEMS: usize = 10_000;

fn workflow(name: &str, items: usize) -> WorkflowSpec {
    let mut plan = StepSpec::handler("plan", "noop");
    plan.queue = Some(PLAN_QUEUE.into());
    let mut each = StepSpec::handler("each", "noop");
    each.queue = Some(QUEUE.into());
    each.for_each = Some(ForEach {
        path: "steps.plan.output.items".into(),
        max_parallel: None,
        max_items: Some(items.max(1) as u32),
        on_item_failure: Default::default(),
    });
    let mut after = StepSpec::handler("after", "noop");
    after.queue = Some(QUEUE.into());
    WorkflowSpec {
        name: name.into(),
        defaults: StepDefaults::default(),
        run: RunPolicy::default(),
        steps: vec![plan, each, after],
    }
}

pub(super) async fn fanout(
    plan: &Plan<'_>,
    workers: &mut Option<Workers>,
    report: &mut Value,
) -> anyhow::Result<()> {
    let store = plan.store;
    let items = plan.args.items.unwrap_or(DEFAULT_ITEMS);
    if items == 0 || items > stepwise_core::spec::fan_out::MAX_ITEMS_LIMIT as usize {
        return Err(CliError::input(format!(
            "--items must be between 1 and {}",
            stepwise_core::spec::fan_out::MAX_ITEMS_LIMIT
        )));
    }
    let name = format!("bench-fanout-{}", plan.tag);
    store.register_workflow(&workflow(&name, items)).await?;
    let w = workers.insert(Workers::start(plan.url, plan.args.workers, plan.args.pool)?);
    // Workers starting up would share the two cores with the expansion being timed.
    wait_for_workers(store, w, plan.args.workers).await?;
    let run = store
        .create_runs(RunBatch {
            group: None,
            runs: vec![NewRun::new(&name, json!({}))],
        })
        .await?[0]
        .id;
    let expansion = expand(store, run, items).await?;
    let view = wait_done(store, w, run, items).await?;
    let drain = drain_span(store, run, items).await?;
    let after_started = view
        .steps
        .iter()
        .find(|s| s.name == "after")
        .and_then(|s| s.started_at);
    let seconds = (drain.last_finished - drain.first_started)
        .num_microseconds()
        .unwrap_or(1)
        .max(1) as f64
        / 1e6;
    report["runs"] = json!(1);
    report["items"] = json!(items);
    report["steps"] = json!(items);
    report["expansion_ms"] = json!(super::round2(expansion.as_secs_f64() * 1000.0));
    report["items_per_s"] = json!((items as f64 / seconds).round());
    report["steps_per_s"] = report["items_per_s"].clone();
    report["drain_seconds"] = json!(super::round2(seconds));
    if let Some(started) = after_started {
        let join = (started - drain.last_finished)
            .num_microseconds()
            .unwrap_or(0);
        report["join_ms"] = json!(super::round2(join as f64 / 1000.0));
    }
    Ok(())
}

async fn wait_for_workers(
    store: &dyn Store,
    workers: &mut Workers,
    n: usize,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let alive = store
            .list_workers()
            .await?
            .iter()
            .filter(|w| w.status == "alive" && w.queues.iter().any(|q| q == QUEUE))
            .count();
        if alive >= n {
            return Ok(());
        }
        workers.check_alive()?;
        if Instant::now() > deadline {
            return Err(CliError::failed(
                "the bench workers did not register within 60s",
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Claims the run's first step and completes it with `items` elements: the timed
/// call is the one transaction that expands the `for_each` step.
async fn expand(store: &dyn Store, run: RunId, items: usize) -> anyhow::Result<Duration> {
    let worker = store
        .register_worker(&WorkerRegistration {
            name: format!("bench-plan:{}", std::process::id()),
            queues: vec![PLAN_QUEUE.into()],
            lease: Duration::from_secs(600),
        })
        .await?
        .id;
    let request = ClaimRequest {
        worker,
        queues: vec![PLAN_QUEUE.into()],
        limit: 1,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    let claimed = loop {
        let mut claimed = store.claim_steps(&request).await?;
        if let Some(step) = claimed.pop() {
            break step;
        }
        if Instant::now() > deadline {
            return Err(CliError::failed(format!(
                "the first step of bench run {run} could not be claimed within 60s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let output = json!({ "items": (0..items).collect::<Vec<_>>() });
    let success = StepSuccess {
        lease: claimed.lease,
        output,
        log: None,
    };
    let started = Instant::now();
    let report = store.complete_steps(std::slice::from_ref(&success)).await?;
    let took = started.elapsed();
    if report.accepted.is_empty() {
        return Err(CliError::failed(
            "completing the bench's first step was refused",
        ));
    }
    store.deregister_worker(worker).await?;
    Ok(took)
}

/// Waits for the run to end; the workers' own counts say when to ask the database.
async fn wait_done(
    store: &dyn Store,
    workers: &mut Workers,
    run: RunId,
    items: usize,
) -> anyhow::Result<RunView> {
    // The items and the step after them.
    let total = items as u64 + 1;
    let bar = super::progress(total, "items");
    let mut progressed = (0u64, Instant::now());
    let mut checked = Instant::now();
    let view = loop {
        let handled = workers.handled();
        bar.set_position(handled.min(total));
        if handled != progressed.0 {
            progressed = (handled, Instant::now());
        }
        let stalled = progressed.1.elapsed() > Duration::from_secs(5);
        if handled >= total || stalled {
            progressed.1 = Instant::now();
            let view = store
                .get_run(run)
                .await?
                .ok_or_else(|| CliError::failed("the bench run vanished"))?;
            if view.status.is_terminal() {
                break view;
            }
        }
        if checked.elapsed() > Duration::from_secs(1) {
            checked = Instant::now();
            workers.check_alive()?;
        }
        tokio::time::sleep(progress::TICK).await;
    };
    bar.finish_and_clear();
    if view.status != stepwise_core::RunStatus::Completed {
        return Err(CliError::failed(format!(
            "bench run {run} ended {}: {}",
            view.status,
            view.error.as_deref().unwrap_or("no error recorded")
        )));
    }
    Ok(view)
}

struct Span {
    first_started: DateTime<Utc>,
    last_finished: DateTime<Utc>,
}

/// When the first item started and the last one ended, read a page at a time.
async fn drain_span(store: &dyn Store, run: RunId, items: usize) -> anyhow::Result<Span> {
    let mut first: Option<DateTime<Utc>> = None;
    let mut last: Option<DateTime<Utc>> = None;
    let mut from = 0;
    let mut seen = 0;
    loop {
        let request = ItemsRequest {
            run,
            step: "each".into(),
            from,
            limit: 1000,
        };
        let Some(page) = store.list_items(&request).await? else {
            break;
        };
        for item in &page.items {
            seen += 1;
            if let Some(t) = item.started_at {
                first = Some(first.map_or(t, |f| f.min(t)));
            }
            // `None` sorts before any time.
            last = last.max(item.finished_at);
        }
        match page.next {
            Some(next) if next > from => from = next,
            _ => break,
        }
    }
    match (first, last) {
        (Some(first_started), Some(last_finished)) if seen == items => Ok(Span {
            first_started,
            last_finished,
        }),
        _ => Err(CliError::failed(format!(
            "bench run {run}: {seen} of {items} items have start and end times"
        ))),
    }
}

/// `--scenario fanout` for people (`--json` prints the object).
pub(super) fn print_human(report: &Value) -> anyhow::Result<()> {
    let get = |k: &str| report.get(k).cloned().unwrap_or(Value::Null);
    outln!(
        "fanout: 1 run of {} items on {} ({} worker(s) × {} consumers, no-op handler)",
        get("items"),
        report["database"].as_str().unwrap_or("?"),
        get("workers"),
        get("pool")
    );
    outln!(
        "expansion  {} ms   the transaction that completes the step the items come from and inserts them",
        get("expansion_ms")
    );
    outln!(
        "drain      {:.0} items/s   {} s from the first item's start to the last item's end",
        get("items_per_s").as_f64().unwrap_or(f64::NAN),
        get("drain_seconds")
    );
    if !get("join_ms").is_null() {
        outln!(
            "join       {} ms   from the last item's end to the start of the step after the join",
            get("join_ms")
        );
    }
    if !get("worker_peak_rss_mib").is_null() {
        outln!("worker peak RSS  {} MiB", get("worker_peak_rss_mib"));
    }
    Ok(())
}
