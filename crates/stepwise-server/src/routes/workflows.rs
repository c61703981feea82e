//! Workflows (`PUT` a TOML file or its JSON form, list them) and groups (a sealed
//! batch of runs in one transaction).

use super::runs::StartRun;
use crate::document::WorkflowDocument;
use crate::json::{Body, Path, Query, RawBody};
use crate::schema::{AppliedWorkflow, CreatedGroup, ErrorBody, Groups, Workflows};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use stepwise_store::RunBatch;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(apply))
        .routes(routes!(create_group, list_groups))
}

/// The latest version of every registered workflow.
#[utoipa::path(get, path = "/v1/workflows", tag = "workflows",
    responses((status = 200, description = "Workflows", body = Workflows)))]
async fn list(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(Workflows {
        workflows: state.store.list_workflows().await?,
    }))
}

/// Registers the workflow file in the body: TOML (`application/toml`) or the same
/// document as JSON. Validation and its messages are the CLI's (`stepwise apply`).
/// An `exec` step without `cwd` runs in its worker's directory: an upload has none.
#[utoipa::path(put, path = "/v1/workflows/{name}", tag = "workflows",
    params(("name" = String, Path, description = "The workflow's name; the document's `name` must equal it")),
    request_body(description = "The workflow file: TOML, or the same document as JSON",
        content(
            (String = "application/toml"),
            (WorkflowDocument = "application/json"),
        )),
    responses(
        (status = 200, description = "Registered (`changed` is false when it equals the latest version), with what changed in its schedules", body = AppliedWorkflow),
        (status = 400, description = "Not UTF-8, or not JSON", body = ErrorBody),
        (status = 415, description = "Neither TOML nor JSON", body = ErrorBody),
        (status = 409, description = "A schedule's name belongs to another workflow's schedule (schedule names are global); nothing was registered", body = ErrorBody),
        (status = 422, description = "Not a valid workflow: the message names file, line, column and field", body = ErrorBody),
    ))]
async fn apply(
    State(state): State<AppState>,
    Path(name): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<impl IntoResponse, ApiError> {
    let kind = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let text = if kind.starts_with("application/toml") || kind.starts_with("text/plain") {
        String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::bad_request("the TOML body is not UTF-8"))?
    } else if kind.starts_with("application/json") {
        let value: toml::Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
        toml::to_string(&value)
            .map_err(|e| ApiError::invalid(format!("the JSON is not a workflow document: {e}")))?
    } else {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the workflow as `application/toml` or `application/json`",
        ));
    };
    let file =
        stepwise_core::parse_workflow_file(&text, &format!("{name}.toml"), None).map_err(|e| {
            ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_workflow",
                e.to_string(),
            )
        })?;
    if file.spec.name != name {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_workflow",
            format!("the document is named {:?}, not {name:?}", file.spec.name),
        ));
    }
    check_schedule_names(&state, &file.schedules).await?;
    let version = state.store.register_workflow(&file.spec).await?;
    let schedules = state
        .store
        .sync_schedules(&file.spec.name, &file.schedules)
        .await?;
    Ok(Json(AppliedWorkflow {
        name: version.name,
        version: version.version,
        changed: version.changed,
        schedules: schedules.into(),
    }))
}

/// Schedule names are global: a name another workflow's schedule has is refused
/// before the workflow is registered (the store refuses it too, after).
async fn check_schedule_names(
    state: &AppState,
    schedules: &[stepwise_core::ScheduleSpec],
) -> Result<(), ApiError> {
    if schedules.is_empty() {
        return Ok(());
    }
    let stored = state.store.list_schedules().await?;
    for schedule in schedules {
        if let Some(other) = stored
            .iter()
            .find(|s| s.spec.name == schedule.name && s.spec.workflow != schedule.workflow)
        {
            return Err(ApiError::conflict(
                "schedule_name_taken",
                format!(
                    "schedule {:?} is declared by workflow {:?}: schedule names are global",
                    schedule.name, other.spec.workflow
                ),
            ));
        }
    }
    Ok(())
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct GroupsQuery {
    /// At most this many, 1 to 500 (default 50).
    #[param(minimum = 1, maximum = 500)]
    limit: Option<u32>,
}

/// The newest groups first, with their counts.
#[utoipa::path(get, path = "/v1/groups", tag = "groups", params(GroupsQuery),
    responses(
        (status = 200, description = "Groups", body = Groups),
        (status = 422, description = "limit out of range", body = ErrorBody),
    ))]
async fn list_groups(
    State(state): State<AppState>,
    Query(query): Query<GroupsQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > 500 {
        return Err(ApiError::invalid("limit must be between 1 and 500"));
    }
    let mut groups = Vec::new();
    for name in state.store.list_group_names(limit).await? {
        // A group pruned between the two reads is left out.
        if let Some(group) = state.store.get_group(&name).await? {
            groups.push(group);
        }
    }
    Ok(Json(Groups { groups }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({
    "name": "nightly-2026-11-24",
    "runs": [
        {"workflow": "docs-pipeline", "input": {"document": "a.txt"}},
        {"workflow": "docs-pipeline", "input": {"document": "b.txt"}}
    ]
}))]
struct NewGroup {
    /// Unique; the group completes exactly once, when its last run ends. Up to 512
    /// bytes, no NUL.
    #[schema(min_length = 1, max_length = 512, pattern = "^[^\\u0000]+$")]
    name: String,
    runs: Vec<StartRun>,
}

/// A sealed group and its runs, created in one transaction.
#[utoipa::path(post, path = "/v1/groups", tag = "groups",
    request_body = NewGroup,
    responses(
        (status = 201, description = "The group and its runs' ids", body = CreatedGroup),
        (status = 404, description = "A run names an unknown workflow (nothing was created)", body = ErrorBody),
        (status = 409, description = "A group of that name exists", body = ErrorBody),
    ))]
async fn create_group(
    State(state): State<AppState>,
    Body(body): Body<NewGroup>,
) -> Result<impl IntoResponse, ApiError> {
    let runs = body.runs.into_iter().map(StartRun::into_new_run).collect();
    let created = state
        .store
        .create_runs(RunBatch {
            group: Some(body.name.clone()),
            runs,
        })
        .await?;
    let group = state
        .store
        .get_group(&body.name)
        .await?
        .ok_or_else(|| ApiError::not_found("the group vanished (pruned?)"))?;
    let ids: Vec<_> = created.iter().map(|c| c.id).collect();
    Ok((StatusCode::CREATED, Json(CreatedGroup { group, runs: ids })))
}
