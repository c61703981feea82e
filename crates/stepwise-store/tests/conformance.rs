//! The storage conformance suite: every case runs on SQLite and on PostgreSQL.
//!
//! Each case is an `async fn` taking the store (or the [`harness::Harness`] when it
//! needs more handles or databases); [`conformance!`] turns it into
//! `sqlite::<case>` and `postgres::<case>` tests, each on a database of its own
//! (a fresh SQLite file, or a fresh PostgreSQL schema).
//!
//! PostgreSQL comes from `STEPWISE_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). An unreachable database fails the
//! PostgreSQL cases with a message saying how to set it; they are skipped only when
//! asked (`STEPWISE_TEST_SKIP_POSTGRES=1`), never under CI. Databases are the shared
//! test kit's (`stepwise-testkit`): dropped when the case ends, passed or failed.
//!
//! Time is moved with `advance_clock`, never slept. Event streams are read with
//! [`support::events_when`], because PostgreSQL serves an event only once every
//! older transaction in the database has ended.
//!
//! Run one backend with `cargo test -p stepwise-store --test conformance postgres::`.

#[path = "conformance/cancel.rs"]
mod cancel;
#[path = "conformance/children.rs"]
mod children;
#[path = "conformance/claims.rs"]
mod claims;
#[path = "conformance/clock.rs"]
mod clock;
#[path = "conformance/context.rs"]
mod context;
#[path = "conformance/early_end.rs"]
mod early_end;
#[path = "conformance/event_order.rs"]
mod event_order;
#[path = "conformance/events.rs"]
mod events;
#[path = "conformance/fan_out.rs"]
mod fan_out;
#[path = "conformance/flow.rs"]
mod flow;
#[path = "conformance/handoff.rs"]
mod handoff;
#[path = "conformance/harness.rs"]
mod harness;
#[path = "conformance/hot_path.rs"]
mod hot_path;
#[path = "conformance/joins.rs"]
mod joins;
#[path = "conformance/leases.rs"]
mod leases;
#[path = "conformance/limits.rs"]
mod limits;
#[path = "conformance/reads.rs"]
mod reads;
#[path = "conformance/retries.rs"]
mod retries;
#[path = "conformance/review.rs"]
mod review;
#[path = "conformance/row_locks.rs"]
mod row_locks;
#[path = "conformance/runs.rs"]
mod runs;
#[path = "conformance/schedules.rs"]
mod schedules;
#[path = "conformance/stop_reason.rs"]
mod stop_reason;
#[path = "conformance/support.rs"]
mod support;
#[path = "conformance/tokens.rs"]
mod tokens;
#[path = "conformance/upgrade.rs"]
mod upgrade;
#[path = "conformance/waits.rs"]
mod waits;

/// Generates one test per case and backend: `sqlite::case` and `postgres::case`.
macro_rules! conformance {
    ($($module:ident :: $case:ident),+ $(,)?) => {
        conformance!(@backend sqlite, $($module::$case),+);
        conformance!(@backend postgres, $($module::$case),+);
    };
    (@backend $backend:ident, $($module:ident :: $case:ident),+) => {
        mod $backend {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    if crate::harness::skip(stringify!($backend)) {
                        return;
                    }
                    let harness = crate::harness::Harness::$backend().await;
                    crate::harness::Case::run(crate::$module::$case, &harness).await;
                    harness.finish().await;
                }
            )+
        }
    };
}

