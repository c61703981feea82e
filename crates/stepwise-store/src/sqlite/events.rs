//! The event stream on SQLite. One writer at a time means sequence order is commit
//! order, so the cursor is just the sequence number.

use super::{time, SqliteStore};
use crate::model::*;
use crate::{EventStore, Result, StoreError};
use async_trait::async_trait;
use sqlx::Row;
use stepwise_core::{EventKind, RunId};

#[async_trait]
impl EventStore for SqliteStore {
    async fn read_events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        let after: i64 = match &query.after {
            None => 0,
            Some(c) => {
                c.0.parse()
                    .map_err(|_| StoreError::InvalidCursor(c.0.clone()))?
            }
        };
        let rows = sqlx::query(include_str!("sql/read_events.sql"))
            .bind(after)
            .bind(query.run.map(|r| r.0))
            .bind(i64::from(query.limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn newest_events(&self, run: Option<RunId>, limit: u32) -> Result<Vec<Event>> {
        let rows = sqlx::query(include_str!("sql/newest_events.sql"))
            .bind(run.map(|r| r.0))
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
            .await?;
        rows.iter().map(event_from_row).collect()
    }
}

/// A row of the `event` table, as `read_events.sql` and `newest_events.sql` return it.
fn event_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Event> {
    let seq: i64 = row.try_get("seq")?;
    let kind: String = row.try_get("kind")?;
    Ok(Event {
        cursor: EventCursor(seq.to_string()),
        kind: EventKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("event kind {kind:?}")))?,
        run_id: row.try_get::<Option<uuid::Uuid>, _>("run_id")?.map(RunId),
        step: row.try_get("step")?,
        group: row.try_get("group_name")?,
        at: time(row.try_get("at")?)?,
        data: row.try_get("data")?,
    })
}
