-- $1 step id, $2 output, $3 event data: an expanded step (or one that found no
-- items) completes with its items' outputs. It holds no lease. It is no longer
-- compensable itself: each of its items is.
WITH done AS (
    UPDATE step
    SET status = 'completed', output = $2, finished_at = (SELECT stepwise_now()),
        compensable = false, worker_id = NULL, lease_token = NULL
    WHERE id = $1
    RETURNING id, run_id, name, dependents, finished_at
),
events AS (
    INSERT INTO event (kind, run_id, step, group_name, data, at)
    SELECT 'step.completed', d.run_id, d.name, r.group_name, $3, d.finished_at
    FROM done d
    JOIN run r ON r.id = d.run_id
)
SELECT run_id, dependents FROM done
