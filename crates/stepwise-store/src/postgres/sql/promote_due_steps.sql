-- Moves steps whose backoff or delayed start has passed into the ready set. Their
-- run_after is cleared, so step_due holds only steps still waiting. It also says
-- whether the database has any rate limit or fairness key at all (in a round trip
-- the claim makes anyway), so that a claim in a database that uses neither asks
-- nothing more.
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
    RETURNING s.queue, s.priority, s.seq, s.id, s.resource, s.rate_key, s.fair_key
),
ready AS (
    INSERT INTO step_ready (queue, priority, seq, step_id, resource, rate_key, fair_key)
    SELECT queue, priority, seq, id, resource, rate_key, fair_key FROM promoted
)
-- Tiny tables, never the ready rows: a probe of step_ready would be planned as a
-- scan while its statistics lag.
SELECT EXISTS (SELECT 1 FROM rate_limit) AS rated, EXISTS (SELECT 1 FROM fair_lane) AS fair
