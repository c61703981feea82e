-- ?1 run id, ?2 JSON array of the compensation chain in the order it runs: "id",
-- "name", "undoes", "queue", "priority", "max_attempts", backoff "b_initial",
-- "b_factor", "b_max", "resource" (the undone step's lock, taken again), and "next" (the id of the one after it, or null). The first
-- is claimable; each next waits for the one before it.
INSERT INTO step (id, run_id, name, compensates, queue, status, priority, deps_remaining,
                  dependents, max_attempts, backoff_initial_ms, backoff_factor,
                  backoff_max_ms, resource)
SELECT unhex(s ->> '$.id'), ?1, s ->> '$.name', s ->> '$.undoes', s ->> '$.queue',
       CASE WHEN k = 0 THEN 'pending' ELSE 'blocked' END, s ->> '$.priority',
       CASE WHEN k = 0 THEN 0 ELSE 1 END,
       CASE WHEN s ->> '$.next' IS NULL THEN '[]' ELSE json_array(s ->> '$.next') END,
       s ->> '$.max_attempts', s ->> '$.b_initial', s ->> '$.b_factor', s ->> '$.b_max',
       s ->> '$.resource'
FROM (SELECT j.key AS k, j.value AS s FROM json_each(?2) j)
ORDER BY k
