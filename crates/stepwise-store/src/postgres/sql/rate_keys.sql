-- $1 queue, $2 at most this many keys: the rate keys with claimable steps in this
-- queue that admit a start now (not paused, TAT - tolerance reached), least
-- recently admitted first, each locked; a key another claimer holds is skipped
-- (it admits through that claim). The distinct keys come from a loose scan of
-- step_ready_rate, one index probe per key: a key that admits nothing costs one
-- probe, never a scan of its waiting steps.
WITH RECURSIVE keys AS (
    (SELECT r.rate_key FROM step_ready r
     WHERE r.queue = $1 AND r.rate_key IS NOT NULL
     ORDER BY r.rate_key LIMIT 1)
    UNION ALL
    SELECT (SELECT r.rate_key FROM step_ready r
            WHERE r.queue = $1 AND r.rate_key > k.rate_key
            ORDER BY r.rate_key LIMIT 1)
    FROM keys k
    WHERE k.rate_key IS NOT NULL
)
SELECT l.key, l.limit_count, l.per_ms, l.burst, l.tat, (SELECT stepwise_now()) AS now
FROM rate_limit l
WHERE l.key IN (SELECT k.rate_key FROM keys k WHERE k.rate_key IS NOT NULL)
  AND (l.paused_until IS NULL OR l.paused_until <= (SELECT stepwise_now()))
  AND (l.tat IS NULL
       OR l.tat - (l.burst - 1) * (l.per_ms * 1000 / l.limit_count) * interval '1 microsecond'
          <= (SELECT stepwise_now()))
ORDER BY l.last_admitted NULLS FIRST, l.key
LIMIT $2
FOR UPDATE OF l SKIP LOCKED
