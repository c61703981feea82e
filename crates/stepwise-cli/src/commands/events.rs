//! `stepwise events [--follow] [--run ID] [--after CURSOR] [--json]`

use super::parse_run_id;
use crate::output::outln;
use serde_json::json;
use std::time::Duration;
use stepwise_store::{EventCursor, EventQuery, Store};

pub struct EventsArgs {
    pub follow: bool,
    pub run: Option<String>,
    pub after: Option<String>,
    pub json: bool,
}

pub async fn events(store: &dyn Store, args: EventsArgs) -> anyhow::Result<()> {
    let mut query = EventQuery {
        after: args.after.map(EventCursor),
        run: args.run.as_deref().map(parse_run_id).transpose()?,
        limit: 1000,
    };
    loop {
        let events = store.read_events(&query).await?;
        for e in &events {
            if args.json {
                let line = json!({
                    "cursor": e.cursor,
                    "kind": e.kind,
                    "run_id": e.run_id,
                    "step": e.step,
                    "group": e.group,
                    "at": e.at,
                    "data": e.data,
                });
                outln!("{line}");
            } else {
                outln!(
                    "{}  {:<24}  {}  {}  {}",
                    e.at.format("%H:%M:%S%.3f"),
                    e.kind.as_str(),
                    e.run_id.map(|r| r.to_string()).unwrap_or_default(),
                    e.step.as_deref().unwrap_or(""),
                    if e.data.as_object().is_some_and(|o| o.is_empty()) {
                        String::new()
                    } else {
                        e.data.to_string()
                    }
                );
            }
        }
        if let Some(last) = events.last() {
            query.after = Some(last.cursor.clone());
        }
        if events.len() < query.limit as usize {
            if !args.follow {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
