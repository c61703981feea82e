-- $1 run id, $2 ids, $3 names, $4 undone steps, $5 queues, $6 priorities,
-- $7 max attempts, $8..$10 backoff, $11 dependents (one id or none), $12 resources
-- (an undo takes the lock of the step it undoes): the compensation
-- chain, in the order it runs. The first is claimable; each next waits for the one
-- before it. The first gets its ready row in the same statement.
WITH inserted AS (
INSERT INTO step (id, run_id, name, compensates, queue, status, priority, deps_remaining,
                  dependents, max_attempts, backoff_initial_ms, backoff_factor,
                  backoff_max_ms, resource)
SELECT id, $1, name, undoes, queue,
       CASE WHEN ord = 1 THEN 'pending' ELSE 'blocked' END, priority,
       CASE WHEN ord = 1 THEN 0 ELSE 1 END,
       CASE WHEN next IS NULL THEN '{}'::uuid[] ELSE ARRAY[next] END,
       max_attempts, b_initial, b_factor, b_max, resource
FROM unnest($2::uuid[], $3::text[], $4::text[], $5::text[], $6::integer[], $7::integer[],
            $8::bigint[], $9::double precision[], $10::bigint[], $11::uuid[], $12::text[])
     WITH ORDINALITY AS i(id, name, undoes, queue, priority, max_attempts, b_initial,
                          b_factor, b_max, next, resource, ord)
ORDER BY ord
RETURNING queue, priority, seq, id, resource, rate_key, fair_key, status
)
INSERT INTO step_ready (queue, priority, seq, step_id, resource, rate_key, fair_key)
SELECT queue, priority, seq, id, resource, rate_key, fair_key FROM inserted WHERE status = 'pending'
