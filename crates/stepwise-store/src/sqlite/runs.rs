//! Workflows, run creation and the read side on SQLite.

use super::settle;
use super::{opt_time, time, SqliteStore};
use crate::model::*;
use crate::plan::RunPlan;
use crate::transient::{millis, with_retries};
use crate::{Result, RunStore, StoreError, WorkflowStore};
use async_trait::async_trait;
use serde_json::{json, Value};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use std::collections::{HashMap, HashSet};
use stepwise_core::{RunId, RunStatus, WorkerId, WorkflowSpec};
use uuid::Uuid;

#[async_trait]
impl WorkflowStore for SqliteStore {
    async fn register_workflow(&self, spec: &WorkflowSpec) -> Result<WorkflowVersion> {
        let plan = spec.plan()?;
        let json =
            serde_json::to_value(spec).map_err(|e| StoreError::InvalidInput(e.to_string()))?;
        crate::sanitize::refuse_nul("the workflow", &json)?;
        let json = json.to_string();
        let mut tx = self.write().await?;
        let version = match latest_workflow(&mut tx, &spec.name, None).await? {
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
        for step in plan {
            sqlx::query(include_str!("sql/upsert_queues.sql"))
                .bind(step.queue)
                .execute(&mut *tx)
                .await?;
        }
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
        let mut conn = self.reader.acquire().await?;
        latest_workflow(&mut conn, name, version).await
    }

    async fn list_workflows(&self) -> Result<Vec<StoredWorkflow>> {
        let rows = sqlx::query(include_str!("sql/list_workflows.sql"))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(workflow_from_row).collect()
    }

    async fn list_queues(&self) -> Result<Vec<QueueView>> {
        let rows = sqlx::query(include_str!("sql/list_queues.sql"))
            .fetch_all(&self.reader)
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
    conn: &mut SqliteConnection,
    name: &str,
    version: Option<i32>,
) -> Result<Option<StoredWorkflow>> {
    let row = sqlx::query(include_str!("sql/latest_workflow.sql"))
        .bind(name)
        .bind(version)
        .fetch_optional(conn)
        .await?;
    row.as_ref().map(workflow_from_row).transpose()
}

fn workflow_from_row(row: &SqliteRow) -> Result<StoredWorkflow> {
    let spec: String = row.try_get("spec")?;
    Ok(StoredWorkflow {
        name: row.try_get("name")?,
        version: row.try_get("version")?,
        spec: serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        created_at: time(row.try_get("created_at")?)?,
    })
}

#[async_trait]
impl RunStore for SqliteStore {
    async fn create_runs(&self, batch: RunBatch) -> Result<Vec<CreatedRun>> {
        with_retries(|| self.create_runs_once(&batch)).await
    }

    async fn get_run(&self, id: RunId) -> Result<Option<RunView>> {
        // One read transaction: one snapshot for the run, its steps and its attempts.
        let mut conn = self.reader.begin().await?;
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
        for a in attempts {
            history
                .entry(a.try_get("step_id")?)
                .or_default()
                .push(AttemptView {
                    number: a.try_get::<i64, _>("number")?.max(0) as u32,
                    worker_id: a.try_get::<Option<Uuid>, _>("worker_id")?.map(WorkerId),
                    started_at: opt_time(a.try_get("started_at")?)?,
                    finished_at: time(a.try_get("finished_at")?)?,
                    outcome: a.try_get("outcome")?,
                    error: a.try_get("error")?,
                });
        }
        let steps = sqlx::query(include_str!("sql/run_steps.sql"))
            .bind(id.0)
            .fetch_all(&mut *conn)
            .await?;
        let mut dependents = Vec::with_capacity(steps.len());
        for s in &steps {
            let (mut step, children) = super::rows::step_view(s)?;
            step.history = history.remove(&step.id.0).unwrap_or_default();
            dependents.push(children);
            run.steps.push(step);
        }
        super::fan_out::count_items(&mut conn, id, &mut run.steps).await?;
        link_steps(&mut run.steps, &dependents);
        Ok(Some(run))
    }

    async fn list_runs(&self, filter: RunFilter) -> Result<RunPage> {
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
            .fetch_all(&self.reader)
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
        let rows = sqlx::query(include_str!("sql/attempt_logs.sql"))
            .bind(run.0)
            .bind(step)
            .bind(attempt.map(|a| a.min(i32::MAX as u32) as i64))
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(AttemptLog {
                    number: r.try_get::<i64, _>("number")?.max(0) as u32,
                    outcome: r.try_get("outcome")?,
                    log: r.try_get("log")?,
                })
            })
            .collect()
    }

