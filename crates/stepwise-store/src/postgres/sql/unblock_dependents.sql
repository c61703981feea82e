-- $1 dependent step ids, one entry per completed dependency (so a step named twice
-- lost two dependencies). Row locks serialize racing decrements; the one that
-- reaches 0 makes the step claimable, and inserts its ready row. Skipped steps (run
-- failing) stay skipped.
WITH unblocked AS (
    UPDATE step s
    SET deps_remaining = s.deps_remaining - d.n,
        status = CASE WHEN s.deps_remaining - d.n = 0 THEN 'pending' ELSE s.status END
    FROM (SELECT id, count(*)::integer AS n FROM unnest($1::uuid[]) AS id GROUP BY id) d
    WHERE s.id = d.id AND s.status = 'blocked'
    RETURNING s.queue, s.priority, s.seq, s.id, s.resource, s.status
)
INSERT INTO step_ready (queue, priority, seq, step_id, resource)
SELECT queue, priority, seq, id, resource FROM unblocked WHERE status = 'pending'
