-- Moves steps whose backoff or delayed start has passed into the claim index.
WITH due AS (
    SELECT id
    FROM step
    WHERE status = 'scheduled' AND run_after <= (SELECT stepwise_now())
    ORDER BY run_after
    LIMIT 1000
    FOR UPDATE SKIP LOCKED
)
UPDATE step s SET status = 'pending'
FROM due
WHERE s.id = due.id
