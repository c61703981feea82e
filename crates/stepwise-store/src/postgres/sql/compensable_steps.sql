-- $1 run id: its completed steps that have a compensation, last completed first. A
-- completed step's finished_at is its last completion (a retry that reset it cleared
-- it); one batch completes its steps at one time, in step order.
SELECT s.name, s.queue, s.priority, s.max_attempts, s.backoff_initial_ms,
       s.backoff_factor, s.backoff_max_ms, s.resource
FROM step s
WHERE s.run_id = $1 AND s.compensates IS NULL AND s.compensable AND s.status = 'completed'
ORDER BY s.finished_at DESC NULLS LAST, s.seq DESC
