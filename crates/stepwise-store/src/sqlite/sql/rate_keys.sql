-- ?1 queue, ?2 at most this many keys, ?3 the cap of a burst's tolerance in
-- microseconds (`MAX_TOLERANCE_US`): the rate keys with pending steps in this
-- queue that admit a start now (not paused, TAT - tolerance reached), least
-- recently admitted first. A loose scan of step_rate, one probe per key. TATs are
-- kept in microseconds, clock times in milliseconds.
WITH RECURSIVE keys(rate_key) AS (
    SELECT (SELECT s.rate_key FROM step s
            WHERE s.status = 'pending' AND s.queue = ?1 AND s.rate_key IS NOT NULL
            ORDER BY s.rate_key LIMIT 1)
    UNION ALL
    SELECT (SELECT s.rate_key FROM step s
            WHERE s.status = 'pending' AND s.queue = ?1 AND s.rate_key IS NOT NULL
              AND s.rate_key > k.rate_key
            ORDER BY s.rate_key LIMIT 1)
    FROM keys k
    WHERE k.rate_key IS NOT NULL
)
SELECT l.key, l.limit_count, l.per_ms, l.burst, l.tat, (SELECT now_ms FROM db_clock) AS now
FROM rate_limit l
WHERE l.key IN (SELECT k.rate_key FROM keys k WHERE k.rate_key IS NOT NULL)
  AND (l.paused_until IS NULL OR l.paused_until <= (SELECT now_ms FROM db_clock))
  AND (l.tat IS NULL
       OR l.tat - min((l.burst - 1) * max(1, l.per_ms * 1000 / l.limit_count), ?3)
          <= (SELECT now_ms FROM db_clock) * 1000)
ORDER BY l.last_admitted IS NOT NULL, l.last_admitted, l.key
LIMIT ?2
