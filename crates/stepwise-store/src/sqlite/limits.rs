//! Rate limits and fairness on SQLite: the SQL of the keyed claims and of `limits`.
//! The decisions are in `crate::limits` and `stepwise_core::spec::limits`. Clock
//! times are milliseconds; a key's TAT is kept in microseconds.

use super::settle::{self, NewEvent};
use super::{opt_time, time, SqliteStore};
use crate::limits::{check_key, check_setting, pause_ms, paused_data, FairRounds, LockedKey};
use crate::model::{LimitSetting, LimitView, PauseUntil};
use crate::{LimitStore, Result, StoreError};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::json;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};
use stepwise_core::spec::limits::Rate;
use stepwise_core::{EventKind, WorkerId};
use uuid::Uuid;

/// The limits new runs' steps name (the files' values).
pub(super) async fn upsert_rate_limits(
    conn: &mut SqliteConnection,
    limits: &[(String, Rate)],
) -> Result<()> {
    let rows: Vec<serde_json::Value> = limits
        .iter()
        .map(|(key, r)| json!({"key": key, "limit": r.limit, "per_ms": r.per_ms, "burst": r.burst}))
        .collect();
    sqlx::query(include_str!("sql/upsert_rate_limits.sql"))
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// The (queue, fairness key) lanes new runs' steps wait in.
pub(super) async fn upsert_fair_lanes(
    conn: &mut SqliteConnection,
    lanes: &[(String, String)],
) -> Result<()> {
    let rows: Vec<serde_json::Value> = lanes.iter().map(|(q, k)| json!([q, k])).collect();
    sqlx::query(include_str!("sql/upsert_fair_lanes.sql"))
        .bind(serde_json::Value::Array(rows).to_string())
        .execute(conn)
        .await?;
    Ok(())
}

/// Whether the database has any rate limit or fairness key at all.
pub(super) async fn keyed_claims(conn: &mut SqliteConnection) -> Result<(bool, bool)> {
    let row = sqlx::query(include_str!("sql/keyed_claims.sql"))
        .fetch_one(conn)
        .await?;
    Ok((row.try_get("rated")?, row.try_get("fair")?))
}

fn micros(us: Option<i64>) -> Result<Option<DateTime<Utc>>> {
    us.map(|us| {
        DateTime::from_timestamp_micros(us).ok_or_else(|| StoreError::Corrupt(format!("TAT {us}")))
    })
    .transpose()
}

fn rate_of(row: &SqliteRow) -> Result<Rate> {
    Ok(Rate {
        limit: row
            .try_get::<i64, _>("limit_count")?
            .clamp(1, i64::from(u32::MAX)) as u32,
        per_ms: row.try_get::<i64, _>("per_ms")?.max(1) as u64,
        burst: row
            .try_get::<i64, _>("burst")?
            .clamp(1, i64::from(u32::MAX)) as u32,
    })
}

/// Claims up to `want` rate-limited steps of `queue`: each key that admits starts
/// now gives as many as it admits, and its TAT moves on by what was claimed.
pub(super) async fn claim_rated(
    conn: &mut SqliteConnection,
    queue: &str,
    want: usize,
    worker: WorkerId,
) -> Result<Vec<SqliteRow>> {
    let keys = sqlx::query(include_str!("sql/rate_keys.sql"))
        .bind(queue)
        .bind(crate::limits::KEYS_PER_CLAIM)
        .bind(stepwise_core::spec::limits::MAX_TOLERANCE_US)
        .fetch_all(&mut *conn)
        .await?;
    let mut rows = Vec::new();
    for row in &keys {
        let left = want - rows.len();
        if left == 0 {
            break;
        }
        let key = LockedKey {
            key: row.try_get("key")?,
            rate: rate_of(row)?,
            tat: micros(row.try_get("tat")?)?,
            now: time(row.try_get("now")?)?,
        };
        let admission = key.rate.admit(key.tat, key.now, left as u32);
        if admission.admitted == 0 {
            continue;
        }
        let claimed = sqlx::query(include_str!("sql/claim_rated_steps.sql"))
            .bind(queue)
            .bind(i64::from(admission.admitted))
            .bind(worker.0)
            .bind(&key.key)
            .fetch_all(&mut *conn)
            .await?;
        // A `for_each` step's own claim expands it and starts no work: only its
        // items' starts count against the key.
        let mut starts = 0;
        for row in &claimed {
            if !row.try_get::<bool, _>("expands")? {
                starts += 1;
            }
        }
        rows.extend(claimed);
        if starts == 0 {
            continue;
        }
        let started = key.rate.admit(key.tat, key.now, starts);
        sqlx::query(include_str!("sql/advance_rate_limit.sql"))
            .bind(&key.key)
            .bind(started.tat.timestamp_micros())
            .bind(i64::from(started.admitted))
            .execute(&mut *conn)
            .await?;
    }
    Ok(rows)
}

/// Claims up to `want` steps of runs with a fairness key, one per key per round,
/// least recently served key first.
pub(super) async fn claim_fair(
    conn: &mut SqliteConnection,
    queue: &str,
    want: usize,
    worker: WorkerId,
) -> Result<Vec<SqliteRow>> {
    let keys: Vec<String> = sqlx::query_scalar(include_str!("sql/fair_keys.sql"))
        .bind(queue)
        .bind(crate::limits::KEYS_PER_CLAIM)
        .fetch_all(&mut *conn)
        .await?;
    let mut rounds = FairRounds::new(keys);
    let mut rows = Vec::new();
    let mut served = Vec::new();
    while rows.len() < want {
        let Some((i, key)) = rounds.next_key() else {
            break;
        };
        let key = key.to_string();
        let share = rounds.share(want - rows.len());
        let claimed = sqlx::query(include_str!("sql/claim_fair_steps.sql"))
            .bind(queue)
            .bind(share as i64)
            .bind(worker.0)
            .bind(&key)
            .fetch_all(&mut *conn)
            .await?;
        if claimed.len() < share {
            rounds.dry(i);
        }
        if claimed.is_empty() {
            continue;
        }
        served.push(serde_json::Value::String(key));
        rows.extend(claimed);
    }
    // A key served twice this claim counts once, as of its last turn.
    let mut seen = std::collections::HashSet::new();
    served.reverse();
    served.retain(|k| seen.insert(k.clone()));
    served.reverse();
    if !served.is_empty() {
        sqlx::query(include_str!("sql/serve_fair_lanes.sql"))
            .bind(queue)
            .bind(serde_json::Value::Array(served).to_string())
            .execute(&mut *conn)
            .await?;
    }
    Ok(rows)
}

/// Pauses `key` (if it exists) for `ms` from now, never shortening a longer pause.
pub(super) async fn hold_key(
    conn: &mut SqliteConnection,
    key: &str,
    ms: i64,
    run: Uuid,
    reason: &str,
) -> Result<()> {
    let until: Option<Option<i64>> = sqlx::query_scalar(include_str!("sql/pause_rate_limit.sql"))
        .bind(key)
        .bind(None::<i64>)
        .bind(ms)
        .bind(true)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(Some(until)) = until {
        settle::insert_event(
            conn,
            NewEvent {
                kind: EventKind::LimitPaused,
                run_id: Some(run),
                step: None,
                group: None,
                data: paused_data(key, time(until)?, reason),
            },
        )
        .await?;
    }
    Ok(())
}

fn view(row: &SqliteRow) -> Result<LimitView> {
    let rate = rate_of(row)?;
    let now = time(row.try_get("now")?)?;
    let tat = micros(row.try_get("tat")?)?;
    let paused_until = opt_time(row.try_get("paused_until")?)?;
    let next = [tat.map(|t| rate.next_start(t)), paused_until]
        .into_iter()
        .flatten()
        .max()
        .filter(|t| *t > now);
    Ok(LimitView {
        key: row.try_get("key")?,
        limit: rate.limit,
        per_ms: rate.per_ms,
        burst: rate.burst,
        overridden: row.try_get("overridden")?,
        paused_until: paused_until.filter(|t| *t > now),
        admitted: row.try_get::<i64, _>("admitted")?.max(0) as u64,
        waiting: row.try_get::<i64, _>("waiting")?.max(0) as u64,
        next_start: next,
    })
}

impl SqliteStore {
    async fn limit_view(&self, key: &str) -> Result<Option<LimitView>> {
        sqlx::query(include_str!("sql/limit_views.sql"))
            .bind(key)
            .fetch_optional(&self.reader)
            .await?
            .map(|row| view(&row))
            .transpose()
    }
}

#[async_trait]
impl LimitStore for SqliteStore {
    async fn list_limits(&self) -> Result<Vec<LimitView>> {
        sqlx::query(include_str!("sql/limit_views.sql"))
            .bind(None::<String>)
            .fetch_all(&self.reader)
            .await?
            .iter()
            .map(view)
            .collect()
    }

    async fn set_limit(&self, setting: &LimitSetting) -> Result<LimitView> {
        let rate = Rate {
            limit: setting.limit,
            per_ms: setting.per_ms,
            burst: setting.burst,
        };
        check_setting(&setting.key, &rate)?;
        let mut tx = self.write().await?;
        sqlx::query(include_str!("sql/set_rate_limit.sql"))
            .bind(&setting.key)
            .bind(i64::from(rate.limit))
            .bind(rate.per_ms as i64)
            .bind(i64::from(rate.burst))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.limit_view(&setting.key)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a set limit vanished".into()))
    }

    async fn pause_limit(&self, key: &str, until: PauseUntil) -> Result<Option<LimitView>> {
        check_key(key)?;
        let (at, ms) = match until {
            PauseUntil::At(t) => (Some(t.timestamp_millis()), None),
            PauseUntil::For(d) => (None, Some(pause_ms(d)?)),
        };
        let mut tx = self.write().await?;
        let until: Option<Option<i64>> =
            sqlx::query_scalar(include_str!("sql/pause_rate_limit.sql"))
                .bind(key)
                .bind(at)
                .bind(ms)
                .bind(false)
                .fetch_optional(&mut *tx)
                .await?;
        let Some(Some(until)) = until else {
            return Ok(None);
        };
        settle::insert_event(
            &mut tx,
            NewEvent {
                kind: EventKind::LimitPaused,
                run_id: None,
                step: None,
                group: None,
                data: paused_data(key, time(until)?, "paused by an operator"),
            },
        )
        .await?;
        tx.commit().await?;
        self.limit_view(key).await
    }

    async fn resume_limit(&self, key: &str) -> Result<Option<LimitView>> {
        check_key(key)?;
        let mut tx = self.write().await?;
        let found: Option<String> = sqlx::query_scalar(include_str!("sql/resume_rate_limit.sql"))
            .bind(key)
            .fetch_optional(&mut *tx)
            .await?;
        if found.is_none() {
            return Ok(None);
        }
        settle::insert_event(
            &mut tx,
            NewEvent {
                kind: EventKind::LimitResumed,
                run_id: None,
                step: None,
                group: None,
                data: json!({ "key": key }),
            },
        )
        .await?;
        tx.commit().await?;
        self.limit_view(key).await
    }
}
