//! Firing schedules with no leader (docs/design.md "Schedules"): every worker and
//! server process runs [`fire_loop`]. The store claims due schedules one process at
//! a time (`SKIP LOCKED` on PostgreSQL, the single writer on SQLite) and creates each
//! fire time's run under its idempotency key in the transaction that advances the
//! schedule, so racing processes neither miss nor double a fire; this loop only asks
//! often enough that fires are on time.

use crate::metrics as m;
use std::sync::Arc;
use std::time::Duration;
use stepwise_store::{FireOutcome, ScheduleFire, Store, StoreError};
use tokio_util::sync::CancellationToken;

/// How often a process asks for due schedules. A fire is at most about this late
/// (plus a pass's own time) while any process runs.
pub const FIRE_POLL: Duration = Duration::from_secs(1);

/// How many schedules one `fire_schedules` call fires; a full batch is followed by
/// another call at once.
pub const FIRE_BATCH: u32 = 100;

/// Fires due schedules until `stop`; calls `fired` after each pass that started a
/// run (a worker wakes its claimers with it).
pub async fn fire_loop(
    store: Arc<dyn Store>,
    stop: CancellationToken,
    fired: impl Fn() + Send + Sync + 'static,
) {
    m::describe_schedules();
    // A fixed period, not a sleep after each pass: passes that drift by their own
    // length would now and then step over a whole fire time of a 1 s schedule, which
    // `catchup = "latest"` then counts as missed.
    let mut ticks = tokio::time::interval(FIRE_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = stop.cancelled() => return,
        }
        match fire_due(&*store, &stop).await {
            Ok(n) if n > 0 => fired(),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "firing due schedules failed"),
        }
    }
}

/// Fires every due schedule (in batches, while batches come back full); returns how
/// many runs it started.
pub async fn fire_due(store: &dyn Store, stop: &CancellationToken) -> Result<usize, StoreError> {
    let mut started = 0;
    while !stop.is_cancelled() {
        let fires = store.fire_schedules(FIRE_BATCH).await?;
        record(&fires);
        started += fires
            .iter()
            .filter(|f| f.outcome == FireOutcome::Fired)
            .count();
        // The limit counts schedules and a schedule catching up fires several times,
        // so a batch may look full when it was not: the next call then finds none.
        if fires.len() < FIRE_BATCH as usize {
            break;
        }
    }
    Ok(started)
}

fn record(fires: &[ScheduleFire]) {
    for fire in fires {
        let outcome = match fire.outcome {
            FireOutcome::Fired => "fired",
            FireOutcome::Skipped => "skipped",
            FireOutcome::Existing => "existing",
        };
        metrics::counter!(m::SCHEDULE_FIRES, "schedule" => fire.schedule.clone(), "outcome" => outcome)
            .increment(1);
        metrics::histogram!(m::SCHEDULE_LAG).record(fire.lag_seconds.max(0.0));
        match fire.run_id {
            Some(run) => tracing::info!(
                schedule = %fire.schedule,
                fire_time = %fire.fire_time,
                run = %run,
                outcome,
                lag_seconds = fire.lag_seconds,
                "schedule fired"
            ),
            None => tracing::info!(
                schedule = %fire.schedule,
                fire_time = %fire.fire_time,
                outcome,
                "schedule fire skipped: its previous run is not finished"
            ),
        }
    }
}
