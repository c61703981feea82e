-- ?1 run id: its steps, without the items of its `for_each` steps (counted by
-- `item_counts.sql`, paged by `list_items.sql`).
SELECT id, name, queue, status, attempt, max_attempts + attempt_base AS max_attempts,
       run_after, worker_id, started_at, finished_at, output, error, compensates, resource,
       dependents, wait_kind, wait_signal, wait_until, rate_key
FROM step
WHERE run_id = ?1 AND item_of IS NULL
ORDER BY seq
