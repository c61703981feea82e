//! The one error shape of the API.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use stepwise_store::StoreError;

/// An error answer: a status, a snake_case code and a sentence for people.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_input", message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"code": self.code, "message": self.message}});
        (self.status, axum::Json(body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::UnknownWorkflow(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_workflow", e.to_string())
            }
            StoreError::InvalidSpec(_) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_workflow",
                e.to_string(),
            ),
            StoreError::InvalidInput(_) => ApiError::invalid(e.to_string()),
            StoreError::InvalidCursor(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_cursor", e.to_string())
            }
            StoreError::GroupExists(_) => ApiError::conflict("group_exists", e.to_string()),
            StoreError::SchemaMismatch { .. } | StoreError::UnsupportedUrl(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                e.to_string(),
            ),
            StoreError::Corrupt(_) | StoreError::Database(_) => {
                tracing::error!(error = %e, "request failed in the database");
                ApiError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "database_error",
                    "the database failed; see the server log",
                )
            }
        }
    }
}
