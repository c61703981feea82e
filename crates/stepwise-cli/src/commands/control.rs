//! `stepwise runs cancel|retry` and `stepwise groups show`.

use super::{parse_run_id, CliError};
use crate::output::outln;
use serde_json::json;
use stepwise_store::{CancelOutcome, CancelRequest, RetryOutcome, RetryRequest, RunFilter, Store};

pub async fn cancel(
    store: &dyn Store,
    id: &str,
    compensate: bool,
    json: bool,
) -> anyhow::Result<()> {
    let run = parse_run_id(id)?;
    match store.cancel_run(&CancelRequest { run, compensate }).await? {
        CancelOutcome::NotFound => Err(CliError::not_found(format!("no run {run}"))),
        CancelOutcome::AlreadyEnded(status) => Err(CliError::conflict(format!(
            "run {run} already ended ({status}); nothing to cancel"
        ))),
        CancelOutcome::Compensating => Err(CliError::conflict(format!(
            "run {run} is compensating (undoing its completed steps); cancel it with \
             --no-compensate to stop the compensation, leaving it compensation_failed"
        ))),
        CancelOutcome::Cancelled { status, revoked } => {
            if json {
                outln!(
                    "{}",
                    json!({"id": run, "status": status, "stopping_steps": revoked})
                );
            } else {
                outln!("{run} {status}");
            }
            if revoked > 0 {
                eprintln!(
                    "run {run} cancelled; {revoked} running step(s) are being stopped \
                     (their workers kill them within a few seconds)"
                );
            } else {
                eprintln!("run {run} cancelled; it is {status} now");
            }
            Ok(())
        }
    }
}

pub async fn retry(
    store: &dyn Store,
    id: &str,
    from: Option<String>,
    json: bool,
) -> anyhow::Result<()> {
    let run = parse_run_id(id)?;
    match store.retry_run(&RetryRequest { run, from }).await? {
        RetryOutcome::NotFound => Err(CliError::not_found(format!("no run {run}"))),
        RetryOutcome::NotRetryable(status) => Err(CliError::conflict(format!(
            "run {run} is {status}; only failed, cancelled, timed_out and \
             compensation_failed runs can be retried"
        ))),
        RetryOutcome::Retried { status, steps } => {
            if json {
                outln!("{}", json!({"id": run, "status": status, "steps": steps}));
            } else {
                outln!("{run} {status}");
            }
            eprintln!(
                "run {run} is {status} again; re-running {}",
                steps.join(", ")
            );
            Ok(())
        }
    }
}

pub async fn show_group(store: &dyn Store, name: &str, json: bool) -> anyhow::Result<()> {
    let Some(group) = store.get_group(name).await? else {
        return Err(CliError::not_found(format!("no group {name:?}")));
    };
    let mut members = Vec::new();
    let mut filter = RunFilter {
        group: Some(name.to_string()),
        limit: Some(1000),
        ..RunFilter::default()
    };
    loop {
        let page = store.list_runs(filter.clone()).await?;
        members.extend(page.runs);
        match page.next_cursor {
            Some(c) => filter.cursor = Some(c),
            None => break,
        }
    }
    if json {
        let mut value = serde_json::to_value(&group)?;
        value["runs"] = serde_json::to_value(&members)?;
        outln!("{value}");
        return Ok(());
    }
    outln!("group      {}", group.name);
    outln!(
        "runs       {} ({} not finished)",
        group.total,
        group.remaining
    );
    outln!("created    {}", group.created_at.to_rfc3339());
    match group.completed_at {
        Some(t) => outln!("completed  {}", t.to_rfc3339()),
        None => outln!("completed  not yet"),
    }
    let counts: Vec<String> = group
        .counts
        .iter()
        .map(|(status, n)| format!("{status} {n}"))
        .collect();
    outln!("by status  {}", counts.join(", "));
    outln!();
    outln!("{:<36}  {:<20}  {:<19}  STEPS", "RUN", "WORKFLOW", "STATUS");
    for r in members {
        outln!(
            "{:<36}  {:<20}  {:<19}  {}/{}",
            r.id,
            r.workflow,
            r.status.as_str(),
            r.progress.done,
            r.progress.total
        );
    }
    Ok(())
}
