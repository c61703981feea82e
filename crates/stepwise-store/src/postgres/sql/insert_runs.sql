-- One row per new run; a taken (workflow, idempotency key) inserts nothing, and the
-- caller looks the existing run up. ON CONFLICT waits for a racing insert to commit.
-- A deadline counts from creation ($10: ms, or NULL for none). A run with a
-- concurrency key ($11: its place in the key's line) waits `pending` for admission,
-- `waiting` (in run_line) until then.
WITH input AS (
    SELECT *
    FROM unnest($1::uuid[], $2::text[], $3::integer[], $4::jsonb[], $5::text[],
                $6::text[], $7::integer[], $8::integer[], $10::bigint[], $11::bigint[],
                $12::uuid[], $13::text[])
         WITH ORDINALITY AS i(id, workflow, version, input, idem, ckey, priority, steps,
                              deadline_ms, line_seq, parent_run, parent_step, ord)
),
inserted AS (
    INSERT INTO run (id, workflow, workflow_version, status, input, idempotency_key,
                     concurrency_key, group_name, priority, steps_total, steps_open,
                     created_at, started_at, deadline_at, line_seq, waiting, parent_run,
                     parent_step)
    SELECT id, workflow, version, CASE WHEN ckey IS NULL THEN 'running' ELSE 'pending' END,
           input, idem, ckey, $9, priority, steps, steps, (SELECT stepwise_now()),
           CASE WHEN ckey IS NULL THEN (SELECT stepwise_now()) END,
           (SELECT stepwise_now()) + deadline_ms * interval '1 millisecond', line_seq,
           ckey IS NOT NULL, parent_run, parent_step
    FROM input
    ORDER BY ord
    ON CONFLICT (workflow, idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
    RETURNING id, workflow, workflow_version, group_name, created_at
),
events AS (
    INSERT INTO event (kind, run_id, group_name, data, at)
    SELECT 'run.created', id, group_name,
           jsonb_build_object('workflow', workflow, 'version', workflow_version), created_at
    FROM inserted
)
SELECT id FROM inserted
