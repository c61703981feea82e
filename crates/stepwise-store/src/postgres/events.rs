//! The event stream on PostgreSQL, read in commit-safe order.
//!
//! Sequence numbers are handed out at insert but commit in any order, so "seq >
//! last seen" skips an event whose transaction commits late. Each event keeps its
//! transaction id (`xid8`); the reader orders by `(xid, seq)` and serves only
//! transactions older than the oldest one still running, whose events are final.
//! The cursor is `xid:seq`.

use super::PgStore;
use crate::model::*;
use crate::{EventStore, Result, StoreError};
use async_trait::async_trait;
use sqlx::Row;
use stepwise_core::{EventKind, RunId};

fn parse_cursor(cursor: Option<&EventCursor>) -> Result<(String, i64)> {
    let Some(cursor) = cursor else {
        return Ok(("0".into(), 0));
    };
    let bad = || StoreError::InvalidCursor(cursor.0.clone());
    let (xid, seq) = cursor.0.split_once(':').ok_or_else(bad)?;
    let xid: u64 = xid.parse().map_err(|_| bad())?;
    let seq: i64 = seq.parse().map_err(|_| bad())?;
    Ok((xid.to_string(), seq))
}

#[async_trait]
impl EventStore for PgStore {
    async fn read_events(&self, query: &EventQuery) -> Result<Vec<Event>> {
        let (xid, seq) = parse_cursor(query.after.as_ref())?;
        let rows = sqlx::query(include_str!("sql/read_events.sql"))
            .bind(xid)
            .bind(seq)
            .bind(query.run.map(|r| r.0))
            .bind(i64::from(query.limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn newest_events(&self, run: Option<RunId>, limit: u32) -> Result<Vec<Event>> {
        let rows = sqlx::query(include_str!("sql/newest_events.sql"))
            .bind(run.map(|r| r.0))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }
}

/// A row of `read_events.sql` or `newest_events.sql`.
fn event_from_row(row: &sqlx::postgres::PgRow) -> Result<Event> {
    let seq: i64 = row.try_get("seq")?;
    let xid: String = row.try_get("xid_text")?;
    let kind: String = row.try_get("kind")?;
    Ok(Event {
        cursor: EventCursor(format!("{xid}:{seq}")),
        kind: EventKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("event kind {kind:?}")))?,
        run_id: row.try_get::<Option<uuid::Uuid>, _>("run_id")?.map(RunId),
        step: row.try_get("step")?,
        group: row.try_get("group_name")?,
        at: row.try_get("at")?,
        data: row.try_get("data")?,
    })
}
