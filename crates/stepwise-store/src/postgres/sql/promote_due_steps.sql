-- Moves steps whose backoff or delayed start has passed into the ready set. Their
-- run_after is cleared, so step_due holds only steps still waiting.
WITH due AS (
    SELECT id
    FROM step
    WHERE run_after <= (SELECT stepwise_now()) AND status = 'scheduled'
    ORDER BY run_after
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
),
promoted AS (
    UPDATE step s SET status = 'pending', run_after = NULL
    FROM due
    WHERE s.id = due.id
    RETURNING s.queue, s.priority, s.seq, s.id, s.resource
)
INSERT INTO step_ready (queue, priority, seq, step_id, resource)
SELECT queue, priority, seq, id, resource FROM promoted
