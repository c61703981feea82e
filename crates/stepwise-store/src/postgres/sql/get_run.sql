SELECT id, seq, workflow, workflow_version, status, input, idempotency_key,
       concurrency_key, group_name, priority, error, created_at, started_at,
       finished_at, steps_total, steps_open, halt, parent_run, parent_step,
       (SELECT f.schedule FROM schedule_fire f WHERE f.run_id = run.id LIMIT 1) AS schedule,
       (SELECT f.fire_time FROM schedule_fire f WHERE f.run_id = run.id LIMIT 1) AS scheduled_for
FROM run
WHERE id = $1
