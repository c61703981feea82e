//! `GET /metrics`: the engine's counters and histograms (through the `metrics`
//! facade's Prometheus recorder) and gauges read from the database at scrape time,
//! so they describe every worker, not just this process.

use crate::{ApiError, AppState};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use metrics_exporter_prometheus::PrometheusHandle;
use std::fmt::Write;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(metrics))
}

/// `GET /metrics` with this process's own metrics only, for a standalone worker
/// (`stepwise worker --metrics-listen`): no API, no token, and no database gauges,
/// which the API server exports once for every worker.
pub fn process_metrics_router(handle: PrometheusHandle) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let text = handle.render();
            async move { ([(header::CONTENT_TYPE, TEXT_FORMAT)], text) }
        }),
    )
}

/// Signals this server stored in a run's mailbox (a repeated id is not counted).
pub const SIGNALS_RECEIVED: &str = "stepwise_signals_received_total";
/// Callbacks this server refused: unknown tokens, or tokens of attempts that are
/// no longer current.
pub const CALLBACKS_REFUSED: &str = "stepwise_callbacks_refused_total";

/// Gives this server's own counters their help text and a 0, so their series exist
/// before the first signal or callback.
pub fn describe() {
    metrics::describe_counter!(
        SIGNALS_RECEIVED,
        metrics::Unit::Count,
        "Signals stored in a run's mailbox through this server's API (a repeated id is not counted)."
    );
    metrics::describe_counter!(
        CALLBACKS_REFUSED,
        metrics::Unit::Count,
        "Callbacks refused by this server: unknown tokens, or attempts no longer current."
    );
    metrics::counter!(SIGNALS_RECEIVED).increment(0);
    metrics::counter!(CALLBACKS_REFUSED).increment(0);
}

/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Prometheus text: the engine's counters and histograms, and gauges of every
/// queue's depth, waiting runs per concurrency key, live workers and the oldest
/// pending step's age, read from the database.
#[utoipa::path(get, path = "/metrics", tag = "meta",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let mut text = state
        .metrics
        .as_ref()
        .map(|h| h.render())
        .unwrap_or_default();
    let now = state.store.now().await?;
    let queues = state.store.queue_stats().await?;
    let keys = state.store.concurrency_keys().await?;
    let waiting = state.store.waiting_counts().await?;
    let limits = state.store.list_limits().await?;
    let alive = state
        .store
        .list_workers()
        .await?
        .iter()
        .filter(|w| w.status == "alive")
        .count();
    let mut gauge = |name: &str, help: &str, samples: Vec<(String, f64)>| {
        let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, value) in samples {
            let _ = writeln!(text, "{name}{labels} {value}");
        }
    };
    let by_queue = |f: &dyn Fn(&stepwise_store::QueueStats) -> f64| {
        queues
            .iter()
            .map(|q| (format!("{{queue=\"{}\"}}", escape(&q.name)), f(q)))
            .collect::<Vec<_>>()
    };
    gauge(
        "stepwise_queue_pending_steps",
        "Steps claimable now, per queue.",
        by_queue(&|q| q.pending as f64),
    );
    gauge(
        "stepwise_queue_scheduled_steps",
        "Steps waiting out a backoff or a delayed start, per queue.",
        by_queue(&|q| q.scheduled as f64),
    );
    gauge(
        "stepwise_queue_running_steps",
        "Steps running, per queue.",
        by_queue(&|q| q.running as f64),
    );
    gauge(
        "stepwise_queue_oldest_pending_age_seconds",
        "Age of the run of the oldest claimable step, per queue (0 when none).",
        by_queue(&|q| {
            q.oldest_pending_since
                .map(|t| (now - t).num_milliseconds().max(0) as f64 / 1000.0)
                .unwrap_or(0.0)
        }),
    );
    let by_key = |f: &dyn Fn(&stepwise_store::ConcurrencyKeyView) -> f64| {
        keys.iter()
            .map(|k| (format!("{{key=\"{}\"}}", escape(&k.key)), f(k)))
            .collect::<Vec<_>>()
    };
    gauge(
        "stepwise_concurrency_waiting_runs",
        "Runs waiting for a slot, per concurrency key.",
        by_key(&|k| k.waiting as f64),
    );
    gauge(
        "stepwise_concurrency_active_runs",
        "Runs holding a slot, per concurrency key.",
        by_key(&|k| k.active as f64),
    );
    // Every kind has a series, at 0 when nothing waits that way.
    let waiting_kinds = ["sleep", "signal", "callback"]
        .into_iter()
        .map(|kind| {
            let n = waiting
                .iter()
                .filter(|(k, _)| k == kind)
                .map(|(_, n)| *n)
                .sum::<u64>();
            (format!("{{kind=\"{kind}\"}}"), n as f64)
        })
        .collect();
    gauge(
        "stepwise_steps_waiting",
        "Steps waiting without a worker, per kind (sleep, signal, callback).",
        waiting_kinds,
    );
    gauge(
        "stepwise_workers_alive",
        "Workers whose lease is current.",
        vec![(String::new(), alive as f64)],
    );
    text.push_str(&crate::limit_metrics::render(&limits, escape));
    Ok(([(header::CONTENT_TYPE, TEXT_FORMAT)], text))
}

/// A label value as the text format wants it.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
