//! Rate limits and fairness on PostgreSQL: the SQL of the keyed claims and of
//! `limits`. The decisions are in `crate::limits` and `stepwise_core::spec::limits`.

use super::settle::{self, NewEvent};
use super::PgStore;
use crate::limits::{check_key, check_setting, pause_ms, paused_data, LockedKey};
use crate::model::{LimitSetting, LimitView, PauseUntil};
use crate::{LimitStore, Result};
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::postgres::PgRow;
use sqlx::{Executor, PgConnection, Row};
use stepwise_core::spec::limits::{Rate, MAX_TOLERANCE_US};
use stepwise_core::{EventKind, WorkerId};
use uuid::Uuid;

/// The limits new runs' steps name (the files' values; see `upsert_rate_limits.sql`).
pub(super) async fn upsert_rate_limits(
    conn: &mut PgConnection,
    limits: &[(String, Rate)],
) -> Result<()> {
    sqlx::query(include_str!("sql/upsert_rate_limits.sql"))
        .bind(limits.iter().map(|(k, _)| k.clone()).collect::<Vec<_>>())
        .bind(
            limits
                .iter()
                .map(|(_, r)| r.limit as i32)
                .collect::<Vec<_>>(),
        )
        .bind(
            limits
                .iter()
                .map(|(_, r)| r.per_ms as i64)
                .collect::<Vec<_>>(),
        )
        .bind(
            limits
                .iter()
                .map(|(_, r)| r.burst as i32)
                .collect::<Vec<_>>(),
        )
        .execute(conn)
        .await?;
    Ok(())
}

/// The (queue, fairness key) lanes new runs' steps wait in.
pub(super) async fn upsert_fair_lanes(
    conn: &mut PgConnection,
    lanes: &[(String, String)],
) -> Result<()> {
    sqlx::query(include_str!("sql/upsert_fair_lanes.sql"))
        .bind(lanes.iter().map(|(q, _)| q.clone()).collect::<Vec<_>>())
        .bind(lanes.iter().map(|(_, k)| k.clone()).collect::<Vec<_>>())
        .execute(conn)
        .await?;
    Ok(())
}

/// Claims up to `want` rate-limited steps of `queue`: each key that admits starts
/// now gives as many as it admits, and its TAT moves on by what was picked, in the
/// claiming statement. A claim that could lock no key because another claim holds
/// one that admits waits for that claim to commit (briefly, see `wait_for_key`).
pub(super) async fn claim_rated(
    conn: &mut PgConnection,
    queue: &str,
    want: usize,
    worker: WorkerId,
) -> Result<Vec<PgRow>> {
    let keys = sqlx::query(include_str!("sql/rate_keys.sql"))
        .bind(queue)
        .bind(crate::limits::KEYS_PER_CLAIM)
        .bind(MAX_TOLERANCE_US)
        .fetch_all(&mut *conn)
        .await?;
    let mut locked = Vec::with_capacity(keys.len());
    let mut held = None;
    for row in &keys {
        if row.try_get("held")? {
            held = Some(row.try_get::<String, _>("key")?);
        } else {
            locked.push(locked_key(row)?);
        }
    }
    if locked.is_empty() {
        if let Some(key) = held {
            locked.extend(wait_for_key(conn, &key).await?);
        }
    }
    let mut rows = Vec::new();
    for key in &locked {
        let left = want - rows.len();
        if left == 0 {
            break;
        }
        let claim = KeyClaim {
            queue,
            want: left,
            worker,
        };
        rows.extend(claim_under_key(conn, &claim, key).await?);
    }
    Ok(rows)
}

/// Waits for `key`, held by another claim, and locks it if it still admits. The
/// wait runs in a savepoint under a short `lock_timeout` (50 ms): the holder, a
/// claim, commits within a millisecond or two, and one that takes longer is stuck
/// (its worker cut off mid-transaction). Giving up voids only the wait; the claim
/// goes on with its other paths rather than stall.
async fn wait_for_key(conn: &mut PgConnection, key: &str) -> Result<Option<LockedKey>> {
    // Statements without arguments travel as one simple query: one round trip.
    conn.execute("SAVEPOINT rate_key_wait; SET LOCAL lock_timeout = '50ms'")
        .await?;
    let waited = sqlx::query(include_str!("sql/wait_rate_key.sql"))
        .bind(key)
        .bind(MAX_TOLERANCE_US)
        .fetch_optional(&mut *conn)
        .await;
    match waited {
        Ok(row) => {
            // The timeout was for this wait only.
            conn.execute("RELEASE SAVEPOINT rate_key_wait; SET LOCAL lock_timeout TO DEFAULT")
                .await?;
            row.as_ref().map(locked_key).transpose()
        }
        Err(e) => {
            let e = crate::StoreError::from(e);
            if !e.is_timeout() {
                return Err(e);
            }
            conn.execute("ROLLBACK TO SAVEPOINT rate_key_wait").await?;
            tracing::debug!(
                key,
                "a rate key stayed held by another claim; claiming without it"
            );
            Ok(None)
        }
    }
}

/// What one claim asks of one rate key.
struct KeyClaim<'a> {
    queue: &'a str,
    want: usize,
    worker: WorkerId,
}

/// Claims up to `claim.want` steps under `key`, locked by this claim: as many as
/// it admits, its TAT moved on by what was picked.
async fn claim_under_key(
    conn: &mut PgConnection,
    claim: &KeyClaim<'_>,
    key: &LockedKey,
) -> Result<Vec<PgRow>> {
    let admission = key.rate.admit(key.tat, key.now, claim.want as u32);
    if admission.admitted == 0 {
        return Ok(vec![]);
    }
    Ok(sqlx::query(concat!(
        include_str!("sql/claim_rated_steps.sql"),
        include_str!("sql/claim_tail.sql")
    ))
    .bind(claim.queue)
    .bind(i64::from(admission.admitted))
    .bind(claim.worker.0)
    .bind(&key.key)
    .bind(Rate::start(key.tat, key.now))
    .bind(key.rate.interval_us())
    .fetch_all(&mut *conn)
    .await?)
}

