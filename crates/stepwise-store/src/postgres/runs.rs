//! Workflows, run creation and the read side on PostgreSQL.

use super::run_rows::{attempt_from_row, run_from_row, workflow_from_row, RunStepRow};
use super::settle;
use super::PgStore;
use crate::model::*;
use crate::plan::{RunPlan, StepRow};
use crate::transient::{millis, with_retries};
use crate::{Result, RunStore, StoreError, WorkflowStore};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use std::collections::HashMap;
use stepwise_core::{RunId, WorkflowSpec};
use uuid::Uuid;

#[async_trait]
impl WorkflowStore for PgStore {
    async fn register_workflow(&self, spec: &WorkflowSpec) -> Result<WorkflowVersion> {
        let plan = spec.plan()?;
        let json =
            serde_json::to_value(spec).map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        crate::sanitize::refuse_nul("the workflow", &json)?;
        let mut tx = self.pool.begin().await?;
        sqlx::query(include_str!("sql/lock_workflow_name.sql"))
            .bind(&spec.name)
            .execute(&mut *tx)
            .await?;
        let latest = latest_workflow(&mut tx, &spec.name, None).await?;
        let version = match latest {
            Some(stored) if stored.spec == *spec => {
                return Ok(WorkflowVersion {
                    name: spec.name.clone(),
                    version: stored.version,
                    changed: false,
                })
            }
            Some(stored) => stored.version + 1,
            None => 1,
        };
        sqlx::query(include_str!("sql/insert_workflow.sql"))
            .bind(&spec.name)
            .bind(version)
            .bind(json)
            .execute(&mut *tx)
            .await?;
        let queues: Vec<String> = plan.into_iter().map(|s| s.queue).collect();
        sqlx::query(include_str!("sql/upsert_queues.sql"))
            .bind(&queues)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(WorkflowVersion {
            name: spec.name.clone(),
            version,
            changed: true,
        })
    }

    async fn get_workflow(
        &self,
        name: &str,
        version: Option<i32>,
    ) -> Result<Option<StoredWorkflow>> {
        let mut conn = self.pool.acquire().await?;
        latest_workflow(&mut conn, name, version).await
    }

