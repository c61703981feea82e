//! The worker's metrics, through the `metrics` facade: the program that embeds the
//! worker (or `stepwise server`) installs the exporter.

pub const CLAIMS: &str = "stepwise_claims_total";
pub const CLAIM_HITS: &str = "stepwise_claim_hits_total";
pub const CLAIM_IDLE: &str = "stepwise_claim_idle_total";
/// Claims woken by news of work that found none: another worker got there first.
pub const CLAIM_LOST_RACES: &str = "stepwise_claim_lost_races_total";
pub const CLAIM_ERRORS: &str = "stepwise_claim_errors_total";
pub const STEPS_CLAIMED: &str = "stepwise_steps_claimed_total";
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