    async fn step_activity(&self, workflow: &str) -> Result<StepActivity> {
        let row = sqlx::query(include_str!("sql/step_activity.sql"))
            .bind(workflow)
            .fetch_one(&self.reader)
            .await?;
        Ok(StepActivity {
            completed: row.try_get("completed")?,
            first_started: opt_time(row.try_get("first_started")?)?,
            last_finished: opt_time(row.try_get("last_finished")?)?,
        })
    }

    async fn prune_runs(&self, older_than: std::time::Duration, limit: u32) -> Result<u64> {
        let mut tx = self.write().await?;
        let cutoff: i64 = sqlx::query_scalar(include_str!("sql/prune_cutoff.sql"))
            .bind(millis(older_than))
            .fetch_one(&mut *tx)
            .await?;
        for sql in [
            include_str!("sql/prune_events.sql"),
            include_str!("sql/prune_signals.sql"),
            include_str!("sql/prune_attempts.sql"),
            include_str!("sql/prune_steps.sql"),
        ] {
            sqlx::query(sql)
                .bind(cutoff)
                .bind(i64::from(limit))
                .execute(&mut *tx)
                .await?;
        }
        let runs = sqlx::query(include_str!("sql/prune_runs.sql"))
            .bind(cutoff)
            .bind(i64::from(limit))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(runs.rows_affected())
    }

    async fn list_group_names(&self, limit: u32) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(include_str!("sql/list_group_names.sql"))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?)
    }

    async fn get_group(&self, name: &str) -> Result<Option<GroupView>> {
        let Some(row) = sqlx::query(include_str!("sql/get_group.sql"))
            .bind(name)
            .fetch_optional(&self.reader)
            .await?
        else {
            return Ok(None);
        };
        let counts = sqlx::query(include_str!("sql/group_counts.sql"))
            .bind(name)
            .fetch_all(&self.reader)
            .await?
            .into_iter()
            .map(|r| Ok((r.try_get("status")?, r.try_get("n")?)))
            .collect::<Result<_>>()?;
        Ok(Some(GroupView {
            name: row.try_get("name")?,
            total: row.try_get("total")?,
            remaining: row.try_get("remaining")?,
            created_at: time(row.try_get("created_at")?)?,
            completed_at: opt_time(row.try_get("completed_at")?)?,
            counts,
        }))
    }
}

fn run_from_row(row: &SqliteRow) -> Result<(i64, RunView)> {
    let status: String = row.try_get("status")?;
    let total: i64 = row.try_get("steps_total")?;
    let open: i64 = row.try_get("steps_open")?;
    Ok((
        row.try_get("seq")?,
        RunView {
            id: RunId(row.try_get("id")?),
            workflow: row.try_get("workflow")?,
            workflow_version: row.try_get("workflow_version")?,
            status: RunStatus::parse(&status)
                .ok_or_else(|| StoreError::Corrupt(format!("run status {status:?}")))?,
            input: row.try_get("input")?,
            idempotency_key: row.try_get("idempotency_key")?,
            concurrency_key: row.try_get("concurrency_key")?,
            group: row.try_get("group_name")?,
            priority: row.try_get("priority")?,
            error: row.try_get("error")?,
            stop_reason: crate::StopReason::from_halt(row.try_get("halt")?)?,
            parent_run: row.try_get::<Option<Uuid>, _>("parent_run")?.map(RunId),
            parent_step: row.try_get("parent_step")?,
            schedule: row.try_get("schedule")?,
            scheduled_for: opt_time(row.try_get("scheduled_for")?)?,
            created_at: time(row.try_get("created_at")?)?,
            started_at: opt_time(row.try_get("started_at")?)?,
            finished_at: opt_time(row.try_get("finished_at")?)?,
            progress: Progress {
                done: total - open,
                total,
            },
            steps: vec![],
        },
    ))
}

impl SqliteStore {
    async fn create_runs_once(&self, batch: &RunBatch) -> Result<Vec<CreatedRun>> {
        let mut tx = self.write().await?;
        let answers = create_runs_in(&mut tx, batch).await?;
        tx.commit().await?;
        Ok(answers)
    }
}

