//! Child runs on PostgreSQL: a child's end completes or fails the parent step that
//! waits for it, in the transaction that ends the child. The decisions are in
//! `crate::waiting` (`plan_child`, `child_error`).

use super::{settle, steps};
use crate::model::{StepFailure, StepSuccess};
use crate::waiting::{child_error, plan_child, ChildPlan};
use crate::Result;
use serde_json::Value;
use sqlx::PgConnection;
use std::future::Future;
use std::pin::Pin;
use stepwise_core::{Lease, LeaseToken, RunId, RunStatus, StepId};
use uuid::Uuid;

/// A run that just ended and has a parent step.
pub(super) struct EndedChild {
    pub id: Uuid,
    pub status: RunStatus,
    pub error: Option<String>,
    pub parent_run: Uuid,
    pub parent_step: String,
}

type Ended<'a> = Pin<Box<dyn Future<Output = Result<Vec<(RunId, RunStatus)>>> + Send + 'a>>;

/// Ends the parent step waiting for `child`, if one waits (a cancelled parent no
/// longer does). Boxed: ending the parent step may end the parent run, which may
/// itself be a child.
pub(super) fn child_ended(conn: &mut PgConnection, child: EndedChild) -> Ended<'_> {
    Box::pin(async move {
        // The parent's mailbox lock, as a park holds it: a park that found this
        // child still running has committed its wait before we look for it.
        sqlx::query(include_str!("sql/lock_run_mailbox.sql"))
            .bind(child.parent_run)
            .execute(&mut *conn)
            .await?;
        let step: Option<Uuid> = sqlx::query_scalar(include_str!("sql/waiting_parent_step.sql"))
            .bind(child.parent_run)
            .bind(&child.parent_step)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(step) = step else {
            return Ok(vec![]);
        };
        let token: Option<Uuid> = sqlx::query_scalar(include_str!("sql/unpark_step.sql"))
            .bind(step)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(token) = token else {
            return Ok(vec![]);
        };
        let lease = Lease {
            step_id: StepId(step),
            token: LeaseToken(token),
        };
        let child_id = RunId(child.id);
        if plan_child(child_id, child.status, child.error.as_deref()) == ChildPlan::Complete {
            let output: Value = sqlx::query_scalar(include_str!("sql/child_outputs.sql"))
                .bind(child.id)
                .fetch_one(&mut *conn)
                .await?;
            let success = StepSuccess {
                lease,
                output,
                log: None,
            };
            let (report, ready) = steps::complete_in(conn, &[success]).await?;
            if !ready.is_empty() {
                steps::make_ready(conn, ready.iter().map(|r| r.id)).await?;
                sqlx::query(include_str!("sql/notify_work.sql"))
                    .execute(&mut *conn)
                    .await?;
            }
            return Ok(report.finished_runs);
        }
        let Some(locked) = settle::lock_running_step(conn, step, token).await? else {
            return Ok(vec![]);
        };
        let failure = StepFailure {
            lease,
            error: child_error(child_id, child.status, child.error.as_deref()),
            retryable: false,
            log: None,
            retry_after: None,
        };
        steps::fail_locked(conn, &locked, &failure).await?;
        Ok(vec![])
    })
}
