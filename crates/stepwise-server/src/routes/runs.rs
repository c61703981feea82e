//! Runs: start, list, show, cancel, retry, explain, logs.

use crate::json::{optional_body, run_id, Body, Path, Query, RawBody};
use crate::schema::{Cancelled, ErrorBody, Explanation, Logs, Retried, RunPage};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use stepwise_core::RunStatus;
use stepwise_store::{
    CancelOutcome, CancelRequest, ItemPage, ItemsRequest, NewRun, RetryOutcome, RetryRequest,
    RunBatch, RunFilter, RunView, StartAt,
};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start, list))
        .routes(routes!(show))
        .routes(routes!(cancel))
        .routes(routes!(retry))
        .routes(routes!(explain))
        .routes(routes!(logs))
        .routes(routes!(step_items))
}

/// A run to start: `POST /v1/runs`, and each run of `POST /v1/groups`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "workflow": "docs-pipeline",
    "input": {"document": "sample.txt"},
    "idempotency_key": "doc-42"
}))]
pub(super) struct StartRun {
    /// A registered workflow's name; its latest version runs.
    workflow: String,
    /// Any JSON; the steps see it as `input` (default `{}`).
    #[serde(default = "empty_object")]
    input: Value,
    /// A second start with the same key returns the first run (200) instead.
    idempotency_key: Option<String>,
    /// Overrides the key the workflow's `concurrency.key` template renders.
    concurrency_key: Option<String>,
    /// Higher is claimed first (default 0).
    #[serde(default)]
    priority: i32,
    /// Do not start before this instant.
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

/// Starts a run.
#[utoipa::path(post, path = "/v1/runs", tag = "runs",
    request_body = StartRun,
    responses(
        (status = 201, description = "The run was created", body = RunView),
        (status = 200, description = "The idempotency key was used before: that run", body = RunView),
        (status = 404, description = "No such workflow", body = ErrorBody),
    ))]
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only runs in this state.
    #[param(value_type = Option<RunStatus>)]
    status: Option<String>,
    /// Only runs of this workflow.
    workflow: Option<String>,
    /// Only runs of this group.
    group: Option<String>,
    /// Only the child runs of this run (started by its `run = {...}` steps).
    #[param(value_type = Option<uuid::Uuid>)]
    parent: Option<String>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// `next_cursor` of the previous page.
    cursor: Option<String>,
}

/// Lists runs, newest first, a page at a time.
#[utoipa::path(get, path = "/v1/runs", tag = "runs", params(ListQuery),
    responses(
        (status = 200, description = "A page of runs (without their steps)", body = RunPage),
        (status = 422, description = "Unknown status or limit out of range", body = ErrorBody),
    ))]
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
    let parent = match query.parent.as_deref() {
        None => None,
        Some(p) => Some(
            p.parse()
                .map_err(|_| ApiError::bad_request(format!("parent {p:?} is not a run id")))?,
        ),
    };
    let page = state
        .store
        .list_runs(RunFilter {
            status,
            workflow: query.workflow,
            group: query.group,
            parent,
            limit: Some(limit),
            // `?cursor=` with nothing after it is the first page.
            cursor: query.cursor.filter(|c| !c.is_empty()),
        })
        .await?;
    Ok(Json(RunPage {
        runs: page.runs,
        next_cursor: page.next_cursor,
    }))
}

/// A run with its steps, their attempts and its progress.
#[utoipa::path(get, path = "/v1/runs/{id}", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 404, description = "No such run", body = ErrorBody),
    ))]
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"compensate": true}))]
struct CancelBody {
    /// Undo the completed steps in reverse order first (default true).
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

/// Cancels a run: running steps are stopped, and (by default) completed steps are
/// compensated. The body may be left out.
#[utoipa::path(post, path = "/v1/runs/{id}/cancel", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id")),
    request_body(content = Option<CancelBody>, description = "Optional; `{}` by default"),
    responses(
        (status = 200, description = "Cancelled (or compensating)", body = Cancelled),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run already ended, or is compensating", body = ErrorBody),
    ))]
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
        CancelOutcome::Cancelled { status, revoked } => Ok(Json(Cancelled {
            id: run,
            status,
            stopping_steps: revoked,
        })),
    }
}

#[derive(Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"from": "summary"}))]
struct RetryBody {
    /// Run again from this step (it and everything after it); default: the steps
    /// that did not complete.
    from: Option<String>,
}

