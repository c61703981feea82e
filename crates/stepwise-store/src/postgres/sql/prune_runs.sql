-- $1 age in ms, $2 most runs to delete. Terminal runs finished before now - age go,
-- with their steps, attempts, signals and events, in one statement.
WITH doomed AS (
    SELECT id FROM run
    WHERE finished_at < (SELECT stepwise_now()) - $1 * interval '1 millisecond'
      AND status IN ('completed', 'failed', 'cancelled', 'timed_out', 'compensated',
                     'compensation_failed')
    ORDER BY seq
    LIMIT $2
    FOR UPDATE SKIP LOCKED
),
gone_events AS (DELETE FROM event e USING doomed d WHERE e.run_id = d.id),
gone_attempts AS (DELETE FROM attempt a USING doomed d WHERE a.run_id = d.id),
gone_signals AS (DELETE FROM signal g USING doomed d WHERE g.run_id = d.id),
gone_steps AS (DELETE FROM step s USING doomed d WHERE s.run_id = d.id)
DELETE FROM run r USING doomed d WHERE r.id = d.id
