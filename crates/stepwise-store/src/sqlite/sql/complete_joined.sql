-- ?1 step id, ?2 output (JSON): an expanded step (or one that found no items)
-- completes with its items' outputs. It holds no lease, and is no longer
-- compensable itself: each of its items is.
UPDATE step
SET status = 'completed', output = ?2, finished_at = (SELECT now_ms FROM db_clock),
    compensable = 0, worker_id = NULL, lease_token = NULL
WHERE id = ?1
RETURNING run_id, name, dependents