/// Retries a failed, cancelled, timed-out or compensation-failed run. The body may be
/// left out.
#[utoipa::path(post, path = "/v1/runs/{id}/retry", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id")),
    request_body(content = Option<RetryBody>, description = "Optional; `{}` by default"),
    responses(
        (status = 200, description = "The run is running again", body = Retried),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run cannot be retried in its state", body = ErrorBody),
        (status = 422, description = "No such step to retry from", body = ErrorBody),
    ))]
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
        RetryOutcome::Retried { status, steps } => Ok(Json(Retried {
            id: run,
            status,
            steps,
        })),
    }
}

/// Why the run, and each of its unfinished steps, is not running.
#[utoipa::path(get, path = "/v1/runs/{id}/explain", tag = "runs",
    params(("id" = uuid::Uuid, Path, description = "The run's id")),
    responses(
        (status = 200, description = "The explanation", body = Explanation),
        (status = 404, description = "No such run", body = ErrorBody),
    ))]
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct LogsQuery {
    /// Only this attempt (1-based); default: every attempt.
    #[param(minimum = 1, maximum = 2147483647)]
    attempt: Option<u32>,
}

/// The captured output (stderr, and stdout beyond the result) of a step's attempts.
#[utoipa::path(get, path = "/v1/runs/{id}/steps/{step}/logs", tag = "runs",
    params(
        ("id" = uuid::Uuid, Path, description = "The run's id"),
        ("step" = String, Path, description = "The step's name, or an item's (`STEP[i]`)"),
        LogsQuery,
    ),
    responses(
        (status = 200, description = "The logs", body = Logs),
        (status = 404, description = "No such run or step", body = ErrorBody),
    ))]
async fn logs(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    Query(query): Query<LogsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let id = run_id(&id)?;
    if query.attempt.is_some_and(|a| a == 0 || a > i32::MAX as u32) {
        return Err(ApiError::invalid(
            "attempt must be between 1 and 2147483647",
        ));
    }
    let run = state
        .store
        .get_run(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no run {id}")))?;
    if !run.steps.iter().any(|s| s.name == step) && !is_item(&state, id, &step).await? {
        return Err(ApiError::not_found(format!(
            "run {id} has no step {step:?}"
        )));
    }
    let logs = state.store.attempt_logs(id, &step, query.attempt).await?;
    Ok(Json(Logs { logs }))
}

/// Whether `name` is an item (`STEP[i]`) of one of the run's expanded steps: items
/// are not among a run's steps, yet each has its own attempts and logs.
async fn is_item(
    state: &AppState,
    run: stepwise_core::RunId,
    name: &str,
) -> Result<bool, ApiError> {
    let Some((step, index)) = stepwise_core::spec::fan_out::split_item_name(name) else {
        return Ok(false);
    };
    let request = ItemsRequest {
        run,
        step: step.to_string(),
        from: index,
        limit: 1,
    };
    let page = state.store.list_items(&request).await?;
    Ok(page.is_some_and(|p| p.items.first().is_some_and(|i| i.name == name)))
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ItemsQuery {
    /// The index of the first item listed (default 0): `next` of the previous page.
    #[param(minimum = 0, maximum = 2147483647)]
    from: Option<u32>,
    /// Page size, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
}

/// The items of an expanded `for_each` step (`STEP[0]`, `STEP[1]`, …), a page at a
/// time in index order, with the step's items counted by status. `GET
/// /v1/runs/{id}` counts them but does not list them.
#[utoipa::path(get, path = "/v1/runs/{id}/steps/{step}/items", tag = "runs",
    params(
        ("id" = uuid::Uuid, Path, description = "The run's id"),
        ("step" = String, Path, description = "The `for_each` step's name"),
        ItemsQuery,
    ),
    responses(
        (status = 200, description = "A page of items", body = ItemPage),
        (status = 400, description = "`from` or `limit` out of range", body = ErrorBody),
        (status = 404, description = "No such run, or it has no `for_each` step of that name", body = ErrorBody),
    ))]
async fn step_items(
    State(state): State<AppState>,
    Path((id, step)): Path<(String, String)>,
    Query(query): Query<ItemsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let id = run_id(&id)?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::bad_request("limit must be between 1 and 1000"));
    }
    let from = query.from.unwrap_or(0);
    if from > i32::MAX as u32 {
        return Err(ApiError::bad_request(
            "from must be between 0 and 2147483647",
        ));
    }
    let request = ItemsRequest {
        run: id,
        step: step.clone(),
        from,
        limit,
    };
    if let Some(page) = state.store.list_items(&request).await? {
        return Ok(Json(page));
    }
    // Only on the way to a 404: which of the two is missing.
    if state.store.get_run(id).await?.is_none() {
        return Err(ApiError::not_found(format!("no run {id}")));
    }
    Err(ApiError::not_found(format!(
        "run {id} has no for_each step {step:?}"
    )))
}
