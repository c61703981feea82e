//! Retrying transactions that lost a race, and small conversions both backends share.

use crate::Result;
use std::future::Future;
use std::time::Duration;

/// Runs `op` again when the database aborted it only because of a race (a deadlock
/// between two PostgreSQL batches, a serialization failure, a busy SQLite file past
/// its timeout). Each try is a fresh transaction, so a retry never sees half a try.
pub(crate) async fn with_retries<T, F, Fut>(mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let mut tries = 0u32;
    loop {
        match op().await {
            Err(e) if e.is_transient() && tries < 8 => {
                tries += 1;
                tokio::time::sleep(Duration::from_millis(2u64 << tries.min(6))).await;
            }
            other => return other,
        }
    }
}

/// A duration as the whole milliseconds the schemas store.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
