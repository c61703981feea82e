//! Health, workers, groups and the event stream (as JSON pages or live).

use crate::json::run_id;
use crate::{ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;
use stepwise_store::{EventCursor, EventQuery};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
        .route("/readyz", get(ready))
        .route("/v1/workers", get(workers))
        .route("/v1/groups/{name}", get(group))
        .route("/v1/events", get(events))
}

/// The database answers.
async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.now().await {
        Ok(now) => (
            StatusCode::OK,
            Json(json!({"status": "ready", "database_time": now})),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(
                    json!({"error": {"code": "unavailable", "message": "the database does not answer"}}),
                ),
            )
        }
    }
}

async fn workers(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({"workers": state.store.list_workers().await?})))
}

async fn group(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let group = state
        .store
        .get_group(&name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no group {name:?}")))?;
    Ok(Json(group))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<String>,
    run: Option<String>,
    limit: Option<u32>,
}

/// One page of events after `after` (pass `next` back as `after`), or, with
/// `Accept: text/event-stream`, a live stream that resumes after `Last-Event-ID`.
async fn events(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<EventsQuery>,
) -> Result<Response, ApiError> {
    let limit = query.limit.unwrap_or(500);
    if limit == 0 || limit > 5000 {
        return Err(ApiError::invalid("limit must be between 1 and 5000"));
    }
    let run = query.run.as_deref().map(run_id).transpose()?;
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if wants_stream {
        let resume = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or(query.after);
        // A bad cursor is refused now, not after the stream has started.
        state
            .store
            .read_events(&EventQuery {
                after: resume.clone().map(EventCursor),
                run,
                limit: 1,
            })
            .await?;
        return Ok(crate::sse::stream(state.store.clone(), resume, run).into_response());
    }
    let events = state
        .store
        .read_events(&EventQuery {
            after: query.after.clone().map(EventCursor),
            run,
            limit,
        })
        .await?;
    let next = events.last().map(|e| e.cursor.0.clone()).or(query.after);
    Ok(Json(json!({"events": events, "next": next})).into_response())
}
