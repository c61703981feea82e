-- Running steps whose worker is no longer alive: reaped now, or reaped or stopped
-- while a claim of its was committing. Found through the lease rows of workers that
-- are not alive.
-- Each lease row's step is one primary-key probe (a LATERAL sub-query that OFFSET 0
-- keeps from being flattened): step_lease turns over too fast for its statistics, and
-- a join planned on stale ones reads the whole step table.
SELECT s.id, s.lease_token
FROM worker w
JOIN step_lease l ON l.worker_id = w.id
CROSS JOIN LATERAL (
    SELECT x.id, x.lease_token FROM step x
    WHERE x.id = l.step_id AND x.status = 'running' AND x.lease_token = l.token
    OFFSET 0
) s
WHERE w.status <> 'alive'
ORDER BY s.id
