-- $1 worker id: its running steps whose lease was revoked.
-- Each lease row's step is one primary-key probe (a LATERAL sub-query that OFFSET 0
-- keeps from being flattened): step_lease turns over too fast for its statistics, and
-- a join planned on stale ones reads the whole step table.
SELECT s.id, s.lease_token
FROM step_lease l
CROSS JOIN LATERAL (
    SELECT x.id, x.lease_token FROM step x
    WHERE x.id = l.step_id AND x.status = 'running' AND x.lease_token = l.token
      AND x.revoked_at IS NOT NULL
    OFFSET 0
) s
WHERE l.worker_id = $1
