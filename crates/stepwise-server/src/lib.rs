//! The HTTP API of Stepwise (docs/design.md "Outside interfaces"), an axum router over the same
//! store operations the CLI uses.
//!
//! Every handler is a thin translation: it parses the request into a store call and
//! the answer into JSON, so the API cannot drift from the CLI's semantics. Errors have
//! one shape, `{"error": {"code", "message"}}`, and a client's mistake is always a 4xx
//! (malformed JSON 400, wrong types 422, unknown things 404, conflicts 409, bodies
//! over the limit 413) — a 5xx means the database failed, never the request.
//!
//! The OpenAPI document (`GET /v1/openapi.json`, [`openapi_document`]) is generated
//! from the handlers' own annotations and types through the same router, so it
//! cannot list a route the server lacks or miss one it has.
//!
//! The dashboard (`GET /`, `dashboard/`) is static HTML and JavaScript compiled into
//! the binary; it reads everything through this same API with the viewer's token.

mod auth;
mod dashboard;
mod document;
mod error;
mod json;
mod limit_metrics;
mod metrics;
mod openapi;
mod routes;
mod schema;
mod sse;

pub use openapi::document_json as openapi_document;

pub use auth::{required_scope, AuthMode};
pub use error::ApiError;

use axum::extract::DefaultBodyLimit;
use axum::Router;
use std::sync::Arc;
use stepwise_store::Store;

/// Request bodies larger than this get 413 before anything is read into a handler.
pub const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

pub use metrics::process_metrics_router;
pub use metrics_exporter_prometheus::PrometheusHandle;

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// The process's recorder, when one is installed: `/metrics` renders it.
    pub metrics: Option<PrometheusHandle>,
    pub auth: AuthMode,
}

/// How the router is set up.
#[derive(Clone)]
pub struct ServerOptions {
    /// Request bodies larger than this many bytes get 413.
    pub body_limit: usize,
    /// The installed Prometheus recorder (see [`install_metrics`]), if any.
    pub metrics: Option<PrometheusHandle>,
    /// Tokens by default.
    pub auth: AuthMode,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            body_limit: DEFAULT_BODY_LIMIT,
            metrics: None,
            auth: AuthMode::Tokens,
        }
    }
}

/// Installs the process-wide Prometheus recorder the engine's counters and
/// histograms go to; `None` if a recorder was installed already.
pub fn install_metrics() -> Option<PrometheusHandle> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .ok()
}

/// The router of every route.
pub fn router(store: Arc<dyn Store>, options: ServerOptions) -> Router {
    if options.metrics.is_some() {
        metrics::describe();
    }
    let state = AppState {
        store,
        metrics: options.metrics,
        auth: options.auth,
    };
    let (routes, _) = routes::all().merge(metrics::routes()).split_for_parts();
    routes
        .merge(dashboard::routes())
        .fallback(|| async { ApiError::not_found("no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                axum::http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this path does not serve that method (see /v1/openapi.json)",
            )
        })
        .layer(DefaultBodyLimit::max(options.body_limit))
        // Outermost: a request without the right token reads no body and touches
        // nothing.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::check,
        ))
        .with_state(state)
}
