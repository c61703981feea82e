//! The web dashboard (`GET /`, docs/design.md "Outside interfaces"): hand-written HTML, CSS and JavaScript
//! modules compiled into the binary, so building or running Stepwise needs no Node
//! and the page needs nothing from the internet.
//!
//! The pages are static; everything they show comes from the JSON API with the
//! caller's token (kept in the browser tab's session storage), so the dashboard can
//! do exactly what that token may do and no more. That is why the pages and assets
//! themselves need no token.

use crate::json::Path;
use crate::ApiError;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

const INDEX: &str = include_str!("../dashboard/index.html");

/// (name, content type, text) of every asset.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../dashboard/style.css"),
    ),
    ("app.js", JS, include_str!("../dashboard/app.js")),
    ("api.js", JS, include_str!("../dashboard/api.js")),
    ("ui.js", JS, include_str!("../dashboard/ui.js")),
    ("runs.js", JS, include_str!("../dashboard/runs.js")),
    ("run.js", JS, include_str!("../dashboard/run.js")),
    ("items.js", JS, include_str!("../dashboard/items.js")),
    ("ops.js", JS, include_str!("../dashboard/ops.js")),
    ("limits.js", JS, include_str!("../dashboard/limits.js")),
    (
        "schedules.js",
        JS,
        include_str!("../dashboard/schedules.js"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

/// The page paths; the script picks what to show from the path.
pub const PAGES: &[&str] = &[
    "/",
    "/runs/{id}",
    "/schedules",
    "/queues",
    "/locks",
    "/workers",
    "/groups",
    "/events",
];

/// Nothing but this origin: no inline script, no CDN, no framing.
const POLICY: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; \
                      img-src 'self' data:; frame-ancestors 'none'";

/// Whether `path` is one of the dashboard's pages or assets (public: the data they
/// show comes from the API with the viewer's token).
pub fn is_static(path: &str) -> bool {
    let one_segment = |rest: &str| !rest.is_empty() && !rest.contains('/');
    PAGES.iter().any(|page| match page.strip_suffix("{id}") {
        Some(prefix) => path.strip_prefix(prefix).is_some_and(one_segment),
        None => path == *page,
    }) || path.strip_prefix("/assets/").is_some_and(one_segment)
}

pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    let mut router = Router::new();
    for page in PAGES {
        router = router.route(page, get(index));
    }
    router.route("/assets/{file}", get(asset))
}

async fn index() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        INDEX,
    )
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, kind, text)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *text,
        )
            .into_response(),
        None => ApiError::not_found(format!("no asset {file:?}")).into_response(),
    }
}
