-- $1 key, whose row the caller locked in an earlier statement (so this statement's
-- snapshot sees every admission and release before it). Admits the oldest waiting
-- runs while slots are free; their root steps become claimable (or wait out a
-- delayed start). Taking the slot commits with the admission (invariant 4). A run
-- with compensation steps was retried from compensation_failed: it goes back to
-- compensating, its slot taken like any other run's.
WITH free AS (
    SELECT greatest(max_active - active, 0) AS n FROM concurrency_key WHERE key = $1
),
next AS (
    SELECT r.id FROM run r
    WHERE r.concurrency_key = $1 AND r.waiting AND r.status = 'pending'
    ORDER BY r.line_seq
    LIMIT (SELECT n FROM free)
    FOR UPDATE
),
admitted AS (
    UPDATE run r
    SET status = CASE WHEN EXISTS (SELECT 1 FROM step s
                                   WHERE s.run_id = r.id AND s.compensates IS NOT NULL)
                      THEN 'compensating' ELSE 'running' END,
        started_at = (SELECT stepwise_now()), holds_slot = true, waiting = false
    FROM next
    WHERE r.id = next.id
    RETURNING r.id, r.group_name
),
counted AS (
    UPDATE concurrency_key
    SET active = active + (SELECT count(*) FROM admitted)
    WHERE key = $1
),
roots AS (
    UPDATE step s
    SET status = CASE WHEN s.run_after > (SELECT stepwise_now()) THEN 'scheduled' ELSE 'pending' END,
        run_after = CASE WHEN s.run_after > (SELECT stepwise_now()) THEN s.run_after END
    FROM admitted a
    WHERE s.run_id = a.id AND s.status = 'blocked' AND s.deps_remaining = 0
    RETURNING s.queue, s.priority, s.seq, s.id, s.resource, s.rate_key, s.fair_key, s.status
),
ready AS (
    INSERT INTO step_ready (queue, priority, seq, step_id, resource, rate_key, fair_key)
    SELECT queue, priority, seq, id, resource, rate_key, fair_key FROM roots WHERE status = 'pending'
),
events AS (
    INSERT INTO event (kind, run_id, group_name, data, at)
    SELECT 'run.started', id, group_name, jsonb_build_object('concurrency_key', $1::text),
           (SELECT stepwise_now())
    FROM admitted
)
SELECT id FROM admitted
