-- ?1 name: one schedule (trigger, backfill).
SELECT name, workflow, spec, next_fire_at, last_run_id, (SELECT now_ms FROM db_clock) AS now
FROM schedule
WHERE name = ?1
