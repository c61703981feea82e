//! Runs: start, list, show, cancel, retry, explain, logs.

use crate::json::{optional_body, run_id, Body, RawBody};
use crate::{ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use stepwise_core::RunStatus;
use stepwise_store::{
    CancelOutcome, CancelRequest, NewRun, RetryOutcome, RetryRequest, RunBatch, RunFilter, StartAt,
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/runs", post(start).get(list))
        .route("/v1/runs/{id}", get(show))
        .route("/v1/runs/{id}/cancel", post(cancel))
        .route("/v1/runs/{id}/retry", post(retry))
        .route("/v1/runs/{id}/explain", get(explain))
        .route("/v1/runs/{id}/steps/{step}/logs", get(logs))
}

/// `POST /v1/runs`, and each run of `POST /v1/groups`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct StartRun {
    workflow: String,
    #[serde(default = "empty_object")]
    input: Value,
    idempotency_key: Option<String>,
    concurrency_key: Option<String>,
    #[serde(default)]
    priority: i32,
    run_at: Option<DateTime<Utc>>,
}

fn empty_object() -> Value {
    json!({})
}

impl StartRun {
    pub(super) fn into_new_run(self) -> NewRun {
        let mut run = NewRun::new(self.workflow, self.input).priority(self.priority);
        run.idempotency_key = self.idempotency_key;
        run.concurrency_key = self.concurrency_key;
        if let Some(at) = self.run_at {
            run = run.start(StartAt::At(at));
        }
        run
    }
}

async fn start(
    State(state): State<AppState>,
    Body(body): Body<StartRun>,
) -> Result<impl IntoResponse, ApiError> {
    let run = body.into_new_run();
    let created = state
        .store
        .create_runs(RunBatch {
            group: None,
            runs: vec![run],
        })
        .await?;
    let Some(created) = created.first() else {
        return Err(ApiError::invalid("no run was created"));
    };
    let view = state
        .store
        .get_run(created.id)
        .await?
        .ok_or_else(|| ApiError::not_found("the run vanished (pruned?)"))?;
    let status = if created.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    workflow: Option<String>,
    group: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let status = match query.status.as_deref() {
        None => None,
        Some(s) => Some(
            RunStatus::parse(s)
                .ok_or_else(|| ApiError::invalid(format!("unknown status {s:?}")))?,
        ),
    };
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid("limit must be between 1 and 1000"));
    }
    let page = state
        .store
        .list_runs(RunFilter {
            status,
            workflow: query.workflow,
            group: query.group,
            limit: Some(limit),
            cursor: query.cursor,
        })
        .await?;
    Ok(Json(
        json!({"runs": page.runs, "next_cursor": page.next_cursor}),
    ))
}

async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = run_id(&id)?;
    let run = state
        .store
        .get_run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    Ok(Json(run))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CancelBody {
    #[serde(default = "yes")]
    compensate: bool,
}

impl Default for CancelBody {
    fn default() -> Self {
        Self { compensate: true }
    }
}

fn yes() -> bool {
    true
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    let run = run_id(&id)?;
    let body: CancelBody = optional_body(&body)?;
    let request = CancelRequest {
        run,
        compensate: body.compensate,
    };
    match state.store.cancel_run(&request).await? {
        CancelOutcome::NotFound => Err(ApiError::not_found(format!("no run {run}"))),
        CancelOutcome::AlreadyEnded(status) => Err(ApiError::conflict(
            "run_ended",
            format!("run {run} already ended ({status})"),
        )),
        CancelOutcome::Compensating => Err(ApiError::conflict(
            "run_compensating",
            format!(
                "run {run} is compensating; send {{\"compensate\": false}} to stop the \
                 compensation (the run then ends compensation_failed)"
            ),
        )),
        CancelOutcome::Cancelled { status, revoked } => Ok(Json(
            json!({"id": run, "status": status, "stopping_steps": revoked}),
        )),
    }
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    from: Option<String>,
}

async fn retry(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    let run = run_id(&id)?;
    let body: RetryBody = optional_body(&body)?;
    let request = RetryRequest {
        run,
        from: body.from,
    };
    match state.store.retry_run(&request).await? {
        RetryOutcome::NotFound => Err(ApiError::not_found(format!("no run {run}"))),
        RetryOutcome::NotRetryable(status) => Err(ApiError::conflict(
            "not_retryable",
            format!(
                "run {run} is {status}; only failed, cancelled, timed_out and \
                 compensation_failed runs can be retried"
            ),
        )),
        RetryOutcome::Retried { status, steps } => {
            Ok(Json(json!({"id": run, "status": status, "steps": steps})))
        }
    }
}

async fn explain(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let id = run_id(&id)?;
    let explanation = stepwise_store::explain::explain_run(&*state.store, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    Ok(Json(explanation))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogsQuery {
    attempt: Option<u32>,
}

async fn logs(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    Query(query): Query<LogsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let id = run_id(&id)?;
    let run = state
        .store
        .get_run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    if !run.steps.iter().any(|s| s.name == step) {
        return Err(ApiError::not_found(format!(
            "run {id} has no step {step:?}"
        )));
    }
    let logs = state.store.attempt_logs(id, &step, query.attempt).await?;
    Ok(Json(json!({"logs": logs})))
}
