//! `stepwise runs show RUN [--items]`: one run, its steps, and its family (the run
//! that started it, the runs it started). An expanded `for_each` step is one row
//! with its items counted, so a run of 10,000 items prints as many lines as a run
//! of one; `--items` lists them, a page at a time from the store.

use super::runs::get;
use crate::output::outln;
use serde_json::{json, Value};
use stepwise_core::{RunId, StepStatus};
use stepwise_store::{ItemCounts, ItemsRequest, RunFilter, RunView, StepView, Store};

/// Items asked of the store per page (its own upper bound).
const ITEM_PAGE: u32 = 1000;
/// How many child run ids `runs show` names before "…".
const CHILDREN_SHOWN: usize = 5;

/// What `runs show` was asked for.
pub struct ShowArgs<'a> {
    pub id: &'a str,
    pub items: bool,
    pub json: bool,
}

pub async fn show(store: &dyn Store, args: ShowArgs<'_>) -> anyhow::Result<()> {
    let run = get(store, args.id).await?;
    let children = children(store, run.id).await?;
    let mut items = Vec::new();
    if args.items {
        for step in run.steps.iter().filter(|s| s.items.is_some()) {
            items.push((
                step.name.clone(),
                all_items(store, run.id, &step.name).await?,
            ));
        }
    }
    if args.json {
        outln!("{}", show_json(&run, &children, &items)?);
        return Ok(());
    }
    print_header(&run, &children)?;
    outln!();
    outln!(
        "{:<24}  {:<10}  {:>8}  DETAIL",
        "STEP",
        "STATUS",
        "ATTEMPTS"
    );
    for s in &run.steps {
        print_step(s, "")?;
        if let Some((_, list)) = items.iter().find(|(name, _)| *name == s.name) {
            for item in list {
                print_step(item, "  ")?;
            }
        }
    }
    Ok(())
}

/// The run's child runs: how many, and the oldest few.
struct Children {
    total: usize,
    first: Vec<RunId>,
}

async fn children(store: &dyn Store, parent: RunId) -> anyhow::Result<Children> {
    let mut filter = RunFilter {
        parent: Some(parent),
        limit: Some(1000),
        ..Default::default()
    };
    // Pages come newest first; the ids worth naming are the first ones started.
    let mut ids = Vec::new();
    loop {
        let page = store.list_runs(filter.clone()).await?;
        ids.extend(page.runs.iter().map(|r| r.id));
        match page.next_cursor {
            Some(cursor) => filter.cursor = Some(cursor),
            None => break,
        }
    }
    let total = ids.len();
    ids.reverse();
    ids.truncate(CHILDREN_SHOWN);
    Ok(Children { total, first: ids })
}

/// Every item of one expanded step, in index order.
async fn all_items(store: &dyn Store, run: RunId, step: &str) -> anyhow::Result<Vec<StepView>> {
    let mut items = Vec::new();
    let mut from = 0;
    loop {
        let request = ItemsRequest {
            run,
            step: step.to_string(),
            from,
            limit: ITEM_PAGE,
        };
        let Some(page) = store.list_items(&request).await? else {
            break;
        };
        items.extend(page.items);
        match page.next {
            // A page that does not move on would loop for ever.
            Some(next) if next > from => from = next,
            _ => break,
        }
    }
    Ok(items)
}

/// The run as `runs show --json` prints it: the run's own fields, its children, and
/// with `--items` each expanded step's items as `item_steps`.
fn show_json(
    run: &RunView,
    children: &Children,
    items: &[(String, Vec<StepView>)],
) -> anyhow::Result<String> {
    let mut value = serde_json::to_value(run)?;
    value["children"] = json!({"total": children.total, "first": children.first});
    if let Some(steps) = value.get_mut("steps").and_then(Value::as_array_mut) {
        for step in steps {
            let name = step.get("name").and_then(Value::as_str).unwrap_or_default();
            if let Some((_, list)) = items.iter().find(|(n, _)| n == name) {
                step["item_steps"] = serde_json::to_value(list)?;
            }
        }
    }
    Ok(serde_json::to_string(&value)?)
}

