-- $1 expanded step id, $2 index of the first item, $3 the items, $4 index below
-- which items are claimable at once (the others wait for a place under
-- max_parallel, blocked on one pseudo-dependency). Items inherit the step's queue,
-- priority, retry policy, resource and compensation; each depends on nothing and
-- has the step as its one dependent (the join). Claimable items get their ready row.
WITH parent AS (
    SELECT * FROM step WHERE id = $1
),
inserted AS (
    INSERT INTO step (id, run_id, name, queue, status, priority, deps_remaining, dependents,
                      max_attempts, backoff_initial_ms, backoff_factor, backoff_max_ms,
                      compensable, resource, item_of, item_index, item, rate_key, fair_key)
    SELECT gen_random_uuid(), p.run_id, p.name || '[' || ($2 + i.ord - 1) || ']', p.queue,
           CASE WHEN $2 + i.ord - 1 < $4 THEN 'pending' ELSE 'blocked' END, p.priority,
           CASE WHEN $2 + i.ord - 1 < $4 THEN 0 ELSE 1 END, ARRAY[p.id],
           p.max_attempts, p.backoff_initial_ms, p.backoff_factor, p.backoff_max_ms,
           p.compensable, p.resource, p.id, ($2 + i.ord - 1)::integer, i.item, p.rate_key,
           p.fair_key
    FROM parent p
    CROSS JOIN unnest($3::jsonb[]) WITH ORDINALITY AS i(item, ord)
    ORDER BY i.ord
    RETURNING queue, priority, seq, id, resource, rate_key, fair_key, status
)
INSERT INTO step_ready (queue, priority, seq, step_id, resource, rate_key, fair_key)
SELECT queue, priority, seq, id, resource, rate_key, fair_key FROM inserted WHERE status = 'pending'
