-- $1 worker id: its running steps whose lease was revoked.
SELECT s.id, s.lease_token
FROM step_lease l
JOIN step s ON s.id = l.step_id
WHERE l.worker_id = $1 AND s.status = 'running' AND s.lease_token = l.token
  AND s.revoked_at IS NOT NULL
