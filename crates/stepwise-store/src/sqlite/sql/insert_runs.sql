-- One new run; a taken (workflow, idempotency key) inserts nothing and the caller
-- looks the existing run up.
INSERT INTO run (id, workflow, workflow_version, status, input, idempotency_key,
                 concurrency_key, group_name, priority, steps_total, steps_open,
                 created_at, started_at)
VALUES (?1, ?2, ?3, 'running', ?4, ?5, ?6, ?7, ?8, ?9, ?9, (SELECT now_ms FROM db_clock), (SELECT now_ms FROM db_clock))
ON CONFLICT (workflow, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING seq
