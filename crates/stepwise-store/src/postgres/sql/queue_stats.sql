-- Per queue: pending steps through the ready set (a step counted once, however many
-- ready rows it has), scheduled ones through step_due, running ones through the
-- lease rows. Steps are reached by primary-key probes (LATERAL sub-queries that
-- OFFSET 0 keeps from being flattened), never by reading the step table: the ready
-- and lease tables turn over too fast for their statistics.
SELECT q.name, q.paused, p.pending, p.oldest, d.scheduled, l.running
FROM queue q
CROSS JOIN LATERAL (
    SELECT count(*) AS pending, min(r.created_at) AS oldest
    FROM (SELECT DISTINCT x.step_id FROM step_ready x WHERE x.queue = q.name) sr
    CROSS JOIN LATERAL (
        SELECT s.run_id FROM step s
        WHERE s.id = sr.step_id AND s.status = 'pending'
        OFFSET 0
    ) s
    JOIN run r ON r.id = s.run_id
) p
CROSS JOIN LATERAL (
    SELECT count(*) AS scheduled
    FROM step s
    WHERE s.run_after IS NOT NULL AND s.queue = q.name AND s.status = 'scheduled'
) d
CROSS JOIN LATERAL (
    SELECT count(*) AS running
    FROM step_lease sl
    CROSS JOIN LATERAL (
        SELECT 1 FROM step s
        WHERE s.id = sl.step_id AND s.queue = q.name AND s.status = 'running'
          AND s.lease_token = sl.token
        OFFSET 0
    ) s
) l
ORDER BY q.name
