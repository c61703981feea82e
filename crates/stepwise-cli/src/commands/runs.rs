//! `stepwise runs list|explain` and `stepwise logs` (`runs show` is in `show.rs`).

use super::{parse_run_id, CliError};
use crate::output::{out, outln};
use stepwise_core::{RunId, RunStatus};
use stepwise_store::{ItemsRequest, RunFilter, RunView, Store};

pub async fn list(store: &dyn Store, filter: RunFilter, json: bool) -> anyhow::Result<()> {
    let mut filter = filter;
    let mut runs = Vec::new();
    let wanted = filter.limit;
    // Page through everything unless a limit was asked for.
    if wanted.is_none() {
        filter.limit = Some(1000);
    }
    loop {
        let page = store.list_runs(filter.clone()).await?;
        runs.extend(page.runs);
        match page.next_cursor {
            Some(c) if wanted.is_none() => filter.cursor = Some(c),
            _ => break,
        }
    }
    if json {
        outln!("{}", serde_json::to_string(&runs)?);
        return Ok(());
    }
    outln!(
        "{:<36}  {:<20}  {:<19}  {:>9}  CREATED",
        "ID",
        "WORKFLOW",
        "STATUS",
        "STEPS"
    );
    for r in runs {
        outln!(
            "{:<36}  {:<20}  {:<19}  {:>9}  {}",
            r.id,
            r.workflow,
            r.status.as_str(),
            format!("{}/{}", r.progress.done, r.progress.total),
            r.created_at.format("%Y-%m-%d %H:%M:%S")
        );
    }
    Ok(())
}

pub fn parse_status(s: &str) -> anyhow::Result<RunStatus> {
    RunStatus::parse(s).ok_or_else(|| {
        let all: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
        CliError::input(format!(
            "unknown status {s:?}; use one of {}",
            all.join(", ")
        ))
    })
}

pub async fn get(store: &dyn Store, id: &str) -> anyhow::Result<RunView> {
    let id = parse_run_id(id)?;
    store
        .get_run(id)
        .await?
        .ok_or_else(|| CliError::not_found(format!("no run {id}")))
}

pub async fn logs(
    store: &dyn Store,
    run: &str,
    step: &str,
    attempt: Option<u32>,
) -> anyhow::Result<()> {
    let view = get(store, run).await?;
    if !view.steps.iter().any(|s| s.name == step) && !is_item(store, view.id, step).await? {
        return Err(CliError::not_found(format!(
            "run {} has no step {step:?}",
            view.id
        )));
    }
    let logs = store.attempt_logs(view.id, step, attempt).await?;
    if logs.is_empty() {
        return Err(CliError::not_found(match attempt {
            Some(n) => format!("step {step:?} has no finished attempt {n}"),
            None => format!("step {step:?} has no finished attempt yet"),
        }));
    }
    for l in logs {
        eprintln!("--- attempt {} ({}) ---", l.number, l.outcome);
        out!("{}", l.log.unwrap_or_default());
        outln!();
    }
    Ok(())
}

/// Whether `name` is an item (`STEP[i]`) of one of the run's expanded steps, which
/// the run's view counts rather than lists.
async fn is_item(store: &dyn Store, run: RunId, name: &str) -> anyhow::Result<bool> {
    let Some((step, index)) = stepwise_core::spec::fan_out::split_item_name(name) else {
        return Ok(false);
    };
    let request = ItemsRequest {
        run,
        step: step.to_string(),
        from: index,
        limit: 1,
    };
    let page = store.list_items(&request).await?;
    Ok(page.is_some_and(|p| p.items.first().is_some_and(|i| i.name == name)))
}

/// `runs explain ID`: why the run, and each of its unfinished steps, is not running.
pub async fn explain(store: &dyn Store, id: &str, json: bool) -> anyhow::Result<()> {
    let run = get(store, id).await?;
    let Some(explanation) = stepwise_store::explain::explain_run(store, run.id).await? else {
        return Err(CliError::not_found(format!("no run {}", run.id)));
    };
    if json {
        outln!("{}", serde_json::to_string(&explanation)?);
        return Ok(());
    }
    if explanation.status.is_terminal() {
        let mut line = format!(
            "run {}  {}  {}: it finished",
            run.id, run.workflow, explanation.status
        );
        if let Some(t) = run.finished_at {
            line.push_str(&format!(" at {}", t.to_rfc3339()));
        }
        if let Some(e) = &run.error {
            line.push_str(&format!("; error: {}", e.lines().next().unwrap_or("")));
        }
        outln!("{line}");
        return Ok(());
    }
    match &explanation.reason {
        Some(reason) => outln!(
            "run {}  {}  {}  {reason}",
            run.id,
            run.workflow,
            explanation.status
        ),
        None => outln!("run {}  {}  {}", run.id, run.workflow, explanation.status),
    }
    let name_width = explanation
        .steps
        .iter()
        .map(|s| s.step.len())
        .max()
        .unwrap_or(0);
    for s in &explanation.steps {
        // An expanded step is `blocked` in the store while its items run.
        let status = match &s.reason {
            stepwise_store::explain::Reason::Items { .. } => "running",
            _ => s.status.as_str(),
        };
        outln!("{:<name_width$}  {:<9}  {}", s.step, status, s.reason);
        if let Some(call) = explanation.calls.get(&s.step) {
            outln!("{:<name_width$}  {:<9}  calls {call}", "", "");
        }
    }
    if explanation.steps.is_empty() {
        eprintln!("run {} has no unfinished steps", run.id);
    }
    Ok(())
}
