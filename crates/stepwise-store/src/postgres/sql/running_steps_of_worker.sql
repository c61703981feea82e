-- $1 worker id: the steps it runs, through its lease rows (a stale row, whose step
-- moved on, names a step no longer running under that token and is passed over).
SELECT s.id, s.lease_token
FROM step_lease l
JOIN step s ON s.id = l.step_id
WHERE l.worker_id = $1 AND s.status = 'running' AND s.lease_token = l.token
