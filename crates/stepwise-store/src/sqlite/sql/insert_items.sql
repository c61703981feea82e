-- ?1 expanded step id, ?2 index of the first item, ?3 JSON array of the items, ?4
-- index below which items are claimable at once (the others wait for a place under
-- max_parallel, blocked on one pseudo-dependency). Items inherit the step's queue,
-- priority, retry policy, resource, rate limit and fairness keys and compensation;
-- each depends on nothing and has the step as its one dependent (the join).
INSERT INTO step (id, run_id, name, queue, status, priority, deps_remaining, dependents,
                  max_attempts, backoff_initial_ms, backoff_factor, backoff_max_ms,
                  compensable, resource, item_of, item_index, item, rate_key, fair_key)
SELECT randomblob(16), p.run_id, p.name || '[' || (?2 + j.key) || ']', p.queue,
       CASE WHEN ?2 + j.key < ?4 THEN 'pending' ELSE 'blocked' END, p.priority,
       CASE WHEN ?2 + j.key < ?4 THEN 0 ELSE 1 END, json_array(lower(hex(p.id))),
       p.max_attempts, p.backoff_initial_ms, p.backoff_factor, p.backoff_max_ms,
       p.compensable, p.resource, p.id, ?2 + j.key,
       CASE j.type WHEN 'object' THEN j.value WHEN 'array' THEN j.value
                   WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN 'null'
                   ELSE json_quote(j.value) END,
       p.rate_key, p.fair_key
FROM step p, json_each(?3) j
WHERE p.id = ?1
ORDER BY j.key
