-- ?1 JSON array of {"id": run id (hex), "data": event data} for the runs that just
-- ended or started compensating (which has no finished_at yet).
INSERT INTO event (kind, run_id, group_name, at, data)
SELECT 'run.' || r.status, r.id, r.group_name,
       coalesce(r.finished_at, (SELECT now_ms FROM db_clock)),
       j.value -> '$.data'
FROM json_each(?1) j
JOIN run r ON r.id = unhex(j.value ->> '$.id')
ORDER BY j.key
