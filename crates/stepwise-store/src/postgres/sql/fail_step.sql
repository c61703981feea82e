-- $1 step id, $2 error: the locked running step failed for good. Its lease row goes.
WITH failed AS (
    UPDATE step
    SET status = 'failed', error = $2, finished_at = (SELECT stepwise_now())
    WHERE id = $1
    RETURNING id, worker_id
)
DELETE FROM step_lease l USING failed f
WHERE l.worker_id = f.worker_id AND l.step_id = f.id
