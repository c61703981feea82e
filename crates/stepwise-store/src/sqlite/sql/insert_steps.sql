-- ?1 JSON array of new steps. Scheduled roots (delayed runs) wait for run_after:
-- an absolute "at" or a "delay_ms" from now (a keyed run's roots keep it while
-- blocked, for their admission).
INSERT INTO step (id, run_id, name, queue, status, priority, deps_remaining, dependents,
                  max_attempts, backoff_initial_ms, backoff_factor, backoff_max_ms,
                  run_after, compensable, resource, for_each, rate_key, fair_key)
SELECT unhex(s ->> '$.id'), unhex(s ->> '$.run_id'), s ->> '$.name', s ->> '$.queue',
       s ->> '$.status', s ->> '$.priority', s ->> '$.deps', s -> '$.dependents',
       s ->> '$.max_attempts', s ->> '$.b_initial', s ->> '$.b_factor', s ->> '$.b_max',
       CASE WHEN s ->> '$.at' IS NOT NULL OR s ->> '$.delay_ms' IS NOT NULL
            THEN coalesce(s ->> '$.at', (SELECT now_ms FROM db_clock) + (s ->> '$.delay_ms'))
       END,
       s ->> '$.compensable', s ->> '$.resource', nullif(s -> '$.for_each', 'null'), s ->> '$.rate_key', s ->> '$.fair_key'
FROM (SELECT j.key AS k, j.value AS s FROM json_each(?1) j)
ORDER BY k
