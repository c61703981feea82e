//! `for_each` on PostgreSQL: the SQL behind [`crate::fan_out::FanOutTx`].

use super::settle::{self, FailingStep};
use super::PgStore;
use crate::fan_out::{Expanding, Expansion, FanOutTx, ItemChunk, Joined, Release, Unblocked};
use crate::model::{ItemCounts, ItemPage, ItemsRequest, ReadyStep, StepView};
use crate::{ItemStore, Result, StoreError};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::{PgConnection, Row};
use stepwise_core::spec::fan_out::ItemResult;
use stepwise_core::{RunId, RunStatus, StepId, StepStatus};
use uuid::Uuid;

/// The caller's transaction, seen as a [`FanOutTx`].
pub(super) struct PgFanOut<'c>(pub &'c mut PgConnection);

#[async_trait]
impl FanOutTx for PgFanOut<'_> {
    async fn unblock(&mut self, dependents: &[StepId]) -> Result<Vec<Unblocked>> {
        let ids: Vec<Uuid> = dependents.iter().map(|d| d.0).collect();
        let rows = sqlx::query(include_str!("sql/unblock_dependents.sql"))
            .bind(&ids)
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
                        count: row.try_get("ended").unwrap_or(0),
                    }),
                },
            ));
        }
        // Oldest first: the order the completing worker hands them on in.
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
        let for_each: Value = row.try_get("for_each")?;
        Ok(Some(Expanding {
            run_id: RunId(row.try_get("run_id")?),
            name: row.try_get("name")?,
            for_each: serde_json::from_value(for_each)
                .map_err(|e| StoreError::Corrupt(format!("for_each of a step: {e}")))?,
        }))
    }

    async fn item_root(&mut self, run: RunId, step: Option<&str>) -> Result<Option<Value>> {
        Ok(sqlx::query_scalar(include_str!("sql/item_root.sql"))
            .bind(run.0)
            .bind(step)
            .fetch_one(&mut *self.0)
            .await?)
    }

    async fn expand(&mut self, step: StepId, expansion: &Expansion) -> Result<()> {
        sqlx::query(include_str!("sql/expand_step.sql"))
            .bind(step.0)
            .bind(expansion.total)
            .bind(expansion.cursor)
            .bind(&expansion.source.step)
            .bind(&expansion.source.keys)
            .execute(&mut *self.0)
            .await?;
        Ok(())
    }

    async fn insert_items(&mut self, chunk: ItemChunk<'_>) -> Result<()> {
        let items: Vec<Value> = chunk.items.iter().map(crate::sanitize::json).collect();
        sqlx::query(include_str!("sql/insert_items.sql"))
            .bind(chunk.step.0)
            .bind(chunk.first)
            .bind(&items)
            .bind(chunk.claimable_below)
            .execute(&mut *self.0)
            .await?;
        if chunk.first < chunk.claimable_below {
            notify_work(self.0).await?;
        }
        Ok(())
    }

    async fn release_items(&mut self, step: StepId, release: Release) -> Result<()> {
        let moved: Option<i32> = sqlx::query_scalar(include_str!("sql/release_items.sql"))
            .bind(step.0)
            .bind(release.cursor)
            .bind(i64::from(release.count))
            .fetch_optional(&mut *self.0)
            .await?;
        if moved.is_some() {
            notify_work(self.0).await?;
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
                Ok(ItemResult {
                    index: row.try_get::<i32, _>("item_index")?.max(0) as u32,
                    output: if status == "completed" {
                        Some(
                            row.try_get::<Option<Value>, _>("output")?
                                .unwrap_or(Value::Null),
                        )
                    } else {
                        None
                    },
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
            .bind(output)
            .bind(data)
            .fetch_one(&mut *self.0)
            .await?;
        let dependents: Vec<Uuid> = row.try_get("dependents")?;
        Ok(Joined {
            run_id: RunId(row.try_get("run_id")?),
            dependents: dependents.into_iter().map(StepId).collect(),
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

async fn notify_work(conn: &mut PgConnection) -> Result<()> {
    sqlx::query(include_str!("sql/notify_work.sql"))
        .execute(conn)
        .await?;
    Ok(())
}

/// Counts the items of a run's expanded steps into their views.
pub(super) async fn count_items(
    conn: &mut PgConnection,
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
impl ItemStore for PgStore {
    async fn list_items(&self, request: &ItemsRequest) -> Result<Option<ItemPage>> {
        let mut conn = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *conn)
            .await?;
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
            .bind(request.from.min(i32::MAX as u32) as i32)
            .bind(i64::from(limit) + 1)
            .fetch_all(&mut *conn)
            .await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut next = None;
        for row in &rows {
            if items.len() == limit as usize {
                next = Some(row.try_get::<i32, _>("item_index")?.max(0) as u32);
                break;
            }
            let mut item = super::run_rows::RunStepRow::from_row(row)?.step;
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
    conn: &mut PgConnection,
    run: RunId,
    plan: &crate::retry_plan::RetryPlan,
) -> Result<()> {
    if !plan.re_expand.is_empty() {
        let ids: Vec<Uuid> = plan.re_expand.iter().map(|s| s.0).collect();
        sqlx::query(include_str!("sql/drop_items.sql"))
            .bind(&ids)
            .bind(run.0)
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
