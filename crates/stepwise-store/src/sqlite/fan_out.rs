//! `for_each` on SQLite: the SQL behind [`crate::fan_out::FanOutTx`]. The write
//! transaction holds the database lock, so nothing here races.

use super::settle::{self, FailingStep, NewEvent};
use super::SqliteStore;
use crate::fan_out::{Expanding, Expansion, FanOutTx, ItemChunk, Joined, Release, Unblocked};
use crate::model::{ItemCounts, ItemPage, ItemsRequest, ReadyStep, StepView};
use crate::{ItemStore, Result, StoreError};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::{Row, SqliteConnection};
use std::collections::HashMap;
use stepwise_core::spec::fan_out::ItemResult;
use stepwise_core::{EventKind, RunId, RunStatus, StepId, StepStatus};
use uuid::Uuid;

/// The caller's write transaction, seen as a [`FanOutTx`].
pub(super) struct SqliteFanOut<'c>(pub &'c mut SqliteConnection);

/// Step ids as the JSON arrays of hex text the SQL reads.
pub(super) fn id_list(ids: &[StepId]) -> String {
    Value::Array(
        ids.iter()
            .map(|id| Value::String(id.0.simple().to_string()))
            .collect(),
    )
    .to_string()
}

/// A `dependents` column (a JSON array of hex ids).
pub(super) fn parse_dependents(text: &str) -> Result<Vec<StepId>> {
    let ids: Vec<String> = serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("step dependents: {e}")))?;
    ids.iter()
        .map(|id| {
            Uuid::parse_str(id)
                .map(StepId)
                .map_err(|e| StoreError::Corrupt(format!("step dependent {id:?}: {e}")))
        })
        .collect()
}

