//! Rate limits (docs/design.md "Rate limits and fairness"): list the keys (read
//! scope); set, pause and resume one (admin scope, as [`crate::auth::required_scope`]
//! says for every PUT and every POST it does not name).

use crate::json::{Body, Path};
use crate::schema::ErrorBody;
use crate::{ApiError, AppState};
use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use stepwise_store::{LimitSetting, LimitView, PauseUntil};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_limits))
        .routes(routes!(set_limit))
        .routes(routes!(pause_limit))
        .routes(routes!(resume_limit))
}

#[derive(Serialize, ToSchema)]
struct Limits {
    /// By key.
    limits: Vec<LimitView>,
}

/// Every rate limit key: its limit, the starts it admitted, the claimable steps
/// waiting on it, its pause and when it admits its next start (database clock).
#[utoipa::path(get, path = "/v1/limits", tag = "flow",
    responses((status = 200, description = "Rate limit keys", body = Limits)))]
async fn list_limits(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(Limits {
        limits: state.store.list_limits().await?,
    }))
}

/// A key's new limit: `limit` starts per `per` (or `per_ms`) on average, at most
/// `burst` at once.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"limit": 600, "per": "1m", "burst": 60}))]
struct SetBody {
    /// Starts per period, on average.
    #[schema(minimum = 1, maximum = 2147483647)]
    limit: u32,
    /// The period: whole seconds, or a duration such as `"1s"` or `"1m"`. Give this
    /// or `per_ms`.
    #[serde(default)]
    #[schema(schema_with = duration_schema)]
    per: Option<Value>,
    /// The period in milliseconds, as `GET /v1/limits` shows it.
    #[schema(minimum = 1)]
    per_ms: Option<u64>,
    /// Starts admitted at once after a quiet spell (default 1: evenly spaced).
    #[schema(minimum = 1, maximum = 2147483647)]
    burst: Option<u32>,
}

/// Seconds or a duration; `null` is the same as leaving the field out.
fn duration_schema() -> utoipa::openapi::schema::Schema {
    use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
    OneOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Null))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1))
                .description(Some("seconds")),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some("a duration such as \"500ms\", \"1s\" or \"1m\"")),
        )
        .build()
        .into()
}

/// Whole seconds, or a duration such as `"30s"`.
fn duration(field: &str, value: &Value) -> Result<Duration, ApiError> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .map(Duration::from_secs)
            .ok_or_else(|| ApiError::invalid(format!("{field} must be a whole number of seconds"))),
        Value::String(s) => humantime::parse_duration(s)
            .map_err(|e| ApiError::invalid(format!("{field} {s:?} is not a duration: {e}"))),
        _ => Err(ApiError::invalid(format!(
            "{field} must be seconds or a duration such as \"30s\""
        ))),
    }
}

/// Sets a key's limit, creating the key. It applies to the next claim (a raised
/// limit admits waiting steps at once), and workflow files no longer change it.
#[utoipa::path(put, path = "/v1/limits/{key}", tag = "flow",
    params(("key" = String, Path, description = "The rate limit key, e.g. `openai:acme`")),
    request_body = SetBody,
    responses(
        (status = 200, description = "The key with its new limit", body = LimitView),
        (status = 422, description = "A limit, period or burst out of range, or not exactly one of `per` and `per_ms`", body = ErrorBody),
    ))]
async fn set_limit(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Body(body): Body<SetBody>,
) -> Result<impl IntoResponse, ApiError> {
    let per_ms = match (&body.per, body.per_ms) {
        (Some(per), None) => u64::try_from(duration("per", per)?.as_millis())
            .map_err(|_| ApiError::invalid("per is too long"))?,
        (None, Some(ms)) => ms,
        _ => return Err(ApiError::invalid("give exactly one of per and per_ms")),
    };
    let setting = LimitSetting {
        key,
        limit: body.limit,
        per_ms,
        burst: body.burst.unwrap_or(1),
    };
    // Out-of-range values are the store's InvalidInput: 422.
    Ok(Json(state.store.set_limit(&setting).await?))
}

/// How long to pause: until a time, or for a while from the database's now.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"for": "10m"}))]
struct PauseBody {
    /// RFC 3339, after the database's now. Give this or `for`.
    until: Option<DateTime<Utc>>,
    /// Whole seconds, or a duration such as `"10m"` (at most 365 days).
    #[serde(rename = "for", default)]
    #[schema(schema_with = duration_schema)]
    for_: Option<Value>,
}

/// Starts none of the key's steps until a time (database clock); running steps go
/// on. A pause replaces the key's current one.
#[utoipa::path(post, path = "/v1/limits/{key}/pause", tag = "flow",
    params(("key" = String, Path, description = "The rate limit key")),
    request_body = PauseBody,
    responses(
        (status = 200, description = "Paused: the key with its pause", body = LimitView),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 422, description = "Not exactly one of `until` and `for`, a time not in the future, or a pause longer than 365 days", body = ErrorBody),
    ))]
async fn pause_limit(
    State(state): State<AppState>,
    Path(key): Path<String>,
    Body(body): Body<PauseBody>,
) -> Result<impl IntoResponse, ApiError> {
    let until = match (body.until, &body.for_) {
        (Some(at), None) => {
            let now = state.store.now().await?;
            if at <= now {
                return Err(ApiError::invalid(format!(
                    "until {} is not in the future (the database's clock says {})",
                    at.to_rfc3339(),
                    now.to_rfc3339()
                )));
            }
            PauseUntil::At(at)
        }
        (None, Some(d)) => match duration("for", d)? {
            d if d.is_zero() => return Err(ApiError::invalid("for must be longer than 0s")),
            d => PauseUntil::For(d),
        },
        _ => return Err(ApiError::invalid("give exactly one of until and for")),
    };
    match state.store.pause_limit(&key, until).await? {
        Some(view) => Ok(Json(view)),
        None => Err(unknown(&key)),
    }
}

/// Ends a key's pause (resuming a key that is not paused changes nothing).
#[utoipa::path(post, path = "/v1/limits/{key}/resume", tag = "flow",
    params(("key" = String, Path, description = "The rate limit key")),
    responses(
        (status = 200, description = "Resumed: the key", body = LimitView),
        (status = 404, description = "No such key", body = ErrorBody),
        (status = 422, description = "Not a valid key (empty, over 512 bytes, or with NUL)", body = ErrorBody),
    ))]
async fn resume_limit(
    State(state): State<AppState>,
    Path(key): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    match state.store.resume_limit(&key).await? {
        Some(view) => Ok(Json(view)),
        None => Err(unknown(&key)),
    }
}

fn unknown(key: &str) -> ApiError {
    ApiError::not_found(format!("no rate limit key {key:?}"))
}
