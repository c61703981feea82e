-- $1 worker id, after its heartbeat: its running steps' locks live as long as its
-- lease plus a margin of one lease. A lock row another session holds is skipped,
-- never waited for (the heartbeat must not stall behind a frozen claimer): the
-- margin carries it to the next beat.
WITH mine AS (
    SELECT l.name
    FROM step_lease sl
    -- One primary-key probe per lease row (OFFSET 0 keeps it from being flattened
    -- into a join planned on step_lease's stale statistics).
    CROSS JOIN LATERAL (
        SELECT x.id FROM step x
        WHERE x.id = sl.step_id AND x.status = 'running' AND x.lease_token = sl.token
        OFFSET 0
    ) s
    JOIN resource_lock l ON l.holder_kind = 'step' AND l.holder_id = s.id::text
    WHERE sl.worker_id = $1
    FOR UPDATE OF l SKIP LOCKED
)
UPDATE resource_lock l
SET expires_at = w.expires_at + w.lease_ms * interval '1 millisecond'
FROM mine, worker w
WHERE l.name = mine.name AND w.id = $1
