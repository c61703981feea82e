-- Revoked running steps whose worker has not confirmed the stop within its lease:
-- the lease is over, so the attempt counts as stopped.
SELECT s.id, s.lease_token
FROM step s
JOIN worker w ON w.id = s.worker_id
WHERE s.status = 'running' AND s.revoked_at IS NOT NULL
  AND s.revoked_at + w.lease_ms < (SELECT now_ms FROM db_clock)
ORDER BY s.seq
