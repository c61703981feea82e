-- $1 a rate key another claim holds, $2 the cap of a burst's tolerance in
-- microseconds (`MAX_TOLERANCE_US`); (`rate_keys.sql`): waits for it (within the
-- claim's `lock_timeout`, set by the caller in a savepoint) and locks it, if it
-- still admits a start now once that claim has moved its TAT on. A hot key is
-- claimed through one transaction at a time; waiting for the holder's commit
-- (a claim: a millisecond or two) keeps every claimer busy where skipping it sent
-- them away empty-handed.
SELECT l.key, l.limit_count, l.per_ms, l.burst, l.tat, (SELECT stepwise_now()) AS now
FROM rate_limit l
WHERE l.key = $1
  AND (l.paused_until IS NULL OR l.paused_until <= (SELECT stepwise_now()))
  AND (l.tat IS NULL
       OR l.tat - least((l.burst - 1)::numeric * greatest(1, l.per_ms * 1000 / l.limit_count),
                          $2)::bigint * interval '1 microsecond'
          <= (SELECT stepwise_now()))
FOR UPDATE OF l