conformance!(
    // Claiming.
    claims::claim_is_exclusive,
    claims::batch_claim_never_returns_more_than_limit,
    claims::claims_follow_priority_then_age,
    claims::dag_step_is_claimable_only_when_all_dependencies_completed,
    // The pipeline hand-off.
    handoff::completing_a_pipeline_step_hands_its_successor_to_the_same_worker,
    handoff::a_stale_lease_neither_completes_its_step_nor_takes_the_next,
    handoff::a_hand_off_respects_queues_and_pauses,
    handoff::a_join_is_handed_off_only_by_its_last_dependency,
    // Leases, fencing, heartbeats, the reaper.
    leases::late_writes_are_fenced_after_reclaim,
    leases::reaper_never_reaps_its_caller,
    leases::reaped_steps_are_claimable_again_with_a_new_lease,
    leases::reaping_the_last_attempt_fails_the_step,
    leases::heartbeats_keep_a_slow_step_from_being_reaped,
    leases::batch_complete_with_one_stale_lease_commits_the_others_and_reports_it,
    leases::deregistering_a_worker_releases_its_steps,
    leases::a_completion_racing_the_reaper_wins_or_is_refused_never_both,
    leases::a_heartbeat_racing_the_reaper_agrees_with_it,
    // The claimable set and the live leases beside the step rows.
    hot_path::a_stale_ready_row_never_yields_two_leases_for_one_step,
    hot_path::racing_claimers_over_duplicated_ready_rows_claim_each_step_once,
    hot_path::a_lease_row_left_by_a_reaped_worker_never_lets_its_late_outcome_land,
    hot_path::a_clean_success_stays_in_its_steps_history_across_a_retry,
    hot_path::vacuuming_the_claim_tables_beside_claims_loses_nothing,
    // Failures and time.
    retries::retries_fail_the_step_at_max_attempts,
    retries::permanent_errors_fail_without_retrying,
    retries::step_is_not_claimable_before_its_backoff_ends,
    retries::a_failed_step_halts_its_run,
    retries::a_halted_run_never_runs_a_step_again,
    retries::a_retry_racing_a_halt_never_requeues_the_step,
    retries::released_steps_return_to_pending_without_counting_the_attempt,
    retries::delayed_starts_are_not_claimable_before_their_time,
    // How a run ends early.
    early_end::compensation_runs_in_reverse_completion_order_and_skips_the_unfinished_step,
    early_end::a_sibling_completing_while_the_run_fails_is_compensated,
    early_end::a_failed_compensation_ends_the_run_and_retry_resumes_it,
    early_end::cancel_cancels_unstarted_steps_and_revokes_running_ones,
    early_end::cancel_compensates_unless_told_not_to,
    early_end::a_deadline_fires_once_with_racing_checkers,
    early_end::retry_from_resets_only_that_step_and_its_dependents,
    early_end::a_retried_group_member_never_completes_its_group_twice,
    early_end::a_revoked_step_nobody_reports_is_cancelled_after_a_lease,
    stop_reason::a_compensation_after_a_failure_says_failed,
    stop_reason::a_compensation_after_the_deadline_says_timed_out,
    stop_reason::a_compensation_after_a_cancel_says_cancelled,
    // Steps that wait without a worker.
    waits::a_signal_sent_before_the_wait_is_kept_and_taken_when_it_begins,
    waits::a_waiting_step_holds_no_lease_and_is_never_claimed,
    waits::a_signal_racing_the_wait_is_never_lost,
    waits::a_repeated_signal_id_is_accepted_once,
    waits::a_timeout_racing_its_signal_has_exactly_one_winner,
    waits::a_sleep_due_while_no_worker_runs_completes_on_the_next_wake,
    waits::a_callback_of_an_old_attempt_is_refused,
    waits::an_expired_callback_is_an_attempt_error_and_retries,
    waits::cancel_ends_a_waiting_step_at_once,
    waits::signals_address_runs_by_key_and_can_start_them,
    // Fan-out: steps decided at run time.
    fan_out::expansion_is_atomic_with_the_dependencys_completion,
    fan_out::dependents_get_the_item_outputs_in_order,
    fan_out::an_empty_array_completes_at_once_with_an_empty_list,
    fan_out::a_value_that_is_not_an_array_fails_the_step_naming_the_path,
    fan_out::more_items_than_max_items_fail_the_step,
    fan_out::a_root_for_each_expands_from_the_input,
    fan_out::max_parallel_is_never_exceeded_by_racing_claimers,
    fan_out::continue_completes_with_nulls_where_fail_fails_the_run,
    fan_out::a_retry_reruns_only_failed_items_and_from_reruns_them_all,
    fan_out::each_item_is_compensated_on_its_own_with_its_element,
    // Child runs.
    children::a_child_completes_its_waiting_parent_step_with_its_outputs,
    children::a_child_finished_before_its_parent_parked_completes_it_at_once,
    children::a_retried_parent_finds_its_failed_child_again_and_retries_it,
    children::cancelling_a_parent_cancels_its_children,
    children::a_childs_completion_racing_its_parents_cancel_settles_once,
    // Rate limits and fairness.
    limits::the_admitted_rate_never_exceeds_limit_plus_burst_with_racing_claimers,
    limits::a_changed_limit_applies_to_the_next_claim,
    limits::a_paused_key_admits_nothing_until_its_time,
    limits::keys_are_independent,
    limits::back_pressure_pauses_the_key_and_delays_the_retry,
    limits::a_small_tenant_is_served_in_the_next_claim,
    limits::a_rate_limited_step_is_never_handed_off,
    limits::items_of_a_for_each_step_are_admitted_by_its_key,
    limits::the_widest_limit_settings_keep_claims_working,
    // Schedules.
    schedules::racing_firers_create_each_fire_time_once,
    schedules::catchup_none_latest_and_all_after_a_long_gap,
    schedules::daylight_saving_fires_each_local_time_once,
    schedules::overlap_skip_queue_and_allow,
    schedules::pause_resume_and_removal,
    schedules::backfill_creates_exactly_the_listed_fire_times_once,
    // Flow control.
    flow::a_key_admits_its_runs_in_creation_order_up_to_its_limit,
    flow::a_limit_is_reached_and_never_exceeded,
    flow::every_terminal_path_frees_the_slot,
    flow::a_reaped_keyed_step_does_not_leak_the_slot,
    flow::raising_a_limit_admits_at_once_and_retries_queue_at_the_back,
    flow::a_paused_queue_is_not_claimed,
    flow::steps_on_one_resource_run_one_at_a_time,
    flow::locks_conflict_release_by_token_expire_and_force_release,
    flow::a_reaped_steps_lock_is_kept_past_its_lease,
    flow::explain_names_each_reason,
    flow::a_compensation_takes_its_steps_resource_lock,
    flow::a_resumed_compensation_waits_for_its_keys_slot,
    // API tokens.
    tokens::tokens_verify_expire_and_revoke,
    // Counted joins.
    joins::racing_completions_of_a_groups_last_runs_complete_it_once,
    joins::racing_completions_of_a_join_unblock_it_exactly_once,
    joins::run_completes_exactly_when_its_last_step_does,
    joins::a_run_names_each_steps_dependencies,
    // What a step runs with and leaves behind.
    context::claims_carry_the_outputs_of_their_dependencies,
    context::attempt_logs_are_kept_per_attempt,
    context::queues_of_registered_workflows_are_listed,
    // Events.
    events::events_exist_iff_state_change_committed,
    events::failed_writes_leave_no_trace,
    events::event_reader_never_skips_beside_concurrent_writers,
    events::following_from_the_latest_cursor_yields_only_later_events,
    events::the_newest_events_are_the_tail_of_the_feed,
    event_order::the_feed_keeps_commit_order_when_transaction_ids_gain_a_digit,
    // Runs, workflows, schema, clock.
    runs::racing_idempotent_creates_make_one_run,
    runs::workflows_are_versioned_by_content,
    runs::unknown_workflows_are_refused,
    runs::group_names_are_unique,
    runs::list_runs_pages_newest_first,
    runs::schema_is_checked_and_migrations_are_idempotent,
    runs::the_clock_is_shared_by_every_handle,
    upgrade::a_v4_database_upgrades_and_its_runs_finish,
    clock::written_times_follow_the_moved_clock,
    // From the store review.
    review::a_stale_lease_beside_the_current_one_in_a_batch_is_refused,
    review::a_duplicated_outcome_in_a_batch_is_one_attempt,
    review::a_nul_character_in_an_outcome_does_not_fail_the_batch,
    review::names_with_a_nul_character_are_never_found,
    review::max_attempts_is_kept_whole,
    review::a_worker_past_its_lease_claims_nothing,
    review::deregistering_a_claiming_worker_strands_no_step,
    // Abandoned calls.
    cancel::a_write_cancelled_at_any_await_point_leaves_the_store_writable,
    // The read side.
    reads::step_activity_counts_the_completed_steps_of_one_workflow,
    reads::listed_workers_count_the_steps_they_run,
);
