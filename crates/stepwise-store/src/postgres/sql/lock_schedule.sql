-- $1 name: one schedule, locked (trigger, backfill).
SELECT name, workflow, spec, next_fire_at, last_run_id, (SELECT stepwise_now()) AS now
FROM schedule
WHERE name = $1
FOR UPDATE
