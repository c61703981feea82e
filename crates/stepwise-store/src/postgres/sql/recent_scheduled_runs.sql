-- $1 schedule, $2 most: its newest runs (the ledger's primary key serves it).
SELECT f.run_id, f.fire_time, r.status
FROM schedule_fire f
JOIN run r ON r.id = f.run_id
WHERE f.schedule = $1
ORDER BY f.fire_time DESC
LIMIT $2
