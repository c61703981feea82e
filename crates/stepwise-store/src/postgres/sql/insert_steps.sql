-- Scheduled roots (delayed runs) wait for run_after: an absolute $13 or a delay $14
-- (a keyed run's roots keep it while blocked, for their admission). Pending steps
-- get their ready row in the same statement (a pending step always has one).
WITH inserted AS (
INSERT INTO step (id, run_id, name, queue, status, priority, deps_remaining, dependents,
                  max_attempts, backoff_initial_ms, backoff_factor, backoff_max_ms,
                  run_after, compensable, resource, for_each, rate_key, fair_key)
SELECT id, run_id, name, queue, status, priority, deps, dependents::uuid[],
       max_attempts, b_initial, b_factor, b_max,
       CASE WHEN at IS NOT NULL OR delay_ms IS NOT NULL
            THEN coalesce(at, (SELECT stepwise_now()) + delay_ms * interval '1 millisecond')
       END,
       compensable, resource, for_each, rate_key, fair_key
FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::integer[],
            $7::integer[], $8::text[], $9::integer[], $10::bigint[],
            $11::double precision[], $12::bigint[], $13::timestamptz[], $14::bigint[],
            $15::boolean[], $16::text[], $17::jsonb[], $18::text[], $19::text[])
     WITH ORDINALITY AS i(id, run_id, name, queue, status, priority, deps, dependents,
                          max_attempts, b_initial, b_factor, b_max, at, delay_ms,
                          compensable, resource, for_each, rate_key, fair_key, ord)
ORDER BY ord
RETURNING queue, priority, seq, id, resource, rate_key, fair_key, status
)
INSERT INTO step_ready (queue, priority, seq, step_id, resource, rate_key, fair_key)
SELECT queue, priority, seq, id, resource, rate_key, fair_key FROM inserted WHERE status = 'pending'
