-- ?1 worker id: its running steps whose lease was revoked.
SELECT id, lease_token FROM step
WHERE worker_id = ?1 AND status = 'running' AND revoked_at IS NOT NULL
ORDER BY seq
