//! `for_each` steps, once for both backends: what happens after a step's join
//! counter moves (a dependent becomes claimable, a `for_each` step expands into its
//! items, a place frees up under `max_parallel`, an expanded step's last item ends).
//!
//! Every function here runs inside the transaction that ended the steps whose
//! dependents it settles, so an expansion is atomic with its last dependency's
//! completion and a join with its last item's end (invariant 5: the join counts
//! items). The backends implement [`FanOutTx`] with their SQL; the decisions (what
//! the array is, what fails, the joined output) are in `stepwise_core::spec::fan_out`.

use crate::model::ReadyStep;
use crate::Result;
use async_trait::async_trait;
use serde_json::{json, Value};
use std::collections::VecDeque;
use stepwise_core::spec::fan_out::{expansion_error, joined_output, ItemResult};
use stepwise_core::spec::ItemSource;
use stepwise_core::{ForEach, RunId, RunStatus, StepId};

/// How many items one insert statement writes: never one statement per item, never
/// one statement for ten thousand.
pub(crate) const ITEM_CHUNK: usize = 1000;

/// A step whose join counter just moved, as the backend's unblock reports it.
#[derive(Debug)]
pub(crate) struct Unblocked {
    pub id: StepId,
    /// Its last dependency ended and it is an ordinary step: claimable now.
    pub ready: Option<ReadyStep>,
    /// Its last dependency ended and it is a `for_each` step: it expands now.
    pub expands: bool,
    /// It is an expanded step and its last item just ended.
    pub joined: bool,
    /// It is an expanded step under `max_parallel` and this many of its items just
    /// ended: as many waiting items may start, the first at or after `cursor`.
    pub release: Option<Release>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Release {
    pub cursor: i32,
    pub count: i32,
}

/// A `for_each` step about to expand.
pub(crate) struct Expanding {
    pub run_id: RunId,
    pub name: String,
    pub for_each: ForEach,
}

/// What an expanding step becomes: the join of `total` items.
pub(crate) struct Expansion {
    pub total: i32,
    /// With `max_parallel`: the index of the first item that waits for a place.
    pub cursor: Option<i32>,
    /// Where the array was: its items' contexts carry that output without it.
    pub source: ItemSource,
}

/// A chunk of items to insert, `first` being the index of `items[0]`; items with an
/// index below `claimable_below` are claimable at once, the others wait for a place.
pub(crate) struct ItemChunk<'a> {
    pub step: StepId,
    pub first: i32,
    pub items: &'a [Value],
    pub claimable_below: i32,
}

/// An expanded step that completed with its items' outputs.
pub(crate) struct Joined {
    pub run_id: RunId,
    pub dependents: Vec<StepId>,
}

#[async_trait]
pub(crate) trait FanOutTx: Send {
    /// Takes each dependency's end off its dependents' counters (an id once per
    /// ended dependency) and reports what moved.
    async fn unblock(&mut self, dependents: &[StepId]) -> Result<Vec<Unblocked>>;
    async fn expanding_step(&mut self, step: StepId) -> Result<Option<Expanding>>;
    /// The run's input (`step` is `None`) or the output of its step `step`.
    async fn item_root(&mut self, run: RunId, step: Option<&str>) -> Result<Option<Value>>;
    /// Turns the step into the join of its items (no lease, not compensable itself:
    /// each item is) and counts the items among the run's open steps.
    async fn expand(&mut self, step: StepId, expansion: &Expansion) -> Result<()>;
    /// Inserts a chunk of items; claimable ones join the claimable set at once.
    async fn insert_items(&mut self, chunk: ItemChunk<'_>) -> Result<()>;
    /// Makes up to `release.count` waiting items claimable, lowest index first, and
    /// moves the step's cursor past them.
    async fn release_items(&mut self, step: StepId, release: Release) -> Result<()>;
    async fn item_results(&mut self, step: StepId) -> Result<Vec<ItemResult>>;
    /// Completes a step that holds no lease (an expanded step, or one with no
    /// items) with its `step.completed` event.
    async fn complete_joined(
        &mut self,
        step: StepId,
        output: &Value,
        data: Value,
    ) -> Result<Joined>;
    /// Fails a step that holds no lease for good and halts its run, as a step
    /// failing for good does; returns the runs that ended.
    async fn fail_unexpanded(
        &mut self,
        step: StepId,
        error: &str,
    ) -> Result<Vec<(RunId, RunStatus)>>;
}

/// What settling did beyond the rows the caller changed.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    /// Ordinary steps claimable now, in the order they became so: the caller hands
    /// them on or gives them their place in the claimable set (items have theirs).
    pub ready: Vec<ReadyStep>,
    /// One entry per step that reached a terminal state here: the caller counts
    /// them off their runs' open steps.
    pub closed: Vec<RunId>,
    /// Runs that ended here (a failed expansion halts its run).
    pub finished: Vec<(RunId, RunStatus)>,
}

