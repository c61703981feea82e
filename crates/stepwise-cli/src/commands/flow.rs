//! `stepwise queues [set-limit KEY N | pause QUEUE | resume QUEUE]` and
//! `stepwise locks list|acquire|release|force-release`.

use super::CliError;
use crate::output::outln;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::time::Duration;
use stepwise_store::{HolderKind, LockOutcome, LockRequest, LockView, ReleaseOutcome, Store};

/// Every queue's depth and every concurrency key's slots.
pub async fn queues(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let queues = store.queue_stats().await?;
    let keys = store.concurrency_keys().await?;
    let now = store.now().await?;
    let ages: Vec<Option<Duration>> = queues
        .iter()
        .map(|q| q.oldest_pending_since.map(|t| since(t, now)))
        .collect();
    if json {
        let mut list = Vec::with_capacity(queues.len());
        for (q, age) in queues.iter().zip(&ages) {
            let mut value = serde_json::to_value(q)?;
            value["oldest_pending_age_ms"] = json!(age.map(|a| a.as_millis() as u64));
            list.push(value);
        }
        outln!("{}", json!({"queues": list, "concurrency_keys": keys}));
        return Ok(());
    }
    if queues.is_empty() {
        eprintln!("no queues yet (apply a workflow first)");
    } else {
        let width = queues
            .iter()
            .map(|q| q.name.len())
            .max()
            .unwrap_or(0)
            .max(5);
        outln!(
            "{:<width$}  {:<6}  {:>8}  {:>9}  {:>8}  OLDEST PENDING",
            "QUEUE",
            "PAUSED",
            "PENDING",
            "SCHEDULED",
            "RUNNING"
        );
        for (q, age) in queues.iter().zip(&ages) {
            outln!(
                "{:<width$}  {:<6}  {:>8}  {:>9}  {:>8}  {}",
                q.name,
                if q.paused { "yes" } else { "no" },
                q.pending,
                q.scheduled,
                q.running,
                age.map_or_else(|| "-".to_string(), format_age)
            );
        }
    }
    if keys.is_empty() {
        eprintln!("no concurrency keys yet");
        return Ok(());
    }
    if !queues.is_empty() {
        outln!();
    }
    let width = keys.iter().map(|k| k.key.len()).max().unwrap_or(0).max(15);
    outln!(
        "{:<width$}  {:>7}  {:>7}  {:>7}  LIMIT SET BY",
        "CONCURRENCY KEY",
        "LIMIT",
        "ACTIVE",
        "WAITING"
    );
    for k in keys {
        outln!(
            "{:<width$}  {:>7}  {:>7}  {:>7}  {}",
            k.key,
            k.limit,
            k.active,
            k.waiting,
            if k.limit_set { "operator" } else { "workflow" }
        );
    }
    Ok(())
}

/// `queues set-limit KEY N`.
pub async fn set_limit(
    store: &dyn Store,
    key: &str,
    limit: &str,
    json: bool,
) -> anyhow::Result<()> {
    let limit: u32 = match limit.trim().parse() {
        Ok(n) if n >= 1 => n,
        _ => {
            return Err(CliError::input(format!(
                "the limit must be a whole number of at least 1, not {limit:?}"
            )))
        }
    };
    let view = store.set_key_limit(key, limit).await?;
    if json {
        outln!("{}", serde_json::to_string(&view)?);
    } else {
        outln!("{} {}", view.key, view.limit);
    }
    eprintln!(
        "concurrency key {:?}: limit {} ({} active, {} waiting); workflows no longer change it",
        view.key, view.limit, view.active, view.waiting
    );
    Ok(())
}

/// `queues pause QUEUE` and `queues resume QUEUE`.
pub async fn set_paused(store: &dyn Store, queue: &str, paused: bool) -> anyhow::Result<()> {
    if !store.set_queue_paused(queue, paused).await? {
        let known: Vec<String> = store
            .queue_stats()
            .await?
            .into_iter()
            .map(|q| q.name)
            .collect();
        return Err(CliError::not_found(if known.is_empty() {
            format!("no queue {queue:?} (no workflow uses any queue yet)")
        } else {
            format!("no queue {queue:?}; known queues: {}", known.join(", "))
        }));
    }
    if paused {
        eprintln!(
            "queue {queue:?} paused: its steps are not claimed (running ones finish); \
             resume it with: stepwise queues resume {queue}"
        );
    } else {
        eprintln!("queue {queue:?} resumed");
    }
    Ok(())
}

/// `locks list`.
pub async fn list_locks(store: &dyn Store, json: bool) -> anyhow::Result<()> {
    let locks = store.list_locks().await?;
    if json {
        outln!("{}", serde_json::to_string(&locks)?);
        return Ok(());
    }
    if locks.is_empty() {
        eprintln!("no locks held");
        return Ok(());
    }
    let now = store.now().await?;
    let width = locks.iter().map(|l| l.key.len()).max().unwrap_or(0).max(4);
    let holder_width = locks
        .iter()
        .map(|l| l.holder_id.len())
        .max()
        .unwrap_or(0)
        .max(6);
    outln!(
        "{:<width$}  {:<4}  {:<holder_width$}  {:<19}  EXPIRES",
        "LOCK",
        "KIND",
        "HOLDER",
        "ACQUIRED"
    );
    for l in locks {
        outln!(
            "{:<width$}  {:<4}  {:<holder_width$}  {:<19}  {} (in {})",
            l.key,
            l.holder_kind.as_str(),
            l.holder_id,
            l.acquired_at.format("%Y-%m-%d %H:%M:%S"),
            l.expires_at.format("%Y-%m-%d %H:%M:%S"),
            format_age(since(now, l.expires_at))
        );
    }
    Ok(())
}

