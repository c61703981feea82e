SELECT id, seq, workflow, workflow_version, status, input, idempotency_key,
       concurrency_key, group_name, priority, error, created_at, started_at,
       finished_at, steps_total, steps_open, halt
FROM run
WHERE id = ?1
