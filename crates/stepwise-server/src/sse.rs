//! `GET /v1/events` as Server-Sent Events, fed from the event table (the outbox), not
//! from memory: a client that reconnects with `Last-Event-ID` gets every event after
//! it, across server restarts, in the store's commit-safe order.

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use stepwise_core::RunId;
use stepwise_store::{Event, EventCursor, EventQuery, Store};

/// How often an idle stream looks for new events.
const POLL: Duration = Duration::from_millis(250);

struct Feed {
    store: Arc<dyn Store>,
    after: Option<String>,
    run: Option<RunId>,
    ready: VecDeque<Event>,
}

pub fn stream(
    store: Arc<dyn Store>,
    after: Option<String>,
    run: Option<RunId>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let feed = Feed {
        store,
        after,
        run,
        ready: VecDeque::new(),
    };
    let events = stream::unfold(feed, |mut feed| async move {
        loop {
            if let Some(event) = feed.ready.pop_front() {
                feed.after = Some(event.cursor.0.clone());
                let data = serde_json::to_string(&event).unwrap_or_else(|_| "{}".into());
                let sse = SseEvent::default()
                    .id(event.cursor.0)
                    .event(event.kind.as_str())
                    .data(data);
                return Some((Ok(sse), feed));
            }
            let page = feed
                .store
                .read_events(&EventQuery {
                    after: feed.after.clone().map(EventCursor),
                    run: feed.run,
                    limit: 500,
                })
                .await;
            match page {
                Ok(events) if !events.is_empty() => feed.ready.extend(events),
                Ok(_) => tokio::time::sleep(POLL).await,
                Err(e) => {
                    // The stream ends; the client reconnects with Last-Event-ID.
                    tracing::warn!(error = %e, "event stream stopped");
                    return None;
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}
