-- ?1 most: due schedules (database clock). The write transaction holds the
-- database lock: no two processes fire one schedule at once.
SELECT name, workflow, spec, next_fire_at, last_run_id, (SELECT now_ms FROM db_clock) AS now
FROM schedule
WHERE paused = 0 AND next_fire_at <= (SELECT now_ms FROM db_clock)
ORDER BY next_fire_at
LIMIT ?1
