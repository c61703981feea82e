//! The routes, one module per area.

mod flow;
mod meta;
mod runs;
mod workflows;

use crate::AppState;
use axum::Router;

pub fn all() -> Router<AppState> {
    Router::new()
        .merge(meta::routes())
        .merge(runs::routes())
        .merge(flow::routes())
        .merge(workflows::routes())
}
