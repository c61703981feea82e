-- Revoked running steps whose worker has not confirmed the stop within a lease and
-- is itself gone: only then is the attempt surely stopped. A live worker always
-- reports (it kills an exec child, aborts an http call, drops a handler), and until
-- it does the step keeps its resource lock and holds back compensation.
SELECT s.id, s.lease_token
FROM worker w
JOIN step_lease l ON l.worker_id = w.id
JOIN step s ON s.id = l.step_id
WHERE s.status = 'running' AND s.lease_token = l.token AND s.revoked_at IS NOT NULL
  AND (w.status <> 'alive' OR w.expires_at < (SELECT stepwise_now()))
  AND s.revoked_at + w.lease_ms * interval '1 millisecond' < (SELECT stepwise_now())
ORDER BY s.id
