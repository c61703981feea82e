-- ?1 queue, ?2 at most this many keys: the fairness keys with pending steps in this
-- queue, least recently served first (never served: first of all). A loose scan of
-- step_fair, one probe per key, however long a key's backlog.
WITH RECURSIVE keys(fair_key) AS (
    SELECT (SELECT s.fair_key FROM step s
            WHERE s.status = 'pending' AND s.queue = ?1 AND s.fair_key IS NOT NULL
              AND s.rate_key IS NULL AND s.resource IS NULL
            ORDER BY s.fair_key LIMIT 1)
    UNION ALL
    SELECT (SELECT s.fair_key FROM step s
            WHERE s.status = 'pending' AND s.queue = ?1 AND s.fair_key IS NOT NULL
              AND s.rate_key IS NULL AND s.resource IS NULL AND s.fair_key > k.fair_key
            ORDER BY s.fair_key LIMIT 1)
    FROM keys k
    WHERE k.fair_key IS NOT NULL
)
SELECT k.fair_key AS key
FROM keys k
LEFT JOIN fair_lane f ON f.queue = ?1 AND f.key = k.fair_key
WHERE k.fair_key IS NOT NULL
ORDER BY f.served IS NOT NULL, f.served, k.fair_key
LIMIT ?2
