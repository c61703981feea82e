SELECT count(CASE WHEN s.status = 'completed' THEN 1 END), min(s.started_at),
       max(s.finished_at)
FROM step s
JOIN run r ON r.id = s.run_id
WHERE r.workflow = ?1
