-- Scheduled roots (delayed runs) wait for run_after: an absolute ?13 or a delay ?14.
INSERT INTO step (id, run_id, name, queue, status, priority, deps_remaining, dependents,
                  max_attempts, backoff_initial_ms, backoff_factor, backoff_max_ms,
                  run_after)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,
        CASE WHEN ?5 = 'scheduled' THEN coalesce(?13, (SELECT now_ms FROM db_clock) + ?14) END)
