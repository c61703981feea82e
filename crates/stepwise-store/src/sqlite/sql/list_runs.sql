-- Newest first by sequence; ?4 is the sequence the previous page ended at.
SELECT id, seq, workflow, workflow_version, status, input, idempotency_key,
       concurrency_key, group_name, priority, error, created_at, started_at,
       finished_at, steps_total, steps_open, halt, parent_run, parent_step,
       (SELECT f.schedule FROM schedule_fire f WHERE f.run_id = run.id LIMIT 1) AS schedule,
       (SELECT f.fire_time FROM schedule_fire f WHERE f.run_id = run.id LIMIT 1) AS scheduled_for
FROM run
WHERE (?1 IS NULL OR status = ?1)
  AND (?2 IS NULL OR workflow = ?2)
  AND (?3 IS NULL OR group_name = ?3)
  AND (?4 IS NULL OR seq < ?4)
  AND (?6 IS NULL OR parent_run = ?6)
ORDER BY seq DESC
LIMIT coalesce(?5, -1)