    async fn list_workflows(&self) -> Result<Vec<StoredWorkflow>> {
        let rows = sqlx::query(include_str!("sql/list_workflows.sql"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(workflow_from_row).collect()
    }

    async fn list_queues(&self) -> Result<Vec<QueueView>> {
        let rows = sqlx::query(include_str!("sql/list_queues.sql"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(QueueView {
                    name: r.try_get("name")?,
                    paused: r.try_get("paused")?,
                })
            })
            .collect()
    }
}

pub(super) async fn latest_workflow(
    conn: &mut PgConnection,
    name: &str,
    version: Option<i32>,
) -> Result<Option<StoredWorkflow>> {
    if crate::sanitize::unstorable(name) {
        return Ok(None);
    }
    let row = sqlx::query(include_str!("sql/latest_workflow.sql"))
        .bind(name)
        .bind(version)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(workflow_from_row).transpose()
}

#[async_trait]
impl RunStore for PgStore {
    async fn create_runs(&self, batch: RunBatch) -> Result<Vec<CreatedRun>> {
        with_retries(|| self.create_runs_once(&batch)).await
    }

    async fn get_run(&self, id: RunId) -> Result<Option<RunView>> {
        // One snapshot for the run, its steps and its attempts.
        let mut conn = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *conn)
            .await?;
        let Some(row) = sqlx::query(include_str!("sql/get_run.sql"))
            .bind(id.0)
            .fetch_optional(&mut *conn)
            .await?
        else {
            return Ok(None);
        };
        let mut run = run_from_row(&row)?.1;
        let attempts = sqlx::query(include_str!("sql/run_attempts.sql"))
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await?;
        let mut history: HashMap<Uuid, Vec<AttemptView>> = HashMap::new();
        for a in &attempts {
            let (step_id, attempt) = attempt_from_row(a)?;
            history.entry(step_id).or_default().push(attempt);
        }
        let steps = sqlx::query(include_str!("sql/run_steps.sql"))
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await?;
        let mut dependents = Vec::with_capacity(steps.len());
        for row in &steps {
            let RunStepRow {
                mut step,
                dependents: children,
            } = RunStepRow::from_row(row)?;
            step.history = history.remove(&step.id.0).unwrap_or_default();
            dependents.push(children);
            run.steps.push(step);
        }
        link_steps(&mut run.steps, &dependents);
        super::fan_out::count_items(&mut conn, id, &mut run.steps).await?;
        Ok(Some(run))
    }

    async fn list_runs(&self, filter: RunFilter) -> Result<RunPage> {
        let named = [&filter.workflow, &filter.group];
        if named
            .iter()
            .any(|n| n.as_deref().is_some_and(crate::sanitize::unstorable))
        {
            return Ok(RunPage {
                runs: Vec::new(),
                next_cursor: None,
            });
        }
        let before: Option<i64> = match &filter.cursor {
            None => None,
            Some(c) => Some(
                c.parse()
                    .map_err(|_| StoreError::InvalidCursor(c.clone()))?,
            ),
        };
        let rows = sqlx::query(include_str!("sql/list_runs.sql"))
            .bind(filter.status.map(|s| s.as_str()))
            .bind(&filter.workflow)
            .bind(&filter.group)
            .bind(before)
            .bind(filter.limit.map(|l| i64::from(l) + 1))
            .bind(filter.parent.map(|p| p.0))
            .fetch_all(&self.pool)
            .await?;
        let mut runs = Vec::with_capacity(rows.len());
        let mut last_seq = None;
        for row in &rows {
            if filter.limit.is_some_and(|l| runs.len() == l as usize) {
                break;
            }
            let (seq, run) = run_from_row(row)?;
            last_seq = Some(seq);
            runs.push(run);
        }
        let more = filter.limit.is_some_and(|l| rows.len() > l as usize);
        Ok(RunPage {
            runs,
            next_cursor: if more {
                last_seq.map(|s| s.to_string())
            } else {
                None
            },
        })
    }

    async fn attempt_logs(
        &self,
        run: RunId,
        step: &str,
        attempt: Option<u32>,
    ) -> Result<Vec<AttemptLog>> {
        if crate::sanitize::unstorable(step) {
            return Ok(Vec::new());
        }
        let rows = sqlx::query(include_str!("sql/attempt_logs.sql"))
            .bind(run.0)
            .bind(step)
            .bind(attempt.map(|a| a.min(i32::MAX as u32) as i32))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptLog {
                    number: r.try_get::<i32, _>("number")?.max(0) as u32,
                    outcome: r.try_get("outcome")?,
                    log: r.try_get("log")?,
                })
            })
            .collect()
    }

    async fn step_activity(&self, workflow: &str) -> Result<StepActivity> {
        let row = sqlx::query(include_str!("sql/step_activity.sql"))
            .bind(workflow)
            .fetch_one(&self.pool)
            .await?;
        Ok(StepActivity {
            completed: row.try_get("completed")?,
            first_started: row.try_get("first_started")?,
            last_finished: row.try_get("last_finished")?,
        })
    }

    async fn prune_runs(&self, older_than: std::time::Duration, limit: u32) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(include_str!("sql/unbounded_statement.sql"))
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(include_str!("sql/prune_runs.sql"))
            .bind(millis(older_than))
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    async fn list_group_names(&self, limit: u32) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(include_str!("sql/list_group_names.sql"))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?)
    }

    async fn get_group(&self, name: &str) -> Result<Option<GroupView>> {
        if crate::sanitize::unstorable(name) {
            return Ok(None);
        }
        let Some(row) = sqlx::query(include_str!("sql/get_group.sql"))
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let counts = sqlx::query(include_str!("sql/group_counts.sql"))
            .bind(name)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect::<Result<_>>()?;
        Ok(Some(GroupView {
            name: row.try_get("name")?,
            total: i64::from(row.try_get::<i32, _>("total")?),
            remaining: i64::from(row.try_get::<i32, _>("remaining")?),
            created_at: row.try_get("created_at")?,
            completed_at: row.try_get("completed_at")?,
            counts,
        }))
    }
}

