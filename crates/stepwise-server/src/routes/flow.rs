//! Queues, concurrency keys and resource locks.

use crate::json::{Body, Path, Query};
use crate::schema::{AcquiredLock, ErrorBody, ForceReleased, Locks, Queues, ReleasedLock};
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;
use stepwise_store::{HolderKind, LockOutcome, LockRequest, ReleaseOutcome};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(queues))
        .routes(routes!(locks))
        .routes(routes!(acquire, release))
        .routes(routes!(force_release))
}

/// Every queue's depth, and every concurrency key's limit and line.
#[utoipa::path(get, path = "/v1/queues", tag = "flow",
    responses((status = 200, description = "Queues and concurrency keys", body = Queues)))]
async fn queues(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(Queues {
        queues: state.store.queue_stats().await?,
        concurrency_keys: state.store.concurrency_keys().await?,
    }))
}

/// The resource locks held now.
#[utoipa::path(get, path = "/v1/locks", tag = "flow",
    responses((status = 200, description = "Held locks", body = Locks)))]
async fn locks(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(Locks {
        locks: state.store.list_locks().await?,
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"ttl": "10m"}))]
struct AcquireBody {
    /// Whole seconds, or a duration such as `"30s"` or `"5m"`.
    #[schema(schema_with = ttl_schema)]
    ttl: Value,
}

fn ttl_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0))
                .description(Some("seconds")),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("a duration such as \"30s\", \"5m\" or \"1h30m\"")),
        )
        .build()
        .into()
}

fn ttl(value: &Value) -> Result<Duration, ApiError> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| ApiError::invalid("ttl must be a whole number of seconds")),
        Value::String(s) => humantime::parse_duration(s)
            .map_err(|e| ApiError::invalid(format!("ttl {s:?} is not a duration: {e}"))),
        _ => Err(ApiError::invalid(
            "ttl must be seconds or a duration such as \"30s\"",
        )),
    }
}

/// Takes a resource lock for a client; steps naming it as their `resource` wait
/// until it is released or expires.
#[utoipa::path(post, path = "/v1/locks/{key}", tag = "flow",
    params(("key" = String, Path, description = "The lock's key")),
    request_body = AcquireBody,
    responses(
        (status = 200, description = "Taken: keep the token to release it", body = AcquiredLock),
        (status = 409, description = "Held by someone (named, with the expiry)", body = ErrorBody),
        (status = 422, description = "Bad ttl", body = ErrorBody),
    ))]
async fn acquire(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path(key): Path<String>,
    Body(body): Body<AcquireBody>,
) -> Result<impl IntoResponse, ApiError> {
    let request = LockRequest {
        key: key.clone(),
        ttl: ttl(&body.ttl)?,
        holder_kind: HolderKind::Api,
        holder_id: format!(
            "api:{}",
            caller.map_or_else(|| "anonymous".to_string(), |c| c.0 .0.clone())
        ),
    };
    match state.store.acquire_lock(&request).await? {
        LockOutcome::Acquired { lock, token } => Ok(Json(AcquiredLock {
            key: lock.key,
            token,
            expires_at: lock.expires_at,
        })),
        LockOutcome::Held(lock) => Err(ApiError::conflict(
            "lock_held",
            format!(
                "lock {key:?} is held by {} until {}",
                stepwise_store::explain::holder_name(lock.holder_kind, &lock.holder_id),
                lock.expires_at.to_rfc3339()
            ),
        )),
    }
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ReleaseQuery {
    /// The token `POST /v1/locks/{key}` answered with.
    #[param(value_type = uuid::Uuid)]
    token: String,
}

/// Releases a lock taken with `POST /v1/locks/{key}`.
#[utoipa::path(delete, path = "/v1/locks/{key}", tag = "flow",
    params(("key" = String, Path, description = "The lock's key"), ReleaseQuery),
    responses(
        (status = 200, description = "Released", body = ReleasedLock),
        (status = 404, description = "Nobody holds it", body = ErrorBody),
        (status = 409, description = "Held under another token", body = ErrorBody),
    ))]
async fn release(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Query(query): Query<ReleaseQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let token: uuid::Uuid = query
        .token
        .parse()
        .map_err(|_| ApiError::bad_request(format!("{:?} is not a lock token", query.token)))?;
    match state.store.release_lock(&key, token).await? {
        ReleaseOutcome::Released => Ok(Json(ReleasedLock {
            key,
            released: true,
        })),
        ReleaseOutcome::NotHeld => Err(ApiError::not_found(format!("nobody holds lock {key:?}"))),
        ReleaseOutcome::WrongToken(lock) => Err(ApiError::conflict(
            "wrong_token",
            format!(
                "lock {key:?} is held by {} under another token",
                stepwise_store::explain::holder_name(lock.holder_kind, &lock.holder_id)
            ),
        )),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"reason": "the deploy that held it crashed"}))]
struct ForceBody {
    /// Why, for the `lock.force_released` event: up to 2000 bytes, no NUL.
    #[schema(min_length = 1, max_length = 2000, pattern = "^[^\\u0000]+$")]
    reason: String,
}

/// Takes a lock away from whoever holds it (a step holding it is not stopped).
#[utoipa::path(post, path = "/v1/locks/{key}/force-release", tag = "flow",
    params(("key" = String, Path, description = "The lock's key")),
    request_body = ForceBody,
    responses(
        (status = 200, description = "Released; the lock as it was", body = ForceReleased),
        (status = 404, description = "Nobody holds it", body = ErrorBody),
        (status = 422, description = "No reason given", body = ErrorBody),
    ))]
async fn force_release(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Body(body): Body<ForceBody>,
) -> Result<impl IntoResponse, ApiError> {
    match state.store.force_release_lock(&key, &body.reason).await? {
        Some(lock) => Ok(Json(ForceReleased {
            key,
            released: lock,
        })),
        None => Err(ApiError::not_found(format!("nobody holds lock {key:?}"))),
    }
}
