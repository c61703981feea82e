//! The HTTP API of Stepwise (DESIGN.md "HTTP API"), an axum router over the same
//! store operations the CLI uses.
//!
//! Every handler is a thin translation: it parses the request into a store call and
//! the answer into JSON, so the API cannot drift from the CLI's semantics. Errors have
//! one shape, `{"error": {"code", "message"}}`, and a client's mistake is always a 4xx
//! (malformed JSON 400, wrong types 422, unknown things 404, conflicts 409, bodies
//! over the limit 413) — a 5xx means the database failed, never the request.
//!
//! Not built yet (the HTTP API issue stays open): token auth, `/metrics`, the
//! OpenAPI document, `PUT /workflows`, `POST /groups`.

mod error;
mod json;
mod routes;
mod sse;

pub use error::ApiError;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use std::sync::Arc;
use stepwise_store::Store;

/// Request bodies larger than this get 413 before anything is read into a handler.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
}

/// The router of every route, with a body limit of `body_limit` bytes.
pub fn router(store: Arc<dyn Store>, body_limit: usize) -> Router {
    routes::all()
        .fallback(|| async { ApiError::not_found("no such route") })
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(AppState { store })
}
