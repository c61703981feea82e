-- ?1 JSON array of new runs, ?2 their group. A taken (workflow, idempotency key)
-- inserts nothing; the caller looks the existing run up. A deadline counts from
-- creation ("deadline_ms", or null for none). A run with a concurrency key
-- ("line_seq": its place in the key's line) waits `pending` for admission.
INSERT INTO run (id, workflow, workflow_version, status, input, idempotency_key,
                 concurrency_key, group_name, priority, steps_total, steps_open,
                 created_at, started_at, deadline_at, line_seq, parent_run, parent_step)
SELECT unhex(j.value ->> '$.id'), j.value ->> '$.workflow', j.value ->> '$.version',
       CASE WHEN j.value ->> '$.concurrency_key' IS NULL THEN 'running' ELSE 'pending' END,
       j.value -> '$.input', j.value ->> '$.idempotency_key',
       j.value ->> '$.concurrency_key', ?2, j.value ->> '$.priority',
       j.value ->> '$.steps', j.value ->> '$.steps', (SELECT now_ms FROM db_clock),
       CASE WHEN j.value ->> '$.concurrency_key' IS NULL THEN (SELECT now_ms FROM db_clock) END,
       (SELECT now_ms FROM db_clock) + (j.value ->> '$.deadline_ms'),
       j.value ->> '$.line_seq', unhex(j.value ->> '$.parent_run'),
       j.value ->> '$.parent_step'
FROM json_each(?1) j
WHERE true
ORDER BY j.key
ON CONFLICT (workflow, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
RETURNING id
