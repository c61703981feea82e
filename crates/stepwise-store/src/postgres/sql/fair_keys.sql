-- $1 queue, $2 at most this many keys: the fairness keys with claimable steps in
-- this queue, least recently served first (never served: first of all). A loose
-- scan of step_ready_fair, one index probe per key, however long a key's backlog.
WITH RECURSIVE keys AS (
    (SELECT r.fair_key FROM step_ready r
     WHERE r.queue = $1 AND r.fair_key IS NOT NULL AND r.rate_key IS NULL
       AND r.resource IS NULL
     ORDER BY r.fair_key LIMIT 1)
    UNION ALL
    SELECT (SELECT r.fair_key FROM step_ready r
            WHERE r.queue = $1 AND r.fair_key IS NOT NULL AND r.rate_key IS NULL
              AND r.resource IS NULL AND r.fair_key > k.fair_key
            ORDER BY r.fair_key LIMIT 1)
    FROM keys k
    WHERE k.fair_key IS NOT NULL
)
SELECT k.fair_key AS key
FROM keys k
LEFT JOIN fair_lane f ON f.queue = $1 AND f.key = k.fair_key
WHERE k.fair_key IS NOT NULL
ORDER BY f.served NULLS FIRST, k.fair_key
LIMIT $2
