//! Input rules of flow control that both backends apply, and the data of lock events,
//! so the two cannot disagree on what they refuse or record.

use crate::model::LockView;
use crate::plan::check_key;
use crate::{Result, StoreError};
use serde_json::{json, Value};
use std::time::Duration;

/// Lock keys follow the rules of concurrency keys; a TTL is between a second and thirty days.
pub(crate) fn check_lock(key: &str, ttl: Option<Duration>) -> Result<()> {
    check_key("lock key", &Some(key.to_string()))?;
    if let Some(ttl) = ttl {
        if ttl < Duration::from_secs(1) || ttl > Duration::from_secs(30 * 86_400) {
            return Err(StoreError::InvalidInput(
                "a lock's ttl must be between 1s and 30 days".into(),
            ));
        }
    }
    Ok(())
}

/// A key's limit, as an operator sets it.
pub(crate) fn check_key_limit(key: &str, limit: u32) -> Result<()> {
    check_key("concurrency key", &Some(key.to_string()))?;
    if limit == 0 || limit > 1_000_000 {
        return Err(StoreError::InvalidInput(
            "a concurrency limit must be between 1 and 1000000".into(),
        ));
    }
    Ok(())
}

/// A forced release is audited, so it needs a reason.
pub(crate) fn check_force_reason(reason: &str) -> Result<()> {
    if reason.trim().is_empty() || reason.contains('\0') || reason.len() > 2000 {
        return Err(StoreError::InvalidInput(
            "a forced release needs a reason (up to 2000 bytes, no NUL)".into(),
        ));
    }
    Ok(())
}

/// The data of a `lock.*` event: the lock and its holder, plus `extra` (a reason).
pub(crate) fn lock_event_data(lock: &LockView, extra: Value) -> Value {
    let mut data = json!({
        "key": lock.key,
        "holder_kind": lock.holder_kind,
        "holder_id": lock.holder_id,
        "expires_at": lock.expires_at,
    });
    if let (Some(data), Value::Object(extra)) = (data.as_object_mut(), extra) {
        data.extend(extra);
    }
    data
}
