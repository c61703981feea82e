-- ?1 JSON array of run ids (hex) that just ended or started compensating (which has
-- no finished_at yet).
INSERT INTO event (kind, run_id, group_name, at, data)
SELECT 'run.' || r.status, r.id, r.group_name,
       coalesce(r.finished_at, (SELECT now_ms FROM db_clock)),
       CASE WHEN r.error IS NULL THEN '{}' ELSE json_object('error', r.error) END
FROM json_each(?1) j
JOIN run r ON r.id = unhex(j.value)
ORDER BY j.key