/// Unblocks the dependents of steps that just ended, and follows what that sets
/// off: expansions, freed places, joins, and the dependents of what joined.
pub(crate) async fn settle<T: FanOutTx>(tx: &mut T, dependents: &[StepId]) -> Result<Settled> {
    let mut settled = Settled::default();
    if dependents.is_empty() {
        return Ok(settled);
    }
    let first = tx.unblock(dependents).await?;
    follow(tx, first, &mut settled).await?;
    Ok(settled)
}

/// Expands `for_each` steps that a claim found claimable by another way than a
/// dependency's completion (a root, a delayed start, an admission, a retry): the
/// claim hands them to no worker and expands them in its transaction.
pub(crate) async fn expand_claimed<T: FanOutTx>(tx: &mut T, steps: &[StepId]) -> Result<Settled> {
    let mut settled = Settled::default();
    let found = steps
        .iter()
        .map(|&id| Unblocked {
            id,
            ready: None,
            expands: true,
            joined: false,
            release: None,
        })
        .collect();
    follow(tx, found, &mut settled).await?;
    Ok(settled)
}

async fn follow<T: FanOutTx>(
    tx: &mut T,
    first: Vec<Unblocked>,
    settled: &mut Settled,
) -> Result<()> {
    let mut queue: VecDeque<Unblocked> = first.into();
    while let Some(moved) = queue.pop_front() {
        if let Some(release) = moved.release {
            if release.count > 0 {
                tx.release_items(moved.id, release).await?;
            }
        }
        if moved.expands {
            if let Some(joined) = expand(tx, moved.id, settled).await? {
                queue.extend(joined);
            }
        } else if let Some(ready) = moved.ready {
            settled.ready.push(ready);
        }
        if moved.joined {
            queue.extend(join(tx, moved.id, settled).await?);
        }
    }
    Ok(())
}

/// Expands one step; returns what its own completion unblocked when it had no items.
async fn expand<T: FanOutTx>(
    tx: &mut T,
    id: StepId,
    settled: &mut Settled,
) -> Result<Option<Vec<Unblocked>>> {
    let Some(step) = tx.expanding_step(id).await? else {
        return Ok(None);
    };
    let path = &step.for_each.path;
    let source = match ItemSource::parse(path) {
        Ok(source) => source,
        Err(problem) => {
            let error = format!("for_each {problem}");
            settled
                .finished
                .extend(tx.fail_unexpanded(id, &error).await?);
            return Ok(None);
        }
    };
    let root = tx.item_root(step.run_id, source.step.as_deref()).await?;
    let value = root.as_ref().and_then(|r| source.find(r));
    if let Some(error) = expansion_error(path, value, step.for_each.max_items()) {
        settled
            .finished
            .extend(tx.fail_unexpanded(id, &error).await?);
        return Ok(None);
    }
    let items = value.and_then(Value::as_array).cloned().unwrap_or_default();
    let total = items.len() as i32;
    let window = step
        .for_each
        .max_parallel
        .map(|p| p.min(i32::MAX as u32) as i32);
    let claimable_below = window.map_or(total, |w| w.min(total));
    tx.expand(
        id,
        &Expansion {
            total,
            cursor: window.map(|_| claimable_below),
            source,
        },
    )
    .await?;
    if items.is_empty() {
        tracing::debug!(step = %step.name, "for_each found an empty array: completes with []");
        return Ok(Some(join(tx, id, settled).await?));
    }
    for (n, chunk) in items.chunks(ITEM_CHUNK).enumerate() {
        tx.insert_items(ItemChunk {
            step: id,
            first: (n * ITEM_CHUNK) as i32,
            items: chunk,
            claimable_below,
        })
        .await?;
    }
    Ok(None)
}

/// Completes an expanded step whose items are all terminal with their outputs in
/// order; returns what that unblocked.
async fn join<T: FanOutTx>(
    tx: &mut T,
    id: StepId,
    settled: &mut Settled,
) -> Result<Vec<Unblocked>> {
    let results = tx.item_results(id).await?;
    let (output, failed) = joined_output(&results);
    let data = json!({"attempt": 0, "items": results.len(), "failed": failed});
    let joined = tx.complete_joined(id, &output, data).await?;
    settled.closed.push(joined.run_id);
    if joined.dependents.is_empty() {
        return Ok(vec![]);
    }
    tx.unblock(&joined.dependents).await
}

/// Counts one row of `item_counts.sql` into the view of the expanded step it
/// belongs to: `n` items of `parent` in `status`, or, with no status, an expanded
/// step with no items at all (an empty array), which shows `0/0` rather than
/// nothing.
pub(crate) fn count_item_row(
    steps: &mut [crate::model::StepView],
    parent: StepId,
    status: Option<&str>,
    n: i64,
) -> Result<()> {
    let Some(step) = steps.iter_mut().find(|s| s.id == parent) else {
        return Ok(());
    };
    let counts = step
        .items
        .get_or_insert_with(crate::model::ItemCounts::default);
    if let Some(status) = status {
        let status = stepwise_core::StepStatus::parse(status)
            .ok_or_else(|| crate::StoreError::Corrupt(format!("step status {status:?}")))?;
        counts.add(status, n.max(0) as u32);
    }
    Ok(())
}