fn locked_key(row: &PgRow) -> Result<LockedKey> {
    Ok(LockedKey {
        key: row.try_get("key")?,
        rate: Rate {
            limit: row.try_get::<i32, _>("limit_count")?.max(1) as u32,
            per_ms: row.try_get::<i64, _>("per_ms")?.max(1) as u64,
            burst: row.try_get::<i32, _>("burst")?.max(1) as u32,
        },
        tat: row.try_get("tat")?,
        now: row.try_get("now")?,
    })
}

/// Claims up to `want` steps of runs with a fairness key, in one statement: the
/// least recently served keys first, an even share of `want` each; the keys served
/// become the most recent, in that order.
pub(super) async fn claim_fair(
    conn: &mut PgConnection,
    queue: &str,
    want: usize,
    worker: WorkerId,
) -> Result<Vec<PgRow>> {
    let keys: Vec<String> = sqlx::query_scalar(include_str!("sql/fair_keys.sql"))
        .bind(queue)
        .bind(crate::limits::KEYS_PER_CLAIM)
        .fetch_all(&mut *conn)
        .await?;
    if keys.is_empty() || want == 0 {
        return Ok(vec![]);
    }
    let shares = crate::limits::fair_shares(keys.len(), want);
    let keys = &keys[..shares.len()];
    let rows = sqlx::query(concat!(
        include_str!("sql/claim_fair_steps.sql"),
        include_str!("sql/claim_tail.sql")
    ))
    .bind(queue)
    .bind(want as i64)
    .bind(worker.0)
    .bind(keys)
    .bind(&shares)
    .fetch_all(&mut *conn)
    .await?;
    let mut served = Vec::new();
    for key in keys {
        let got = rows.iter().any(|r| {
            r.try_get::<Option<String>, _>("fair_key")
                .ok()
                .flatten()
                .as_ref()
                == Some(key)
        });
        if got {
            served.push(key.clone());
        }
    }
    if !served.is_empty() {
        sqlx::query(include_str!("sql/serve_fair_lanes.sql"))
            .bind(queue)
            .bind(&served)
            .execute(&mut *conn)
            .await?;
    }
    Ok(rows)
}

/// Pauses `key` (if it exists) for `ms` from now, never shortening a longer pause:
/// the back-pressure of a step that was told to come back later.
pub(super) async fn hold_key(
    conn: &mut PgConnection,
    key: &str,
    ms: i64,
    run: Uuid,
    reason: &str,
) -> Result<()> {
    let until: Option<Option<DateTime<Utc>>> =
        sqlx::query_scalar(include_str!("sql/pause_rate_limit.sql"))
            .bind(key)
            .bind(None::<DateTime<Utc>>)
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
                data: paused_data(key, until, reason),
            },
        )
        .await?;
    }
    Ok(())
}

fn view(row: &PgRow) -> Result<LimitView> {
    let rate = Rate {
        limit: row.try_get::<i32, _>("limit_count")?.max(1) as u32,
        per_ms: row.try_get::<i64, _>("per_ms")?.max(1) as u64,
        burst: row.try_get::<i32, _>("burst")?.max(1) as u32,
    };
    let now: DateTime<Utc> = row.try_get("now")?;
    let tat: Option<DateTime<Utc>> = row.try_get("tat")?;
    let paused_until: Option<DateTime<Utc>> = row.try_get("paused_until")?;
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

impl PgStore {
    async fn limit_view(&self, key: &str) -> Result<Option<LimitView>> {
        sqlx::query(include_str!("sql/limit_views.sql"))
            .bind(key)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| view(&row))
            .transpose()
    }
}

#[async_trait]
impl LimitStore for PgStore {
    async fn list_limits(&self) -> Result<Vec<LimitView>> {
        sqlx::query(include_str!("sql/limit_views.sql"))
            .bind(None::<String>)
            .fetch_all(&self.pool)
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
        let mut tx = self.pool.begin().await?;
        sqlx::query(include_str!("sql/set_rate_limit.sql"))
            .bind(&setting.key)
            .bind(rate.limit as i32)
            .bind(rate.per_ms as i64)
            .bind(rate.burst as i32)
            .execute(&mut *tx)
            .await?;
        // A raised limit may admit waiting steps at once.
        sqlx::query(include_str!("sql/notify_work.sql"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.limit_view(&setting.key)
            .await?
            .ok_or_else(|| crate::StoreError::Corrupt("a set limit vanished".into()))
    }

    async fn pause_limit(&self, key: &str, until: PauseUntil) -> Result<Option<LimitView>> {
        check_key(key)?;
        let (at, ms) = match until {
            PauseUntil::At(t) => (Some(t), None),
            PauseUntil::For(d) => (None, Some(pause_ms(d)?)),
        };
        let mut tx = self.pool.begin().await?;
        let until: Option<Option<DateTime<Utc>>> =
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
                data: paused_data(key, until, "paused by an operator"),
            },
        )
        .await?;
        tx.commit().await?;
        self.limit_view(key).await
    }

    async fn resume_limit(&self, key: &str) -> Result<Option<LimitView>> {
        check_key(key)?;
        let mut tx = self.pool.begin().await?;
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
                data: serde_json::json!({ "key": key }),
            },
        )
        .await?;
        sqlx::query(include_str!("sql/notify_work.sql"))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.limit_view(key).await
    }
}
