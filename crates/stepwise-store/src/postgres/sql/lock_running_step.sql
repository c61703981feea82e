-- $1 step id, $2 lease token: the step, locked, if it still runs under that lease.
-- Its run is locked too (step before run, as everywhere), so `halted` is current: a
-- halt that commits first is seen, and one that commits later waits for this outcome.
-- A forward step is halted when its run stops early; a compensation only when the
-- run gave up compensating (`cancel --no-compensate`).
SELECT s.run_id, s.name, s.attempt, s.max_attempts, s.backoff_initial_ms,
       s.backoff_factor, s.backoff_max_ms, s.worker_id, s.started_at, r.group_name,
       CASE WHEN s.compensates IS NULL THEN r.halt IS NOT NULL ELSE r.no_compensate END
           AS halted,
       s.attempt_base, s.revoked_at IS NOT NULL AS revoked, s.rate_key,
       -- An item whose step tolerates its failure (`on_item_failure = "continue"`).
       CASE WHEN s.item_of IS NOT NULL
                 AND (SELECT p.for_each ->> 'on_item_failure' FROM step p
                      WHERE p.id = s.item_of) = 'continue'
            THEN s.item_of END AS tolerated_by
FROM step s
JOIN run r ON r.id = s.run_id
WHERE s.id = $1 AND s.lease_token = $2 AND s.status = 'running'
FOR UPDATE OF s, r
