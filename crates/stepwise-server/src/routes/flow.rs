//! Queues, concurrency keys and resource locks.

use crate::json::Body;
use crate::{ApiError, AppState};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use std::time::Duration;
use stepwise_store::{HolderKind, LockOutcome, LockRequest, ReleaseOutcome};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/queues", get(queues))
        .route("/v1/locks", get(locks))
        .route("/v1/locks/{key}", post(acquire).delete(release))
        .route("/v1/locks/{key}/force-release", post(force_release))
}

async fn queues(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({
        "queues": state.store.queue_stats().await?,
        "concurrency_keys": state.store.concurrency_keys().await?,
    })))
}

async fn locks(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(json!({"locks": state.store.list_locks().await?})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AcquireBody {
    /// Seconds, or a duration such as `"30s"` or `"5m"`.
    ttl: Value,
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

async fn acquire(
    State(state): State<AppState>,
    caller: Option<axum::Extension<crate::auth::Caller>>,
    Path(key): Path<String>,
    Body(body): Body<AcquireBody>,
) -> Result<impl IntoResponse, ApiError> {
    let request = LockRequest {
        name: key.clone(),
        ttl: ttl(&body.ttl)?,
        holder_kind: HolderKind::Api,
        holder_id: format!(
            "api:{}",
            caller.map_or_else(|| "anonymous".to_string(), |c| c.0 .0.clone())
        ),
    };
    match state.store.acquire_lock(&request).await? {
        LockOutcome::Acquired { lock, token } => Ok((
            StatusCode::OK,
            Json(json!({"key": lock.name, "token": token, "expires_at": lock.expires_at})),
        )),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReleaseQuery {
    token: String,
}

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
        ReleaseOutcome::Released => Ok(Json(json!({"key": key, "released": true}))),
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

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ForceBody {
    reason: String,
}

async fn force_release(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Body(body): Body<ForceBody>,
) -> Result<impl IntoResponse, ApiError> {
    match state.store.force_release_lock(&key, &body.reason).await? {
        Some(lock) => Ok(Json(json!({"key": key, "released": lock}))),
        None => Err(ApiError::not_found(format!("nobody holds lock {key:?}"))),
    }
}
