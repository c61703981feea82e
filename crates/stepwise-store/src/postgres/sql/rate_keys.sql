-- $1 queue, $2 at most this many keys, $3 the cap of a burst's tolerance in
-- microseconds (`MAX_TOLERANCE_US`): the rate keys with claimable steps in this
-- queue that admit a start now (not paused, TAT - tolerance reached), least
-- recently admitted first, each locked (`held` false). A key another claimer holds
-- is skipped, and the first one skipped comes back as one more row with `held`
-- true and nothing else: a claim that locked no key may wait for it
-- (`wait_rate_key.sql`) rather than come back empty while its key admits. The
-- distinct keys come from a loose scan of step_ready_rate, one index probe per
-- key: a key that admits nothing costs one probe, never a scan of its waiting
-- steps. The admission test is on the locking scan, so that it is checked again
-- on the row as locked (a TAT another claim just moved on).
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
),
admitting AS (
    SELECT l.key, l.last_admitted
    FROM rate_limit l
    WHERE l.key IN (SELECT k.rate_key FROM keys k WHERE k.rate_key IS NOT NULL)
      AND (l.paused_until IS NULL OR l.paused_until <= (SELECT stepwise_now()))
      AND (l.tat IS NULL
           OR l.tat - least((l.burst - 1)::numeric * greatest(1, l.per_ms * 1000 / l.limit_count),
                          $3)::bigint * interval '1 microsecond'
              <= (SELECT stepwise_now()))
),
locked AS (
    SELECT l.key, l.limit_count, l.per_ms, l.burst, l.tat, l.last_admitted
    FROM rate_limit l
    WHERE l.key IN (SELECT a.key FROM admitting a)
      AND (l.paused_until IS NULL OR l.paused_until <= (SELECT stepwise_now()))
      AND (l.tat IS NULL
           OR l.tat - least((l.burst - 1)::numeric * greatest(1, l.per_ms * 1000 / l.limit_count),
                          $3)::bigint * interval '1 microsecond'
              <= (SELECT stepwise_now()))
    ORDER BY l.last_admitted NULLS FIRST, l.key
    LIMIT $2
    FOR UPDATE OF l SKIP LOCKED
)
SELECT * FROM (
    SELECT k.key, k.limit_count, k.per_ms, k.burst, k.tat, (SELECT stepwise_now()) AS now,
           false AS held, k.last_admitted
    FROM locked k
    UNION ALL
    (SELECT a.key, NULL, NULL, NULL, NULL, (SELECT stepwise_now()), true, a.last_admitted
     FROM admitting a
     WHERE a.key NOT IN (SELECT k.key FROM locked k)
     ORDER BY a.last_admitted NULLS FIRST, a.key
     LIMIT 1)
) keys
ORDER BY held, last_admitted NULLS FIRST, key
