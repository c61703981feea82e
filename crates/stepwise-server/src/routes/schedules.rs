//! Schedules (docs/design.md "Schedules"): list them (read scope); pause, resume,
//! trigger and backfill one (admin scope, as [`crate::auth::required_scope`] says
//! for every POST it does not name).

use crate::json::{Body, Path};
use crate::schema::{Backfilled, ErrorBody, Schedules};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use stepwise_store::{Backfill, FireOutcome, ScheduleFire, ScheduleView};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_schedules))
        .routes(routes!(pause_schedule))
        .routes(routes!(resume_schedule))
        .routes(routes!(trigger_schedule))
        .routes(routes!(backfill_schedule))
}

/// Every schedule by name: its spec, whether it is paused, its next and last fire
/// times and the newest runs it started.
#[utoipa::path(get, path = "/v1/schedules", tag = "schedules",
    responses((status = 200, description = "Schedules", body = Schedules)))]
async fn list_schedules(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(Schedules {
        schedules: state.store.list_schedules().await?,
    }))
}

/// Stops firing a schedule. Fire times missed while paused follow its `catchup`
/// when it resumes.
#[utoipa::path(post, path = "/v1/schedules/{name}/pause", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, description = "Paused (pausing a paused schedule changes nothing)", body = ScheduleView),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
async fn pause_schedule(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    set_paused(&state, &name, true).await
}

/// Fires a paused schedule again; missed fire times follow its `catchup`.
#[utoipa::path(post, path = "/v1/schedules/{name}/resume", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 200, description = "Resumed (resuming an active schedule changes nothing)", body = ScheduleView),
        (status = 404, description = "No such schedule", body = ErrorBody),
    ))]
async fn resume_schedule(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    set_paused(&state, &name, false).await
}

async fn set_paused(
    state: &AppState,
    name: &str,
    paused: bool,
) -> Result<Json<ScheduleView>, ApiError> {
    match state.store.set_schedule_paused(name, paused).await? {
        Some(view) => Ok(Json(view)),
        None => Err(unknown(name)),
    }
}

/// One extra run now, for the fire time "now" (the database clock), whatever the
/// schedule's timetable; a paused schedule can be triggered too.
#[utoipa::path(post, path = "/v1/schedules/{name}/trigger", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    responses(
        (status = 201, description = "A run was started", body = ScheduleFire),
        (status = 200, description = "This fire time had its run already: that run", body = ScheduleFire),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 409, description = "The schedule skips overlaps (`overlap = \"skip\"`) and its previous run is not finished: nothing was started", body = ErrorBody),
    ))]
async fn trigger_schedule(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let fire = state
        .store
        .trigger_schedule(&name)
        .await?
        .ok_or_else(|| unknown(&name))?;
    match fire.outcome {
        FireOutcome::Fired => Ok((StatusCode::CREATED, Json(fire))),
        FireOutcome::Existing => Ok((StatusCode::OK, Json(fire))),
        FireOutcome::Skipped => Err(ApiError::conflict(
            "schedule_overlap",
            format!(
                "schedule {name:?} skips overlapping runs (overlap = \"skip\") and its \
                 previous run is not finished: no run was started"
            ),
        )),
    }
}

/// A span of fire times to backfill.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"from": "2026-11-01T00:00:00Z", "to": "2026-11-07T23:59:59Z"}))]
struct BackfillBody {
    /// The first instant (RFC 3339), included.
    from: DateTime<Utc>,
    /// The last instant (RFC 3339), included; not before `from`.
    to: DateTime<Utc>,
}

/// A run for every fire time of the schedule from `from` to `to` (both included, at
/// most 1000), oldest first, in one transaction. Fire times that already have their
/// run keep it (`existing`), so a backfill can be repeated.
#[utoipa::path(post, path = "/v1/schedules/{name}/backfill", tag = "schedules",
    params(("name" = String, Path, description = "The schedule's name")),
    request_body = BackfillBody,
    responses(
        (status = 200, description = "Each fire time in the span and its run", body = Backfilled),
        (status = 404, description = "No such schedule", body = ErrorBody),
        (status = 422, description = "`from` is after `to`, or the span holds more than 1000 fire times", body = ErrorBody),
    ))]
async fn backfill_schedule(
    State(state): State<AppState>,
    Path(name): Path<String>,
    Body(body): Body<BackfillBody>,
) -> Result<impl IntoResponse, ApiError> {
    if body.from > body.to {
        return Err(ApiError::invalid(format!(
            "from ({}) is after to ({})",
            body.from.to_rfc3339(),
            body.to.to_rfc3339()
        )));
    }
    let request = Backfill {
        schedule: name.clone(),
        from: body.from,
        to: body.to,
    };
    // More than MAX_BACKFILL fire times is the store's InvalidInput: 422.
    let fires = state
        .store
        .backfill_schedule(&request)
        .await?
        .ok_or_else(|| unknown(&name))?;
    Ok(Json(Backfilled { fires }))
}

fn unknown(name: &str) -> ApiError {
    ApiError::not_found(format!("no schedule {name:?}"))
}