fn print_header(run: &RunView, children: &Children) -> anyhow::Result<()> {
    outln!("run       {}", run.id);
    outln!("workflow  {} v{}", run.workflow, run.workflow_version);
    match run.stop_reason {
        // `compensated` and the like do not say why the run stopped.
        Some(reason) if reason.as_str() != run.status.as_str() => {
            outln!("status    {} (stopped: {})", run.status, reason.as_str());
        }
        _ => outln!("status    {}", run.status),
    }
    outln!(
        "progress  {}/{} steps",
        run.progress.done,
        run.progress.total
    );
    if let Some(parent) = run.parent_run {
        match &run.parent_step {
            Some(step) => outln!("parent    {parent} (step {step})"),
            None => outln!("parent    {parent}"),
        }
    }
    if children.total > 0 {
        let ids: Vec<String> = children.first.iter().map(RunId::to_string).collect();
        let more = if children.total > children.first.len() {
            ", …"
        } else {
            ""
        };
        outln!("children  {}: {}{more}", children.total, ids.join(", "));
    }
    if let Some(g) = &run.group {
        outln!("group     {g}");
    }
    if let Some(schedule) = &run.schedule {
        let fire = run
            .scheduled_for
            .map(|t| format!(" for {}", super::schedules::time(t)))
            .unwrap_or_default();
        outln!("schedule  {schedule}{fire}");
    }
    outln!("created   {}", run.created_at.to_rfc3339());
    if let Some(f) = run.finished_at {
        outln!("finished  {}", f.to_rfc3339());
    }
    if let Some(e) = &run.error {
        outln!("error     {e}");
    }
    Ok(())
}

fn print_step(s: &StepView, indent: &str) -> anyhow::Result<()> {
    let name = format!("{indent}{}", s.name);
    if let Some(counts) = &s.items {
        outln!(
            "{:<24}  {:<10}  {:>8}  {}",
            name,
            shown_status(s),
            "",
            items_summary(counts)
        );
        return Ok(());
    }
    let detail = match (&s.waiting, &s.error, s.run_after) {
        // What it waits for says more than an earlier attempt's error.
        (Some(w), _, _) => stepwise_store::explain::describe_waiting(w),
        (None, Some(e), _) if s.status != StepStatus::Completed => {
            e.lines().next().unwrap_or("").to_string()
        }
        (None, _, Some(t)) if shown_status(s) == "pending" => {
            format!("next attempt at {}", t.to_rfc3339())
        }
        _ => match &s.compensates {
            Some(step) => format!("undoes {step}"),
            None => String::new(),
        },
    };
    outln!(
        "{:<24}  {:<10}  {:>8}  {}",
        name,
        shown_status(s),
        format!("{}/{}", s.attempts, s.max_attempts),
        detail
    );
    Ok(())
}

/// The status people see: an expanded step waits for its items as `blocked` in the
/// store, but to a reader its items are what is running.
pub fn shown_status(step: &StepView) -> &'static str {
    match (&step.items, step.status) {
        (Some(_), status) if !status.is_terminal() => "running",
        (_, StepStatus::Scheduled) => "pending",
        (_, status) => status.as_str(),
    }
}

/// `37/120 items (4 running, 2 failed)`.
pub fn items_summary(counts: &ItemCounts) -> String {
    let mut parts = Vec::new();
    for (n, what) in [
        (counts.running, "running"),
        (counts.waiting, "waiting"),
        (counts.failed, "failed"),
        (counts.stopped, "stopped"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    let mut text = format!("{}/{} items", counts.done(), counts.total);
    if !parts.is_empty() {
        text.push_str(&format!(" ({})", parts.join(", ")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_expanded_step_is_summed_up_in_one_line() {
        let counts = ItemCounts {
            total: 120,
            pending: 79,
            running: 4,
            waiting: 0,
            completed: 35,
            failed: 2,
            stopped: 0,
        };
        assert_eq!(items_summary(&counts), "37/120 items (4 running, 2 failed)");
        let done = ItemCounts {
            total: 3,
            completed: 3,
            ..Default::default()
        };
        assert_eq!(items_summary(&done), "3/3 items");
    }
}
