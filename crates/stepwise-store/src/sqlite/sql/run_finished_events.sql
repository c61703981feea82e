-- ?1 JSON array of finished run ids (hex).
INSERT INTO event (kind, run_id, group_name, at, data)
SELECT 'run.' || r.status, r.id, r.group_name, r.finished_at,
       CASE WHEN r.error IS NULL THEN '{}' ELSE json_object('error', r.error) END
FROM json_each(?1) j
JOIN run r ON r.id = unhex(j.value)
ORDER BY j.key
