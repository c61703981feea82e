-- $1 most: due schedules (database clock), locked; one another process is firing is
-- passed over, so no two processes fire one schedule at once.
SELECT name, workflow, spec, next_fire_at, last_run_id, (SELECT stepwise_now()) AS now
FROM schedule
WHERE NOT paused AND next_fire_at <= (SELECT stepwise_now())
ORDER BY next_fire_at
LIMIT $1
FOR UPDATE SKIP LOCKED
