-- Moves steps whose backoff or delayed start has passed into the ready set. Their
-- run_after is cleared, so step_due holds only steps still waiting. It also says
-- whether any ready row waits on a rate key or a fairness key (two probes of
-- empty partial indexes, in a round trip the claim makes anyway), so that a claim
-- in a database that uses neither asks nothing more.
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
    RETURNING rate_key, fair_key
)
SELECT EXISTS (SELECT 1 FROM step_ready WHERE rate_key IS NOT NULL)
           OR EXISTS (SELECT 1 FROM ready WHERE rate_key IS NOT NULL) AS rated,
       EXISTS (SELECT 1 FROM step_ready
               WHERE fair_key IS NOT NULL AND rate_key IS NULL AND resource IS NULL)
           OR EXISTS (SELECT 1 FROM ready WHERE fair_key IS NOT NULL) AS fair