impl PgStore {
    async fn create_runs_once(&self, batch: &RunBatch) -> Result<Vec<CreatedRun>> {
        let mut tx = self.pool.begin().await?;
        let created = create_runs_in(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Creates runs inside the caller's transaction: they exist if and only if the
    /// caller commits (transactional enqueue, `Engine::start_in`). PostgreSQL only;
    /// the caller's transaction must be READ COMMITTED or stricter and may be rolled
    /// back freely.
    pub async fn create_runs_in(
        conn: &mut PgConnection,
        batch: &RunBatch,
    ) -> Result<Vec<CreatedRun>> {
        create_runs_in(conn, batch).await
    }
}

pub(super) async fn create_runs_in(
    tx: &mut PgConnection,
    batch: &RunBatch,
) -> Result<Vec<CreatedRun>> {
    crate::plan::check_group(&batch.group)?;
    let mut specs = HashMap::new();
    for run in &batch.runs {
        if !specs.contains_key(&run.workflow) {
            let stored = latest_workflow(tx, &run.workflow, None)
                .await?
                .ok_or_else(|| StoreError::UnknownWorkflow(run.workflow.clone()))?;
            specs.insert(run.workflow.clone(), stored);
        }
    }
    if let Some(group) = &batch.group {
        let created: Option<String> = sqlx::query_scalar(include_str!("sql/insert_group.sql"))
            .bind(group)
            .fetch_optional(&mut *tx)
            .await?;
        if created.is_none() {
            return Err(StoreError::GroupExists(group.clone()));
        }
    }
    let plan = RunPlan::build(&batch.runs, &specs)?;
    let keys = super::flow::lock_keys(tx, &plan).await?;
    let keyed = plan
        .runs
        .iter()
        .filter(|r| r.concurrency_key.is_some())
        .count();
    let mut line_seqs: Vec<i64> = if keyed == 0 {
        vec![]
    } else {
        sqlx::query_scalar(include_str!("sql/draw_line_seqs.sql"))
            .bind(keyed as i64)
            .fetch_all(&mut *tx)
            .await?
    };
    line_seqs.sort_unstable();
    let mut line_seqs = line_seqs.into_iter();
    let line_seqs: Vec<Option<i64>> = plan
        .runs
        .iter()
        .map(|r| r.concurrency_key.as_ref().and_then(|_| line_seqs.next()))
        .collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(include_str!("sql/insert_runs.sql"))
        .bind(plan.runs.iter().map(|r| r.id.0).collect::<Vec<_>>())
        .bind(
            plan.runs
                .iter()
                .map(|r| r.workflow.clone())
                .collect::<Vec<_>>(),
        )
        .bind(plan.runs.iter().map(|r| r.version).collect::<Vec<_>>())
        .bind(
            plan.runs
                .iter()
                .map(|r| r.input.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            plan.runs
                .iter()
                .map(|r| r.idempotency_key.clone())
                .collect::<Vec<_>>(),
        )
        .bind(
            plan.runs
                .iter()
                .map(|r| r.concurrency_key.clone())
                .collect::<Vec<_>>(),
        )
        .bind(plan.runs.iter().map(|r| r.priority).collect::<Vec<_>>())
        .bind(plan.runs.iter().map(|r| r.steps).collect::<Vec<_>>())
        .bind(&batch.group)
        .bind(plan.runs.iter().map(|r| r.deadline_ms).collect::<Vec<_>>())
        .bind(&line_seqs)
        .bind(
            plan.runs
                .iter()
                .map(|r| r.parent.as_ref().map(|p| p.run.0))
                .collect::<Vec<_>>(),
        )
        .bind(
            plan.runs
                .iter()
                .map(|r| r.parent.as_ref().map(|p| p.step.clone()))
                .collect::<Vec<_>>(),
        )
        .fetch_all(&mut *tx)
        .await?;
    let inserted: std::collections::HashSet<Uuid> = inserted.into_iter().collect();
    let steps: Vec<&StepRow> = plan
        .steps
        .iter()
        .filter(|s| inserted.contains(&s.run_id.0))
        .collect();
    if !plan.rate_limits.is_empty() {
        super::limits::upsert_rate_limits(tx, &plan.rate_limits).await?;
    }
    if !plan.fair_lanes.is_empty() {
        super::limits::upsert_fair_lanes(tx, &plan.fair_lanes).await?;
    }
    insert_steps(tx, &steps).await?;
    for key in &keys {
        super::flow::admit(tx, key).await?;
    }
    if !steps.is_empty() {
        sqlx::query(include_str!("sql/notify_work.sql"))
            .execute(&mut *tx)
            .await?;
    }
    let existing = existing_runs(tx, &plan, &inserted).await?;
    if let Some(group) = &batch.group {
        let members = inserted.len() as i32;
        sqlx::query(include_str!("sql/seal_group.sql"))
            .bind(group)
            .bind(members)
            .execute(&mut *tx)
            .await?;
        if members == 0 {
            settle::complete_group(tx, group, 0).await?;
        }
    }
    Ok(plan
        .runs
        .iter()
        .map(|r| {
            if inserted.contains(&r.id.0) {
                CreatedRun {
                    id: r.id,
                    created: true,
                }
            } else {
                let key = (
                    r.workflow.clone(),
                    r.idempotency_key.clone().unwrap_or_default(),
                );
                CreatedRun {
                    id: existing.get(&key).copied().unwrap_or(r.id),
                    created: false,
                }
            }
        })
        .collect())
}

async fn insert_steps(conn: &mut PgConnection, steps: &[&StepRow]) -> Result<()> {
    if steps.is_empty() {
        return Ok(());
    }
    let col = |f: &dyn Fn(&StepRow) -> i64| steps.iter().map(|s| f(s)).collect::<Vec<i64>>();
    let dependents: Vec<String> = steps
        .iter()
        .map(|s| {
            let ids: Vec<String> = s.dependents.iter().map(|d| d.to_string()).collect();
            format!("{{{}}}", ids.join(","))
        })
        .collect();
    let at: Vec<Option<DateTime<Utc>>> = steps.iter().map(|s| s.start_at).collect();
    let delay: Vec<Option<i64>> = steps.iter().map(|s| s.start_after.map(millis)).collect();
    sqlx::query(include_str!("sql/insert_steps.sql"))
        .bind(steps.iter().map(|s| s.id.0).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.run_id.0).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.queue.clone()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.status.as_str()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.priority).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.deps_remaining).collect::<Vec<_>>())
        .bind(dependents)
        .bind(
            steps
                .iter()
                .map(|s| s.retry.max_attempts as i32)
                .collect::<Vec<_>>(),
        )
        .bind(col(&|s| millis(s.retry.backoff.initial)))
        .bind(
            steps
                .iter()
                .map(|s| s.retry.backoff.factor)
                .collect::<Vec<_>>(),
        )
        .bind(col(&|s| millis(s.retry.backoff.max)))
        .bind(at)
        .bind(delay)
        .bind(steps.iter().map(|s| s.compensable).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.resource.clone()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.for_each.clone()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.rate_key.clone()).collect::<Vec<_>>())
        .bind(steps.iter().map(|s| s.fair_key.clone()).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}

async fn existing_runs(
    conn: &mut PgConnection,
    plan: &RunPlan,
    inserted: &std::collections::HashSet<Uuid>,
) -> Result<HashMap<(String, String), RunId>> {
    let (workflows, keys): (Vec<String>, Vec<String>) = plan
        .runs
        .iter()
        .filter(|r| !inserted.contains(&r.id.0))
        .filter_map(|r| Some((r.workflow.clone(), r.idempotency_key.clone()?)))
        .unzip();
    if workflows.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = sqlx::query(include_str!("sql/existing_runs.sql"))
        .bind(&workflows)
        .bind(&keys)
        .fetch_all(conn)
        .await?;
    rows.iter()
        .map(|row| {
            let key = (row.try_get("workflow")?, row.try_get("idempotency_key")?);
            Ok((key, RunId(row.try_get("id")?)))
        })
        .collect()
}
