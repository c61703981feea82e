//! The worker's metrics, through the `metrics` facade: the program that embeds the
//! worker (or `stepwise server`, or `stepwise worker --metrics-listen`) installs the
//! exporter, and [`describe`] (called by `Worker::run`) gives every series its help
//! text and a 0, so a dashboard or alert never waits for a first increment.

pub const CLAIMS: &str = "stepwise_claims_total";
pub const CLAIM_HITS: &str = "stepwise_claim_hits_total";
pub const CLAIM_IDLE: &str = "stepwise_claim_idle_total";
/// Claims woken by news of work that found none: another worker got there first.
pub const CLAIM_LOST_RACES: &str = "stepwise_claim_lost_races_total";
pub const CLAIM_ERRORS: &str = "stepwise_claim_errors_total";
pub const STEPS_CLAIMED: &str = "stepwise_steps_claimed_total";
pub const STEPS_HANDED_OFF: &str = "stepwise_steps_handed_off_total";
pub const STEPS_COMPLETED: &str = "stepwise_steps_completed_total";
pub const STEP_ERRORS: &str = "stepwise_step_errors_total";
pub const STEPS_FAILED: &str = "stepwise_steps_failed_total";
pub const STEPS_RELEASED: &str = "stepwise_steps_released_total";
pub const WORKERS_REAPED: &str = "stepwise_workers_reaped_total";
/// Orphaned steps a reaper pass left for a later one because another session held
/// them (a silent worker's open transaction, another reaper).
pub const REAPER_SKIPPED: &str = "stepwise_reaper_skipped_steps_total";
pub const LEASES_LOST: &str = "stepwise_leases_lost_total";
pub const CLAIM_SECONDS: &str = "stepwise_claim_duration_seconds";
pub const STEP_SECONDS: &str = "stepwise_step_duration_seconds";
pub const STEPS_REVOKED: &str = "stepwise_steps_revoked_total";
pub const RUNS_TIMED_OUT: &str = "stepwise_runs_timed_out_total";
/// Steps this process let go of to wait without a worker, by `kind`.
pub const STEPS_PARKED: &str = "stepwise_steps_parked_total";
/// The `kind` label values of [`STEPS_PARKED`] (and the server's waiting gauge).
pub const WAIT_KINDS: &[&str] = &["sleep", "signal", "callback"];

/// Fire times this process handled, by `schedule` and `outcome` (fired, skipped).
pub const SCHEDULE_FIRES: &str = "stepwise_schedule_fires_total";
/// How late this process fired schedules: the database's now minus the fire time.
pub const SCHEDULE_LAG: &str = "stepwise_schedule_lag_seconds";

/// Every counter the worker emits, with its help text.
pub const COUNTERS: &[(&str, &str)] = &[
    (CLAIMS, "Claim queries made."),
    (CLAIM_HITS, "Claim queries that returned at least one step."),
    (
        CLAIM_IDLE,
        "Claim rounds that found nothing to claim (also rounds with no queue to ask).",
    ),
    (
        CLAIM_LOST_RACES,
        "Claims woken by news of work that found none: another worker got there first.",
    ),
    (CLAIM_ERRORS, "Claim queries that failed (database errors)."),
    (STEPS_CLAIMED, "Steps claimed."),
    (
        STEPS_HANDED_OFF,
        "Steps claimed by the transaction that completed the step before them (pipeline hand-off); also counted in stepwise_steps_claimed_total.",
    ),
    (STEPS_COMPLETED, "Step outcomes recorded as completed."),
    (
        STEP_ERRORS,
        "Attempts that ended in an error (retried or, when out of attempts, failed).",
    ),
    (
        STEPS_FAILED,
        "Steps failed for good: out of attempts, or not retryable.",
    ),
    (
        STEPS_RELEASED,
        "Steps this process handed back unfinished, to be claimed again (e.g. at shutdown).",
    ),
    (
        WORKERS_REAPED,
        "Dead workers whose steps this process's reaper handed back.",
    ),
    (
        LEASES_LOST,
        "Outcomes refused because the step's lease had passed to another worker.",
    ),
    (
        STEPS_REVOKED,
        "Running steps stopped because their run was cancelled or timed out.",
    ),
    (RUNS_TIMED_OUT, "Runs this process ended at their deadline."),
];

/// Every histogram the worker emits (in seconds), with its help text.
pub const HISTOGRAMS: &[(&str, &str)] = &[
    (CLAIM_SECONDS, "Time one claim query took."),
    (STEP_SECONDS, "Time one attempt of a step ran."),
];

/// Gives every metric above its `# HELP` text in the installed recorder, and
/// registers each counter at 0 so its series exists before the first increment.
/// Does nothing without a recorder; repeating it changes no value.
pub fn describe() {
    for &(name, help) in COUNTERS {
        metrics::describe_counter!(name, metrics::Unit::Count, help);
        metrics::counter!(name).increment(0);
    }
    metrics::describe_counter!(
        STEPS_PARKED,
        metrics::Unit::Count,
        "Steps let go of to wait without a worker (kind: sleep, signal, callback)."
    );
    for &kind in WAIT_KINDS {
        metrics::counter!(STEPS_PARKED, "kind" => kind).increment(0);
    }
    describe_schedules();
    for &(name, help) in HISTOGRAMS {
        metrics::describe_histogram!(name, metrics::Unit::Seconds, help);
        // A histogram is registered by its first sample; an empty one is
        // registered by asking for it.
        let _ = metrics::histogram!(name);
    }
}

/// The schedule firer's metrics (a server with `--no-worker` fires schedules too).
/// Its counter has a series per schedule, made by the schedule's first fire.
pub fn describe_schedules() {
    metrics::describe_counter!(
        SCHEDULE_FIRES,
        metrics::Unit::Count,
        "Schedule fire times this process handled (schedule; outcome: fired, skipped)."
    );
    metrics::describe_histogram!(
        SCHEDULE_LAG,
        metrics::Unit::Seconds,
        "How late this process fired schedules: the database clock minus the fire time."
    );
    let _ = metrics::histogram!(SCHEDULE_LAG);
}
