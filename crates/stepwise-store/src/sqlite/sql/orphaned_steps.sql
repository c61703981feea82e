-- Running steps whose worker is dead: reaped now, or reaped while it was claiming.
SELECT s.id, s.lease_token
FROM step s
JOIN worker w ON w.id = s.worker_id
WHERE s.status = 'running' AND w.status = 'dead'
ORDER BY s.seq
