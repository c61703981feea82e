//! Workflows (`PUT` a TOML file or its JSON form, list them) and groups (a sealed
//! batch of runs in one transaction).

use super::runs::StartRun;
use crate::json::{Body, RawBody};
use crate::{ApiError, AppState};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use stepwise_store::RunBatch;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/workflows", get(list))
        .route("/v1/workflows/{name}", put(apply))
        .route("/v1/groups", post(create_group).get(list_groups))
}

async fn list(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        json!({"workflows": state.store.list_workflows().await?}),
    ))
}

/// Registers the workflow file in the body: TOML (`application/toml`) or the same
/// document as JSON. Validation and its messages are the CLI's (`stepwise apply`).
/// An `exec` step without `cwd` runs in its worker's directory: an upload has none.
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
    let version = state.store.register_workflow(&file.spec).await?;
    Ok(Json(version))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GroupsQuery {
    limit: Option<u32>,
}

/// The newest groups first, with their counts.
async fn list_groups(
    State(state): State<AppState>,
    axum::extract::Query(query): axum::extract::Query<GroupsQuery>,
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
    Ok(Json(json!({"groups": groups})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroup {
    name: String,
    runs: Vec<StartRun>,
}

/// A sealed group and its runs, created in one transaction.
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
    Ok((
        StatusCode::CREATED,
        Json(json!({"group": group, "runs": ids})),
    ))
}