/// `locks acquire KEY --ttl D`.
pub async fn acquire(
    store: &dyn Store,
    key: &str,
    ttl: Duration,
    json: bool,
) -> anyhow::Result<()> {
    let request = LockRequest {
        key: key.to_string(),
        ttl,
        holder_kind: HolderKind::Cli,
        holder_id: holder_id(),
    };
    match store.acquire_lock(&request).await? {
        LockOutcome::Held(lock) => {
            let now = store.now().await?;
            Err(CliError::conflict(format!(
                "lock {key:?} is {}",
                held_by(&lock, now)
            )))
        }
        LockOutcome::Acquired { lock, token } => {
            if json {
                outln!(
                    "{}",
                    json!({"key": lock.key, "token": token, "expires_at": lock.expires_at})
                );
            } else {
                eprintln!(
                    "acquired lock {key:?} as {} until {}; release it with: \
                     stepwise locks release {key} --token {token}",
                    lock.holder_id,
                    lock.expires_at.to_rfc3339()
                );
                outln!("{token}");
            }
            Ok(())
        }
    }
}

/// `locks release KEY --token T`.
pub async fn release(store: &dyn Store, key: &str, token: &str) -> anyhow::Result<()> {
    let token: uuid::Uuid = token.trim().parse().map_err(|_| {
        CliError::input(format!(
            "{token:?} is not a lock token (the UUID `locks acquire` printed)"
        ))
    })?;
    match store.release_lock(key, token).await? {
        ReleaseOutcome::Released => {
            eprintln!("released lock {key:?}");
            Ok(())
        }
        ReleaseOutcome::NotHeld => Err(CliError::not_found(format!(
            "lock {key:?} is not held (it may have expired)"
        ))),
        ReleaseOutcome::WrongToken(lock) => {
            let now = store.now().await?;
            Err(CliError::conflict(format!(
                "that token does not hold lock {key:?}: it is {}; nothing changed",
                held_by(&lock, now)
            )))
        }
    }
}

/// `locks force-release KEY --reason R`.
pub async fn force_release(store: &dyn Store, key: &str, reason: &str) -> anyhow::Result<()> {
    if reason.trim().is_empty() {
        return Err(CliError::input(
            "--reason must say why the lock is taken away (it is recorded in the event)",
        ));
    }
    match store.force_release_lock(key, reason).await? {
        None => Err(CliError::not_found(format!(
            "lock {key:?} is not held (it may have expired)"
        ))),
        Some(lock) => {
            eprintln!(
                "force-released lock {key:?}: it was held by {} since {} (until {})",
                stepwise_store::explain::holder_name(lock.holder_kind, &lock.holder_id),
                lock.acquired_at.to_rfc3339(),
                lock.expires_at.to_rfc3339()
            );
            Ok(())
        }
    }
}

/// Who a `locks acquire` is: `cli:USER@HOST`, or `cli:PID` when either is unknown.
fn holder_id() -> String {
    let user = std::env::var("USER")
        .ok()
        .map(|u| u.trim().to_string())
        .filter(|u| !u.is_empty());
    match (user, super::worker::hostname()) {
        (Some(user), Some(host)) => format!("cli:{user}@{host}"),
        _ => format!("cli:{}", std::process::id()),
    }
}

/// "held by cli:alice@box until T (in 4m59s)".
fn held_by(lock: &LockView, now: DateTime<Utc>) -> String {
    format!(
        "held by {} until {} (in {})",
        stepwise_store::explain::holder_name(lock.holder_kind, &lock.holder_id),
        lock.expires_at.to_rfc3339(),
        format_age(since(now, lock.expires_at))
    )
}

/// The time from `from` to `to`, zero when `to` is earlier.
fn since(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// `45s`, `3m12s`, `2h5m`, `3d4h`: the two largest units, whole seconds.
pub fn format_age(d: Duration) -> String {
    let s = d.as_secs();
    let (days, hours, mins, secs) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    if days > 0 {
        format!("{days}d{hours}h")
    } else if hours > 0 {
        format!("{hours}h{mins}m")
    } else if mins > 0 {
        format!("{mins}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    use super::format_age;
    use std::time::Duration;

    #[test]
    fn ages_read_like_durations() {
        assert_eq!(format_age(Duration::from_millis(900)), "0s");
        assert_eq!(format_age(Duration::from_secs(45)), "45s");
        assert_eq!(format_age(Duration::from_secs(192)), "3m12s");
        assert_eq!(format_age(Duration::from_secs(7500)), "2h5m");
        assert_eq!(
            format_age(Duration::from_secs(3 * 86_400 + 4 * 3600 + 9)),
            "3d4h"
        );
    }
}