#[async_trait]
impl FanOutTx for SqliteFanOut<'_> {
    async fn unblock(&mut self, dependents: &[StepId]) -> Result<Vec<Unblocked>> {
        let mut ended: HashMap<StepId, i32> = HashMap::new();
        for id in dependents {
            *ended.entry(*id).or_default() += 1;
        }
        let rows = sqlx::query(include_str!("sql/unblock_steps.sql"))
            .bind(id_list(dependents))
            .fetch_all(&mut *self.0)
            .await?;
        let mut moved = Vec::with_capacity(rows.len());
        for row in rows {
            let id = StepId(row.try_get("id")?);
            let seq: i64 = row.try_get("seq")?;
            let cursor: Option<i32> = row.try_get("cursor")?;
            let ready = if row.try_get("ready")? {
                Some(ReadyStep {
                    id,
                    queue: row.try_get("queue")?,
                    needs_lock: row.try_get("needs_lock")?,
                })
            } else {
                None
            };
            moved.push((
                seq,
                Unblocked {
                    id,
                    ready,
                    expands: row.try_get("expands")?,
                    joined: row.try_get("joined")?,
                    release: cursor.map(|cursor| Release {
                        cursor,
                        count: ended.get(&id).copied().unwrap_or(0),
                    }),
                },
            ));
        }
        // RETURNING comes back in no particular order: oldest first.
        moved.sort_by_key(|(seq, _)| *seq);
        Ok(moved.into_iter().map(|(_, m)| m).collect())
    }

    async fn expanding_step(&mut self, step: StepId) -> Result<Option<Expanding>> {
        let Some(row) = sqlx::query(include_str!("sql/expanding_step.sql"))
            .bind(step.0)
            .fetch_optional(&mut *self.0)
            .await?
        else {
            return Ok(None);
        };
        let for_each: String = row.try_get("for_each")?;
        Ok(Some(Expanding {
            run_id: RunId(row.try_get("run_id")?),
            name: row.try_get("name")?,
            for_each: serde_json::from_str(&for_each)
                .map_err(|e| StoreError::Corrupt(format!("for_each of a step: {e}")))?,
        }))
    }

    async fn item_root(&mut self, run: RunId, step: Option<&str>) -> Result<Option<Value>> {
        let root: Option<String> = sqlx::query_scalar(include_str!("sql/item_root.sql"))
            .bind(run.0)
            .bind(step)
            .fetch_one(&mut *self.0)
            .await?;
        root.map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| StoreError::Corrupt(format!("a for_each source: {e}")))
        })
        .transpose()
    }

    async fn expand(&mut self, step: StepId, expansion: &Expansion) -> Result<()> {
        // `$."k1"."k2"`: object keys, quoted.
        let path = expansion
            .source
            .keys
            .iter()
            .fold(String::from("$"), |mut p, k| {
                p.push_str(&format!(".{}", serde_json::Value::String(k.clone())));
                p
            });
        let run: Option<Uuid> = sqlx::query_scalar(include_str!("sql/expand_step.sql"))
            .bind(step.0)
            .bind(expansion.total)
            .bind(expansion.cursor)
            .bind(&expansion.source.step)
            .bind(path)
            .fetch_optional(&mut *self.0)
            .await?;
        if let Some(run) = run {
            sqlx::query(include_str!("sql/count_items.sql"))
                .bind(run)
                .bind(expansion.total)
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }

    async fn insert_items(&mut self, chunk: ItemChunk<'_>) -> Result<()> {
        let items: Vec<Value> = chunk.items.iter().map(crate::sanitize::json).collect();
        sqlx::query(include_str!("sql/insert_items.sql"))
            .bind(chunk.step.0)
            .bind(chunk.first)
            .bind(Value::Array(items).to_string())
            .bind(chunk.claimable_below)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn release_items(&mut self, step: StepId, release: Release) -> Result<()> {
        let released: Vec<i32> = sqlx::query_scalar(include_str!("sql/release_items.sql"))
            .bind(step.0)
            .bind(release.cursor)
            .bind(release.count)
            .fetch_all(&mut *self.0)
            .await?;
        if let Some(last) = released.iter().max() {
            sqlx::query(include_str!("sql/move_item_cursor.sql"))
                .bind(step.0)
                .bind(last + 1)
                .execute(&mut *self.0)
                .await?;
        }
        Ok(())
    }

    async fn item_results(&mut self, step: StepId) -> Result<Vec<ItemResult>> {
        let rows = sqlx::query(include_str!("sql/item_results.sql"))
            .bind(step.0)
            .fetch_all(&mut *self.0)
            .await?;
        rows.iter()
            .map(|row| {
                let status: String = row.try_get("status")?;
                let output = if status == "completed" {
                    let text: Option<String> = row.try_get("output")?;
                    Some(match text {
                        Some(text) => serde_json::from_str(&text)
                            .map_err(|e| StoreError::Corrupt(format!("an item's output: {e}")))?,
                        None => Value::Null,
                    })
                } else {
                    None
                };
                Ok(ItemResult {
                    index: row.try_get::<i64, _>("item_index")?.max(0) as u32,
                    output,
                })
            })
            .collect()
    }

    async fn complete_joined(
        &mut self,
        step: StepId,
        output: &Value,
        data: Value,
    ) -> Result<Joined> {
        let row = sqlx::query(include_str!("sql/complete_joined.sql"))
            .bind(step.0)
            .bind(output.to_string())
            .fetch_one(&mut *self.0)
            .await?;
        let run_id: Uuid = row.try_get("run_id")?;
        let name: String = row.try_get("name")?;
        let dependents: String = row.try_get("dependents")?;
        let group: Option<String> = sqlx::query_scalar(include_str!("sql/run_group_name.sql"))
            .bind(run_id)
            .fetch_optional(&mut *self.0)
            .await?
            .flatten();
        settle::insert_event(
            self.0,
            NewEvent {
                kind: EventKind::StepCompleted,
                run_id: Some(run_id),
                step: Some(&name),
                group: group.as_deref(),
                data,
            },
        )
        .await?;
        Ok(Joined {
            run_id: RunId(run_id),
            dependents: parse_dependents(&dependents)?,
        })
    }

    async fn fail_unexpanded(
        &mut self,
        step: StepId,
        error: &str,
    ) -> Result<Vec<(RunId, RunStatus)>> {
        let Some(row) = sqlx::query(include_str!("sql/unexpanded_step.sql"))
            .bind(step.0)
            .fetch_optional(&mut *self.0)
            .await?
        else {
            return Ok(vec![]);
        };
        let name: String = row.try_get("name")?;
        let group: Option<String> = row.try_get("group_name")?;
        let failing = FailingStep {
            id: step.0,
            run_id: row.try_get("run_id")?,
            name: &name,
            attempt: row.try_get("attempt")?,
            group: group.as_deref(),
            tolerated_by: None,
        };
        settle::fail_for_good(self.0, &failing, error).await
    }
}

/// Counts the items of a run's expanded steps into their views.
pub(super) async fn count_items(
    conn: &mut SqliteConnection,
    run: RunId,
    steps: &mut [StepView],
) -> Result<()> {
    let rows = sqlx::query(include_str!("sql/item_counts.sql"))
        .bind(run.0)
        .fetch_all(&mut *conn)
        .await?;
    for row in rows {
        crate::fan_out::count_item_row(
            steps,
            StepId(row.try_get("item_of")?),
            row.try_get::<Option<String>, _>("status")?.as_deref(),
            row.try_get("n")?,
        )?;
    }
    Ok(())
}

#[async_trait]
impl ItemStore for SqliteStore {
    async fn list_items(&self, request: &ItemsRequest) -> Result<Option<ItemPage>> {
        let mut conn = self.reader.begin().await?;
        let rows = sqlx::query(include_str!("sql/for_each_step.sql"))
            .bind(request.run.0)
            .bind(&request.step)
            .fetch_all(&mut *conn)
            .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let mut counts = ItemCounts::default();
        for row in &rows {
            if let Some(status) = row.try_get::<Option<String>, _>("status")? {
                let status = StepStatus::parse(&status)
                    .ok_or_else(|| StoreError::Corrupt(format!("step status {status:?}")))?;
                counts.add(status, row.try_get::<i64, _>("n")?.max(0) as u32);
            }
        }
        let limit = request.limit.clamp(1, 1000);
        let rows = sqlx::query(include_str!("sql/list_items.sql"))
            .bind(request.run.0)
            .bind(&request.step)
            .bind(i64::from(request.from))
            .bind(i64::from(limit) + 1)
            .fetch_all(&mut *conn)
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut next = None;
        for row in &rows {
            if items.len() == limit as usize {
                next = Some(row.try_get::<i64, _>("item_index")?.max(0) as u32);
                break;
            }
            let (mut item, _) = super::rows::step_view(row)?;
            item.after = vec![request.step.clone()];
            items.push(item);
        }
        Ok(Some(ItemPage {
            counts,
            items,
            next,
        }))
    }
}

/// Before a retry resets its steps: drops the items of steps that expand afresh and
/// moves the `max_parallel` cursors of those whose failed items start again.
pub(super) async fn reshape_items(
    conn: &mut SqliteConnection,
    run: RunId,
    plan: &crate::retry_plan::RetryPlan,
) -> Result<()> {
    if !plan.re_expand.is_empty() {
        let ids = id_list(&plan.re_expand);
        let dropped = sqlx::query(include_str!("sql/drop_items.sql"))
            .bind(&ids)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        sqlx::query(include_str!("sql/unexpand_steps.sql"))
            .bind(&ids)
            .execute(&mut *conn)
            .await?;
        sqlx::query(include_str!("sql/uncount_items.sql"))
            .bind(run.0)
            .bind(dropped as i64)
            .execute(&mut *conn)
            .await?;
    }
    for (step, cursor) in &plan.cursors {
        sqlx::query(include_str!("sql/set_item_cursor.sql"))
            .bind(step.0)
            .bind(cursor)
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}
