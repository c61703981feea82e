//! Health, workers, groups and the event stream (as JSON pages or live).

use crate::json::{run_id, Path, Query};
use crate::schema::{ErrorBody, EventPage, Health, Ready, Workers};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use stepwise_store::{EventCursor, EventQuery, GroupView};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(workers))
        .routes(routes!(group))
        .routes(routes!(events))
        .routes(routes!(openapi_document))
}

/// This document (OpenAPI 3.1), generated from the router.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "meta",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
async fn openapi_document() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
}

/// The process is up (no token needed).
#[utoipa::path(get, path = "/healthz", tag = "meta", security(()),
    responses((status = 200, description = "Up", body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// The database answers (no token needed).
#[utoipa::path(get, path = "/readyz", tag = "meta", security(()),
    responses(
        (status = 200, description = "Ready", body = Ready),
        (status = 503, description = "The database does not answer", body = ErrorBody),
    ))]
async fn ready(State(state): State<AppState>) -> Response {
    match state.store.now().await {
        Ok(now) => Json(Ready {
            status: "ready".into(),
            database_time: now,
        })
        .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the database does not answer",
            )
            .into_response()
        }
    }
}

/// Every registered worker, live or not, with its last heartbeat.
#[utoipa::path(get, path = "/v1/workers", tag = "meta",
    responses((status = 200, description = "Workers", body = Workers)))]
async fn workers(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(Workers {
        workers: state.store.list_workers().await?,
    }))
}

/// A group and its runs' counts per status.
#[utoipa::path(get, path = "/v1/groups/{name}", tag = "groups",
    params(("name" = String, Path, description = "The group's name")),
    responses(
        (status = 200, description = "The group", body = GroupView),
        (status = 404, description = "No such group", body = ErrorBody),
    ))]
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Events after this cursor (`next` of the previous page, or an event's
    /// `cursor`); `now` for only the events that come after the request.
    after: Option<String>,
    /// Only this run's events.
    #[param(value_type = Option<uuid::Uuid>)]
    run: Option<String>,
    /// Page size, 1 to 5000 (default 500); ignored by the stream.
    #[param(minimum = 1, maximum = 5000)]
    limit: Option<u32>,
    /// Instead of a page after a cursor: the newest this many events (1 to 5000),
    /// oldest first; `next` continues after them. Not with `after` or a stream.
    #[param(minimum = 1, maximum = 5000)]
    last: Option<u32>,
}

/// One page of events after `after` (pass `next` back as `after`), or, with
/// `Accept: text/event-stream`, a live stream that resumes after `Last-Event-ID`.
#[utoipa::path(get, path = "/v1/events", tag = "events",
    params(
        EventsQuery,
        ("Last-Event-ID" = Option<String>, Header, description = "Resume the stream after this event"),
    ),
    responses(
        (status = 200, description = "A page of events, or the live stream (each event's `id` is its cursor, its `event` the kind)",
            content(
                (EventPage = "application/json"),
                (String = "text/event-stream"),
            )),
        (status = 400, description = "A cursor or run id that is not one", body = ErrorBody),
        (status = 422, description = "limit out of range", body = ErrorBody),
    ))]
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
    // `?after=` with nothing after it is the start of the feed, as no `after` is;
    // `?after=now` skips the history.
    let after = match query.after.filter(|a| !a.is_empty()) {
        Some(a) if a == "now" => state.store.latest_event_cursor().await?.map(|c| c.0),
        other => other,
    };
    let wants_stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/event-stream"));
    if let Some(last) = query.last {
        if wants_stream || after.is_some() {
            return Err(ApiError::invalid(
                "last gives the newest events as a page; it goes with neither after nor a stream",
            ));
        }
        if last == 0 || last > 5000 {
            return Err(ApiError::invalid("last must be between 1 and 5000"));
        }
        let events = state.store.newest_events(run, last).await?;
        let next = match events.last() {
            Some(e) => Some(e.cursor.0.clone()),
            None => state.store.latest_event_cursor().await?.map(|c| c.0),
        };
        return Ok(Json(EventPage { events, next }).into_response());
    }
    if wants_stream {
        let resume = headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .filter(|id| !id.is_empty())
            .or(after);
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
            after: after.clone().map(EventCursor),
            run,
            limit,
        })
        .await?;
    let next = events.last().map(|e| e.cursor.0.clone()).or(after);
    Ok(Json(EventPage { events, next }).into_response())
}
