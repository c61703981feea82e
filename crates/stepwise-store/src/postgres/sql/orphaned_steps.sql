-- Running steps whose worker is no longer alive: reaped now, or reaped or stopped
-- while a claim of its was committing.
SELECT s.id, s.lease_token
FROM step s
JOIN worker w ON w.id = s.worker_id
WHERE s.status = 'running' AND w.status <> 'alive'
ORDER BY s.id
