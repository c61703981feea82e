-- $1 step id, locked and running (its worker was lost): claimable again. Its lease
-- row goes.
WITH requeued AS (
    UPDATE step SET status = 'pending' WHERE id = $1
    RETURNING queue, priority, seq, id, resource, rate_key, fair_key, worker_id
),
unleased AS (
    DELETE FROM step_lease l USING requeued q
    WHERE l.worker_id = q.worker_id AND l.step_id = q.id
)
INSERT INTO step_ready (queue, priority, seq, step_id, resource, rate_key, fair_key)
SELECT queue, priority, seq, id, resource, rate_key, fair_key FROM requeued
