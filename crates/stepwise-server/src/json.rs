//! Request bodies and path/query values, with every rejection in the API's error
//! shape and status (malformed 400, wrong types 422, wrong content type 415, too
//! large 413).

use crate::ApiError;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use stepwise_core::RunId;

/// A JSON body.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<serde_json::Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => object_body(value).map(Body),
            Err(rejection) => Err(rejected(rejection)),
        }
    }
}

/// Every body is a JSON object: serde would otherwise read a struct from an array
/// of its fields in order, which no client means.
fn object_body<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::invalid("the body must be a JSON object"));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::invalid(format!("the body does not fit: {e}")))
}

fn rejected(rejection: JsonRejection) -> ApiError {
    let message = rejection.body_text();
    match rejection {
        JsonRejection::JsonDataError(_) => ApiError::invalid(message),
        JsonRejection::JsonSyntaxError(_) => ApiError::bad_request(message),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::BytesRejection(_) if rejection_is_too_large(&message) => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            "the request body is larger than the server accepts",
        ),
        _ => ApiError::bad_request(message),
    }
}

fn rejection_is_too_large(message: &str) -> bool {
    message.contains("length limit") || message.contains("too large")
}

/// A raw body (bytes), with the body limit's rejection in the API's shape.
pub struct RawBody(pub axum::body::Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::body::Bytes::from_request(req, state)
            .await
            .map(RawBody)
            .map_err(|rejection| {
                let message = rejection.body_text();
                if rejection_is_too_large(&message) {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "body_too_large",
                        "the request body is larger than the server accepts",
                    )
                } else {
                    ApiError::bad_request(message)
                }
            })
    }
}

/// A run id from the path.
pub fn run_id(text: &str) -> Result<RunId, ApiError> {
    text.parse()
        .map_err(|_| ApiError::bad_request(format!("{text:?} is not a run id")))
}

/// A JSON body that may be left out (an empty body, or `null`, means the defaults).
pub fn optional_body<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
        return Ok(T::default());
    }
    let value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?;
    object_body(value)
}

/// Query parameters; an unknown parameter or a value of the wrong type is a 400 in
/// the API's error shape (axum's own rejection is plain text).
pub struct Query<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(value)| Query(value))
            .map_err(|rejection| {
                ApiError::bad_request(format!(
                    "the query string does not fit: {}",
                    rejection.body_text()
                ))
            })
    }
}

/// Path segments; one that is not valid percent-encoded UTF-8 is a 400 in the API's
/// error shape.
pub struct Path<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| Path(value))
            .map_err(|rejection| ApiError::bad_request(rejection.body_text()))
    }
}
