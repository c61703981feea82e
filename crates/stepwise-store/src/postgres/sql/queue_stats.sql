-- Per queue: pending steps through the ready set (a step counted once, however many
-- ready rows it has), scheduled ones through step_due, running ones through the
-- lease rows. Each count reads its small index, never the step table as a whole.
SELECT q.name, q.paused, p.pending, p.oldest, d.scheduled, l.running
FROM queue q
CROSS JOIN LATERAL (
    SELECT count(*) AS pending, min(r.created_at) AS oldest
    FROM (SELECT DISTINCT x.step_id FROM step_ready x WHERE x.queue = q.name) sr
    JOIN step s ON s.id = sr.step_id AND s.status = 'pending'
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
    JOIN step s ON s.id = sl.step_id
    WHERE s.queue = q.name AND s.status = 'running' AND s.lease_token = sl.token
) l
ORDER BY q.name
