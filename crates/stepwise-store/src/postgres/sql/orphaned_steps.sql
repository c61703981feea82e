-- Running steps whose worker is no longer alive: reaped now, or reaped or stopped
-- while a claim of its was committing. Found through the lease rows of workers that
-- are not alive.
SELECT s.id, s.lease_token
FROM worker w
JOIN step_lease l ON l.worker_id = w.id
JOIN step s ON s.id = l.step_id
WHERE w.status <> 'alive' AND s.status = 'running' AND s.lease_token = l.token
ORDER BY s.id
