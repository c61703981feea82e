-- Revoked running steps whose worker has not confirmed the stop within a lease and
-- is itself gone: only then is the attempt surely stopped. A live worker always
-- reports (it kills an exec child, aborts an http call, drops a handler), and until
-- it does the step keeps its resource lock and holds back compensation.
-- Each lease row's step is one primary-key probe (a LATERAL sub-query that OFFSET 0
-- keeps from being flattened): step_lease turns over too fast for its statistics, and
-- a join planned on stale ones reads the whole step table.
SELECT s.id, s.lease_token
FROM worker w
JOIN step_lease l ON l.worker_id = w.id
CROSS JOIN LATERAL (
    SELECT x.id, x.lease_token, x.revoked_at FROM step x
    WHERE x.id = l.step_id AND x.status = 'running' AND x.lease_token = l.token
      AND x.revoked_at IS NOT NULL
    OFFSET 0
) s
WHERE (w.status <> 'alive' OR w.expires_at < (SELECT stepwise_now()))
  AND s.revoked_at + w.lease_ms * interval '1 millisecond' < (SELECT stepwise_now())
ORDER BY s.id
