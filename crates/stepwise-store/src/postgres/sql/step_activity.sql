SELECT count(*) FILTER (WHERE s.status = 'completed') AS completed,
       min(s.started_at) AS first_started, max(s.finished_at) AS last_finished
FROM step s
JOIN run r ON r.id = s.run_id
WHERE r.workflow = $1
