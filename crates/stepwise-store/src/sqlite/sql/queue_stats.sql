SELECT q.name, q.paused,
       count(s.id) FILTER (WHERE s.status = 'pending') AS pending,
       count(s.id) FILTER (WHERE s.status = 'scheduled') AS scheduled,
       count(s.id) FILTER (WHERE s.status = 'running') AS running,
       min(r.created_at) FILTER (WHERE s.status = 'pending') AS oldest
FROM queue q
LEFT JOIN step s ON s.queue = q.name AND s.status IN ('pending', 'scheduled', 'running')
LEFT JOIN run r ON r.id = s.run_id
GROUP BY q.name, q.paused
ORDER BY q.name