/// Creates the batch's runs in the caller's write transaction.
pub(super) async fn create_runs_in(
    tx: &mut SqliteConnection,
    batch: &RunBatch,
) -> Result<Vec<CreatedRun>> {
    crate::plan::check_group(&batch.group)?;
    let mut specs = HashMap::new();
    for run in &batch.runs {
        if !specs.contains_key(&run.workflow) {
            let stored = latest_workflow(&mut *tx, &run.workflow, None)
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
    let keys = super::flow::upsert_keys(&mut *tx, &plan).await?;
    let keyed = plan
        .runs
        .iter()
        .filter(|r| r.concurrency_key.is_some())
        .count() as i64;
    let mut next_seq = if keyed == 0 {
        0
    } else {
        super::flow::draw_line_seqs(&mut *tx, keyed).await?
    };
    let runs: Vec<Value> = plan
        .runs
        .iter()
        .map(|r| {
            // Places in the lines follow the batch's order.
            let line_seq = r.concurrency_key.as_ref().map(|_| {
                next_seq += 1;
                next_seq - 1
            });
            json!({
                "id": r.id.0.simple().to_string(),
                "workflow": r.workflow,
                "version": r.version,
                "input": r.input,
                "idempotency_key": r.idempotency_key,
                "concurrency_key": r.concurrency_key,
                "priority": r.priority,
                "steps": r.steps,
                "deadline_ms": r.deadline_ms,
                "line_seq": line_seq,
                "parent_run": r.parent.as_ref().map(|p| p.run.0.simple().to_string()),
                "parent_step": r.parent.as_ref().map(|p| p.step.clone()),
            })
        })
        .collect();
    let inserted: Vec<Uuid> = sqlx::query_scalar(include_str!("sql/insert_runs.sql"))
        .bind(Value::Array(runs).to_string())
        .bind(&batch.group)
        .fetch_all(&mut *tx)
        .await?;
    let inserted: HashSet<Uuid> = inserted.into_iter().collect();
    let steps: Vec<Value> = plan
        .steps
        .iter()
        .filter(|s| inserted.contains(&s.run_id.0))
        .map(|s| {
            let dependents: Vec<String> = s
                .dependents
                .iter()
                .map(|d| d.0.simple().to_string())
                .collect();
            json!({
                "id": s.id.0.simple().to_string(),
                "run_id": s.run_id.0.simple().to_string(),
                "name": s.name,
                "queue": s.queue,
                "status": s.status.as_str(),
                "priority": s.priority,
                "deps": s.deps_remaining,
                "dependents": dependents,
                "max_attempts": s.retry.max_attempts,
                "b_initial": millis(s.retry.backoff.initial),
                "b_factor": s.retry.backoff.factor,
                "b_max": millis(s.retry.backoff.max),
                "at": s.start_at.map(|t| t.timestamp_millis()),
                "delay_ms": s.start_after.map(millis),
                "compensable": s.compensable,
                "resource": s.resource,
                "for_each": s.for_each,
                "rate_key": s.rate_key,
                "fair_key": s.fair_key,
            })
        })
        .collect();
    if !plan.rate_limits.is_empty() {
        super::limits::upsert_rate_limits(&mut *tx, &plan.rate_limits).await?;
    }
    if !plan.fair_lanes.is_empty() {
        super::limits::upsert_fair_lanes(&mut *tx, &plan.fair_lanes).await?;
    }
    if !steps.is_empty() {
        sqlx::query(include_str!("sql/insert_steps.sql"))
            .bind(Value::Array(steps).to_string())
            .execute(&mut *tx)
            .await?;
    }
    let mut answers = Vec::with_capacity(plan.runs.len());
    let mut created = Vec::with_capacity(inserted.len());
    for run in &plan.runs {
        if inserted.contains(&run.id.0) {
            created.push(run.id.0.simple().to_string());
            answers.push(CreatedRun {
                id: run.id,
                created: true,
            });
            continue;
        }
        let existing: Uuid = sqlx::query_scalar(include_str!("sql/existing_runs.sql"))
            .bind(&run.workflow)
            .bind(&run.idempotency_key)
            .fetch_one(&mut *tx)
            .await?;
        answers.push(CreatedRun {
            id: RunId(existing),
            created: false,
        });
    }
    let members = created.len() as i64;
    if !created.is_empty() {
        sqlx::query(include_str!("sql/run_created_events.sql"))
            .bind(Value::from(created).to_string())
            .execute(&mut *tx)
            .await?;
    }
    // After the run.created events: a run starts after it was created.
    for key in &keys {
        super::flow::admit(&mut *tx, key).await?;
    }
    if let Some(group) = &batch.group {
        sqlx::query(include_str!("sql/seal_group.sql"))
            .bind(group)
            .bind(members)
            .execute(&mut *tx)
            .await?;
        if members == 0 {
            settle::complete_group(&mut *tx, group, 0).await?;
        }
    }
    Ok(answers)
}
