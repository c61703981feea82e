-- $1 step id, $2 delay in ms, $3 error: a locked running step waits for its next
-- attempt. A zero delay goes straight to the ready set. Its lease row goes.
WITH at AS (
    SELECT (SELECT stepwise_now()) + $2::bigint * interval '1 millisecond' AS run_after
),
retried AS (
    UPDATE step
    SET status = CASE WHEN $2::bigint = 0 THEN 'pending' ELSE 'scheduled' END,
        run_after = CASE WHEN $2::bigint = 0 THEN NULL ELSE (SELECT run_after FROM at) END,
        error = $3
    WHERE id = $1
    RETURNING queue, priority, seq, id, resource, rate_key, fair_key, worker_id, status
),
unleased AS (
    DELETE FROM step_lease l USING retried r
    WHERE l.worker_id = r.worker_id AND l.step_id = r.id
),
ready AS (
    INSERT INTO step_ready (queue, priority, seq, step_id, resource, rate_key, fair_key)
    SELECT queue, priority, seq, id, resource, rate_key, fair_key FROM retried WHERE status = 'pending'
)
SELECT run_after FROM at, retried
