//! The routes, one module per area.

mod flow;
mod limits;
mod meta;
mod runs;
mod schedules;
mod waits;
mod workflows;

use crate::AppState;
use utoipa_axum::router::OpenApiRouter;

pub fn all() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(meta::routes())
        .merge(runs::routes())
        .merge(flow::routes())
        .merge(workflows::routes())
        .merge(waits::routes())
        .merge(schedules::routes())
        .merge(limits::routes())
}
